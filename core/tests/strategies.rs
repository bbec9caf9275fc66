//! Built-in strategies inside whole runs: votes, fallbacks, diverse proposals, Self-MoA samples.

mod common;

use common::*;
use moa_core::engine::RunOptions;
use moa_core::recipe::{self, OnError, StrategySpec};
use moa_core::strategy::{Builtins, Decision, Resolver, Strategy, StrategyError, StrategyInput};
use moa_core::{Event, Message, Recipe, Run};

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
    assert!(err.to_string().contains("runs no plugins"), "{err}");
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
