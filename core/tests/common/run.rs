//! Recipes, runs and scripts the whole-run tests share: the moa presets' key and start,
//! one-model recipes, and an aggregator that breaks once.

use super::*;
use moa_core::engine::RunOptions;
use moa_core::named::Named;
use moa_core::strategy::REFERENCE_PROMPT;
use moa_core::{Event, Message, Recipe, Run, Time};

pub const KEY: &str = "sk-SENTINEL-KEY-0123456789";

pub const T0: Time = Time::from_millis(1_700_000_000_000);

pub fn opts(seed: u64) -> RunOptions<'static> {
    RunOptions { seed, keys: Named::from([("together".to_owned(), KEY.to_owned())]), ..RunOptions::default() }
}

pub fn start(recipe: &Recipe, seed: u64) -> Run {
    Run::with_options(recipe, vec![Message::user("Name a prime.")], T0, opts(seed)).expect("run starts")
}

/// Layer of a request in the moa preset: by the number of references in its system prompt.
pub fn references(req: &Req) -> Vec<String> {
    let Some(system) = req.system() else { return vec![] };
    let Some(refs) = system.split_once(REFERENCE_PROMPT).map(|(_, r)| r) else { return vec![] };
    refs.split('\n').filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

pub fn started_calls(events: &[Event]) -> Vec<(moa_core::CallId, usize, u32, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::CallStarted { at, attempt, t_ms, .. } => Some((at.call, at.layer, *attempt, *t_ms)),
            _ => None,
        })
        .collect()
}

/// One provider `name` of `kind` on 127.0.0.1:`port`, whose model `m` proposes and aggregates.
pub fn one_model(name: &str, kind: &str, port: u16) -> Recipe {
    Recipe::from_json(&format!(
        r#"{{"providers": {{"{name}": {{"kind": "{kind}", "base_url": "http://127.0.0.1:{port}/v1"}}}},
            "layers": [{{"agents": ["{name}:m"]}}], "aggregator": "{name}:m"}}"#
    ))
    .expect("valid")
}

/// A one-proposer recipe on a local provider, for fault tests on the aggregator.
pub fn one_and_aggregator() -> Recipe {
    Recipe::from_json(
        r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "layers": [{"agents": ["p:proposer"]}], "aggregator": "p:agg",
            "policy": {"retries": 2, "backoff_secs": 0.1}}"#,
    )
    .expect("valid")
}

/// The aggregator's first attempt streams "Partial " and then the connection resets.
pub fn aggregator_breaks_once() -> impl FnMut(&Req) -> Reply {
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
