//! A layer's end: its books closed, its strategy deciding what the next layer sees.

use super::attempt::SlotState;
use super::phase::{Agreement, Broken};
use super::timers::Timer;
use super::tooling::{tool_majority, with_calls};
use super::{CallError, CallReport, ErrorKind, Failure, LayerReport, Run, RunError, secs};
use crate::event::Event;
use crate::strategy::Proposal;
use crate::strategy::normalize_answer;
use crate::time::millis;
use crate::usage::{Usage, add_cost};
use crate::vocab::tools::ToolPolicy;

impl Run {
    /// Closes the current layer's books; returns its proposals.
    pub(super) fn report_layer(&mut self) -> Vec<Proposal> {
        let mut report = LayerReport {
            layer: self.layer,
            aggregator: self.is_final_layer(),
            calls: Vec::new(),
            usage: Usage::default(),
            cost: None,
            wasted: Usage::default(),
        };
        let mut proposals = Vec::new();
        // The aggregator's staircase steps belong to the aggregator's books.
        let final_layer = self.is_final_layer();
        if final_layer && let Some(stair) = self.stair_mut() {
            report.calls.append(&mut stair.reports);
            report.usage += std::mem::take(&mut stair.usage);
            report.wasted += std::mem::take(&mut stair.wasted);
            add_cost(&mut report.cost, stair.cost.take());
        }
        let proposers = self.slots.agents.len();
        for (i, s) in self.slots.agents.iter().enumerate() {
            let ok = matches!(s.state, SlotState::Succeeded);
            let cost = if ok { self.price(&s.agent, s.usage) } else { None };
            if ok {
                report.usage += s.usage.unwrap_or_default();
                add_cost(&mut report.cost, cost);
                proposals.push(Proposal {
                    agent: s.agent.label.clone(),
                    model: s.agent.model.clone(),
                    // Calls made with the real tools reach the next layer as text.
                    text: with_calls(&s.text, &s.calls),
                    usage: s.usage,
                    latency_ms: s.latency.map(millis).unwrap_or(0.0),
                });
            }
            report.usage += s.wasted;
            report.wasted += s.wasted;
            if !s.wasted.is_zero() {
                add_cost(&mut report.cost, self.price(&s.agent, Some(s.wasted)));
            }
            report.calls.push(self.call_report(i, i, cost));
        }
        self.usage += report.usage;
        self.wasted += report.wasted;
        add_cost(&mut self.cost, report.cost);
        self.emit(Event::LayerFinished {
            layer: self.layer,
            succeeded: proposals.len(),
            failed: proposers - proposals.len(),
            usage: report.usage,
            cost: report.cost,
            wasted: report.wasted,
            t_ms: self.t_ms(),
        });
        self.reports.push(report);
        proposals
    }

    /// The account of slot `i`'s call, at `place` in its layer's report.
    pub(super) fn call_report(&self, i: usize, place: usize, cost: Option<f64>) -> CallReport {
        let s = &self.slots.agents[i];
        let ok = matches!(s.state, SlotState::Succeeded);
        CallReport {
            slot: place,
            agent: s.agent.label.clone(),
            provider: s.agent.provider.clone(),
            model: s.agent.model.clone(),
            ok,
            text: if ok { with_calls(&s.text, &s.calls) } else { String::new() },
            errors: s.errors.clone(),
            attempts: s.attempts,
            usage: if ok { s.usage } else { None },
            cost,
            wasted: s.wasted,
            latency_ms: s.latency.map(millis),
            ttft_ms: s.ttft.map(millis),
            started_ms: s.started.map(|t| millis(t.since(self.started))),
            server_ms: if ok { s.server_ms } else { None },
            asked: false,
        }
    }

    /// After each success in a proposer layer: starts the quorum's grace once the quorum
    /// is met, and ends the layer at once when its agents agree (`early_exit`).
    pub(super) fn on_success(&mut self) {
        if self.is_final_layer() || self.asking().is_some() {
            return;
        }
        let layer = &self.recipe.layers[self.layer];
        let quorum = layer.quorum.or(self.recipe.policy.quorum);
        let done: Vec<&str> = self
            .slots
            .agents
            .iter()
            .filter(|s| matches!(s.state, SlotState::Succeeded))
            .map(|s| s.text.trim())
            .collect();
        let quorum_met = self.timers.get(Timer::QuorumGrace).is_some();
        let agreed = self.layer_phase().is_none_or(|l| l.agreed.is_some());
        let mut quorum_at = None;
        if let Some(q) = quorum
            && done.len() == q.min as usize
            && !quorum_met
        {
            quorum_at = Some(self.now + secs(q.grace_ms as f64 / 1000.0));
        }
        // Agreement among the proposals that count: the quorum's, or every agent's. A
        // stricter rule than `vote`'s majority: every one of them (at least two) gives
        // the same short answer, so no minority view is dropped without a word.
        let needed = quorum.map_or(self.slots.agents.len(), |q| q.min as usize).max(2);
        let mut agreement = None;
        // An agreement on text is no check of calls or of a format: not with tools or one.
        if layer.early_exit && !agreed && done.len() >= needed && !self.toolbox.any() {
            let short: Vec<Option<String>> = done.iter().map(|t| normalize_answer(t, 100)).collect();
            if let Some(Some(first)) = short.first()
                && short.iter().all(|s| s.as_deref() == Some(first.as_str()))
            {
                let why = format!("agreement: {} agents answered \"{first}\"", done.len());
                agreement = Some(Agreement { answer: done[0].to_owned(), why });
            }
        }
        if agreement.is_some() {
            let Some(l) = self.layer_phase_mut() else { return };
            l.agreed = agreement;
            // Agreement ends the layer: no grace to wait out.
            self.timers.stop(Timer::QuorumGrace);
            self.stop_open(CallError::Cut("the layer's agents agreed"));
        } else if let Some(at) = quorum_at {
            self.timers.set(Timer::QuorumGrace, at);
        }
    }

    pub(super) fn finish_layer(&mut self) {
        if self.asking().is_some() {
            return self.finish_ask();
        }
        if let Some(Agreement { answer, why }) = self.layer_phase_mut().and_then(|l| l.agreed.take()) {
            self.report_layer();
            return self.finish(Ok(answer), Some(why));
        }
        let proposals = self.report_layer();
        let failures: Vec<Failure> = self
            .slots
            .agents
            .iter()
            .filter(|s| matches!(s.state, SlotState::Failed))
            .map(|s| Failure {
                agent: s.agent.label.clone(),
                error: s.errors.last().cloned().unwrap_or_default(),
                kind: s.last_error.map_or(ErrorKind::Cancelled, |(kind, _)| kind),
                status: s.last_error.and_then(|(_, status)| status),
            })
            .collect();
        if self.is_final_layer() {
            let label = self.slots.agents[0].agent.label.clone();
            let broken = self.layer_phase_mut().and_then(|l| l.broken.take());
            if let (true, Some(Broken { delivered_chars, error, kind })) = (proposals.is_empty(), broken) {
                return self.finish(Err(RunError::AnswerBroken { delivered_chars, error, kind }), None);
            }
            return match proposals.is_empty() {
                true => self.finish(
                    Err(RunError::TooFewSuccesses { what: "the aggregator".into(), succeeded: 0, needed: 1, failures }),
                    None,
                ),
                // The answer is what was streamed, untrimmed, so it equals the deltas.
                false => {
                    // After a staircase, the answer is every step's text, then this call's.
                    let stair = self.layer_phase_mut().and_then(|l| l.stair.take());
                    let before = stair.map(|s| s.answer).unwrap_or_default();
                    let text = before + &self.slots.agents[0].text;
                    self.finish_reason = self.slots.agents[0].finish.clone();
                    self.answer_calls = std::mem::take(&mut self.slots.agents[0].calls);
                    if !self.answer_calls.is_empty() {
                        self.finish_reason = Some("tool_calls".into());
                    }
                    self.finish(Ok(text), Some(label))
                }
            };
        }
        let needed = self.recipe.layers[self.layer].min_successes.unwrap_or(self.recipe.policy.min_successes) as usize;
        if proposals.len() < needed {
            let what = format!("layer {}", self.layer);
            return self
                .finish(Err(RunError::TooFewSuccesses { what, succeeded: proposals.len(), needed, failures }), None);
        }
        if let Some((calls, n)) = self.tool_vote() {
            let why = format!("tool vote: {n} of {} agents made the same calls", proposals.len());
            self.answer_calls = calls;
            self.finish_reason = Some("tool_calls".into());
            return self.finish(Ok(String::new()), Some(why));
        }
        self.decide(self.layer + 1, proposals, None, 0);
    }

    /// Under `tool_policy = "vote"`, after the last proposer layer: the calls a strict
    /// majority of its successful agents made, and how many made them.
    fn tool_vote(&self) -> Option<(Vec<crate::vocab::tools::ToolCall>, usize)> {
        let voting = self.recipe.tool_policy == ToolPolicy::Vote && self.layer + 1 == self.recipe.layers.len();
        if !voting || self.toolbox.tools.is_none() {
            return None;
        }
        let ok: Vec<&[crate::vocab::tools::ToolCall]> = self
            .slots
            .agents
            .iter()
            .filter(|s| matches!(s.state, SlotState::Succeeded))
            .map(|s| s.calls.as_slice())
            .collect();
        tool_majority(&ok, ok.len())
    }
}
