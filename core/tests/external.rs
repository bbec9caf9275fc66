//! Plugins the driver runs (the browser module's Worker): the engine asks for each
//! decision (`Action::Decide`), waits, and checks the answer as it checks a native
//! plugin's. In simulated time against the scripted fake network; the "driver" here is
//! a closure standing in for the Worker, and says so.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::recipe::StrategySpec;
use moa_core::strategy::plugin::{Contract, External};
use moa_core::strategy::{Builtins, Resolver, Strategy, StrategyError};
use moa_core::{Event, Message, Recipe, Run, RunError, Time};

const T0: Time = Time::from_millis(1_700_000_000_000);

/// Resolves `plugin` specs as plugins the driver runs, under `contract`.
struct Driven(Contract);

impl Resolver for Driven {
    fn resolve(&self, spec: &StrategySpec) -> Result<Box<dyn Strategy>, StrategyError> {
        match spec.plugin {
            Some(_) => Ok(Box::new(External::new(spec, self.0))),
            None => Builtins.resolve(spec),
        }
    }
}

fn recipe(strategy: serde_json::Value) -> Recipe {
    let v = serde_json::json!({
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "layers": [{"agents": ["p:a", "p:b"]}],
        "aggregator": {"model": "p:agg", "strategy": strategy},
        "policy": {"retries": 0}
    });
    Recipe::from_json(&v.to_string()).expect("valid recipe")
}

fn start(recipe: &Recipe, contract: Contract) -> Run {
    let resolver = Driven(contract);
    Run::with_options(
        recipe,
        vec![Message::user("Which city?")],
        T0,
        RunOptions { seed: 7, resolver: &resolver, ..RunOptions::default() },
    )
    .expect("run starts")
}

fn cities(req: &Req) -> Reply {
    match req.model.as_str() {
        "agg" => answer("aggregated", ms(20)),
        "judge" => answer("pick 1", ms(5)),
        "a" => answer("Paris", ms(10)),
        _ => answer("Lyon", ms(10)),
    }
}

fn failures(events: &[Event]) -> Vec<(String, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StrategyFailed { error, fallback, .. } => Some((error.clone(), *fallback)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_driver_is_asked_with_the_context_and_caps_and_its_answer_is_carried_out() {
    let r = recipe(serde_json::json!({"plugin": "keep.wasm", "params": {"k": 1}, "timeout_ms": 50, "memory_mib": 8}));
    let mut requests = Vec::new();
    let mut decide = |q: &PluginRequest| {
        requests.push(q.clone());
        Ok(r#"{"ok": {"decision": {"tag": "answer", "val": "Lyon, decided"}, "note": "picked\u001b[2J"}}"#.to_owned())
    };
    let trace = simulate_deciding(&mut start(&r, Contract::V0_2_0), T0, &mut cities, &mut decide, |_, _| false);
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("Lyon, decided"));
    assert_eq!(trace.outcome.decided_by.as_deref(), Some("keep.wasm"));
    assert!(trace.requests.iter().all(|q| q.model != "agg"), "the plugin answered: no aggregator call");
    assert_eq!(requests.len(), 1);
    let q = &requests[0];
    assert_eq!(
        (q.plugin.as_str(), q.contract, q.timeout_ms, q.memory_mib, q.max_output_kib),
        ("keep.wasm", Contract::V0_2_0, 50, 8, 1024)
    );
    let ctx: serde_json::Value = serde_json::from_str(&q.context).expect("JSON");
    assert_eq!(ctx["layer"], 1);
    assert_eq!(ctx["layerCount"], 1);
    assert_eq!(ctx["params"], r#"{"k":1}"#);
    assert_eq!(ctx["proposals"][1]["text"], "Lyon");
    assert_eq!(ctx["conversation"][0], serde_json::json!({"role": "user", "content": "Which city?"}));
    assert!(ctx["seed"].is_string(), "a u64 travels as text: {ctx}");
    assert_eq!(ctx["asked"], serde_json::json!([]));
    // The note is shown inert, as a native plugin's.
    let note = trace.events.iter().find_map(|e| match e {
        Event::StrategyNote { note, .. } => Some(note.clone()),
        _ => None,
    });
    assert_eq!(note.as_deref(), Some("picked\\u{1b}[2J"));
}

#[test]
fn an_ask_is_made_and_the_driver_asked_again_with_its_reply() {
    let r = recipe(serde_json::json!({"plugin": "judge.wasm"}));
    let mut contexts = Vec::new();
    let mut decide = |q: &PluginRequest| {
        let ctx: serde_json::Value = serde_json::from_str(&q.context).expect("JSON");
        contexts.push(ctx.clone());
        Ok(match ctx["asked"].as_array().map_or(0, Vec::len) {
            0 => r#"{"ok": {"decision": {"tag": "ask", "val": {"model": "p:judge", "label": "judge", "messages": [{"role": "user", "content": "which?"}], "maxTokens": 9}}}}"#.to_owned(),
            _ => r#"{"ok": {"decision": {"tag": "keep", "val": [1]}}}"#.to_owned(),
        })
    };
    let trace = simulate_deciding(&mut start(&r, Contract::V0_2_0), T0, &mut cities, &mut decide, |_, _| false);
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
    let judge = trace.requests.iter().find(|q| q.model == "judge").expect("the ask was made");
    assert_eq!(judge.body["max_tokens"], 9);
    assert_eq!(contexts.len(), 2);
    assert_eq!(contexts[1]["asked"][0]["ask"]["label"], "judge");
    assert_eq!(contexts[1]["asked"][0]["reply"], serde_json::json!({"tag": "ok", "val": "pick 1"}));
    // Kept proposal 1 only: the aggregator saw Lyon and not Paris.
    let agg = trace.requests.iter().find(|q| q.model == "agg").expect("aggregator");
    let system = agg.system().expect("a system prompt");
    assert!(system.contains("Lyon") && !system.contains("Paris"), "{system}");
    // Booked in the judged layer, as a built-in's ask.
    assert!(trace.outcome.layers[0].calls.iter().any(|c| c.asked && c.agent == "judge"));
}

#[test]
fn a_failed_decision_falls_back_or_fails_as_on_error_says() {
    let mut stopped =
        |_: &PluginRequest| Err("ran past its deadline of 50 ms (timeout_ms, wall time) and was stopped".to_owned());
    let r = recipe(serde_json::json!({"plugin": "spin.wasm", "on_error": "synthesize"}));
    let trace = simulate_deciding(&mut start(&r, Contract::V0_2_0), T0, &mut cities, &mut stopped, |_, _| false);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
    let failed = failures(&trace.events);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].0.contains("spin.wasm") && failed[0].0.contains("ran past its deadline"), "{failed:?}");
    assert!(failed[0].1, "fell back");

    let r = recipe(serde_json::json!({"plugin": "spin.wasm"}));
    let trace = simulate_deciding(&mut start(&r, Contract::V0_2_0), T0, &mut cities, &mut stopped, |_, _| false);
    match &trace.outcome.answer {
        Err(RunError::Strategy(e)) => assert!(e.message.contains("ran past its deadline"), "{e}"),
        other => panic!("expected the strategy's failure, got {other:?}"),
    }
}

#[test]
fn replies_the_contract_does_not_allow_are_refused_like_a_native_plugins() {
    let cases: [(Contract, &str, &str); 7] = [
        (
            Contract::V0_1_0,
            r#"{"ok": {"decision": {"tag": "ask", "val": {"label": "j", "messages": [{"role": "user", "content": "x"}]}}}}"#,
            "contract 0.1.0 does not have",
        ),
        (
            Contract::V0_1_0,
            r#"{"ok": {"decision": {"tag": "answer", "val": "x"}, "note": "n"}}"#,
            "a note, which contract 0.1.0",
        ),
        (Contract::V0_2_0, r#"{"ok": {"decision": {"tag": "keep", "val": [0, 0]}}}"#, "kept proposal 0 twice"),
        (
            Contract::V0_2_0,
            r#"{"ok": {"decision": {"tag": "keep", "val": [5]}}}"#,
            "kept proposal 5, but there are only 2",
        ),
        (
            Contract::V0_2_0,
            r#"{"ok": {"decision": {"tag": "ask", "val": {"label": "x\ny", "messages": [{"role": "user", "content": "x"}]}}}}"#,
            "asked with label",
        ),
        (
            Contract::V0_2_0,
            r#"{"ok": {"decision": {"tag": "run-shell", "val": "rm -rf /"}}}"#,
            "returned something the contract does not allow",
        ),
        (Contract::V0_2_0, r#"{"err": "no\u001b]0;pwned"}"#, "declined to decide: no\\u{1b}]0;pwned"),
    ];
    for (contract, reply, expected) in cases {
        let r = recipe(serde_json::json!({"plugin": "bad.wasm", "on_error": "synthesize"}));
        let mut decide = |_: &PluginRequest| Ok(reply.to_owned());
        let trace = simulate_deciding(&mut start(&r, contract), T0, &mut cities, &mut decide, |_, _| false);
        assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"), "{reply}");
        let failed = failures(&trace.events);
        assert!(failed.len() == 1 && failed[0].0.contains(expected), "{reply}: {failed:?}");
    }
}

#[test]
fn an_oversized_answer_is_refused_unread_and_a_stale_one_ignored() {
    let r = recipe(serde_json::json!({"plugin": "big.wasm", "max_output_kib": 1, "on_error": "synthesize"}));
    let mut decide = |_: &PluginRequest| {
        Ok(format!(r#"{{"ok": {{"decision": {{"tag": "answer", "val": "{}"}}}}}}"#, "x".repeat(2000)))
    };
    let trace = simulate_deciding(&mut start(&r, Contract::V0_2_0), T0, &mut cities, &mut decide, |_, _| false);
    let failed = failures(&trace.events);
    assert!(failed.len() == 1 && failed[0].0.contains("output cap of 1 KiB"), "{failed:?}");

    // An answer for a decision the run is not waiting for changes nothing.
    let mut run = start(&r, Contract::V0_2_0);
    run.handle(moa_core::Input::Decided {
        decision: 99,
        answer: Ok(r#"{"ok": {"decision": {"tag": "answer", "val": "forged"}}}"#),
        now: T0,
    });
    let mut decide = |_: &PluginRequest| Ok(r#"{"ok": {"decision": {"tag": "answer", "val": "real"}}}"#.to_owned());
    let trace = simulate_deciding(&mut run, T0, &mut cities, &mut decide, |_, _| false);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("real"));
}

#[test]
fn cancelling_while_the_driver_decides_ends_the_run_and_a_late_answer_is_ignored() {
    use moa_core::{Action, Input};
    let r = recipe(serde_json::json!({"plugin": "slow.wasm"}));
    let mut run = start(&r, Contract::V0_2_0);
    // Every proposer answers at once; stop at the first decision.
    let decision = loop {
        match run.poll() {
            Action::Request { call, http } => {
                let model = if http.body.contains("\"a\"") { "Paris" } else { "Lyon" };
                for (_, step) in answer(model, ms(0)) {
                    match step {
                        Step::Head(status, headers) => run.handle(Input::Head { call, status, headers, now: T0 }),
                        Step::Body(bytes) => run.handle(Input::Body { call, bytes: &bytes, now: T0 }),
                        Step::End => run.handle(Input::End { call, now: T0 }),
                        _ => {}
                    }
                }
            }
            Action::Decide { decision, .. } => break decision,
            Action::Done(o) => panic!("ended before deciding: {:?}", o.answer),
            Action::Wait(_) => panic!("waits with nothing in flight"),
            _ => {}
        }
    };
    // While the driver decides, the run waits with no deadline of its own.
    assert_eq!(run.poll(), Action::Wait(None));
    run.cancel(T0);
    let late = r#"{"ok": {"decision": {"tag": "answer", "val": "late"}}}"#;
    run.handle(Input::Decided { decision, answer: Ok(late), now: T0 });
    let outcome = loop {
        if let Action::Done(o) = run.poll() {
            break o;
        }
    };
    assert!(matches!(outcome.answer, Err(RunError::Cancelled)), "{:?}", outcome.answer);
}
