//! `moa batch --via batch-api` against a faithful fake of OpenAI's Batch API and
//! Anthropic's Message Batches (tests/common/batch_api.rs): layer by layer, failed and
//! expired requests retried as smaller jobs, costs at the batch price, resumed after
//! `kill -9` without submitting a job twice, and a hostile results URL refused.

use moa_testkit as common;

use common::batch_api::{Behaviour, FakeBatch};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "sk-BATCH-SENTINEL-0123456789";

fn moa_batch(recipe: &Path, input: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moa"));
    c.args(["batch", "-q", "--via", "batch-api", "--poll-secs", "0.02", "--recipe"])
        .arg(recipe)
        .arg(input)
        .arg("-o")
        .arg(out)
        .env("MOA_TEST_KEY", KEY)
        .stdin(Stdio::null());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A recipe on the fake: two proposers (`b` as `b_model` says), an aggregator, prices.
fn recipe(dir: &Path, fake: &FakeBatch, kind: &str, b_model: &str) -> PathBuf {
    let text = format!(
        "name = \"batched\"\n[policy]\nretries = 2\nbackoff_secs = 0.01\nmax_backoff_secs = 0.05\n\n[providers.fake]\nkind = \"{kind}\"\nbase_url = \"{}\"\napi_key_env = \"MOA_TEST_KEY\"\n\n[[layers]]\nagents = [\"fake:a;text=first proposal\", \"fake:{b_model}\"]\n\n[aggregator]\nmodel = \"fake:agg;text=the final answer\"\nmax_tokens = 64\n\n[prices.\"fake:agg;text=the final answer\"]\ninput = 2.0\noutput = 4.0\n",
        fake.base_url
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).expect("write");
    path
}

fn input(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("in.jsonl");
    let lines: Vec<String> = (0..n).map(|i| format!("{{\"id\": {i}, \"instruction\": \"question {i}\"}}")).collect();
    std::fs::write(&path, lines.join("\n")).expect("write");
    path
}

fn results(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out).expect("out").lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

#[test]
fn openai_batches_run_layer_by_layer_retry_failures_as_smaller_jobs_at_the_batch_price() {
    let fake = FakeBatch::start(Behaviour { polls: 2, ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "openai", "b;text=second proposal;fault=500;times=1");
    let (input, out) = (input(dir.path(), 5), dir.path().join("out.jsonl"));
    let o = moa_batch(&r, &input, &out).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = results(&out);
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| l["answer"] == "the final answer"), "{lines:?}");
    let created = fake.seen.created.lock().expect("lock").clone();
    // Layer 0 of every item in one job (10 calls); the aggregators; the failed call's retry
    // and its item's aggregator in smaller jobs: 16 calls in all, never one at a time.
    assert_eq!(created[0], ("openai", 10), "{created:?}");
    assert_eq!(created.iter().map(|c| c.1).sum::<usize>(), 16, "{created:?}");
    assert!(created.iter().any(|c| c.1 == 1), "the retry went out alone: {created:?}");
    // Costs at half the recipe's prices (only the aggregator is priced): recomputed
    // from the aggregator's usage as the provider reported it (the journal's replies).
    let line = &lines[0];
    let journal = std::fs::read_to_string(dir.path().join("out.jsonl.batch-api/results.jsonl")).expect("journal");
    let agg: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|r| r["status"] == 200)
        .map(|r| serde_json::from_str::<Value>(r["body"].as_str().expect("body")).expect("json"))
        .filter(|b| b["model"] == "agg;text=the final answer")
        .collect();
    assert_eq!(agg.len(), 5);
    let u = &agg[0]["usage"];
    let sync =
        (u["prompt_tokens"].as_f64().expect("n") * 2.0 + u["completion_tokens"].as_f64().expect("n") * 4.0) / 1e6;
    assert!((line["cost"].as_f64().expect("cost") - sync * 0.5).abs() < 1e-12, "{} vs half of {sync}", line["cost"]);
    // The key went with every request to the batch API, and nowhere in moa's output.
    assert!(fake.seen.auth.lock().expect("lock").iter().all(|a| a == &format!("Bearer {KEY}")));
    assert!(!stderr(&o).contains(KEY) && !std::fs::read_to_string(&out).expect("out").contains(KEY));
}

#[test]
fn an_expired_job_has_its_unfinished_half_retried_as_a_smaller_job() {
    let fake = FakeBatch::start(Behaviour { polls: 1, expire_first: true, ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "openai", "b;text=second proposal");
    let (input, out) = (input(dir.path(), 4), dir.path().join("out.jsonl"));
    let o = moa_batch(&r, &input, &out).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(results(&out).len(), 4);
    let created = fake.seen.created.lock().expect("lock").clone();
    assert_eq!(created[0], ("openai", 8));
    // The expired half's 4 calls went out again together (after their backoff, while the
    // finished half's aggregators had a job of their own): 8 + 4 + 4 aggregators.
    assert!(created[1..].contains(&("openai", 4)), "the 4 expired calls, again: {created:?}");
    assert_eq!(created.iter().map(|c| c.1).sum::<usize>(), 16, "{created:?}");
}

#[test]
fn anthropic_message_batches_work_the_same_way() {
    let fake = FakeBatch::start(Behaviour { polls: 1, ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "anthropic", "b;text=second proposal;fault=500;times=2");
    let (input, out) = (input(dir.path(), 3), dir.path().join("out.jsonl"));
    let o = moa_batch(&r, &input, &out).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines = results(&out);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["answer"] == "the final answer"), "{lines:?}");
    let created = fake.seen.created.lock().expect("lock").clone();
    assert!(created.iter().all(|c| c.0 == "anthropic"));
    assert_eq!(created[0].1, 6);
    assert_eq!(created.iter().map(|c| c.1).sum::<usize>(), 6 + 2 + 3, "{created:?}");
    assert!(fake.seen.auth.lock().expect("lock").iter().all(|a| a == KEY), "x-api-key on every request");
}

#[test]
fn killed_while_a_job_runs_moa_resumes_polling_it_and_submits_nothing_twice() {
    let fake = FakeBatch::start(Behaviour { polls: 1_000_000, ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "openai", "b;text=second proposal");
    let (input, out) = (input(dir.path(), 6), dir.path().join("out.jsonl"));
    let mut child = moa_batch(&r, &input, &out).stderr(Stdio::null()).spawn().expect("spawn");
    let start = Instant::now();
    while fake.seen.created.lock().expect("lock").is_empty() || *fake.seen.polls.lock().expect("lock") < 2 {
        assert!(start.elapsed() < Duration::from_secs(30), "no job was created");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    fake.seen.set_polls(0);
    let o = moa_batch(&r, &input, &out).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(results(&out).len(), 6);
    let created = fake.seen.created.lock().expect("lock").clone();
    assert_eq!(created, [("openai", 12), ("openai", 6)], "layer 0 resumed, not resubmitted");
    // Run again: everything is answered; nothing is submitted.
    let o = moa_batch(&r, &input, &out).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(fake.seen.created.lock().expect("lock").len(), 2);
}

#[test]
fn a_results_url_on_another_origin_is_not_fetched_with_the_key() {
    let fake = FakeBatch::start(Behaviour { polls: 0, results_elsewhere: true, ..Behaviour::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "anthropic", "b;text=second proposal");
    let (input, out) = (input(dir.path(), 2), dir.path().join("out.jsonl"));
    let o = moa_batch(&r, &input, &out).output().expect("runs");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not on the provider's own origin: not fetched"), "{}", stderr(&o));
    assert!(!stderr(&o).contains(KEY));
}

#[test]
fn a_provider_that_echoes_a_piece_of_the_key_never_gets_it_printed() {
    for kind in ["openai", "anthropic"] {
        let fake = FakeBatch::start(Behaviour { echo_key_piece: true, ..Behaviour::default() });
        let dir = tempfile::tempdir().expect("tmp");
        let r = recipe(dir.path(), &fake, kind, "b;text=second proposal");
        let (input, out) = (input(dir.path(), 2), dir.path().join("out.jsonl"));
        let o = moa_batch(&r, &input, &out).output().expect("runs");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{kind}: {err}");
        assert!(err.contains("batch API") && err.contains("answered 401"), "{kind}: {err}");
        // The fake echoed KEY's characters 3..15: no 8 of them in a row may be printed.
        let piece: String = KEY.chars().skip(3).take(12).collect();
        for w in piece.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).expect("ascii");
            assert!(!err.contains(w), "{kind}: {w:?} of the key printed: {err}");
        }
        assert!(err.contains("[redacted key]"), "{kind}: {err}");
    }
}
