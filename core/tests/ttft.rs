//! Time to first token: one definition, in the outcome and the final event, that every
//! front end reads (eval, serve's log, the CLI's summary, the page).

mod common;

use common::*;
use moa_core::{Event, Message, Recipe, Run, Time};

const T0: Time = Time::from_millis(1_700_000_000_000);

fn recipe(json: &str) -> Recipe {
    Recipe::from_json(json).expect("valid")
}

fn run(recipe: &Recipe, script: impl FnMut(&Req) -> Reply) -> Trace {
    let run = Run::new(recipe, vec![Message::user("Hi")], T0).expect("starts");
    simulate(run, T0, script)
}

/// The final event's and the outcome's, which must agree.
fn ttft(trace: &Trace) -> Option<f64> {
    let from_event = trace.events.iter().find_map(|e| match e {
        Event::Final { ttft_ms, .. } => Some(*ttft_ms),
        _ => None,
    });
    assert_eq!(from_event, Some(trace.outcome.ttft_ms), "the final event and the outcome agree");
    trace.outcome.ttft_ms
}

#[test]
fn it_is_when_the_aggregators_first_token_arrived() {
    let r = recipe(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b"]}], "aggregator": "p:agg"}"#,
    );
    // Proposers take 100 ms; the aggregator's first piece comes 30 ms after it starts,
    // the rest a second and two seconds later.
    let trace = run(&r, |req| match req.model.as_str() {
        "agg" => openai_stream(&["first", " and the rest"], (5, 5), ms(30), ms(1000)),
        _ => answer("a proposal", ms(100)),
    });
    assert_eq!(ttft(&trace), Some(130.0));
    assert_eq!(trace.outcome.wall_ms, 2130.0);
}

#[test]
fn after_a_staircase_it_is_the_first_steps_first_token() {
    let r = recipe(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:straggler"]}],
            "aggregator": {"model": "p:agg", "staircase": {"chunk_chars": 10, "step_tokens": 8, "growth": 1}}}"#,
    );
    // Every proposer's first chunk is in at 100 ms; the first step answers 50 ms later.
    // The aggregator's own (last) call starts much later.
    let trace = run(&r, |req| match req.model.as_str() {
        "agg" if req.body["max_tokens"] == 8 => answer("step ", ms(50)),
        "agg" => answer("the end.", ms(50)),
        "straggler" => openai_stream(&["zzzzzzzzzz"; 4], (10, 8), ms(100), ms(1000)),
        _ => openai_stream(&["aaaaaaaaaa"; 4], (10, 8), ms(100), ms(100)),
    });
    assert_eq!(ttft(&trace), Some(150.0));
    let agg = trace.outcome.layers.last().expect("aggregator layer");
    let last = agg.calls.last().expect("the aggregator's own call");
    assert!(last.started_ms.expect("started") > 3000.0, "{:?}", last.started_ms);
}

#[test]
fn a_retried_aggregators_voided_text_does_not_count() {
    let r = recipe(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a"]}], "aggregator": "p:agg",
            "policy": {"retries": 2, "backoff_secs": 0.1}}"#,
    );
    let mut broke = false;
    let trace = run(&r, move |req| {
        if req.model == "agg" && !std::mem::replace(&mut broke, true) {
            // Streams a piece at 10 ms after it starts, then the connection resets.
            let mut r = openai_stream(&["Partial "], (10, 2), ms(10), ms(5));
            r.truncate(2);
            r.push((ms(20), Step::Fail("connection reset by peer".into())));
            r
        } else if req.model == "agg" {
            openai_stream(&["Whole ", "answer."], (10, 2), ms(7), ms(5))
        } else {
            answer("a proposal", ms(5))
        }
    });
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("Whole answer."));
    let retry = trace.outcome.layers[1].calls[0].clone();
    assert_eq!(retry.attempts, 2);
    let retry_started = trace.requests.iter().filter(|q| q.model == "agg").nth(1).expect("a retry").at;
    let expected = retry_started.since(T0).as_secs_f64() * 1000.0 + 7.0;
    assert!(ttft(&trace).is_some_and(|t| (t - expected).abs() < 1e-6), "{:?} vs {expected}", trace.outcome.ttft_ms);
}

#[test]
fn an_answer_decided_without_an_aggregator_call_comes_whole_at_the_end() {
    let r = recipe(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b", "p:c"]}],
            "aggregator": {"model": "p:agg", "strategy": "vote"}}"#,
    );
    let trace = run(&r, |req| answer("The answer is 7.", ms(if req.model == "c" { 90 } else { 40 })));
    assert_eq!(trace.outcome.decided_by.as_deref(), Some("vote"));
    assert_eq!(ttft(&trace), Some(90.0));
    assert_eq!(ttft(&trace), Some(trace.outcome.wall_ms));
}

#[test]
fn a_run_without_an_answer_has_none() {
    let r = recipe(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [], "aggregator": "p:agg", "policy": {"retries": 0}}"#,
    );
    let trace = run(&r, |_| status(400, &[], "no", ms(5)));
    assert!(trace.outcome.answer.is_err());
    assert_eq!(trace.outcome.ttft_ms, None);
    let json = serde_json::to_value(&trace.outcome).expect("json");
    assert!(json["answer"].is_null() && json["error"].as_str().is_some_and(|e| e.contains("HTTP 400")), "{json}");
}
