//! A staircase's steps in the run's books, however the run ends: every token a step used
//! is in the outcome's totals, in a layer report, and (for a step cut short) in `wasted`.

mod common;

use common::*;
use moa_core::{Event, Message, Recipe, Run, RunError, Time, Usage};

const T0: Time = Time::from_millis(1_700_000_000_000);

fn recipe() -> Recipe {
    Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:straggler"]}],
            "aggregator": {"model": "p:agg", "staircase": {"chunk_chars": 10, "step_tokens": 8, "growth": 1}},
            "policy": {"retries": 0}}"#,
    )
    .expect("valid")
}

/// Steps answer in 50 ms with usage (10, 5), or, from the third on, stream forever; the
/// straggler streams a chunk a second and then fails (when `straggler_fails`).
fn script(straggler_fails: bool) -> impl FnMut(&Req) -> Reply {
    let mut steps = 0;
    move |req: &Req| match req.model.as_str() {
        "agg" if req.body["max_tokens"] == 8 => {
            steps += 1;
            if steps <= 2 {
                answer(&format!("S{steps} "), ms(50))
            } else {
                let mut r = openai_stream(&["never ", "ends"], (10, 5), ms(20), ms(100_000));
                r.truncate(2);
                r
            }
        }
        "agg" => answer("the end.", ms(50)),
        "straggler" if straggler_fails => {
            let mut r = openai_stream(&["zzzzzzzzzz"; 4], (10, 8), ms(100), ms(1000));
            r.truncate(4);
            r.push((ms(3500), Step::Fail("connection reset by peer".into())));
            r
        }
        "straggler" => openai_stream(&["zzzzzzzzzz"; 10], (10, 8), ms(100), ms(1000)),
        _ => openai_stream(&["aaaaaaaaaa"; 10], (10, 8), ms(100), ms(100)),
    }
}

/// Every call's tokens as its events reported them.
fn event_tokens(events: &[Event]) -> (Usage, Usage) {
    let (mut all, mut wasted) = (Usage::default(), Usage::default());
    for e in events {
        match e {
            Event::CallFinished { usage, .. } => all += usage.unwrap_or_default(),
            Event::CallFailed { usage, .. } => {
                all += *usage;
                wasted += *usage;
            }
            _ => {}
        }
    }
    (all, wasted)
}

fn books_balance(trace: &Trace) {
    let (all, wasted) = event_tokens(&trace.events);
    let o = &trace.outcome;
    assert_eq!(o.usage.total(), all.total(), "the outcome's usage is every call's");
    assert_eq!(o.wasted.total(), wasted.total(), "its waste is every failed or cut call's");
    let layered: u64 = o.layers.iter().map(|l| l.usage.total()).sum();
    assert_eq!(layered, o.usage.total(), "the layers' reports add up to it");
    let steps = trace.requests.iter().filter(|r| r.model == "agg" && r.body["max_tokens"] == 8).count();
    let booked = o.layers.iter().filter(|l| l.aggregator).flat_map(|l| &l.calls).count();
    assert!(booked >= steps, "every step is in the aggregator's report: {booked} of {steps}");
}

#[test]
fn a_run_cancelled_during_the_staircase_keeps_its_steps_in_the_books() {
    let mut run = Run::new(&recipe(), vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate_with(&mut run, T0, &mut script(false), |run, now| {
        // By 2.5 s two steps have answered and a third is streaming.
        if now >= T0 + ms(2500) {
            run.cancel(now);
            return true;
        }
        false
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_ref().err(), Some(&RunError::Cancelled));
    let steps = trace.requests.iter().filter(|r| r.model == "agg").count();
    assert_eq!(steps, 3, "two steps answered, the third was under way");
    books_balance(&trace);
}

#[test]
fn a_run_that_fails_in_its_last_proposer_layer_keeps_its_steps_in_the_books() {
    let mut r = recipe();
    r.policy.min_successes = 2;
    let trace = simulate(Run::new(&r, vec![Message::user("Hi")], T0).expect("starts"), T0, script(true));
    assert_consistent(&trace.events);
    assert!(
        matches!(trace.outcome.answer.as_ref().err(), Some(&RunError::TooFewSuccesses { .. })),
        "{:?}",
        trace.outcome.answer.as_ref().err()
    );
    books_balance(&trace);
}

#[test]
fn a_whole_staircase_run_balances_too() {
    let trace = simulate(Run::new(&recipe(), vec![Message::user("Hi")], T0).expect("starts"), T0, |req| {
        match req.model.as_str() {
            "agg" if req.body["max_tokens"] == 8 => answer("step ", ms(50)),
            "agg" => answer("the end.", ms(50)),
            "straggler" => openai_stream(&["zzzzzzzzzz"; 4], (10, 8), ms(100), ms(1000)),
            _ => openai_stream(&["aaaaaaaaaa"; 4], (10, 8), ms(100), ms(100)),
        }
    });
    assert!(trace.outcome.answer.is_ok());
    books_balance(&trace);
}
