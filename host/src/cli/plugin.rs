//! `moa plugin check`: load a plugin, check its contract, run it once, time it.
//! `moa plugin new`: a starting point in Rust, Python or JavaScript (`plugin_new`).

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
    /// Write a working starting point for a new plugin, with its build command.
    New {
        /// The plugin's name: its folder, crate or package name.
        name: String,
        /// The language it is written in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::plugin_new::Lang,
        /// Where its folder is written.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Load a plugin, check its contract, run it on a sample context, and time it.
    Check {
        /// The plugin's .wasm file.
        file: PathBuf,
        /// Params as JSON, as a recipe would give them.
        #[arg(long, default_value = "{}")]
        params: String,
        /// What each call the plugin asks for (contract 0.2) answers, in place of a model.
        #[arg(long, default_value = SAMPLE_REPLY)]
        reply: String,
        /// The recipe's limits, as `timeout_ms`, `memory_mib` and `max_output_kib` give them.
        #[command(flatten)]
        limits: LimitArgs,
    },
}

/// What a sample judge says when `plugin check` is not told otherwise: a verdict both
/// `rank` and `select` read.
const SAMPLE_REPLY: &str = r#"{"best": 2, "selected": [2, 1], "stop": false}"#;

/// A plugin's limits on the command line, each as its recipe field names it.
#[derive(clap::Args)]
pub(crate) struct LimitArgs {
    /// Deadline per decision, in milliseconds (the recipe's `timeout_ms`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=moa_core::recipe::MAX_PLUGIN_TIMEOUT_MS))]
    timeout_ms: Option<u64>,
    /// Memory cap over all the plugin's memories, in MiB (the recipe's `memory_mib`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    memory_mib: Option<u32>,
    /// Cap on what one decision returns, in KiB (the recipe's `max_output_kib`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_output_kib: Option<u32>,
}

/// The most memory this process has held (Linux's `VmHWM`), in MiB: what a plugin cost
/// the host at its worst. `None` where the system does not say.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

/// Says how much memory the host held at its peak, then exits with `code`.
fn with_peak(code: ExitCode) -> ExitCode {
    if let Some(mib) = peak_mib() {
        println!("  host memory at its peak: {mib:.1} MiB");
    }
    code
}

pub(crate) fn plugin_check(file: &std::path::Path, params: &str, reply: &str, limits: &LimitArgs) -> ExitCode {
    let params: serde_json::Value = match serde_json::from_str(params) {
        Ok(v) => v,
        Err(e) => return bad(&format!("--params is not JSON: {e}")),
    };
    let runtime = match Runtime::shared(super::common::moa_exe()) {
        Ok(r) => r,
        Err(e) => return bad(&format!("cannot start the plugin runtime: {e}")),
    };
    let t = std::time::Instant::now();
    let spec = moa_core::recipe::StrategySpec {
        plugin: Some(file.display().to_string()),
        params,
        timeout_ms: limits.timeout_ms,
        memory_mib: limits.memory_mib,
        max_output_kib: limits.max_output_kib,
        ..Default::default()
    };
    let mut strategy = match plugin::PluginStrategy::new(runtime.clone(), file, &spec) {
        Ok(s) => s,
        Err(e) => return with_peak(bad(&e.to_string())),
    };
    let loaded = t.elapsed();
    let plugin = match runtime.load(file) {
        Ok(p) => p,
        Err(e) => return bad(&e.to_string()),
    };
    println!(
        "{}: contract moa:strategy@{}, loaded in {:.1} ms",
        file.display(),
        plugin.contract(),
        loaded.as_secs_f64() * 1e3
    );
    println!("  {} {} — {}", plugin.info.name, plugin.info.version, plugin.info.description);
    println!("  params: {}", plugin.info.params);
    let conversation = [Message::user("What is the capital of France?")];
    let proposals = sample_proposals();
    let input = moa_core::strategy::StrategyInput::new(&conversation, 1, 1, &proposals);
    with_peak(match decide_sample(&mut strategy, input, reply) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moa: {e}");
            ExitCode::from(FAILED)
        }
    })
}

fn sample_proposals() -> Vec<moa_core::strategy::Proposal> {
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
        .collect()
}

/// One decision on the sample, each of its asks answered with `reply`, printed as it goes.
fn decide_sample(
    strategy: &mut plugin::PluginStrategy,
    input: moa_core::strategy::StrategyInput<'_>,
    reply: &str,
) -> Result<(), moa_core::strategy::StrategyError> {
    use moa_core::strategy::{Decision, Strategy};
    let mut step = input;
    loop {
        let t = std::time::Instant::now();
        let decision = strategy.decide(&step)?;
        let took = t.elapsed().as_secs_f64() * 1e6;
        if let Some(note) = strategy.note() {
            println!("  note: {note}");
        }
        match decision {
            Decision::Ask(ask) => {
                // Checked plain already; inert all the same, as every plugin text printed.
                let model = ask.model.as_deref().map_or("the recipe's aggregator".into(), plugin::inert);
                println!("  asked in {took:.1} µs for a call to {model} labelled {:?}:", ask.label);
                print_messages(&ask.messages);
                println!("  answered with {reply:?}");
                step = moa_core::strategy::StrategyInput { reply: Some(Ok(reply)), ..input };
                continue;
            }
            Decision::Final(answer) => println!("  decided the final answer in {took:.1} µs: {answer:?}"),
            Decision::Messages(ms) => {
                println!("  returned {} message(s) for the next agents in {took:.1} µs:", ms.len());
                print_messages(&ms);
            }
            Decision::Aggregate(ms) => {
                println!("  ended the debate in {took:.1} µs: {} message(s) for the aggregator:", ms.len());
                print_messages(&ms);
            }
        }
        return Ok(());
    }
}

fn print_messages(ms: &[Message]) {
    for m in ms {
        // A plugin's text, inert: control bytes shown escaped, line by line.
        let lines: Vec<String> = m.content.split('\n').map(plugin::inert).collect();
        println!("    [{:?}] {}", m.role, lines.join("\n      "));
    }
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
