//! End to end against a real llama.cpp `llama-server` with real weights (SmolLM2-135M and
//! Gemma 3 270M), through the README's quickstart script. The servers run on ports of
//! this test's own, started and stopped by it; `scripts/local-llm` provisions them if
//! this machine has not yet (it builds llama-server: minutes, once).

use moa_core::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const SMOLLM_PORT: &str = "18181";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn local_llm(args: &[&str]) -> std::process::ExitStatus {
    Command::new(repo().join("scripts/local-llm"))
        .args(args)
        .env("MOA_SMOLLM_PORT", SMOLLM_PORT)
        .status()
        .expect("scripts/local-llm runs")
}

/// Stops the test's servers however the test ends.
struct Servers;
impl Drop for Servers {
    fn drop(&mut self) {
        local_llm(&["stop", "smollm"]);
    }
}

/// The servers' own counter (`--metrics`), summed over both.
fn predicted_total() -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (name, port) in [("smollm", SMOLLM_PORT)] {
        let text =
            Command::new("curl").args(["-fsS", &format!("http://127.0.0.1:{port}/metrics")]).output().expect("curl");
        let text = String::from_utf8_lossy(&text.stdout).into_owned();
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("llamacpp:tokens_predicted_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no tokens_predicted_total in /metrics of {name}:\n{text}"));
        out.insert(name, n as u64);
    }
    out
}

#[test]
fn the_local_recipe_runs_on_real_llama_servers() {
    assert!(local_llm(&["start", "smollm"]).success(), "local servers start");
    let _servers = Servers;
    let before = predicted_total();

    let out = Command::new(repo().join("scripts/quickstart"))
        .args(["--json", "--max-tokens", "48", "What are 3 fun things to do in SF?"])
        .env("MOA_BIN", env!("CARGO_BIN_EXE_moa"))
        .env("MOA_SMOLLM_PORT", SMOLLM_PORT)
        .output()
        .expect("quickstart runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events: Vec<Event> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event per line"))
        .collect();
    let after = predicted_total();

    // The event sequence is complete and consistent.
    assert!(
        matches!(events.first(), Some(Event::RunStarted { recipe, layers: 1, planned_calls: 4 }) if recipe == "local")
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
    assert_eq!(providers, BTreeSet::from(["smollm".to_owned()]), "SmolLM2 only (Gemma's weights are a base model)");
    assert_eq!(finished.iter().filter(|(_, layer, _)| *layer == 0).count(), 3, "three proposers");
    let aggregated = finished.iter().filter(|(_, layer, _)| *layer == 1).count();
    assert!(aggregated <= 1, "then at most an aggregator");

    // The streamed answer is non-empty and is exactly what the aggregator streamed; when
    // the proposers agree, `vote` answers with one of theirs and makes no aggregator call.
    let Some(Event::Final { text, usage, .. }) = events.last() else { panic!("ends with final") };
    assert!(!text.trim().is_empty());
    match finished.iter().find(|(_, l, _)| *l == 1) {
        Some((agg, _, _)) => assert_eq!(&deltas[&agg.0], text),
        None => assert!(deltas.values().any(|d| d.trim() == text.trim()), "a proposer's answer"),
    }

    // The tokens counted equal what the servers generated, by their own counters.
    let generated: u64 = after.values().sum::<u64>() - before.values().sum::<u64>();
    assert_eq!(usage.output_tokens, generated);
    assert_eq!(usage.output_tokens, finished.iter().map(|(_, _, u)| u.output_tokens).sum::<u64>());
    assert!(usage.input_tokens > 0);
}

/// `moa eval` on a slice of a shipped set, through the real SmolLM2: the CI-sized slice of
/// the README's table (`scripts/eval-local` makes the whole table). Its own ports, so it
/// can run beside the test above.
#[test]
fn moa_eval_scores_the_real_local_model_on_a_shipped_set() {
    let ports = [("MOA_SMOLLM_PORT", "18191")];
    let llm = |args: &[&str]| {
        Command::new(repo().join("scripts/local-llm")).args(args).envs(ports).status().expect("scripts/local-llm runs")
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
