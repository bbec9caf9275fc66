//! Whole runs in simulated time against a scripted fake network.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::recipe::{self, Layer, OnError, StrategySpec};
use moa_core::strategy::{Builtins, Decision, REFERENCE_PROMPT, Resolver, Strategy, StrategyError, StrategyInput};
use moa_core::{Action, CallError, Event, Input, Message, Recipe, Run, RunError, Time};
use std::collections::BTreeMap;
use std::time::Duration;

const KEY: &str = "sk-SENTINEL-KEY-0123456789";
const T0: Time = Time::from_millis(1_700_000_000_000);

fn opts(seed: u64) -> RunOptions<'static> {
    RunOptions { seed, keys: BTreeMap::from([("together".to_owned(), KEY.to_owned())]), ..RunOptions::default() }
}

fn start(recipe: &Recipe, seed: u64) -> Run {
    Run::with_options(recipe, vec![Message::user("Name a prime.")], T0, opts(seed)).expect("run starts")
}

/// Layer of a request in the moa preset: by the number of references in its system prompt.
fn references(req: &Req) -> Vec<String> {
    let Some(system) = req.system() else { return vec![] };
    let Some(refs) = system.split_once(REFERENCE_PROMPT).map(|(_, r)| r) else { return vec![] };
    refs.split('\n').filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn started_calls(events: &[Event]) -> Vec<(moa_core::CallId, usize, u32, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallStarted { at, attempt, t_ms, .. } => Some((at.call, at.layer, *attempt, *t_ms)),
            _ => None,
        })
        .collect()
}

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
fn retry_after_seconds_is_honoured_in_simulated_time() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut first = true;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" && std::mem::take(&mut first) {
            return status(
                429,
                &[("retry-after", "7")],
                r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
                ms(5),
            );
        }
        answer("fine", ms(50))
    });
    assert_consistent(&trace.events);
    let dbrx: Vec<_> = trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").collect();
    assert_eq!(dbrx.len(), 2);
    assert_eq!(dbrx[1].at, dbrx[0].at + ms(5) + Duration::from_secs(7));
    let failed = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { error, will_retry, retry_in_ms, .. } => Some((error.clone(), *will_retry, *retry_in_ms)),
        _ => None,
    });
    assert_eq!(failed, Some(("HTTP 429: slow down".into(), true, Some(7000.0))));
    assert!(trace.outcome.answer.is_ok());
}

#[test]
fn retry_after_http_date_is_measured_against_the_date_header() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut first = true;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if std::mem::take(&mut first) {
            let hs = [("Retry-After", "Wed, 21 Oct 2015 07:28:12 GMT"), ("Date", "Wed, 21 Oct 2015 07:28:00 GMT")];
            return status(503, &hs, "overloaded", ms(0));
        }
        let _ = req;
        answer("fine", ms(50))
    });
    assert_eq!(trace.requests[6].at, T0 + Duration::from_secs(12), "the retry comes 12 s later");
}

#[test]
fn server_errors_back_off_with_seeded_jitter_and_give_up_after_the_retries() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.retries = 2;
    recipe.policy.min_successes = 5;
    let trace = simulate(start(&recipe, 9), T0, |req| {
        if req.model == "databricks/dbrx-instruct" { status(500, &[], "boom", ms(10)) } else { answer("fine", ms(50)) }
    });
    let times: Vec<Time> =
        trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").map(|r| r.at).collect();
    assert_eq!(times.len(), 3, "one try and two retries");
    let gap1 = times[1].since(times[0]) - ms(10);
    let gap2 = times[2].since(times[1]) - ms(10);
    assert!(gap1 >= ms(500) && gap1 <= ms(1000), "first backoff in [0.5, 1] s: {gap1:?}");
    assert!(gap2 >= ms(1000) && gap2 <= ms(2000), "second backoff in [1, 2] s: {gap2:?}");
    // Five of six suffice; the failed one never reaches the aggregator's prompt.
    let agg = trace.requests.last().expect("aggregator");
    assert_eq!(references(agg).len(), 5);
    assert!(!agg.http.body.contains("boom") && !agg.http.body.contains("HTTP 500"));
    let report = &trace.outcome.layers[0].calls[5];
    assert_eq!((report.ok, report.attempts, report.errors.len()), (false, 3, 3));
}

#[test]
fn client_errors_are_not_retried() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" {
            status(401, &[], r#"{"error":{"message":"invalid key"}}"#, ms(1))
        } else {
            answer("ok", ms(5))
        }
    });
    assert_eq!(trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").count(), 1);
    assert!(
        trace.events.iter().any(
            |e| matches!(e, Event::CallFailed { error, will_retry: false, .. } if error == "HTTP 401: invalid key")
        )
    );
}

#[test]
fn too_few_successes_fails_the_run_listing_every_failure() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.min_successes = 3;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model.starts_with("Qwen") || req.model.contains("WizardLM") || req.model.contains("Llama") {
            status(403, &[], &format!("no access to {}", req.model), ms(3))
        } else {
            answer("ok", ms(5))
        }
    });
    assert_consistent(&trace.events);
    assert_eq!(trace.requests.len(), 6, "no aggregator call");
    let Some(RunError::TooFewSuccesses { what, succeeded, needed, failures }) = &trace.outcome.answer.as_ref().err()
    else {
        panic!("expected TooFewSuccesses, got {:?}", trace.outcome.answer.as_ref().err())
    };
    assert_eq!((what.as_str(), *succeeded, *needed, failures.len()), ("layer 0", 2, 3, 4));
    let msg = trace.outcome.answer.as_ref().err().as_ref().expect("error").to_string();
    assert!(msg.contains("together:Qwen/Qwen1.5-110B-Chat: HTTP 403: no access to Qwen/Qwen1.5-110B-Chat"), "{msg}");
    assert!(msg.contains("meta-llama/Llama-3-70b-chat-hf"), "{msg}");
}

#[test]
fn a_call_past_its_deadline_is_cancelled_and_retried() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.timeout_secs = 30.0;
    recipe.policy.stall_timeout_secs = 1000.0;
    let mut hung = false;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" && !std::mem::replace(&mut hung, true) {
            // Headers come, then a token every 5 s: never stalled, but far too slow.
            let mut r = openai_stream(&["x"; 20], (1, 1), ms(100), Duration::from_secs(5));
            r.retain(|(t, _)| *t < Duration::from_secs(60));
            return r;
        }
        answer("ok", ms(5))
    });
    let dbrx: Vec<_> = trace.requests.iter().filter(|r| r.model == "databricks/dbrx-instruct").collect();
    assert_eq!(dbrx.len(), 2);
    assert!(trace.aborted.contains(&dbrx[0].call), "the slow call is cancelled");
    assert!(dbrx[1].at >= T0 + Duration::from_secs(30));
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { error, will_retry: true, t_ms, .. } if error.contains("timeout_secs") && *t_ms == 30_000.0)));
    // The retry's text replaces the cancelled attempt's: the aggregator sees "ok", not "xxxx".
    let agg = trace.requests.last().expect("aggregator");
    assert!(references(agg).iter().all(|r| r.ends_with(". ok")), "{:?}", references(agg));
}

#[test]
fn a_stream_that_goes_silent_is_cut_at_the_stall_timeout() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.policy.stall_timeout_secs = 2.0;
    recipe.policy.retries = 0;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" {
            vec![(ms(10), Step::Head(200, vec![]))] // then nothing, ever
        } else {
            answer("ok", ms(5))
        }
    });
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { error, will_retry: false, t_ms, .. } if error.contains("stall") && *t_ms == 2010.0)));
    assert!(trace.outcome.answer.is_ok(), "five proposals are enough");
}

#[test]
fn a_connection_reset_mid_stream_is_retried_from_scratch() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut reset = false;
    let trace = simulate(start(&recipe, 3), T0, |req| {
        if req.model == "databricks/dbrx-instruct" && !std::mem::replace(&mut reset, true) {
            let mut r = openai_stream(&["partial ", "text"], (1, 1), ms(10), ms(10));
            r.truncate(2);
            r.push((ms(15), Step::Fail("connection reset by peer".into())));
            return r;
        }
        answer(&format!("full {}", req.model), ms(20))
    });
    assert_consistent(&trace.events);
    let agg = trace.requests.last().expect("aggregator");
    assert!(references(agg).contains(&"6. full databricks/dbrx-instruct".to_owned()), "{:?}", references(agg));
    assert!(!agg.http.body.contains("partial"));
}

#[test]
fn malformed_sse_fails_the_call_with_a_clear_error() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let trace = simulate(start(&recipe, 1), T0, |req| {
        if req.model == "databricks/dbrx-instruct" {
            vec![
                (ms(1), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
                (ms(2), Step::Body(b"data: {\"choices\": [oops\n\n".to_vec())),
                (ms(3), Step::End),
            ]
        } else {
            answer("ok", ms(5))
        }
    });
    let err = trace.events.iter().find_map(|e| match e {
        Event::CallFailed { at, error, will_retry, .. } => Some((at.call, error.clone(), *will_retry)),
        _ => None,
    });
    let (call, error, will_retry) = err.expect("a failure");
    assert!(error.starts_with("malformed response: stream chunk:"), "{error}");
    assert!(!will_retry);
    assert!(trace.aborted.contains(&call), "the broken stream is cancelled");
}

#[test]
fn a_stream_cut_before_its_end_is_truncated_and_retried() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let mut cut = false;
    let trace = simulate(start(&recipe, 1), T0, |req| {
        let mut r = answer("ok", ms(5));
        if req.model == "databricks/dbrx-instruct" && !std::mem::replace(&mut cut, true) {
            r.remove(2); // drop the finish, usage and [DONE] chunk
        }
        r
    });
    assert!(
        trace
            .events
            .iter()
            .any(|e| matches!(e, Event::CallFailed { error, will_retry: true, .. } if error.contains("ended before")))
    );
    assert!(trace.outcome.answer.is_ok());
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
fn a_missing_key_is_refused_before_any_call() {
    let recipe = recipe::preset("moa").expect("preset");
    let err = Run::new(&recipe, vec![Message::user("hi")], T0).err().expect("refused");
    assert_eq!(
        err.to_string(),
        "provider \"together\" needs an API key: set TOGETHER_API_KEY (or pass it at run time)"
    );
    let err = Run::with_options(&recipe, vec![Message::assistant("hi")], T0, opts(0)).err().expect("refused");
    assert!(err.to_string().contains("last message must be the user's"), "{err}");
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
fn vote_decides_without_an_aggregator_call_when_the_proposers_agree() {
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.aggregator.strategy = Some(StrategySpec::builtin(moa_core::strategy::StrategyKind::Vote));
    let trace = simulate(start(&recipe, 0), T0, |req| {
        answer(if req.model.contains("dbrx") { "13" } else { "The answer is 7." }, ms(5))
    });
    assert_eq!(trace.requests.len(), 6);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("The answer is 7."));
    assert_eq!(trace.outcome.decided_by.as_deref(), Some("vote"));
    assert!(matches!(trace.events.last(), Some(Event::Final { decided_by, .. }) if decided_by == "vote"));
}

struct Broken;
impl Strategy for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn decide(&mut self, _: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        Err(StrategyError { strategy: "broken".into(), message: "trapped".into() })
    }
}
struct WithBroken;
impl Resolver for WithBroken {
    fn resolve(&self, spec: &StrategySpec) -> Result<Box<dyn Strategy>, StrategyError> {
        if spec.plugin.is_some() { Ok(Box::new(Broken)) } else { Builtins.resolve(spec) }
    }
}

#[test]
fn a_failing_strategy_falls_back_or_fails_as_the_recipe_says() {
    for (on_error, calls) in [(OnError::Synthesize, 7), (OnError::Fail, 6)] {
        let mut recipe = recipe::preset("moa-lite").expect("preset");
        recipe.aggregator.strategy =
            Some(StrategySpec { plugin: Some("broken.wasm".into()), on_error, ..Default::default() });
        let options = RunOptions { resolver: &WithBroken, ..opts(0) };
        let run = Run::with_options(&recipe, vec![Message::user("q")], T0, options).expect("starts");
        let trace = simulate(run, T0, |_| answer("ok", ms(5)));
        assert_eq!(trace.requests.len(), calls, "{on_error:?}");
        let fallback = on_error == OnError::Synthesize;
        assert!(trace.events.iter().any(|e| matches!(e, Event::StrategyFailed { fallback: f, error, .. } if *f == fallback && error.contains("trapped"))));
        assert_eq!(trace.outcome.answer.is_ok(), fallback);
    }
    // Core alone cannot run plugins, and says so before any call.
    let mut recipe = recipe::preset("moa-lite").expect("preset");
    recipe.aggregator.strategy = Some(StrategySpec { plugin: Some("x.wasm".into()), ..Default::default() });
    let err = Run::with_options(&recipe, vec![Message::user("q")], T0, opts(0)).err().expect("refused");
    assert!(err.to_string().contains("only in the native host"), "{err}");
}

#[test]
fn self_moa_samples_one_model_six_times() {
    let recipe = recipe::preset("self-moa").expect("preset");
    let trace = simulate(start(&recipe, 0), T0, |req| answer(&format!("take {}", req.call.0), ms(5)));
    assert_eq!(trace.requests.len(), 7);
    assert!(trace.requests.iter().all(|r| r.model == "microsoft/WizardLM-2-8x22B"));
    let labels: Vec<String> = trace.outcome.layers[0].calls.iter().map(|c| c.agent.clone()).collect();
    assert_eq!(labels[5], "together:microsoft/WizardLM-2-8x22B#6");
    assert_eq!(references(trace.requests.last().expect("agg")).len(), 6);
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
    let keys = BTreeMap::from([("anthropic".to_owned(), KEY.to_owned())]);
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
fn anthropic_overload_error_events_are_retried() {
    let recipe = one_model("a", "anthropic", 1);
    let mut n = 0;
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |_| {
        n += 1;
        let body = if n == 1 {
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".to_owned()
        } else {
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned()
        };
        vec![(ms(1), Step::Head(200, vec![])), (ms(2), Step::Body(body.into_bytes())), (ms(3), Step::End)]
    });
    assert!(trace.events.iter().any(
        |e| matches!(e, Event::CallFailed { error, will_retry: true, .. } if error == "overloaded_error: Overloaded")
    ));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("ok"));
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
fn a_provider_that_is_down_fails_with_the_transport_error() {
    let mut recipe = recipe::preset("local-smollm").expect("preset");
    recipe.policy.retries = 1;
    recipe.layers = vec![Layer::new(vec![recipe::Agent::new("smollm:m")])];
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, |_| {
        vec![(ms(1), Step::Fail("connection refused (127.0.0.1:8081)".into()))]
    });
    let err = trace.outcome.answer.as_ref().expect_err("fails").to_string();
    assert_eq!(
        err,
        "layer 0: 0 agent(s) succeeded, 1 needed\n  smollm:m: transport: connection refused (127.0.0.1:8081)"
    );
    assert_eq!(trace.requests.len(), 2, "tried twice");
}

#[test]
fn a_refused_connection_to_this_machine_is_not_retried_but_to_another_is() {
    // Nothing listening on 127.0.0.1 will not start listening by itself: retrying only
    // prints retry lines for seconds before failing the same way.
    let mut recipe = recipe::preset("local-smollm").expect("preset");
    recipe.policy.retries = 3;
    recipe.layers = vec![Layer::new(vec![recipe::Agent::new("smollm:m")])];
    let refused = |_: &Req| vec![(ms(1), Step::Refused("tcp connect error: Connection refused".into()))];
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, refused);
    assert_eq!(trace.requests.len(), 1, "tried once");
    assert!(trace.events.iter().any(|e| matches!(e, Event::CallFailed { will_retry: false, .. })));
    let err = trace.outcome.answer.as_ref().expect_err("fails").to_string();
    assert!(err.ends_with("smollm:m: connection refused: tcp connect error: Connection refused"), "{err}");

    // The same refusal from a remote host (a restarting server behind a balancer) is retried.
    recipe.providers.get_mut("smollm").expect("provider").base_url = "https://llm.example.org/v1".into();
    let trace = simulate(Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts"), T0, refused);
    assert_eq!(trace.requests.len(), 4, "tried 1 + 3 times");
}

#[test]
fn loopback_addresses_are_recognized() {
    for url in ["http://127.0.0.1:8081/v1", "http://localhost/v1", "http://[::1]:9/v1", "http://127.1.2.3:80"] {
        assert!(moa_core::http::is_loopback(url), "{url}");
    }
    for url in [
        "https://api.example.org/v1",
        "http://127.0.0.1.example.org/v1",
        "http://10.0.0.1:8081/v1",
        "http://127.0.0.example/v1",
    ] {
        assert!(!moa_core::http::is_loopback(url), "{url}");
    }
}

#[test]
fn errors_name_what_failed() {
    assert!(CallError::Timeout(30.0).retryable());
    assert!(!CallError::Status { status: 400, message: "bad".into() }.retryable());
    assert!(CallError::Status { status: 529, message: "overloaded".into() }.retryable());
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

/// One provider `name` of `kind` on 127.0.0.1:`port`, whose model `m` proposes and aggregates.
fn one_model(name: &str, kind: &str, port: u16) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"providers": {{"{name}": {{"kind": "{kind}", "base_url": "http://127.0.0.1:{port}/v1"}}}},
            "layers": [{{"agents": ["{name}:m"]}}], "aggregator": "{name}:m"}}"#
    ))
    .expect("valid")
}

/// A one-proposer recipe on a local provider, for fault tests on the aggregator.
fn one_and_aggregator() -> Recipe {
    Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:proposer"]}], "aggregator": "p:agg",
            "policy": {"retries": 2, "backoff_secs": 0.1}}"#,
    )
    .expect("valid")
}

/// The aggregator's first attempt streams "Partial " and then the connection resets.
fn aggregator_breaks_once() -> impl FnMut(&Req) -> Reply {
    let mut broke = false;
    move |req: &Req| {
        if req.model == "agg" && !std::mem::replace(&mut broke, true) {
            let mut r = openai_stream(&["Partial ", "answ"], (10, 2), ms(5), ms(5));
            r.truncate(3); // head and both pieces, no finish
            r.push((ms(20), Step::Fail("connection reset by peer".into())));
            r
        } else if req.model == "agg" {
            openai_stream(&["Whole ", "answer."], (10, 2), ms(5), ms(5))
        } else {
            answer("a proposal", ms(5))
        }
    }
}

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

#[test]
fn cancelling_an_agent_that_waits_to_retry_ends_its_retrying_state() {
    let mut recipe = one_and_aggregator();
    recipe.layers[0].agents.push(recipe::Agent::new("p:slow"));
    let mut run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let trace = simulate_with(
        &mut run,
        T0,
        &mut |req| match req.model.as_str() {
            "slow" => answer("slowly", Duration::from_secs(6)),
            _ => status(429, &[("retry-after", "60")], "slow down", ms(1)),
        },
        |run, now| {
            if now >= T0 + Duration::from_secs(5) {
                run.cancel(now);
                return true;
            }
            false
        },
    );
    assert_consistent(&trace.events);
    let stopped: Vec<_> = trace
        .events
        .iter()
        .filter_map(|e| match e {
            Event::AgentStopped { layer, slot, reason, .. } => Some((*layer, *slot, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(stopped, [(0, 0, moa_core::engine::ErrorKind::Cancelled)], "{:#?}", trace.events);
}

#[test]
fn a_request_the_transport_cannot_make_is_not_retried() {
    let recipe = one_and_aggregator();
    let mut run = Run::new(&recipe, vec![Message::user("Hi")], T0).expect("starts");
    let Some(call) = std::iter::from_fn(|| Some(run.poll())).find_map(|a| match a {
        Action::Request { call, .. } => Some(call),
        _ => None,
    }) else {
        panic!("a request")
    };
    run.handle(Input::Invalid { call, error: "invalid header value".into(), now: T0 });
    let events: Vec<Event> = std::iter::from_fn(|| match run.poll() {
        Action::Event(e) => Some(e),
        _ => None,
    })
    .collect();
    assert!(events.iter().any(|e| matches!(e, Event::CallFailed { will_retry: false, error, .. }
        if error == "the request could not be made: invalid header value")));
    assert!(run.is_done());
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

/// Everything a run produced that a user could see, as text.
fn visible(trace: &Trace) -> String {
    let events: Vec<String> = trace.events.iter().map(|e| serde_json::to_string(e).expect("json")).collect();
    format!("{}\n{:?}\n{}", events.join("\n"), trace.outcome, serde_json::to_string(&trace.outcome).expect("json"))
}

#[test]
fn a_provider_that_echoes_the_key_never_makes_it_visible() {
    let recipe = recipe::preset("moa-lite").expect("preset");
    let bearer = format!("Bearer {KEY}");
    let header_block =
        format!("POST /v1/chat/completions HTTP/1.1\r\nhost: api.together.xyz\r\nauthorization: {bearer}\r\n");
    let echo_event =
        serde_json::json!({"error": {"message": format!("overloaded; you sent {bearer}"), "type": "server_error"}});
    for (name, reply) in [
        (
            "401",
            status(401, &[], &format!(r#"{{"error": {{"message": "Incorrect API key provided: {KEY}"}}}}"#), ms(1)),
        ),
        ("429", status(429, &[("retry-after", "0")], &format!(r#"{{"error": "rate limited for {bearer}"}}"#), ms(1))),
        ("500", status(500, &[], &format!("internal error handling key {}****", &KEY[..14]), ms(1))),
        ("400", status(400, &[], &header_block, ms(1))),
        (
            "stream",
            vec![
                (ms(1), Step::Head(200, headers(&[("content-type", "text/event-stream")]))),
                (ms(2), Step::Body(format!("data: {echo_event}\n\n").into_bytes())),
                (ms(3), Step::End),
            ],
        ),
        ("answer", openai_stream(&["your key is sk-SENTI", "NEL-KEY-0123456789 ok"], (1, 1), ms(1), ms(1))),
    ] {
        let mut recipe = recipe.clone();
        recipe.policy.retries = 0;
        recipe.policy.min_successes = 1;
        let reply2 = reply.clone();
        let trace = simulate(start(&recipe, 1), T0, move |req| {
            if req.model == "databricks/dbrx-instruct" || req.model == "Qwen/Qwen1.5-72B-Chat" {
                reply2.clone()
            } else {
                answer("fine", ms(5))
            }
        });
        let seen = visible(&trace);
        assert!(!seen.contains(KEY), "{name}: the key is visible:\n{seen}");
        assert!(!seen.contains(&KEY[..14]), "{name}: part of the key is visible:\n{seen}");
        assert!(seen.contains("[redacted key]"), "{name}: the echo is marked:\n{seen}");
    }
}

#[test]
fn a_key_goes_only_to_a_provider_that_declares_one() {
    let recipe = one_model("r", "openai", 9);
    let options = RunOptions {
        keys: BTreeMap::from([("r".to_owned(), "x-key-given-anyway".to_owned())]),
        ..RunOptions::default()
    };
    let run = Run::with_options(&recipe, vec![Message::user("Hi")], T0, options).expect("starts");
    let trace = simulate(run, T0, |_| answer("ok", ms(1)));
    assert!(trace.requests.iter().all(|r| r.header("authorization").is_none() && r.header("x-api-key").is_none()));
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
fn staircase_starts_the_aggregator_on_the_first_chunks_and_only_appends() {
    let recipe = |staircase: bool| {
        let st = if staircase { r#", "staircase": {"chunk_chars": 10, "step_tokens": 8}"# } else { "" };
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
            "aggregator": {"model": "p:agg", "staircase": {"chunk_chars": 10, "step_tokens": 8}},
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
fn diverse_passes_on_only_the_most_different_proposals() {
    let recipe = Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:a", "p:b", "p:c", "p:d"]}],
            "aggregator": {"model": "p:agg", "strategy": {"name": "diverse", "params": {"k": 3}}}}"#,
    )
    .expect("valid");
    let trace = simulate(start(&recipe, 0), T0, |req| match req.model.as_str() {
        "a" | "b" | "c" => answer("Paris is the capital of France and its largest city.", ms(10)),
        "agg" => answer("Paris.", ms(10)),
        _ => answer("Lyon is a French city known for its food.", ms(10)),
    });
    // Three near-duplicates and one different: one of the three, and the different one.
    let refs = references(trace.requests.iter().find(|r| r.model == "agg").expect("aggregator"));
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert!(refs.iter().any(|r| r.contains("Lyon")) && refs.iter().any(|r| r.contains("Paris")));
}
