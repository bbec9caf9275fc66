//! Replays: a seed fixes every random draw of a run, whatever order the network answers in.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::{Event, Message, Run, Time, recipe};
use proptest::prelude::*;
use std::collections::BTreeMap;

const T0: Time = Time::from_millis(1_700_000_000_000);

/// Each agent's retry delays, by agent and attempt.
fn retry_delays(seed: u64, latencies: &[u64]) -> BTreeMap<(String, usize), u64> {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.retries = 2;
    for p in recipe.providers.values_mut() {
        p.api_key_env = None;
    }
    let run = Run::with_options(
        &recipe,
        vec![Message::user("Name a prime.")],
        T0,
        RunOptions { seed, ..RunOptions::default() },
    )
    .expect("run starts");
    let mut tries: BTreeMap<String, u32> = BTreeMap::new();
    let trace = simulate(run, T0, |req| {
        let n = tries.entry(req.model.clone()).or_default();
        *n += 1;
        let agent = recipe::PAPER_PROPOSERS.iter().position(|m| *m == req.model).unwrap_or(0);
        // Every proposer fails twice, each after its own latency; then answers.
        if *n <= 2 { status(503, &[], "busy", ms(latencies[agent % latencies.len()])) } else { answer("ok", ms(5)) }
    });
    let mut delays = BTreeMap::new();
    for e in &trace.events {
        if let Event::CallFailed { agent, retry_in_ms: Some(d), .. } = e {
            let attempt = delays.keys().filter(|(a, _)| a == agent).count();
            delays.insert((agent.clone(), attempt), (*d * 1000.0) as u64);
        }
    }
    delays
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whichever failure arrives first, each call draws its own jitter: the same agent's
    /// retry waits the same time in every order.
    #[test]
    fn jitter_does_not_depend_on_arrival_order(seed in any::<u64>(), order in Just((1..=6u64).collect::<Vec<_>>()).prop_shuffle()) {
        let fixed = retry_delays(seed, &[10, 20, 30, 40, 50, 60]);
        let latencies: Vec<u64> = order.iter().map(|k| k * 10).collect();
        prop_assert_eq!(fixed.len(), 12, "six agents, two retries each");
        prop_assert_eq!(retry_delays(seed, &latencies), fixed);
    }
}
