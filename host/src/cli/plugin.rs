//! `moa plugin check`: load a plugin, check its contract, run it once, time it.

use super::common::{FAILED, bad};
use clap::Subcommand;
use moa_core::Message;
use moa_host::plugin::{self, Runtime};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// Compile a plugin into the on-disk cache (what the host runs in a child process
    /// with its own limits).
    #[command(hide = true)]
    Compile {
        /// The plugin's .wasm file.
        file: PathBuf,
    },
    /// Load a plugin, check its contract, run it on a sample context, and time it.
    Check {
        /// The plugin's .wasm file.
        file: PathBuf,
        /// Params as JSON, as a recipe would give them.
        #[arg(long, default_value = "{}")]
        params: String,
    },
}

pub(crate) fn plugin_check(file: &std::path::Path, params: &str) -> ExitCode {
    let params: serde_json::Value = match serde_json::from_str(params) {
        Ok(v) => v,
        Err(e) => return bad(&format!("--params is not JSON: {e}")),
    };
    let runtime = match Runtime::default_isolated(super::common::moa_exe()) {
        Ok(r) => r,
        Err(e) => return bad(&format!("cannot start the plugin runtime: {e}")),
    };
    let t = std::time::Instant::now();
    let spec =
        moa_core::recipe::StrategySpec { plugin: Some(file.display().to_string()), params, ..Default::default() };
    let mut strategy = match plugin::PluginStrategy::new(runtime.clone(), file, &spec) {
        Ok(s) => s,
        Err(e) => return bad(&e.to_string()),
    };
    let loaded = t.elapsed();
    let plugin = match runtime.load(file) {
        Ok(p) => p,
        Err(e) => return bad(&e.to_string()),
    };
    println!(
        "{}: contract moa:strategy@{}, loaded in {:.1} ms",
        file.display(),
        plugin.contract,
        loaded.as_secs_f64() * 1e3
    );
    println!("  {} {} — {}", plugin.info.name, plugin.info.version, plugin.info.description);
    println!("  params: {}", plugin.info.params);
    let conversation = [Message::user("What is the capital of France?")];
    let proposals: Vec<moa_core::strategy::Proposal> =
        ["Paris.", "The capital of France is Paris.", "Paris", "Lyon", "Paris.", "Marseille"]
            .iter()
            .enumerate()
            .map(|(i, t)| moa_core::strategy::Proposal {
                agent: format!("sample:agent-{i}"),
                model: format!("agent-{i}"),
                text: (*t).into(),
                usage: None,
                latency_ms: 100.0,
            })
            .collect();
    let input = moa_core::strategy::StrategyInput {
        conversation: &conversation,
        layer: 1,
        layer_count: 1,
        proposals: &proposals,
    };
    use moa_core::strategy::Strategy;
    let t = std::time::Instant::now();
    let decision = strategy.decide(&input);
    let took = t.elapsed();
    match decision {
        Ok(moa_core::strategy::Decision::Final(answer)) => {
            println!("  decided the final answer in {:.1} µs: {answer:?}", took.as_secs_f64() * 1e6)
        }
        Ok(moa_core::strategy::Decision::Messages(ms)) => {
            println!("  returned {} message(s) for the next agents in {:.1} µs:", ms.len(), took.as_secs_f64() * 1e6);
            for m in ms {
                println!("    [{:?}] {}", m.role, m.content.replace('\n', "\n      "));
            }
        }
        Err(e) => {
            eprintln!("moa: {e}");
            return ExitCode::from(FAILED);
        }
    }
    ExitCode::SUCCESS
}

/// `moa plugin compile FILE`: the child process of `plugin::Compiler`.
pub(crate) fn plugin_compile(file: &std::path::Path) -> ExitCode {
    match Runtime::compiler_child()
        .map_err(|e| e.to_string())
        .and_then(|r| r.compile_only(file).map_err(|e| e.to_string()))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moa: {e}");
            ExitCode::from(FAILED)
        }
    }
}
