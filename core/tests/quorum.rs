//! Quorums and early exits: a layer that goes on without its stragglers, or ends the run when its agents agree.

mod common;

use common::*;
use moa_core::{Event, Recipe};
use std::time::Duration;

#[test]
fn a_quorum_cuts_the_straggler_after_its_grace_and_counts_its_tokens() {
    let sync = simulate(start(&four_and_aggregator(serde_json::json!({})), 0), T0, one_straggler);
    let quorum = simulate(
        start(&four_and_aggregator(serde_json::json!({"layer": {"quorum": {"min": 3, "grace_ms": 500}}})), 0),
        T0,
        one_straggler,
    );
    assert_consistent(&quorum.events);
    // Layer-synchronous: the aggregator waits ~10 s for the straggler. With the quorum:
    // the third success at 100 ms, the grace to 600 ms, then the aggregator.
    let agg_at = |t: &Trace| t.requests.iter().find(|r| r.model == "agg").expect("aggregator").at;
    assert!(agg_at(&sync) >= T0 + Duration::from_secs(10), "{:?}", agg_at(&sync).since(T0));
    assert_eq!(agg_at(&quorum), T0 + ms(600));
    assert_eq!(quorum.outcome.answer.as_deref().ok(), Some("aggregated"));
    // The straggler: cut, cancelled on the wire, its streamed tokens counted as wasted.
    let straggler = &quorum.outcome.layers[0].calls[3];
    assert!(!straggler.ok && straggler.errors == ["cut: the layer had its quorum"], "{straggler:?}");
    assert!(quorum.cancels.contains(&quorum.requests.iter().find(|r| r.model == "straggler").expect("sent").call));
    assert!(straggler.wasted.output_tokens > 0 && quorum.outcome.wasted == straggler.wasted);
    assert!(quorum.events.iter().any(
        |e| matches!(e, Event::CallFailed { error, will_retry: false, .. } if error == "cut: the layer had its quorum")
    ));
    // The aggregator saw the three proposals that made the quorum.
    assert_eq!(references(quorum.requests.iter().find(|r| r.model == "agg").expect("agg")).len(), 3);
    assert!(quorum.end.since(T0) < Duration::from_secs(1));
}

#[test]
fn a_quorum_does_not_wait_for_an_agent_stuck_behind_a_retry_after() {
    let recipe = four_and_aggregator(serde_json::json!({
        "policy": {"retries": 3, "backoff_secs": 0.1, "max_retry_after_secs": 600, "quorum": {"min": 3}}
    }));
    let trace = simulate(start(&recipe, 0), T0, |req| match req.model.as_str() {
        "straggler" => status(429, &[("retry-after", "300")], r#"{"error":{"message":"slow down"}}"#, ms(5)),
        "agg" => answer("aggregated", ms(50)),
        m => answer(&format!("answer from {m}"), ms(100)),
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
    assert!(trace.end.since(T0) < Duration::from_secs(1), "not 300 s: {:?}", trace.end.since(T0));
    assert!(
        trace.events.iter().any(
            |e| matches!(e, Event::AgentStopped { reason, agent, .. } if *reason == moa_core::engine::ErrorKind::Cut && agent == "p:straggler")
        )
    );
    assert_eq!(trace.requests.iter().filter(|r| r.model == "straggler").count(), 1, "never retried");
}

#[test]
fn agreeing_proposers_end_the_run_without_an_aggregator_call() {
    // Three agents agree at 100 ms; with a quorum of 3, the straggler is not awaited.
    let recipe = four_and_aggregator(serde_json::json!({"layer": {"quorum": {"min": 3}, "early_exit": true}}));
    let trace = simulate(start(&recipe, 0), T0, |req| match req.model.as_str() {
        "straggler" => openai_stream(&["no"], (10, 1), ms(5000), ms(10)),
        _ => answer("The answer is **42**.", ms(100)),
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("The answer is **42**."));
    assert_eq!(trace.outcome.decided_by.as_deref(), Some("agreement: 3 agents answered \"42\""));
    assert!(trace.requests.iter().all(|r| r.model != "agg"), "no aggregator call");
    assert_eq!(trace.end, T0 + ms(100));
    // Disagreement goes on to the aggregator as usual.
    let trace = simulate(start(&recipe, 0), T0, |req| match req.model.as_str() {
        "a" => answer("41", ms(100)),
        "agg" => answer("aggregated", ms(50)),
        _ => answer("42", ms(100)),
    });
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
}

#[test]
fn quorum_and_early_exit_are_checked_with_their_paths() {
    let bad = |extra: serde_json::Value| {
        let mut v = serde_json::to_value(four_and_aggregator(serde_json::json!({}))).expect("json");
        for (k, val) in extra.as_object().expect("object") {
            v["layers"][0][k] = val.clone();
        }
        match Recipe::from_json(&v.to_string()) {
            Err(moa_core::recipe::RecipeError::Invalid(errors)) => {
                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(bad(serde_json::json!({"quorum": {"min": 0}})), ["layers[0].quorum.min: must be at least 1"]);
    assert_eq!(
        bad(serde_json::json!({"quorum": {"min": 5}})),
        ["layers[0].quorum.min: a quorum of 5 but layer 0 has only 4 agents"]
    );
    assert_eq!(
        bad(serde_json::json!({"quorum": {"min": 2}, "min_successes": 3})),
        ["layers[0].quorum.min: a quorum of 2 is below the 3 successes the layer needs"]
    );
    assert_eq!(
        bad(serde_json::json!({"agents": ["p:a"], "early_exit": true})),
        ["layers[0].early_exit: needs at least two agents to agree"]
    );
}

/// Four proposers on the local provider and an aggregator; `extra` is merged into the recipe.
fn four_and_aggregator(extra: serde_json::Value) -> Recipe {
    let mut v = serde_json::json!({
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "layers": [{"agents": ["p:a", "p:b", "p:c", "p:straggler"]}],
        "aggregator": "p:agg",
        "policy": {"retries": 2, "backoff_secs": 0.1}
    });
    for (k, val) in extra.as_object().expect("object") {
        if k == "layer" {
            for (lk, lv) in val.as_object().expect("object") {
                v["layers"][0][lk] = lv.clone();
            }
        } else {
            v[k] = val.clone();
        }
    }
    Recipe::from_json(&v.to_string()).expect("valid")
}

/// The straggler streams for 10 s; the others answer in 100 ms; the aggregator in 50 ms.
fn one_straggler(req: &Req) -> Reply {
    match req.model.as_str() {
        "straggler" => openai_stream(&["slow ", "slow ", "slow ", "slow ", "slow"], (10, 50), ms(200), ms(2450)),
        "agg" => answer("aggregated", ms(50)),
        m => answer(&format!("answer from {m}"), ms(100)),
    }
}
