//! The aggregator's call: retried or ended when it breaks, its sampling options and stop sequences, its finish reason, and every total.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::{Event, Message, Recipe, Run, RunError};

#[test]
fn a_retried_aggregator_voids_its_partial_text_and_the_answer_is_the_retry_alone() {
    let recipe = one_and_aggregator();
    let run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate(run, T0, aggregator_breaks_once());
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("Whole answer."));
    // The broken attempt says its streamed text is void, so a consumer can take it back.
    let void = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { at, will_retry: true, discarded_chars, .. } if at.layer == 1 => Some(*discarded_chars),
        _ => None,
    });
    assert_eq!(void, Some("Partial answ".len()));
    // What a consumer that honours the voiding shows is exactly the answer.
    let mut shown = String::new();
    for e in &trace.events {
        match e {
            Event::TextDelta { at, text } if at.layer == 1 => shown.push_str(text),
            Event::CallFailed { at, discarded_chars, .. } if at.layer == 1 => {
                shown.truncate(shown.len() - discarded_chars)
            }
            _ => {}
        }
    }
    assert_eq!(shown, "Whole answer.");
}

#[test]
fn with_irrevocable_output_an_aggregator_that_broke_after_text_ends_the_run_instead_of_retrying() {
    let recipe = one_and_aggregator();
    let options = RunOptions { irrevocable_answer: true, ..RunOptions::default() };
    let run = Run::with_options(&recipe, vec![Message::user("Hi")], T0, options).expect("starts");
    let trace = simulate(run, T0, aggregator_breaks_once());
    assert_consistent(&trace.events);
    assert_eq!(trace.requests.iter().filter(|r| r.model == "agg").count(), 1, "not retried");
    match &trace.outcome.answer.as_ref().err() {
        Some(RunError::AnswerBroken { delivered_chars, error, kind }) => {
            assert_eq!(*delivered_chars, 12);
            assert_eq!(*kind, moa_core::engine::ErrorKind::Reset);
            assert!(error.contains("connection reset"), "{error}");
        }
        other => panic!("expected AnswerBroken, got {other:?}"),
    }
    assert!(matches!(trace.events.last(), Some(Event::RunFailed { .. })));

    // Before any text was delivered, a retry is still safe and made.
    let mut first = true;
    let run = Run::with_options(
        &recipe,
        vec![Message::user("Hi")],
        T0,
        RunOptions { irrevocable_answer: true, ..RunOptions::default() },
    )
    .expect("starts");
    let trace = simulate(run, T0, |req| {
        if req.model == "agg" && std::mem::replace(&mut first, false) {
            status(503, &[], "busy", ms(3))
        } else {
            answer("fine", ms(5))
        }
    });
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("fine"));
}

#[test]
fn the_aggregators_sampling_options_reach_it_and_its_stop_sequences_hold_anyway() {
    let mut recipe = one_and_aggregator();
    recipe.aggregator.top_p = Some(0.9);
    recipe.aggregator.seed = Some(42);
    recipe.aggregator.stop = vec!["END".into()];
    recipe.aggregator.presence_penalty = Some(0.5);
    recipe.aggregator.frequency_penalty = Some(-0.5);
    recipe.validate().expect("valid");
    let run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    // The provider ignores `stop` and the stop sequence arrives split across chunks.
    let trace = simulate(run, T0, |req| match req.model.as_str() {
        "agg" => openai_stream(&["Hello EN", "D and more"], (10, 4), ms(5), ms(5)),
        _ => answer("proposal", ms(5)),
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("Hello "));
    assert_eq!(trace.outcome.finish_reason.as_deref(), Some("stop"));
    let agg = trace.requests.iter().find(|r| r.model == "agg").expect("aggregator call");
    assert_eq!(agg.body["top_p"], 0.9);
    assert_eq!(agg.body["seed"], 42);
    assert_eq!(agg.body["stop"], serde_json::json!(["END"]));
    assert_eq!(agg.body["presence_penalty"], 0.5);
    assert_eq!(agg.body["frequency_penalty"], -0.5);
    assert!(trace.aborted.contains(&agg.call), "the rest of the generation is cut");
    let proposer = trace.requests.iter().find(|r| r.model == "proposer").expect("proposer call");
    assert!(proposer.body.get("stop").is_none(), "proposers keep their own options");
    // Deltas never showed the stop sequence or anything after it.
    assert_eq!(streamed_text(&trace.events, agg.call), "Hello ");
}

#[test]
fn the_aggregators_finish_reason_is_its_providers() {
    let recipe = one_and_aggregator();
    let run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate(run, T0, |req| {
        if req.model != "agg" {
            return answer("p", ms(5));
        }
        let piece =
            serde_json::json!({"choices": [{"index": 0, "delta": {"content": "cut off mid"}, "finish_reason": null}]});
        let fin = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]});
        vec![
            (ms(1), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
            (ms(2), Step::Body(format!("data: {piece}\n\ndata: {fin}\n\ndata: [DONE]\n\n").into_bytes())),
            (ms(3), Step::End),
        ]
    });
    assert_eq!(trace.outcome.finish_reason.as_deref(), Some("length"));
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFinished { finish_reason: Some(r), at, .. }
        if r == "length" && at.layer == 1)));
}

#[test]
fn anthropic_aggregators_refuse_options_anthropic_lacks() {
    let mut recipe = Recipe::from_json(
        r#"{"providers": {"a": {"kind": "anthropic", "base_url": "http://127.0.0.1:1/v1"}},
            "layers": [{"agents": ["a:m"]}], "aggregator": {"model": "a:m", "top_p": 0.5, "stop": ["X"]}}"#,
    )
    .expect("top_p and stop are fine");
    recipe.aggregator.seed = Some(1);
    let err = recipe.validate().expect_err("seed is not").to_string();
    assert_eq!(err, "aggregator.seed: Anthropic's Messages API has no such option");
}

#[test]
fn failed_retried_and_cancelled_attempts_are_counted_in_every_total() {
    let mut recipe = one_and_aggregator();
    recipe.prices.insert("p:agg".into(), moa_core::Price { input: 1.0, output: 2.0, batch: None });
    let run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate(run, T0, aggregator_breaks_once());
    // The broken attempt reported no usage: estimated from its prompt and its 12 chars.
    let broken = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { at, usage, cost, .. } if at.layer == 1 => Some((*usage, *cost)),
        _ => None,
    });
    let (usage, cost) = broken.expect("the broken attempt");
    assert!(usage.estimated);
    assert_eq!(usage.output_tokens, 3, "12 characters at 4 per token");
    assert!(usage.input_tokens > 0, "the prompt was accepted and processed");
    assert!(cost.is_some_and(|c| c > 0.0));
    let o = &trace.outcome;
    assert_eq!(o.wasted, usage);
    let successful: u64 = o.layers.iter().flat_map(|l| &l.calls).filter_map(|c| c.usage).map(|u| u.total()).sum();
    assert_eq!(o.usage.total(), successful + usage.total(), "totals include the waste");
    assert!(o.usage.estimated);
    assert_eq!(o.layers[1].calls[0].wasted, usage);
    match trace.events.last() {
        Some(Event::Final { usage: u, wasted, .. }) => assert_eq!((*u, *wasted), (o.usage, o.wasted)),
        other => panic!("{other:?}"),
    }
    // A refused request (an error status) consumed nothing.
    let mut first = true;
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |req| {
        if req.model == "agg" && std::mem::replace(&mut first, false) {
            status(429, &[("retry-after", "0")], "slow down", ms(1))
        } else {
            answer("ok", ms(5))
        }
    });
    assert!(trace.outcome.wasted.is_zero());
    // A call cancelled mid-stream counts what it streamed.
    let mut run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate_with(
        &mut run,
        T0,
        &mut |_| {
            let mut r = openai_stream(&["twelve chars"], (0, 0), ms(1), ms(1));
            r.truncate(2);
            r
        },
        |run, now| {
            if now >= T0 + ms(10) {
                run.cancel(now);
                return true;
            }
            false
        },
    );
    assert_eq!(trace.outcome.usage.output_tokens, 3);
    assert!(trace.outcome.usage.estimated);
}
