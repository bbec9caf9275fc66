//! How much the native host adds on top of the providers' own time.
//! `cargo bench -p moa-host --bench overhead`; results are recorded in BENCHMARKS.md.
//!
//! 1. overhead: the `moa` preset's shape (6 + 6 + 1 calls) against the latency-injecting
//!    fake server: wall time ÷ critical path (sum over layers of the slowest call, as the
//!    server timed it), and the gap from the last proposer's last byte to the aggregator's
//!    first token reaching the caller, beyond the server's own time to first token.
//! 2. batch: 1,000 `moa-lite`-shaped items at concurrency 64: items per second against
//!    the ideal, 64 ÷ the per-item critical path.
//! 3. the same MoA-Lite shape against real llama-servers, with the servers' own `timings`
//!    as the critical path.
#![allow(missing_docs)]

use moa_testkit as common;

use common::Fake;
use moa_core::{Event, Message, Recipe, Run, RunOptions};
use moa_host::{Clock, Transport, batch};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn layered(base_url: &str, layers: usize, proposer: &str, aggregator: &str, extra: &str) -> Recipe {
    let mut toml =
        format!("name = \"bench\"\n{extra}\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n");
    for l in 0..layers {
        let agents: Vec<String> = (0..6).map(|i| format!("\"fake:p{l}{i};{proposer}\"")).collect();
        toml.push_str(&format!("\n[[layers]]\nagents = [{}]\n", agents.join(", ")));
    }
    toml.push_str(&format!("\n[aggregator]\nmodel = \"fake:agg;{aggregator}\"\n"));
    Recipe::from_toml(&toml).expect("bench recipe")
}

async fn overhead(transport: &Transport) {
    let mut ratios = Vec::new();
    let mut gaps = Vec::new();
    for _ in 0..7 {
        let fake = Fake::start();
        let shape = "ttft=300;tokens=50;rate=250";
        let recipe = layered(&fake.base_url, 2, shape, shape, "");
        let clock = Clock::new();
        let mut run =
            Run::with_options(&recipe, vec![Message::user("q")], clock.now(), RunOptions::default()).expect("starts");
        let mut first_final_token = None;
        let start = Instant::now();
        let outcome = transport
            .drive(&mut run, &clock, &CancellationToken::new(), |e| {
                if let Event::TextDelta { at, .. } = e
                    && at.layer == 2
                {
                    first_final_token.get_or_insert_with(Instant::now);
                }
            })
            .await;
        let wall = start.elapsed().as_secs_f64();
        assert!(outcome.answer.is_ok());
        let spans = fake.seen.spans.lock().expect("lock").clone();
        assert_eq!(spans.len(), 13);
        let slowest = |r: std::ops::Range<usize>| {
            spans[r].iter().map(|s| s.end.expect("ended").duration_since(s.received).as_secs_f64()).fold(0.0, f64::max)
        };
        let critical = slowest(0..6) + slowest(6..12) + slowest(12..13);
        ratios.push(wall / critical);
        let last_proposer_end = spans[6..12].iter().filter_map(|s| s.end).max().expect("ends");
        let agg = &spans[12];
        let server_ttft = agg.first.expect("first").duration_since(agg.received);
        let gap = first_final_token.expect("streamed").duration_since(last_proposer_end) - server_ttft;
        gaps.push(gap.as_secs_f64() * 1000.0);
    }
    println!("overhead (moa shape, 13 calls of ~500 ms, 7 runs, medians):");
    println!("  wall / critical path            {:.4}", median(ratios));
    println!("  last layer done -> aggregator's first token, beyond the server's TTFT: {:.2} ms", median(gaps));
}

async fn batch_throughput(transport: &Transport) {
    let fake = Fake::start();
    let call = "ttft=20;tokens=10;rate=500"; // ~40 ms per call
    let recipe = layered(&fake.base_url, 1, call, call, "");
    // As `moa batch` does: the recipe's provider caps on the transport.
    let transport = &transport.clone().with_provider_limits([&recipe]);
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.jsonl");
    let n = 1000;
    std::fs::write(&input, (0..n).map(|i| format!("\"question {i}\"\n")).collect::<String>()).expect("write");
    let job = batch::Batch {
        recipe,
        resolver: None,
        keys: Default::default(),
        input,
        output: dir.path().join("out.jsonl"),
        concurrency: 64,
        proposals: false,
        seed: 0,
        on_progress: None,
        select: Default::default(),
    };
    let start = Instant::now();
    let summary = batch::run(job, transport, CancellationToken::new()).await.expect("batch");
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(summary.answered, n);
    let spans = fake.seen.spans.lock().expect("lock").clone();
    let mean_call = spans.iter().map(|s| s.end.expect("ended").duration_since(s.received).as_secs_f64()).sum::<f64>()
        / spans.len() as f64;
    // Per item: the slowest of six proposers, then the aggregator; all calls alike here.
    let per_item = 2.0 * mean_call;
    let ideal = 64.0 / per_item;
    println!(
        "batch (1,000 moa-lite items, concurrency 64, calls of {:.1} ms as the server timed them):",
        mean_call * 1000.0
    );
    println!(
        "  {:.1} items/s vs ideal {:.1} items/s = {:.1}% (wall {:.2} s)",
        n as f64 / wall,
        ideal,
        100.0 * n as f64 / wall / ideal,
        wall
    );
}

async fn llama(transport: &Transport) {
    let ports = [("MOA_SMOLLM_PORT", "18281"), ("MOA_QWEN05_PORT", "18282")];
    let script = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_moa"))
            .args(["local", arg, "smollm", "qwen-0.5b"])
            .envs(ports)
            .status()
            .expect("local-llm")
    };
    assert!(script("start").success());
    let toml = r#"
name = "moa-lite-local"
max_tokens = 64
[providers.smollm]
kind = "openai"
base_url = "http://127.0.0.1:18281/v1"
max_concurrency = 4
[providers.qwen05]
kind = "openai"
base_url = "http://127.0.0.1:18282/v1"
max_concurrency = 4
[[layers]]
agents = [{ model = "smollm:SmolLM2-135M-Instruct", samples = 3 }, { model = "qwen05:Qwen2.5-Coder-0.5B-Instruct", samples = 3 }]
[aggregator]
model = "smollm:SmolLM2-135M-Instruct"
"#;
    let recipe = Recipe::from_toml(toml).expect("recipe");
    let mut ratios = Vec::new();
    for q in ["Name three rivers.", "What is a prime number?", "Give a tip for sleeping well."] {
        let clock = Clock::new();
        let mut run =
            Run::with_options(&recipe, vec![Message::user(q)], clock.now(), RunOptions::default()).expect("starts");
        let start = Instant::now();
        let outcome = transport.drive(&mut run, &clock, &CancellationToken::new(), |_| {}).await;
        let wall = start.elapsed().as_secs_f64() * 1000.0;
        assert!(outcome.answer.is_ok(), "{:?}", outcome.answer.as_ref().err());
        let critical: f64 =
            outcome.layers.iter().map(|l| l.calls.iter().filter_map(|c| c.server_ms).fold(0.0, f64::max)).sum();
        ratios.push(wall / critical);
        println!("  {q:32} wall {wall:7.0} ms, servers' critical path {critical:7.0} ms, ratio {:.3}", wall / critical);
    }
    script("stop");
    println!(
        "llama-server (moa-lite shape: 3 SmolLM2 + 3 Qwen 0.5B proposers, SmolLM2 aggregates, 64 tokens): median ratio {:.3}",
        median(ratios)
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing else useful.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let transport = Transport::new().expect("client");
        overhead(&transport).await;
        batch_throughput(&transport).await;
        if !args.iter().any(|a| a == "--no-llama") {
            llama(&transport).await;
        }
    });
    std::thread::sleep(Duration::from_millis(10));
}
