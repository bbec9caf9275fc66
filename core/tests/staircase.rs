//! Staircase streaming: the aggregator starts on the last layer's first chunks and only appends.

mod common;

use common::*;
use moa_core::{Event, Recipe, Time};
use std::time::Duration;

#[test]
fn staircase_starts_the_aggregator_on_the_first_chunks_and_only_appends() {
    let recipe = |staircase: bool| {
        let st = if staircase { r#", "staircase": {"chunk_chars": 10, "step_tokens": 8, "growth": 1}"# } else { "" };
        Recipe::from_json(&format!(
            r#"{{"providers": {{"p": {{"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}}}},
                "layers": [{{"agents": ["p:a", "p:b", "p:straggler"]}}],
                "aggregator": {{"model": "p:agg"{st}}}}}"#
        ))
        .expect("valid")
    };
    // Proposers stream 10 characters a piece: two every 100 ms, the straggler every 1 s.
    // (Letters that are not in the test's key: the redactor holds back a tail that could
    // begin an echo of a key, so such text would be released a piece later.)
    // Each aggregator call says which call it is: "S1 ", "S2 ", ..., and the last (the
    // aggregator's own, not capped at step_tokens) "the end."
    let script = || {
        let mut n = 0;
        move |req: &Req| match req.model.as_str() {
            "agg" if req.body["max_tokens"] == 8 => {
                n += 1;
                answer(&format!("S{n} "), ms(50))
            }
            "agg" => answer("the end.", ms(50)),
            "straggler" => openai_stream(&["zzzzzzzzzz"; 4], (10, 8), ms(100), ms(1000)),
            _ => openai_stream(&["aaaaaaaaaa"; 4], (10, 8), ms(100), ms(100)),
        }
    };
    let sync = simulate(start(&recipe(false), 0), T0, script());
    let stair = simulate(start(&recipe(true), 0), T0, script());
    assert_consistent(&stair.events);
    // When the aggregator starts: layer-synchronous waits for the straggler (~3.1 s).
    let first_answer_text = |t: &Trace| t.requests.iter().find(|r| r.model == "agg").expect("an aggregator call").at;
    assert!(first_answer_text(&sync) >= T0 + Duration::from_secs(3));
    assert_eq!(first_answer_text(&stair), T0 + ms(100), "every proposer's first chunk arrived at 100 ms");
    // What reached the user: only ever appended, and equal to the answer.
    let delivered = answer_deltas(&stair.events);
    let answer_text = stair.outcome.answer.clone().expect("answered");
    assert_eq!(delivered, answer_text);
    assert!(answer_text.starts_with("S1 S2 ") && answer_text.ends_with("the end."), "{answer_text}");
    assert!(stair.events.iter().all(|e| !matches!(e, Event::CallFailed { .. })));
    // Steps see the proposals so far and the answer so far; the last call sees them whole.
    let aggs: Vec<&Req> = stair.requests.iter().filter(|r| r.model == "agg").collect();
    assert!(aggs.len() >= 3, "{} aggregator calls", aggs.len());
    let system = |r: &Req| r.system().expect("system prompt");
    assert!(system(aggs[0]).contains("zzzzzzzzzz") && !system(aggs[0]).contains("zzzzzzzzzzzzzzzzzzzz"));
    assert!(!system(aggs[0]).contains("Your response so far"));
    assert!(system(aggs[1]).contains("Your response so far:\nS1 "), "{}", system(aggs[1]));
    let last = aggs.last().expect("last");
    assert!(system(last).contains(&"z".repeat(40)), "the whole straggler");
    assert!(system(last).contains(&format!("Your response so far:\n{}", answer_text.trim_end_matches("the end."))));
    // Every call is in the aggregator's books: the steps and the last call.
    let agg_layer = stair.outcome.layers.last().expect("aggregator layer");
    assert!(agg_layer.aggregator && agg_layer.calls.len() == aggs.len());
    // Each says when it started: the first step at 100 ms, its first token 50 ms later.
    assert_eq!(agg_layer.calls[0].started_ms, Some(100.0));
    assert_eq!(agg_layer.calls[0].ttft_ms, Some(50.0));
    assert_eq!(stair.outcome.layers[0].calls.len(), 3, "the proposer layer has its three");
}

#[test]
fn a_staircase_step_that_breaks_keeps_what_it_delivered_and_the_next_goes_on() {
    let recipe = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b"]}],
            "aggregator": {"model": "p:agg", "staircase": {"chunk_chars": 10, "step_tokens": 8, "growth": 1}},
            "policy": {"retries": 2, "backoff_secs": 0.1}}"#,
    )
    .expect("valid");
    let mut steps = 0;
    let trace = simulate(start(&recipe, 0), T0, |req| match req.model.as_str() {
        "agg" if req.body["max_tokens"] == 8 => {
            steps += 1;
            if steps == 1 {
                // The first step streams a part, then its connection resets.
                let mut r = openai_stream(&["Begun, "], (10, 2), ms(20), ms(5));
                r.truncate(2);
                r.push((ms(40), Step::Fail("connection reset by peer".into())));
                r
            } else {
                answer("more, ", ms(20))
            }
        }
        "agg" => answer("done.", ms(20)),
        _ => openai_stream(&["xxxxxxxxxx"; 4], (10, 8), ms(100), ms(300)),
    });
    assert_consistent(&trace.events);
    let answer_text = trace.outcome.answer.clone().expect("answered");
    assert!(answer_text.starts_with("Begun, more, ") && answer_text.ends_with("done."), "{answer_text}");
    // The break took nothing back: no discarded characters, and no retry of that step.
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { discarded_chars: 0, will_retry: false, .. })));
    let delivered = answer_deltas(&trace.events);
    assert_eq!(delivered, answer_text);
}

#[test]
fn an_empty_staircase_steps_on_a_growing_schedule() {
    // `staircase = {}`: the first step once every proposer has 48 characters, at most 32
    // tokens; each later chunk and step eight times the one before, and no step past the
    // aggregator's own max_tokens.
    let recipe = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b"]}],
            "aggregator": {"model": "p:agg", "max_tokens": 200, "staircase": {}}}"#,
    )
    .expect("an empty staircase is a valid one");
    // Proposers stream 16 characters every 100 ms: 1,600 characters over 10 s.
    let trace = simulate(start(&recipe, 0), T0, |req| match req.model.as_str() {
        "agg" => answer("step ", ms(30)),
        _ => openai_stream(&["abcdefghijklmnop"; 100], (10, 400), ms(100), ms(100)),
    });
    assert_consistent(&trace.events);
    let aggs: Vec<&Req> = trace.requests.iter().filter(|r| r.model == "agg").collect();
    // Steps at 48 characters (the 3rd piece: 300 ms) and 48 + 384 = 432 (the 27th: 2.7 s);
    // the next would need 3,504, more than the proposals' 1,600; then the aggregator's own
    // call, when they end (the last piece at 10 s, the stream's end 100 ms later).
    let at: Vec<Time> = aggs.iter().map(|r| r.at).collect();
    assert_eq!(at, [T0 + ms(300), T0 + ms(2700), T0 + ms(10_100)], "{at:?}");
    let caps: Vec<&serde_json::Value> = aggs.iter().map(|r| &r.body["max_tokens"]).collect();
    // 32, then 256 capped by what is left of the aggregator's 200 (the first step wrote
    // 5); the aggregator's own call keeps its max_tokens.
    assert_eq!(caps, [32, 195, 200].map(serde_json::Value::from).iter().collect::<Vec<_>>());
}

/// Everything streamed at the aggregator's layer (layer 1 of a one-layer recipe), in order.
fn answer_deltas(events: &[Event]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { at, text } if at.layer == 1 => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_staircase_is_checked_with_its_path() {
    let errors = |staircase: &str| -> Vec<String> {
        let json = format!(
            r#"{{"providers": {{"p": {{"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}}}},
                "layers": [{{"agents": ["p:a"]}}], "aggregator": {{"model": "p:agg", "staircase": {staircase}}}}}"#
        );
        match Recipe::from_json(&json) {
            Err(moa_core::recipe::RecipeError::Invalid(errors)) => errors.iter().map(|e| e.to_string()).collect(),
            other => panic!("{staircase}: {other:?}"),
        }
    };
    let growth = "aggregator.staircase.growth: must be 1 to 16 (1: every step the same size)";
    assert_eq!(errors(r#"{"growth": 0}"#), [growth]);
    assert_eq!(errors(r#"{"growth": 17}"#), [growth]);
    assert_eq!(
        errors(r#"{"chunk_chars": 0}"#),
        ["aggregator.staircase: chunk_chars and step_tokens must be at least 1"]
    );
}
