//! End to end against llama.cpp's server with real weights (the `local` preset's models),
//! through the README's quickstart script. The servers run on ports of this test's own,
//! started and stopped by it with `moa local` (which provisions them if this machine has
//! not yet: a download, once).

use moa_testkit as common;

use moa_core::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// This test's ports, by model: its own, so the developer's servers are left alone.
const PORTS: [(&str, &str, u16); 3] = [
    ("smollm", "MOA_SMOLLM_PORT", 18181),
    ("qwen-0.5b", "MOA_QWEN05_PORT", 18182),
    ("qwen-1.5b", "MOA_QWEN15_PORT", 18183),
];

fn port_of(model: &str) -> u16 {
    PORTS.iter().find(|(m, _, _)| *m == model).map(|(_, _, p)| *p).expect("a known model")
}

fn local(args: &[&str]) -> std::process::ExitStatus {
    Command::new(env!("CARGO_BIN_EXE_moa"))
        .arg("local")
        .args(args)
        .envs(PORTS.iter().map(|(_, var, port)| (*var, port.to_string())))
        .status()
        .expect("moa local runs")
}

/// The server's own counter of generated tokens.
fn predicted_total(port: u16) -> u64 {
    let text = Command::new("curl").args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")]).output().expect("curl");
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("llamacpp:tokens_predicted_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tokens_predicted_total in /metrics of port {port}:\n{text}")) as u64
}

#[test]
fn the_local_recipe_runs_on_real_llama_servers() {
    if !common::needs::wanted(common::needs::Needs::Llama) {
        return;
    }
    let preset = moa_core::recipe::preset("local").expect("preset");
    let needs = moa_host::local::needs(&preset);
    let models: Vec<&str> = needs.iter().map(|n| n.model.name).collect::<BTreeSet<_>>().into_iter().collect();
    assert!(!models.is_empty(), "the local preset runs on local models");
    let mut start = vec!["start"];
    start.extend(&models);
    assert!(local(&start).success(), "local servers start");
    struct Stop(Vec<String>);
    impl Drop for Stop {
        fn drop(&mut self) {
            let mut args = vec!["stop"];
            args.extend(self.0.iter().map(String::as_str));
            local(&args);
        }
    }
    let _servers = Stop(models.iter().map(|m| m.to_string()).collect());
    let count = || -> u64 { models.iter().map(|m| predicted_total(port_of(m))).sum() };
    let before = count();

    // The preset's providers moved to this test's ports; quickstart's --start-local finds
    // them running and leaves them be.
    let mut args: Vec<String> = vec!["--json".into(), "--max-tokens".into(), "48".into()];
    for n in &needs {
        args.push("--set".into());
        args.push(format!("providers.{}.base_url=http://127.0.0.1:{}/v1", n.provider, port_of(n.model.name)));
    }
    args.push("What are 3 fun things to do in SF?".into());
    let out = Command::new(repo().join("scripts/quickstart"))
        .args(&args)
        .env("MOA_BIN", env!("CARGO_BIN_EXE_moa"))
        .output()
        .expect("quickstart runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<Event> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect();
    let after = count();
    for m in &models {
        assert_eq!(
            moa_host::local::healthy(port_of(m)),
            moa_host::local::Health::Ok,
            "{m} still runs: not quickstart's to stop"
        );
    }

    // The event sequence is complete and consistent.
    let proposers: usize = preset.layers.iter().flat_map(|l| &l.agents).map(|a| a.samples as usize).sum();
    assert!(
        matches!(events.first(), Some(Event::RunStarted { recipe, layers, planned_calls }) if recipe == "local" && *layers == preset.layers.len() && *planned_calls == proposers + 1),
        "{:?}",
        events.first()
    );
    let mut open = BTreeSet::new();
    let mut providers = BTreeSet::new();
    let mut finished = Vec::new();
    let mut deltas: BTreeMap<u64, String> = BTreeMap::new();
    for e in &events {
        match e {
            Event::CallStarted { at, provider, .. } => {
                assert!(open.insert(at.call));
                providers.insert(provider.clone());
            }
            Event::TextDelta { at, text } => {
                assert!(open.contains(&at.call));
                deltas.entry(at.call.0).or_default().push_str(text);
            }
            Event::CallFinished { at, usage, server_ms, .. } => {
                assert!(open.remove(&at.call));
                assert!(server_ms.is_some(), "llama-server reports its own timings");
                finished.push((at.call, at.layer, usage.expect("llama-server reports usage")));
            }
            // A pooled keep-alive connection the server closed just as a request went out
            // never reached it: the engine retries that, and nothing was generated.
            Event::CallFailed { at, error, will_retry: true, .. } if error.contains("SendRequest") => {
                assert!(open.remove(&at.call));
            }
            Event::CallFailed { error, .. } => panic!("a call failed: {error}\n{stderr}"),
            _ => {}
        }
    }
    assert!(open.is_empty());
    let want: BTreeSet<String> = needs.iter().map(|n| n.provider.clone()).collect();
    assert!(providers.is_subset(&want), "{providers:?} within {want:?}");
    let last = preset.layers.len();
    assert_eq!(finished.iter().filter(|(_, layer, _)| *layer < last).count(), proposers, "every proposer");
    let aggregated = finished.iter().filter(|(_, layer, _)| *layer == last).count();
    assert!(aggregated <= 1, "then at most an aggregator");

    // The streamed answer is non-empty and is exactly what the aggregator streamed; when
    // the proposers agree, `vote` answers with one of theirs and makes no aggregator call.
    let Some(Event::Final { text, usage, .. }) = events.last() else { panic!("ends with final") };
    assert!(!text.trim().is_empty());
    match finished.iter().find(|(_, l, _)| *l == last) {
        Some((agg, _, _)) => assert_eq!(&deltas[&agg.0], text),
        None => assert!(deltas.values().any(|d| d.trim() == text.trim()), "a proposer's answer"),
    }

    // The tokens counted equal what the servers generated, by their own counters.
    let generated: u64 = after - before;
    assert_eq!(usage.output_tokens, generated);
    assert_eq!(usage.output_tokens, finished.iter().map(|(_, _, u)| u.output_tokens).sum::<u64>());
    assert!(usage.input_tokens > 0);
}

/// `moa eval` on a slice of a shipped set, through the real SmolLM2: the CI-sized slice of
/// the README's table (`scripts/eval-local` makes the whole table). Its own ports, so it
/// can run beside the test above.
#[test]
fn moa_eval_scores_the_real_local_model_on_a_shipped_set() {
    if !common::needs::wanted(common::needs::Needs::Llama) {
        return;
    }
    let ports = [("MOA_SMOLLM_PORT", "18191")];
    let llm = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_moa")).arg("local").args(args).envs(ports).status().expect("moa local runs")
    };
    assert!(llm(&["start", "smollm"]).success(), "SmolLM2 starts");
    struct Stop<F: Fn()>(F);
    impl<F: Fn()> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _stop = Stop(|| {
        llm(&["stop", "smollm"]);
    });
    let dir = tempfile::tempdir().expect("tmp");
    let recipe = std::fs::read_to_string(repo().join("evals/recipes/smollm-diverse-vote.toml"))
        .expect("recipe")
        .replace("127.0.0.1:8081", "127.0.0.1:18191");
    let path = dir.path().join("diverse.toml");
    std::fs::write(&path, recipe).expect("write");
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["eval", "--limit", "2", "--max-tokens", "32", "--baselines", "--sequential", "-q", "-o"])
        .arg(&out)
        .arg("--recipe")
        .arg(&path)
        .arg(repo().join("evals/arithmetic.jsonl"))
        .output()
        .expect("moa eval runs");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    let names: Vec<&str> =
        summary["recipes"].as_array().expect("recipes").iter().filter_map(|r| r["recipe"].as_str()).collect();
    assert_eq!(names, ["smollm diverse vote", "smollm:SmolLM2-135M-Instruct alone"]);
    for r in summary["recipes"].as_array().expect("recipes") {
        assert_eq!((r["items"].clone(), r["failed"].clone()), (2.into(), 0.into()), "{r}");
        let e = &r["score"];
        assert!(e["lo"].as_f64() <= e["mean"].as_f64() && e["mean"].as_f64() <= e["hi"].as_f64(), "{e}");
    }
    let results = std::fs::read_to_string(out.join("results.jsonl")).expect("results");
    for line in results.lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("line");
        assert!(r["answer"].is_string() && r["tokens"].as_u64() > Some(0), "{r}");
        assert!(r["ttft_ms"].as_f64() <= r["wall_ms"].as_f64(), "{r}");
    }
    assert!(std::fs::read_to_string(out.join("report.html")).expect("report").contains("<svg"));
}
