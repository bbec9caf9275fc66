//! Strategies that make calls of their own before deciding (`rank`, `select`,
//! `sequential`), in simulated time against the scripted fake network.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::strategy::REFERENCE_PROMPT;
use moa_core::{Event, Message, Recipe, RecipeError, Run, Time};

const T0: Time = Time::from_millis(1_700_000_000_000);

fn recipe(layers: serde_json::Value, aggregator: serde_json::Value) -> Recipe {
    let v = serde_json::json!({
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "layers": layers,
        "aggregator": aggregator,
        "policy": {"retries": 1, "backoff_secs": 0.1}
    });
    Recipe::from_json(&v.to_string()).expect("valid recipe")
}

fn start(recipe: &Recipe, seed: u64) -> Run {
    Run::with_options(recipe, vec![Message::user("Which city?")], T0, RunOptions { seed, ..RunOptions::default() })
        .expect("run starts")
}

/// The references in a request's system prompt, in order.
fn references(req: &Req) -> Vec<String> {
    let Some(system) = req.system() else { return vec![] };
    let Some((_, refs)) = system.split_once(REFERENCE_PROMPT) else { return vec![] };
    refs.split('\n').filter(|l| !l.is_empty()).map(|l| l.split_once(". ").map_or(l, |x| x.1).to_owned()).collect()
}

fn notes(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StrategyNote { note, .. } => Some(note.clone()),
            _ => None,
        })
        .collect()
}

/// Proposers `a`, `b`, `c`, `d` answer with their own city; the judge and the aggregator
/// as `judge` and `agg` say.
fn cities(judge: &'static str) -> impl FnMut(&Req) -> Reply {
    move |req| match req.model.as_str() {
        "judge" => openai_stream(&[judge], (40, 7), ms(30), ms(0)),
        "agg" => answer("aggregated", ms(20)),
        "a" => answer("Paris", ms(10)),
        "b" => answer("Lyon", ms(10)),
        "c" => answer("Nice", ms(10)),
        _ => answer("Lille", ms(10)),
    }
}

#[test]
fn rank_makes_the_judges_pick_the_answer_and_books_the_judge_in_the_layer_it_judged() {
    let r = recipe(
        serde_json::json!([{"agents": ["p:a", "p:b", "p:c"]}]),
        serde_json::json!({"model": "p:agg", "strategy": {"name": "rank", "params": {"judge": "p:judge"}}}),
    );
    let trace = simulate(start(&r, 0), T0, cities("I pick {\"best\": 2} because it is right."));
    assert_consistent(&trace.events);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("Lyon"));
    assert_eq!(trace.outcome.decided_by.as_deref(), Some("rank"));
    // The paper's ranker: no aggregator call; the judge saw every answer, numbered.
    assert!(trace.requests.iter().all(|q| q.model != "agg"));
    let judge = trace.requests.iter().find(|q| q.model == "judge").expect("a judge call");
    let asked = &judge.messages.last().expect("user message").content;
    assert!(asked.contains("Which city?") && asked.contains("[Response 3]\nNice"), "{asked}");
    assert_eq!(judge.body["temperature"], 0.0);
    // Booked as the layer's fourth call; its tokens in every total.
    let layer = &trace.outcome.layers[0];
    assert_eq!(layer.calls.len(), 4);
    assert_eq!((layer.calls[3].agent.as_str(), layer.calls[3].slot, layer.calls[3].ok), ("judge", 3, true));
    assert_eq!(layer.usage.input_tokens, 3 * 10 + 40);
    assert_eq!(trace.outcome.usage.output_tokens, 3 * 5 + 7);
    let started = trace.events.iter().find_map(|e| match e {
        Event::CallStarted { at, agent, .. } if agent == "judge" => Some((at.layer, at.slot)),
        _ => None,
    });
    assert_eq!(started, Some((0, 3)));
    assert_eq!(notes(&trace.events), ["the judge picked response 2 of 3"]);
}

#[test]
fn rank_between_layers_passes_on_only_the_best() {
    let r = recipe(
        serde_json::json!([{"agents": ["p:a", "p:b", "p:c"]}, {"agents": ["p:d"], "strategy": "rank"}]),
        serde_json::json!("p:agg"),
    );
    // No judge named: the aggregator judges.
    let trace = simulate(start(&r, 0), T0, |req| match req.model.as_str() {
        "agg" if req.system().is_some_and(|s| s.contains("impartial judge")) => answer("{\"best\": 3}", ms(10)),
        _ => cities("unused")(req),
    });
    assert_consistent(&trace.events);
    let d = trace.requests.iter().find(|q| q.model == "d").expect("layer 1");
    assert_eq!(references(d), ["Nice"]);
    assert_eq!(trace.outcome.layers[0].calls[3].model, "agg", "the aggregator's model judged");
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
}

#[test]
fn select_keeps_the_judges_k_best_read_forgivingly() {
    let r = recipe(
        serde_json::json!([{"agents": ["p:a", "p:b", "p:c", "p:d"]}]),
        serde_json::json!({"model": "p:agg", "strategy": {"name": "select", "params": {"judge": "p:judge"}}}),
    );
    let verdict = "Here:\n```json\n{\"selected\": [4, 4, 9, \"2\"], \"stop\": false}\n```";
    let trace = simulate(start(&r, 0), T0, cities(verdict));
    assert_consistent(&trace.events);
    let agg = trace.requests.iter().find(|q| q.model == "agg").expect("aggregator");
    assert_eq!(references(agg), ["Lille", "Lyon"], "best first, repeats and 9 ignored");
    assert_eq!(notes(&trace.events), ["the judge kept 4, 2 of 4; 2 of its numbers were out of range or repeated"]);
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
}

#[test]
fn select_may_end_the_debate_skipping_the_remaining_layers() {
    let r = recipe(
        serde_json::json!([
            {"agents": ["p:a", "p:b", "p:c"]},
            {"agents": ["p:x", "p:y"], "strategy": {"name": "select", "params": {"judge": "p:judge", "k": 1}}},
            {"agents": ["p:z"]}
        ]),
        serde_json::json!("p:agg"),
    );
    let trace = simulate(start(&r, 0), T0, cities("{\"selected\": [1], \"stop\": true}"));
    assert_consistent(&trace.events);
    let models: Vec<&str> = trace.requests.iter().map(|q| q.model.as_str()).collect();
    assert_eq!(models, ["a", "b", "c", "judge", "agg"]);
    let agg = trace.requests.iter().find(|q| q.model == "agg").expect("aggregator");
    assert_eq!(references(agg), ["Paris"]);
    assert!(notes(&trace.events)[0].ends_with("it ended the debate: on to the aggregator"));
    // The books: the proposers' layer (with its judge), then the aggregator's.
    assert_eq!(trace.outcome.layers.len(), 2);
    assert!(trace.outcome.layers[1].aggregator);
}

#[test]
fn an_unreadable_or_failed_verdict_is_an_event_and_a_seeded_choice_never_a_silent_one() {
    let r = recipe(
        serde_json::json!([{"agents": ["p:a", "p:b", "p:c", "p:d"]}]),
        serde_json::json!({"model": "p:agg", "strategy": {"name": "select", "params": {"judge": "p:judge"}}}),
    );
    let kept = |seed: u64, judge: &'static str| {
        let trace = simulate(start(&r, seed), T0, cities(judge));
        assert_consistent(&trace.events);
        let agg = trace.requests.iter().find(|q| q.model == "agg").expect("aggregator");
        (references(agg), notes(&trace.events))
    };
    let (a, note) = kept(1, "They are all good answers.");
    assert_eq!(a.len(), 2);
    assert!(note[0].starts_with("the judge's reply was unreadable (no JSON object in the reply)"), "{note:?}");
    assert!(note[0].contains("They are all good answers."));
    assert_eq!(kept(1, "They are all good answers.").0, a, "the same seed, the same choice");
    assert!((2..12).any(|s| kept(s, "nothing").0 != a), "the seed decides");
    // A judge that fails every attempt: the same, saying why.
    let trace = simulate(start(&r, 1), T0, |req| match req.model.as_str() {
        "judge" => status(500, &[], "{\"error\": {\"message\": \"judge down\"}}", ms(5)),
        _ => cities("")(req),
    });
    assert_consistent(&trace.events);
    let note = notes(&trace.events);
    assert!(note[0].starts_with("the judge's call failed (") && note[0].contains("judge down"), "{note:?}");
    let judge = &trace.outcome.layers[0].calls[4];
    assert_eq!((judge.ok, judge.attempts), (false, 2));
    assert_eq!(trace.outcome.answer.as_deref().ok(), Some("aggregated"));
}

#[test]
fn sequential_aggregates_in_windows_carrying_the_synthesis() {
    let r = recipe(
        serde_json::json!([{"agents": [{"model": "p:s", "samples": 9, "temperature": 1.0}]}]),
        serde_json::json!({"model": "p:agg", "strategy": {"name": "sequential", "params": {"window": 4}}}),
    );
    let mut n = 0;
    let trace = simulate(start(&r, 0), T0, |req| match req.model.as_str() {
        "agg" => {
            let refs = references(req);
            answer(&format!("synthesis of {}", refs.join("+")), ms(20))
        }
        _ => {
            n += 1;
            answer(&format!("s{n}"), ms(10))
        }
    });
    assert_consistent(&trace.events);
    let windows: Vec<Vec<String>> = trace.requests.iter().filter(|q| q.model == "agg").map(references).collect();
    assert_eq!(windows.len(), 3);
    assert_eq!(windows[0], ["s1", "s2", "s3", "s4"]);
    assert_eq!(windows[1], ["synthesis of s1+s2+s3+s4", "s5", "s6", "s7"]);
    assert_eq!(windows[2][1..], ["s8", "s9"]);
    assert!(windows[2][0].starts_with("synthesis of synthesis of s1"));
    let layer = &trace.outcome.layers[0];
    let labels: Vec<&str> = layer.calls[9..].iter().map(|c| c.agent.as_str()).collect();
    assert_eq!(labels, ["window 1/3", "window 2/3"]);
    assert!(trace.outcome.answer.as_deref().ok().is_some_and(|a| a.ends_with("+s8+s9")));
}

#[test]
fn cancelling_while_the_judge_runs_books_the_judge_as_cancelled() {
    let r = recipe(
        serde_json::json!([{"agents": ["p:a", "p:b", "p:c"]}]),
        serde_json::json!({"model": "p:agg", "strategy": {"name": "rank", "params": {"judge": "p:judge"}}}),
    );
    let mut run = start(&r, 0);
    let mut script = |req: &Req| match req.model.as_str() {
        "judge" => vec![], // hangs
        _ => cities("")(req),
    };
    let trace = simulate_with(&mut run, T0, &mut script, |run, now| {
        if now >= T0 + ms(500) {
            run.cancel(now);
            return true;
        }
        false
    });
    assert_consistent(&trace.events);
    assert!(trace.outcome.answer.is_err());
    let layer = &trace.outcome.layers[0];
    assert_eq!(layer.calls.len(), 4);
    assert!(!layer.calls[3].ok && layer.calls[3].errors.iter().any(|e| e.contains("cancel")), "{:?}", layer.calls[3]);
}

/// A strategy that names its judge only when it decides, as a plugin does.
struct AsksFor(&'static str);

impl moa_core::strategy::Strategy for AsksFor {
    fn name(&self) -> &str {
        "asks-for"
    }
    fn decide(
        &mut self,
        _: &moa_core::strategy::StrategyInput<'_>,
    ) -> Result<moa_core::strategy::Decision, moa_core::strategy::StrategyError> {
        Ok(moa_core::strategy::Decision::Ask(moa_core::strategy::Ask {
            model: Some(self.0.into()),
            label: "judge".into(),
            messages: vec![Message::user("pick")],
            max_tokens: None,
        }))
    }
}

struct Resolves(&'static str);

impl moa_core::strategy::Resolver for Resolves {
    fn resolve(
        &self,
        _: &moa_core::recipe::StrategySpec,
    ) -> Result<Box<dyn moa_core::strategy::Strategy>, moa_core::strategy::StrategyError> {
        Ok(Box::new(AsksFor(self.0)))
    }
}

#[test]
fn an_ask_to_a_provider_the_recipe_lacks_fails_the_strategy_as_on_error_says() {
    for (on_error, ok) in [("synthesize", true), ("fail", false)] {
        let r = recipe(
            serde_json::json!([{"agents": ["p:a", "p:b"]}]),
            serde_json::json!({"model": "p:agg", "strategy": {"name": "synthesize", "on_error": on_error}}),
        );
        let resolver = Resolves("elsewhere:judge");
        let options = RunOptions { resolver: &resolver, ..RunOptions::default() };
        let run = Run::with_options(&r, vec![Message::user("Which city?")], T0, options).expect("run starts");
        let trace = simulate(run, T0, cities(""));
        assert_consistent(&trace.events);
        assert_eq!(trace.outcome.answer.is_ok(), ok, "{on_error}: {:?}", trace.outcome.answer);
        let failed = trace.events.iter().find_map(|e| match e {
            Event::StrategyFailed { error, fallback, .. } => Some((error.clone(), *fallback)),
            _ => None,
        });
        let (error, fallback) = failed.expect("a strategy_failed event");
        assert!(error.contains("provider \"elsewhere\", which the recipe does not have"), "{error}");
        assert_eq!(fallback, ok);
        assert!(trace.requests.iter().all(|q| q.model != "judge"), "no call to an unknown provider");
    }
}

#[test]
fn a_judge_must_be_one_of_the_recipes_providers() {
    let v = serde_json::json!({
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "layers": [{"agents": ["p:a", "p:b"]}],
        "aggregator": {"model": "p:agg", "strategy": {"name": "select", "params": {"judge": "q:judge", "k": 0}}}
    });
    let Err(RecipeError::Invalid(errors)) = Recipe::from_json(&v.to_string()) else { panic!("accepted") };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"aggregator.strategy.params.judge"), "{errors:?}");
    assert!(paths.contains(&"aggregator.strategy.params"), "k = 0: {errors:?}");
}

#[test]
fn references_over_the_aggregators_window_are_each_shortened_and_none_dropped() {
    let v = serde_json::json!({
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "context_tokens": 100000}},
        "layers": [{"agents": ["p:a", "p:b", "p:c"]}],
        "aggregator": {"model": "p:agg", "max_tokens": 256, "context_tokens": 1024}
    });
    let r = Recipe::from_json(&v.to_string()).expect("valid");
    let long = |c: &str, n: usize| format!("{c} ").repeat(n);
    let trace = simulate(start(&r, 0), T0, |req| match req.model.as_str() {
        "a" => answer(&long("alpha", 800), ms(10)),
        "b" => answer(&long("beta", 400), ms(10)),
        "c" => answer("short", ms(10)),
        _ => answer("aggregated", ms(10)),
    });
    assert_consistent(&trace.events);
    let agg = trace.requests.iter().find(|q| q.model == "agg").expect("aggregator");
    let refs = references(agg);
    assert_eq!(refs.len(), 3, "none dropped: {refs:?}");
    assert!(refs[0].starts_with("alpha alpha") && refs[0].ends_with("[…]"));
    assert!(refs[1].starts_with("beta beta") && refs[1].ends_with("[…]"));
    // The README's estimate: a token per four ASCII letters, per other non-space
    // character, and four per message.
    let estimate: usize = agg
        .messages
        .iter()
        .map(|m| {
            let letters = m.content.chars().filter(|c| c.is_ascii_alphabetic()).count();
            let other = m.content.chars().filter(|c| !c.is_ascii_alphabetic() && !c.is_ascii_whitespace()).count();
            letters.div_ceil(4) + other + 4
        })
        .sum();
    assert!(estimate + 256 <= 1024, "fits: {estimate} tokens");
    let trimmed = trace.events.iter().find_map(|e| match e {
        Event::ReferencesTrimmed { window, references, kept, before, after, .. } => {
            Some((*window, *references, *kept, *before, *after))
        }
        _ => None,
    });
    let (window, n, kept, before, after) = trimmed.expect("an event says so");
    assert_eq!((window, n), (1024, 3));
    assert!(kept > 0.0 && kept < 0.5 && before > 1024 && after <= 1024 - 256, "{trimmed:?}");
    // The proposers' window (the provider's) is large: nothing else was touched.
    assert_eq!(trace.events.iter().filter(|e| matches!(e, Event::ReferencesTrimmed { .. })).count(), 1);
}

#[test]
fn the_strategy_presets_make_the_calls_they_plan() {
    for name in ["smoa", "self-moa-seq", "local-smoa", "local-seq"] {
        let r = moa_core::recipe::preset(name).expect("preset");
        let keys = moa_core::named::Named::from([("together".to_owned(), "sk-test".to_owned())]);
        let run = Run::with_options(&r, vec![Message::user("q")], T0, RunOptions { keys, ..RunOptions::default() })
            .expect("starts");
        let mut n = 0;
        let trace = simulate(run, T0, |req| {
            n += 1;
            match req.system() {
                Some(s) if s.contains("judge") => answer("{\"selected\": [2, 1], \"stop\": false}", ms(10)),
                _ => answer(&format!("answer {n}"), ms(10)),
            }
        });
        assert_consistent(&trace.events);
        assert!(trace.outcome.answer.is_ok(), "{name}: {:?}", trace.outcome.answer.as_ref().err());
        assert_eq!(trace.requests.len(), r.call_count(), "{name}");
        let planned = trace.events.iter().find_map(|e| match e {
            Event::RunStarted { planned_calls, .. } => Some(*planned_calls),
            _ => None,
        });
        assert_eq!(planned, Some(trace.requests.len()), "{name}");
    }
}
