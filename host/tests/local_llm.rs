//! End to end against a real llama.cpp `llama-server` with real weights (SmolLM2-135M and
//! Gemma 3 270M), through the README's quickstart script. The servers run on ports of
//! this test's own, started and stopped by it; `scripts/local-llm` provisions them if
//! this machine has not yet (it builds llama-server: minutes, once).

use moa_core::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

const SMOLLM_PORT: &str = "18181";
const GEMMA_PORT: &str = "18182";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn local_llm(args: &[&str]) -> std::process::ExitStatus {
    Command::new(repo().join("scripts/local-llm"))
        .args(args)
        .env("MOA_SMOLLM_PORT", SMOLLM_PORT)
        .env("MOA_GEMMA_PORT", GEMMA_PORT)
        .status()
        .expect("scripts/local-llm runs")
}

/// Stops the test's servers however the test ends.
struct Servers;
impl Drop for Servers {
    fn drop(&mut self) {
        local_llm(&["stop"]);
    }
}

/// The servers' own counter (`--metrics`), summed over both.
fn predicted_total() -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (name, port) in [("smollm", SMOLLM_PORT), ("gemma", GEMMA_PORT)] {
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
    assert!(local_llm(&["start"]).success(), "local servers start");
    let _servers = Servers;
    let before = predicted_total();

    let out = Command::new(repo().join("scripts/quickstart"))
        .args(["--json", "--max-tokens", "48", "What are 3 fun things to do in SF?"])
        .env("MOA_BIN", env!("CARGO_BIN_EXE_moa"))
        .env("MOA_SMOLLM_PORT", SMOLLM_PORT)
        .env("MOA_GEMMA_PORT", GEMMA_PORT)
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
    assert_eq!(providers, BTreeSet::from(["smollm".to_owned(), "gemma".to_owned()]), "both model families");
    assert_eq!(finished.iter().filter(|(_, layer, _)| *layer == 0).count(), 3, "three proposers");
    assert_eq!(finished.iter().filter(|(_, layer, _)| *layer == 1).count(), 1, "then an aggregator");
    let layers: Vec<usize> = events
        .iter()
        .filter_map(|e| if let Event::LayerFinished { layer, .. } = e { Some(*layer) } else { None })
        .collect();
    assert_eq!(layers, [0, 1]);

    // The streamed answer is non-empty and is exactly what the aggregator streamed.
    let Some(Event::Final { text, usage, .. }) = events.last() else { panic!("ends with final") };
    assert!(!text.trim().is_empty());
    let agg_call = finished.iter().find(|(_, l, _)| *l == 1).expect("aggregator").0;
    assert_eq!(&deltas[&agg_call.0], text);

    // The tokens counted equal what the servers generated, by their own counters.
    let generated: u64 = after.values().sum::<u64>() - before.values().sum::<u64>();
    assert_eq!(usage.output_tokens, generated);
    assert_eq!(usage.output_tokens, finished.iter().map(|(_, _, u)| u.output_tokens).sum::<u64>());
    assert!(usage.input_tokens > 0);
}
