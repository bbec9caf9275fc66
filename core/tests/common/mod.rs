//! A scripted fake network that drives a `Run` in simulated time. Honest about being fake:
//! it exists to inject latency, faults and odd bytes deterministically; the real HTTP
//! transports are tested against real servers in the host and browser crates.
#![allow(dead_code)]

mod run;
// Not every test crate uses the shared runs.
#[allow(unused_imports)]
pub use run::*;

use moa_core::engine::{Action, Input, NetError};
pub use moa_core::strategy::plugin::PluginRequest;
use moa_core::{CallId, Event, HttpRequest, Message, Outcome, Run, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One thing the fake server does to a call, at an offset from the request.
#[derive(Clone, Debug)]
pub enum Step {
    /// The transport reports the request left its queue (`Input::Sent`).
    Sent,
    Head(u16, Vec<(String, String)>),
    Body(Vec<u8>),
    End,
    /// The connection broke (`Input::Failed` of kind `Reset`).
    Fail(String),
    /// The transport saw the connection refused (`Input::Failed` of kind `Refused`).
    Refused(String),
}

/// A script for one call: steps with their offsets from the request. No steps: it hangs.
pub type Reply = Vec<(Duration, Step)>;

/// What the script sees of a request.
#[derive(Clone, Debug)]
pub struct Req {
    pub call: CallId,
    pub at: Time,
    pub http: HttpRequest,
    pub body: serde_json::Value,
    pub model: String,
    pub messages: Vec<Message>,
}

impl Req {
    /// The system prompt sent, if any (OpenAI: first message; Anthropic: `system`).
    pub fn system(&self) -> Option<String> {
        if let Some(s) = self.body.get("system").and_then(|s| s.as_str()) {
            return Some(s.to_owned());
        }
        self.messages.first().filter(|m| m.role == moa_core::Role::System).map(|m| m.content.clone())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        moa_core::http::header(&self.http.headers, name)
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An OpenAI-style streamed answer: head at `ttft`, one chunk per piece every `gap`,
/// then a usage chunk and `[DONE]`.
pub fn openai_stream(pieces: &[&str], usage: (u64, u64), ttft: Duration, gap: Duration) -> Reply {
    let mut r = vec![(ttft, Step::Head(200, headers(&[("content-type", "text/event-stream")])))];
    let mut t = ttft;
    for p in pieces {
        let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": null}]});
        r.push((t, Step::Body(format!("data: {chunk}\n\n").into_bytes())));
        t += gap;
    }
    let fin = serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    let usage = serde_json::json!({"choices": [], "usage": {"prompt_tokens": usage.0, "completion_tokens": usage.1, "total_tokens": usage.0 + usage.1}});
    r.push((t, Step::Body(format!("data: {fin}\n\ndata: {usage}\n\ndata: [DONE]\n\n").into_bytes())));
    r.push((t, Step::End));
    r
}

/// A whole answer as one piece.
pub fn answer(text: &str, latency: Duration) -> Reply {
    openai_stream(&[text], (10, 5), latency, Duration::ZERO)
}

/// An error response.
pub fn status(code: u16, hdrs: &[(&str, &str)], body: &str, after: Duration) -> Reply {
    vec![(after, Step::Head(code, headers(hdrs))), (after, Step::Body(body.as_bytes().to_vec())), (after, Step::End)]
}

/// Everything a simulated run produced.
pub struct Trace {
    pub outcome: Outcome,
    pub events: Vec<Event>,
    pub requests: Vec<Req>,
    pub cancels: Vec<CallId>,
    /// Calls cancelled before the script had finished them.
    pub aborted: BTreeSet<CallId>,
    pub max_in_flight: BTreeMap<String, usize>,
    pub max_in_flight_total: usize,
    pub end: Time,
}

impl Trace {
    pub fn request(&self, call: CallId) -> &Req {
        self.requests.iter().find(|r| r.call == call).expect("known call")
    }
}

struct Scheduled {
    call: CallId,
    step: Step,
}

/// Drives `run` against `script` until it is done.
pub fn simulate(mut run: Run, start: Time, mut script: impl FnMut(&Req) -> Reply) -> Trace {
    simulate_with(&mut run, start, &mut script, |_, _| false)
}

/// Like [`simulate`], but `interrupt(run, now)` is asked after every input; it may act on
/// the run (cancel it) and returns true when it did.
pub fn simulate_with(
    run: &mut Run,
    start: Time,
    script: &mut dyn FnMut(&Req) -> Reply,
    interrupt: impl FnMut(&mut Run, Time) -> bool,
) -> Trace {
    let mut refuse = |_: &PluginRequest| -> Result<String, String> { panic!("the run asked the driver to decide") };
    simulate_deciding(run, start, script, &mut refuse, interrupt)
}

/// Like [`simulate_with`], and `decide` answers each decision the driver is asked for
/// (a plugin the driver runs), at once.
pub fn simulate_deciding(
    run: &mut Run,
    start: Time,
    script: &mut dyn FnMut(&Req) -> Reply,
    decide: &mut dyn FnMut(&PluginRequest) -> Result<String, String>,
    mut interrupt: impl FnMut(&mut Run, Time) -> bool,
) -> Trace {
    let mut now = start;
    let mut seq = 0u64;
    let mut scheduled: BTreeMap<(Time, u64), Scheduled> = BTreeMap::new();
    let mut trace = Trace {
        outcome: Outcome {
            answer: Err(moa_core::RunError::Cancelled),
            decided_by: None,
            layers: vec![],
            usage: Default::default(),
            cost: None,
            wasted: Default::default(),
            finish_reason: None,
            wall_ms: 0.0,
            ttft_ms: None,
            tool_calls: vec![],
        },
        events: vec![],
        requests: vec![],
        cancels: vec![],
        aborted: BTreeSet::new(),
        max_in_flight: BTreeMap::new(),
        max_in_flight_total: 0,
        end: start,
    };
    let mut open: BTreeMap<CallId, String> = BTreeMap::new();
    for _ in 0..1_000_000 {
        match run.poll() {
            Action::Request { call, http } => {
                let body: serde_json::Value = serde_json::from_str(&http.body).expect("request body is JSON");
                let messages: Vec<Message> = serde_json::from_value(body["messages"].clone()).expect("messages");
                let req = Req {
                    call,
                    at: now,
                    model: body["model"].as_str().unwrap_or("").to_owned(),
                    http: http.clone(),
                    body,
                    messages,
                };
                let host = http.url.split('/').take(3).collect::<Vec<_>>().join("/");
                open.insert(call, host.clone());
                let n = open.values().filter(|h| **h == host).count();
                let e = trace.max_in_flight.entry(host).or_default();
                *e = (*e).max(n);
                trace.max_in_flight_total = trace.max_in_flight_total.max(open.len());
                for (offset, step) in script(&req) {
                    seq += 1;
                    scheduled.insert((now + offset, seq), Scheduled { call, step });
                }
                trace.requests.push(req);
            }
            Action::Cancel { call } => {
                trace.cancels.push(call);
                if open.remove(&call).is_some() {
                    trace.aborted.insert(call);
                }
                scheduled.retain(|_, s| s.call != call);
            }
            Action::Event(e) => trace.events.push(e),
            Action::Decide { decision, request } => {
                let answer = decide(&request);
                run.handle(Input::Decided { decision, answer: answer.as_deref().map_err(String::as_str), now });
                interrupt(run, now);
            }
            Action::Done(outcome) => {
                trace.outcome = outcome;
                trace.end = now;
                return trace;
            }
            Action::Wait(deadline) => {
                let due = scheduled.keys().next().copied().filter(|(t, _)| deadline.is_none_or(|d| *t <= d));
                match (due, deadline) {
                    (Some((t, k)), _) => {
                        let s = scheduled.remove(&(t, k)).expect("present");
                        now = now.max(t);
                        match s.step {
                            Step::Sent => run.handle(Input::Sent { call: s.call, now }),
                            Step::Head(status, headers) => {
                                run.handle(Input::Head { call: s.call, status, headers, now })
                            }
                            Step::Body(bytes) => run.handle(Input::Body { call: s.call, bytes: &bytes, now }),
                            Step::End => {
                                open.remove(&s.call);
                                run.handle(Input::End { call: s.call, now })
                            }
                            Step::Fail(error) => {
                                open.remove(&s.call);
                                run.handle(Input::Failed { call: s.call, kind: NetError::Reset, error, now })
                            }
                            Step::Refused(error) => {
                                open.remove(&s.call);
                                run.handle(Input::Failed { call: s.call, kind: NetError::Refused, error, now })
                            }
                        }
                    }
                    (None, Some(d)) => {
                        now = now.max(d);
                        run.handle(Input::Tick { now });
                    }
                    (None, None) => panic!("deadlock: the run waits forever with nothing scheduled"),
                }
                interrupt(run, now);
            }
        }
    }
    panic!("the run did not finish within a million actions");
}

/// Checks that the events tell a consistent story: every started call ends exactly once,
/// deltas only come from open calls, layers finish in order, and exactly one terminal
/// event comes last.
pub fn assert_consistent(events: &[Event]) {
    let mut open = BTreeSet::new();
    let mut ended = BTreeSet::new();
    let mut last_layer: Option<usize> = None;
    assert!(matches!(events.first(), Some(Event::RunStarted { .. })), "first event is run_started");
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::CallStarted { at, .. } => {
                assert!(open.insert(at.call) && !ended.contains(&at.call), "call {:?} started twice", at.call);
            }
            Event::TextDelta { at, .. } => assert!(open.contains(&at.call), "delta for a call not open: {e:?}"),
            Event::CallFinished { at, .. } | Event::CallFailed { at, .. } => {
                assert!(open.remove(&at.call), "end of a call not open: {e:?}");
                ended.insert(at.call);
            }
            Event::LayerFinished { layer, .. } => {
                // In order; a strategy may skip to the aggregator (`select`'s stop).
                assert!(last_layer.is_none_or(|l| l < *layer), "layers finish in order: {last_layer:?} then {layer}");
                assert!(last_layer.is_some() || *layer == 0, "layer 0 finishes first");
                last_layer = Some(*layer);
            }
            Event::Final { .. } | Event::RunFailed { .. } => {
                assert_eq!(i, events.len() - 1, "terminal event is last");
            }
            Event::AgentStopped { layer, slot, .. } => {
                // Only an agent waiting to retry is stopped: its last call failed with
                // will_retry, and it has no call open.
                let last = events[..i].iter().rev().find_map(|e| match e {
                    Event::CallStarted { at, .. } if at.layer == *layer && at.slot == *slot => Some(None),
                    Event::CallFailed { at, will_retry, .. } if at.layer == *layer && at.slot == *slot => {
                        Some(Some(*will_retry))
                    }
                    _ => None,
                });
                assert_eq!(last, Some(Some(true)), "agent_stopped for an agent not waiting to retry: {e:?}");
            }
            Event::ReferencesTrimmed { at, .. } => {
                assert!(open.contains(&at.call), "references trimmed for a call not open: {e:?}")
            }
            Event::RunStarted { .. } | Event::StrategyFailed { .. } | Event::StrategyNote { .. } => {}
        }
    }
    assert!(
        matches!(events.last(), Some(Event::Final { .. } | Event::RunFailed { .. })),
        "ends with final or run_failed"
    );
    assert!(open.is_empty(), "calls left open: {open:?}");
}

/// The concatenated text deltas of one call.
pub fn streamed_text(events: &[Event], call: CallId) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TextDelta { at, text } if at.call == call => Some(text.as_str()),
            _ => None,
        })
        .collect()
}
