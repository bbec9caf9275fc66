//! A bounded load test of `moa serve` on loopback: many concurrent clients against a
//! latency-injecting upstream. Reports throughput, p50/p99 latency, the status codes
//! (only 200 and the intended 429s), and resident memory before, during and after.
//! `cargo bench -p moa-host --bench serve_load`; results are recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use moa_testkit as common;

use common::Fake;
use moa_host::Transport;
use moa_host::serve::{Config, Limits, router};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let fake = Fake::start();
    let shape = "ttft=50;tokens=20;rate=400"; // ~100 ms per call
    let toml = format!(
        "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[[layers]]\nagents = [\"fake:p1;{shape}\", \"fake:p2;{shape}\", \"fake:p3;{shape}\"]\n[aggregator]\nmodel = \"fake:agg;{shape}\"\n",
        fake.base_url
    );
    let recipe = moa_core::Recipe::from_toml(&toml).expect("recipe");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let url = format!("http://{addr}/v1/chat/completions");
        let mut config = Config::new(BTreeMap::from([("bench".to_owned(), recipe)]), addr);
        config.max_body = 1 << 20;
        config.max_runs = 48;
        let app = router(config, Transport::new().expect("client"));
        tokio::spawn(moa_host::serve::run(listener, app, Limits::default(), CancellationToken::new()));
        let client = reqwest::Client::new();
        let body = r#"{"model": "bench", "messages": [{"role": "user", "content": "hi"}]}"#;
        let rss_start = rss_kib();
        let mut rss_rounds = Vec::new();
        // Rounds of 64 concurrent clients by default; 48 run slots, so some are told 429
        // by design. MOA_BENCH_CLIENTS: another number of clients (32: none is refused).
        // MOA_BENCH_ROUNDS: more rounds, to see whether memory levels off.
        let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|r| r.parse().ok()).unwrap_or(default);
        let (rounds, clients) = (env("MOA_BENCH_ROUNDS", 10), env("MOA_BENCH_CLIENTS", 64));
        for round in 0..rounds {
            let start = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move {
                        let t = Instant::now();
                        let status = client.post(&url).header("content-type", "application/json").body(body).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                        (status, t.elapsed())
                    })
                })
                .collect();
            let mut latencies = Vec::new();
            let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
            for t in tasks {
                let (code, took) = t.await.expect("task");
                *codes.entry(code).or_default() += 1;
                if code == 200 {
                    latencies.push(took);
                }
            }
            let wall = start.elapsed();
            latencies.sort();
            let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default();
            assert!(codes.keys().all(|c| *c == 200 || *c == 429), "unexpected statuses: {codes:?}");
            rss_rounds.push(rss_kib());
            println!(
                "round {round}: {} ok in {:.2} s = {:.1} runs/s; p50 {:.0} ms, p99 {:.0} ms; statuses {codes:?}; RSS {} KiB",
                latencies.len(),
                wall.as_secs_f64(),
                latencies.len() as f64 / wall.as_secs_f64(),
                pct(0.5).as_secs_f64() * 1e3,
                pct(0.99).as_secs_f64() * 1e3,
                rss_rounds.last().copied().unwrap_or(0)
            );
            // The fake upstream records every request for the tests; drop that, so memory
            // here measures the server.
            fake.seen.bodies.lock().expect("lock").clear();
            fake.seen.spans.lock().expect("lock").clear();
            fake.seen.auth.lock().expect("lock").clear();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("RSS: {rss_start} KiB before, {:?} KiB after each round", rss_rounds);
    });
}
