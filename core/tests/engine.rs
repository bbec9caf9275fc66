//! Whole runs in simulated time against a scripted fake network.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::recipe::{self};
use moa_core::strategy::REFERENCE_PROMPT;
use moa_core::{Action, Event, Input, Message, Recipe, Run, RunError};
use std::time::Duration;

#[test]
fn moa_preset_runs_thirteen_calls_with_the_papers_prompt() {
    let recipe = recipe::preset("moa").expect("preset");
    let trace = simulate(start(&recipe, 1), T0, |req| {
        let refs = references(req);
        let layer = match refs.first() {
            None => 0,
            Some(r) if r.contains(" L1 ") => 2,
            Some(_) => 1,
        };
        let latency = 100 + 10 * (req.call.0 % 6);
        openai_stream(&[&format!("L{layer} {}", req.model), " ok"], (20, 7), ms(latency / 2), ms(latency / 2))
    });
    let reqs = &trace.requests;
    assert_eq!(reqs.len(), 13, "6 + 6 + 1 calls");
    assert_consistent(&trace.events);

    // Layer 1: the six paper models on the plain conversation, all at once.
    let models: Vec<&str> = reqs[..6].iter().map(|r| r.model.as_str()).collect();
    assert_eq!(models, recipe::PAPER_PROPOSERS);
    for r in &reqs[..6] {
        assert_eq!(r.at, T0);
        assert_eq!(r.messages, vec![Message::user("Name a prime.")]);
        assert_eq!(r.body["stream"], true);
        assert_eq!(r.body["stream_options"]["include_usage"], true);
        assert_eq!(r.body["temperature"], 0.7);
        assert_eq!(r.body["max_tokens"], 2048);
        assert_eq!(r.http.url, "https://api.together.xyz/v1/chat/completions");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    }
    // Layer 2 starts when the slowest of layer 1 ends, and each agent sees the six
    // answers, numbered in agent order, in the paper's prompt.
    let l1_end = reqs[..6].iter().map(|r| r.at).max().expect("six");
    let expected_refs: Vec<String> =
        recipe::PAPER_PROPOSERS.iter().enumerate().map(|(i, m)| format!("{}. L0 {m} ok", i + 1)).collect();
    for r in &reqs[6..12] {
        assert!(r.at > l1_end);
        assert_eq!(r.messages.len(), 2);
        assert_eq!(r.messages[1], Message::user("Name a prime."));
        assert_eq!(r.system().expect("system"), format!("{REFERENCE_PROMPT}\n{}", expected_refs.join("\n")));
    }
    // The aggregator sees layer 2's six answers.
    let agg = &reqs[12];
    assert_eq!(agg.model, "Qwen/Qwen1.5-110B-Chat");
    assert_eq!(references(agg).len(), 6);
    assert!(references(agg).iter().all(|r| r.contains(" L1 ")), "{:?}", references(agg));
    // The answer is exactly what the aggregator streamed.
    let answer = trace.outcome.answer.clone().expect("answer");
    assert_eq!(answer, streamed_text(&trace.events, agg.call));
    assert_eq!(answer, "L2 Qwen/Qwen1.5-110B-Chat ok");
    assert_eq!(trace.outcome.decided_by.as_deref(), Some("together:Qwen/Qwen1.5-110B-Chat"));
    // Tokens add up per layer and per run.
    assert_eq!(trace.outcome.layers.len(), 3);
    assert_eq!(trace.outcome.layers[0].usage.input_tokens, 6 * 20);
    assert_eq!(trace.outcome.usage.input_tokens, 13 * 20);
    assert_eq!(trace.outcome.usage.output_tokens, 13 * 7);
    // The key reaches only its provider's header: never an event or the outcome.
    let printed = format!(
        "{}{}",
        serde_json::to_string(&trace.events).expect("json"),
        serde_json::to_string(&trace.outcome).expect("json")
    );
    assert!(!printed.contains(KEY));
    // The outcome's JSON has the answer and a null error (a failed run: the reverse).
    let json = serde_json::to_value(&trace.outcome).expect("json");
    assert_eq!((json["answer"].as_str(), json["error"].is_null()), (Some(answer.as_str()), true));
}

#[test]
fn timings_are_measured_from_the_drivers_clock() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let trace = simulate(start(&recipe, 1), T0, |_| openai_stream(&["a", "b", "c"], (1, 3), ms(40), ms(10)));
    let finished: Vec<(f64, Option<f64>)> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::CallFinished { latency_ms, ttft_ms, .. } => Some((*latency_ms, *ttft_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(finished.len(), 7);
    // Head and first piece at 40 ms, pieces every 10 ms, the end chunk at 70 ms.
    assert!(finished.iter().all(|&(lat, ttft)| lat == 70.0 && ttft == Some(40.0)), "{finished:?}");
    assert_eq!(trace.outcome.wall_ms, 140.0, "critical path: two sequential calls of 70 ms");
}

#[test]
fn concurrency_caps_are_never_exceeded() {
    let mut recipe = recipe::preset("moa").expect("preset");
    recipe.providers.get_mut("together").expect("together").max_concurrency = Some(2);
    let trace = simulate(start(&recipe, 1), T0, |req| answer("ok", ms(10 + req.call.0 % 7)));
    assert_eq!(trace.requests.len(), 13);
    assert_eq!(trace.max_in_flight["https://api.together.xyz"], 2);

    let mut recipe = recipe::preset("moa").expect("preset");
    recipe.policy.max_concurrency = Some(1);
    let trace = simulate(start(&recipe, 1), T0, |_| answer("ok", ms(10)));
    assert_eq!(trace.max_in_flight_total, 1, "a cap of 1 serializes every call");
    assert_eq!(trace.outcome.wall_ms, 130.0);
}

#[test]
fn cancelling_a_run_cancels_every_call_in_flight() {
    let recipe = recipe::preset("moa").expect("preset");
    let mut run = start(&recipe, 1);
    let mut script = |req: &Req| answer("ok", ms(if req.model.contains("dbrx") { 50 } else { 500 }));
    let trace = simulate_with(&mut run, T0, &mut script, |run, now| {
        if now >= T0 + ms(100) && !run.is_done() {
            run.cancel(now);
            return true;
        }
        false
    });
    assert_eq!(trace.outcome.answer.as_ref().err(), Some(&RunError::Cancelled));
    assert_consistent(&trace.events);
    assert_eq!(trace.aborted.len(), 5, "the five calls still running are cancelled");
    assert_eq!(trace.requests.len(), 6);
    assert!(matches!(trace.events.last(), Some(Event::RunFailed { error, .. }) if error == "the run was cancelled"));
    // Input arriving after the end is ignored.
    run.handle(Input::End { call: trace.requests[0].call, now: T0 + ms(600) });
    assert!(matches!(run.poll(), Action::Done(o) if o.answer.as_ref().err() == Some(&RunError::Cancelled)));
}

#[test]
fn the_same_seed_replays_the_same_run_and_another_seed_differs() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let run_with = |seed| {
        let mut n = 0;
        simulate(start(&recipe, seed), T0, move |_| {
            n += 1;
            if n % 3 == 0 { status(502, &[], "bad gateway", ms(7)) } else { answer("ok", ms(11)) }
        })
    };
    let (a, b, c) = (run_with(5), run_with(5), run_with(6));
    assert_eq!(a.events, b.events);
    assert_eq!(a.outcome, b.outcome);
    assert_ne!(started_calls(&a.events), started_calls(&c.events), "jitter depends on the seed");
}

#[test]
fn multi_turn_conversations_and_system_prompts_reach_every_agent() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.layers[0].agents[0].system = Some("You are terse.".into());
    let conversation = vec![
        Message::system("Answer in French."),
        Message::user("Hi"),
        Message::assistant("Bonjour"),
        Message::user("Count to 3"),
    ];
    let run = Run::with_options(&recipe, conversation.clone(), T0, opts(0)).expect("starts");
    let trace = simulate(run, T0, |_| answer("un deux trois", ms(5)));
    assert_eq!(trace.requests[0].messages[0].content, "You are terse.\n\nAnswer in French.");
    assert_eq!(trace.requests[0].messages[1..], conversation[1..]);
    assert_eq!(trace.requests[1].messages, conversation);
    let agg = trace.requests.last().expect("aggregator");
    assert!(agg.messages[0].content.starts_with(&format!("Answer in French.\n\n{REFERENCE_PROMPT}\n1. un deux trois")));
    assert_eq!(agg.messages[1..], conversation[1..]);
}

#[test]
fn a_recipe_without_layers_is_one_call_the_aggregator_answering_alone() {
    let recipe = Recipe::from_json(
        r#"{"providers": {"together": {"kind": "openai", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY"}},
            "layers": [], "aggregator": "together:solo"}"#,
    )
    .expect("valid");
    let trace = simulate(start(&recipe, 0), T0, |_| answer("7", ms(5)));
    assert_eq!(trace.requests.len(), 1);
    assert_eq!(trace.requests[0].model, "solo");
    assert_eq!(trace.requests[0].system(), None, "no references prompt: nothing was proposed");
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("7"));
    assert_consistent(&trace.events);
}

#[test]
fn prices_give_costs_per_call_layer_and_run() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe
        .prices
        .insert("together:Qwen/Qwen1.5-72B-Chat".into(), moa_core::Price { input: 1.0, output: 2.0, batch: None });
    let trace = simulate(start(&recipe, 0), T0, |_| openai_stream(&["x"], (1_000, 500), ms(1), ms(1)));
    // Qwen1.5-72B is one proposer and the aggregator: 2 × (1000×1 + 500×2) / 1e6 dollars.
    assert_eq!(trace.outcome.layers[0].cost, Some(0.002));
    assert_eq!(trace.outcome.layers[1].cost, Some(0.002));
    assert_eq!(trace.outcome.cost, Some(0.004));
    assert_eq!(trace.outcome.layers[0].calls[0].cost, None, "unpriced models have no cost");
}

#[test]
fn anthropic_messages_stream_end_to_end() {
    let recipe = Recipe::from_json(
        r#"{"name": "claude", "providers": {"anthropic": {"kind": "anthropic", "base_url": "https://api.anthropic.com/v1", "api_key_env": "ANTHROPIC_API_KEY"}},
            "layers": [{"agents": ["anthropic:claude-a", "anthropic:claude-b"]}], "aggregator": "anthropic:claude-a"}"#,
    )
    .expect("valid");
    let keys = moa_core::named::Named::from([("anthropic".to_owned(), KEY.to_owned())]);
    let run = Run::with_options(
        &recipe,
        vec![Message::system("Be kind."), Message::user("Hi")],
        T0,
        RunOptions { keys, ..RunOptions::default() },
    )
    .expect("starts");
    let events = [
        ("message_start", r#"{"type":"message_start","message":{"usage":{"input_tokens":12,"output_tokens":1}}}"#),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        ("ping", r#"{"type": "ping"}"#),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
        ),
        ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
        ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}"#),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let stream: String = events.iter().map(|(e, d)| format!("event: {e}\ndata: {d}\n\n")).collect();
    let trace = simulate(run, T0, |_| {
        vec![
            (ms(3), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
            (ms(4), Step::Body(stream.clone().into_bytes())),
            (ms(5), Step::End),
        ]
    });
    let first = &trace.requests[0];
    assert_eq!(first.http.url, "https://api.anthropic.com/v1/messages");
    assert_eq!(first.header("x-api-key"), Some(KEY));
    assert_eq!(first.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(first.header("anthropic-dangerous-direct-browser-access"), Some("true"));
    assert_eq!(first.header("authorization"), None);
    assert_eq!(first.body["system"], "Be kind.");
    assert_eq!(first.messages, vec![Message::user("Hi")]);
    let agg = trace.requests.last().expect("aggregator");
    assert_eq!(agg.body["system"], format!("Be kind.\n\n{REFERENCE_PROMPT}\n1. Hello there\n2. Hello there"));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("Hello there"));
    assert_eq!(trace.outcome.usage, moa_core::Usage::new(36, 27));
}

#[test]
fn a_server_that_ignores_stream_and_sends_json_still_works() {
    let recipe = recipe::preset("local-smollm").expect("preset");
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |_| {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"whole"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        vec![
            (ms(1), Step::Head(200, headers(&[("Content-Type", "application/json; charset=utf-8")]))),
            (ms(2), Step::Body(body.as_bytes().to_vec())),
            (ms(2), Step::End),
        ]
    });
    // Three proposers agree, so `vote` answers without an aggregator call.
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("whole"));
    assert_eq!(trace.outcome.usage.input_tokens, 9);
    assert_eq!(trace.requests.len(), 3);
    assert!(trace.requests.iter().all(|r| r.http.url == "http://127.0.0.1:8081/v1/chat/completions"));
    assert_eq!(trace.requests[0].header("authorization"), None, "local servers get no key");
}

#[test]
fn time_queued_in_the_transport_counts_toward_neither_deadlines_nor_latency() {
    let mut recipe = recipe::preset("local-smollm").expect("preset");
    recipe.policy.stall_timeout_secs = 10.0;
    let mut run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let mut calls = vec![];
    while let Action::Event(_) | Action::Request { .. } = {
        let a = run.poll();
        if let Action::Request { call, .. } = &a {
            calls.push(*call);
        }
        a
    } {}
    // The transport held the first call for 60 s before sending it: past the stall timeout.
    let sent = T0 + Duration::from_secs(60);
    run.handle(Input::Sent { call: calls[0], now: sent });
    let later = sent + ms(5);
    run.handle(Input::Head { call: calls[0], status: 200, headers: vec![], now: later });
    let sse = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
    run.handle(Input::Body { call: calls[0], bytes: sse, now: later });
    run.handle(Input::End { call: calls[0], now: later });
    let mut finished = None;
    let mut failed = vec![];
    loop {
        match run.poll() {
            Action::Event(Event::CallFinished { at, latency_ms, .. }) => finished = Some((at.call, latency_ms)),
            Action::Event(Event::CallFailed { at, .. }) => failed.push(at.call),
            Action::Event(_) | Action::Cancel { .. } => {}
            _ => break,
        }
    }
    assert_eq!(finished, Some((calls[0], 5.0)), "latency from when it was sent");
    assert!(!failed.contains(&calls[0]));
    assert_eq!(failed.len(), 2, "the two calls never sent did stall");
}

#[test]
fn with_reports_sent_a_call_waiting_in_the_transport_queue_never_stalls() {
    let mut recipe = one_and_aggregator();
    recipe.policy.stall_timeout_secs = 3.0;
    recipe.policy.timeout_secs = 5.0;
    let options = RunOptions { reports_sent: true, ..RunOptions::default() };
    let run = Run::with_options(&recipe, vec![Message::user("Hi")], T0, options).expect("starts");
    // Each call waits 20 s in the transport's queue (past both deadlines), then takes 2 s.
    let trace = simulate(run, T0, |_| {
        let mut r = vec![(Duration::from_secs(20), Step::Sent)];
        for (t, step) in answer("ok", Duration::from_secs(2)) {
            r.push((t + Duration::from_secs(20), step));
        }
        r
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("ok"));
    assert_eq!(trace.requests.len(), 2, "every call succeeds at its first attempt");
    // Once sent, the deadlines hold: a call sent and then silent is cut at the stall.
    let options = RunOptions { reports_sent: true, ..RunOptions::default() };
    let run = Run::with_options(&recipe, vec![Message::user("Hi")], T0, options).expect("starts");
    let mut n = 0;
    let trace = simulate(run, T0, |_| {
        n += 1;
        if n == 1 { vec![(Duration::from_secs(20), Step::Sent)] } else { answer("ok", ms(5)) }
    });
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { error, t_ms, .. }
        if error.contains("stall_timeout_secs") && *t_ms == 23_000.0)));
}

#[test]
fn an_end_marker_finishes_the_call_even_if_the_connection_stays_open() {
    let recipe = one_and_aggregator();
    let run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    // A proxy that keeps every connection open after [DONE] (no End ever comes).
    let trace = simulate(run, T0, |req| {
        let mut r = answer(&format!("from {}", req.model), ms(10));
        r.retain(|(_, s)| !matches!(s, Step::End));
        r
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("from agg"));
    assert_eq!(trace.requests.len(), 2, "nothing stalled or was retried");
    assert!(trace.outcome.wall_ms < 100.0, "no wait for the stall timeout: {}", trace.outcome.wall_ms);
    // The proposer's connection was closed after its grace; the aggregator's at the end.
    assert_eq!(trace.aborted.len(), 2, "{:?}", trace.aborted);
    // Anthropic's message_stop does the same.
    let recipe = one_model("a", "anthropic", 1);
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |_| {
        let body = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        vec![(ms(1), Step::Head(200, vec![])), (ms(2), Step::Body(body.as_bytes().to_vec()))]
    });
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("ok"));
    assert_eq!(trace.requests.len(), 2);
}
