//! The TypeScript declarations of the browser module (`wasm/src/types.d.ts`, written by
//! hand: generating them would cost the module its size budget) name every event and
//! every field an event carries, as the Rust types serialize them.

use moa_core::event::Place;
use moa_core::{CallId, Event, Usage};

const TYPES: &str = include_str!("../../wasm/src/types.d.ts");

/// Every variant's tag. Exhaustive: a new event does not compile until it is listed here,
/// and the test below then needs a sample of it.
fn tag(e: &Event) -> &'static str {
    match e {
        Event::RunStarted { .. } => "run_started",
        Event::CallStarted { .. } => "call_started",
        Event::TextDelta { .. } => "text_delta",
        Event::CallFinished { .. } => "call_finished",
        Event::CallFailed { .. } => "call_failed",
        Event::AgentStopped { .. } => "agent_stopped",
        Event::StrategyFailed { .. } => "strategy_failed",
        Event::StrategyNote { .. } => "strategy_note",
        Event::ReferencesTrimmed { .. } => "references_trimmed",
        Event::LayerFinished { .. } => "layer_finished",
        Event::Final { .. } => "final",
        Event::RunFailed { .. } => "run_failed",
    }
}

const TAGS: usize = 12;

fn samples() -> Vec<Event> {
    let at = || Place { call: CallId(1), layer: 0, slot: 0 };
    let u = Usage::default();
    let s = String::new;
    vec![
        Event::RunStarted { recipe: s(), layers: 1, planned_calls: 2 },
        Event::CallStarted {
            at: at(),
            agent: s(),
            provider: s(),
            model: s(),
            attempt: 1,
            aggregator: false,
            t_ms: 0.0,
        },
        Event::TextDelta { at: at(), text: s() },
        Event::CallFinished {
            at: at(),
            agent: s(),
            usage: None,
            cost: None,
            latency_ms: 0.0,
            ttft_ms: None,
            server_ms: None,
            finish_reason: None,
            t_ms: 0.0,
        },
        Event::CallFailed {
            at: at(),
            agent: s(),
            error: s(),
            kind: moa_core::engine::ErrorKind::Cut,
            will_retry: false,
            retry_in_ms: None,
            discarded_chars: 0,
            usage: u,
            cost: None,
            t_ms: 0.0,
        },
        Event::AgentStopped { layer: 0, slot: 0, agent: s(), reason: moa_core::engine::ErrorKind::Cut, t_ms: 0.0 },
        Event::StrategyFailed { layer: 1, strategy: s(), error: s(), fallback: false },
        Event::StrategyNote { layer: 1, strategy: s(), note: s() },
        Event::ReferencesTrimmed { at: at(), window: 1, before: 2, after: 1, references: 1, kept: 0.5 },
        Event::LayerFinished { layer: 0, succeeded: 1, failed: 0, usage: u, cost: None, wasted: u, t_ms: 0.0 },
        Event::Final { text: s(), decided_by: s(), usage: u, cost: None, wasted: u, wall_ms: 0.0, ttft_ms: None },
        Event::RunFailed { error: s(), t_ms: 0.0 },
    ]
}

#[test]
fn every_event_and_each_of_its_fields_is_declared() {
    let samples = samples();
    let mut tags: Vec<&str> = samples.iter().map(tag).collect();
    tags.dedup();
    assert_eq!(tags.len(), TAGS, "one sample per event");
    for e in &samples {
        let json = serde_json::to_value(e).expect("serializes");
        let name = tag(e);
        let line = TYPES
            .lines()
            .find(|l| l.contains(&format!("type: \"{name}\"")))
            .unwrap_or_else(|| panic!("types.d.ts declares no {name:?} event"));
        for key in json.as_object().expect("an object").keys() {
            let declared = line.contains(&format!(" {key}:")) || line.contains(&format!(" {key}?:"))
                // `call`, `layer` and `slot` come from `Place`.
                || (line.contains("Place &") && ["call", "layer", "slot"].contains(&key.as_str()));
            assert!(declared, "types.d.ts: {name} lacks {key:?}: {line}");
        }
    }
}
