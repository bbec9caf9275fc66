//! Time to first token and wall time of the engine's modes on one workload, against the
//! latency-injecting fake server: layer-synchronous, quorum, and early exit on agreement.
//! `cargo bench -p moa-host --bench modes`; results are recorded in BENCHMARKS.md.
//!
//! The workload is the issue's, ten times faster so a run takes seconds: four proposers of
//! 300 tokens at 300 tokens/s (1 s), one of them a straggler five times slower (5 s), and
//! an aggregator with a 300 ms time to first token writing 100 tokens at 300 tokens/s.
//! Early exit's workload: proposers that answer "42" after 1 s (the straggler after 5 s).
//!
//! The staircase's workload is its goal's shape, in real time: three proposers of 300
//! tokens over 10 s, an aggregator with a 300 ms time to first token writing one answer of
//! 300 tokens at 30 tokens/s (the fake's `capped`: each step stops at its `max_tokens`, and
//! the next continues the same answer). Its table adds every call's tokens, prompt and
//! completion, against layer-synchronous.
#![allow(missing_docs)]

use moa_testkit as common;

use common::Fake;
use moa_core::{Event, Message, Recipe, Run, RunOptions};
use moa_host::{Clock, Transport};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn recipe(base_url: &str, proposer: &str, straggler: &str, layer_extra: &str) -> Recipe {
    with_aggregator(base_url, proposer, straggler, layer_extra, "")
}

fn with_aggregator(base_url: &str, proposer: &str, straggler: &str, layer_extra: &str, agg_extra: &str) -> Recipe {
    let agents: Vec<String> = (0..3).map(|i| format!("\"fake:p{i};{proposer}\"")).collect();
    let toml = format!(
        "name = \"bench\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n\n[[layers]]\nagents = [{}, \"fake:straggler;{straggler}\"]\n{layer_extra}\n\n[aggregator]\nmodel = \"fake:agg;ttft=300;tokens=100;rate=300\"\n{agg_extra}\n",
        agents.join(", ")
    );
    Recipe::from_toml(&toml).expect("bench recipe")
}

/// (TTFT, wall) in seconds and the run's tokens: TTFT is when the answer's first text
/// reached the caller (the aggregator's first token, or the final answer when no
/// aggregator ran).
async fn once(transport: &Transport, recipe: &Recipe) -> (f64, f64, u64) {
    let clock = Clock::new();
    let mut run =
        Run::with_options(recipe, vec![Message::user("q")], clock.now(), RunOptions::default()).expect("starts");
    let layers = recipe.layers.len();
    let start = Instant::now();
    let mut first = None;
    let outcome = transport
        .drive(&mut run, &clock, &CancellationToken::new(), |e| match e {
            Event::TextDelta { at, .. } if at.layer == layers && first.is_none() => first = Some(start.elapsed()),
            Event::Final { .. } if first.is_none() => first = Some(start.elapsed()),
            _ => {}
        })
        .await;
    assert!(outcome.answer.is_ok(), "{:?}", outcome.answer.as_ref().err());
    let wall = start.elapsed().as_secs_f64();
    let tokens = outcome.usage.input_tokens + outcome.usage.output_tokens;
    (first.map_or(wall, |d| d.as_secs_f64()), wall, tokens)
}

/// Medians of 3 runs: (TTFT, wall, tokens).
async fn medians(transport: &Transport, recipe: &Recipe) -> (f64, f64, f64) {
    let (mut ttft, mut wall, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let (t, w, n) = once(transport, recipe).await;
        ttft.push(t);
        wall.push(w);
        tokens.push(n as f64);
    }
    (median(ttft), median(wall), median(tokens))
}

/// The staircase's goal shape: three proposers over 10 s, a 300 ms aggregator.
fn stair_recipe(base_url: &str, staircase: &str) -> Recipe {
    let toml = format!(
        "name = \"bench\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{base_url}\"\n\n[[layers]]\nagents = [\"fake:p0;tokens=300;rate=30\", \"fake:p1;tokens=300;rate=30\", \"fake:p2;tokens=300;rate=30\"]\n\n[aggregator]\nmodel = \"fake:agg;ttft=300;tokens=300;rate=30;capped=1\"\nmax_tokens = 400\n{staircase}\n"
    );
    Recipe::from_toml(&toml).expect("staircase bench recipe")
}

async fn staircase(transport: &Transport, base_url: &str) {
    let cases = [
        ("layer-synchronous", ""),
        ("staircase = {} (the defaults)", "staircase = {}"),
        (
            "fixed 100-character chunks, 32-token steps",
            "staircase = { chunk_chars = 100, step_tokens = 32, growth = 1 }",
        ),
    ];
    println!("\n| staircase, three 10 s proposers | TTFT s | wall s | tokens |\n|---|---|---|---|");
    let mut rows = Vec::new();
    for (name, st) in cases {
        let (t, w, n) = medians(transport, &stair_recipe(base_url, st)).await;
        println!("| {name} | {t:.2} | {w:.2} | {n:.0} |");
        rows.push((t, n));
    }
    println!(
        "\nstaircase defaults: TTFT / layer-synchronous TTFT {:.3} (goal ≤ 0.1), tokens / layer-synchronous tokens {:.2} (goal ≤ 1.5)",
        rows[1].0 / rows[0].0,
        rows[1].1 / rows[0].1
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let transport = Transport::new().expect("client");
        let fake = Fake::start();
        let long = "tokens=300;rate=300";
        let slow = "tokens=300;rate=60";
        let short = "text=42;ttft=1000";
        let short_slow = "text=42;ttft=5000";
        let modes = [
            ("layer-synchronous", recipe(&fake.base_url, long, slow, "")),
            ("quorum 3 of 4, no grace", recipe(&fake.base_url, long, slow, "quorum = { min = 3 }")),
            ("quorum 3 of 4, 200 ms grace", recipe(&fake.base_url, long, slow, "quorum = { min = 3, grace_ms = 200 }")),
            (
                "staircase = {} (the defaults)",
                with_aggregator(&fake.base_url, long, slow, "", "staircase = {}"),
            ),
            (
                "staircase, 100-character chunks",
                with_aggregator(&fake.base_url, long, slow, "", "staircase = { chunk_chars = 100, step_tokens = 32, growth = 1 }"),
            ),
            ("agreeing answers, layer-synchronous", recipe(&fake.base_url, short, short_slow, "")),
            (
                "agreeing answers, quorum 3 + early exit",
                recipe(&fake.base_url, short, short_slow, "quorum = { min = 3 }\nearly_exit = true"),
            ),
        ];
        println!("| mode | TTFT s | wall s |\n|---|---|---|");
        let mut rows = Vec::new();
        for (name, r) in &modes {
            let (t, w, _) = medians(&transport, r).await;
            println!("| {name} | {t:.2} | {w:.2} |");
            rows.push((t, w));
        }
        println!(
            "\nquorum wall / layer-synchronous wall: {:.2} without grace, {:.2} with 200 ms (goal ≤ 0.35); staircase TTFT / layer-synchronous TTFT: {:.2} (goal ≤ 0.2); early exit TTFT / layer-synchronous TTFT: {:.2}",
            rows[1].1 / rows[0].1,
            rows[2].1 / rows[0].1,
            rows[3].0.min(rows[4].0) / rows[0].0,
            rows[6].0 / rows[5].0
        );
        staircase(&transport, &fake.base_url).await;
    });
}
