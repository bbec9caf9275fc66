//! Calls a strategy makes before it decides (a judge's verdict for `rank` and `select`,
//! a window's synthesis for `sequential`).
//!
//! Between two layers the engine runs a small phase of its own: the strategy returns
//! [`Decision::Ask`], the engine makes that one call (retries, deadlines, limits and
//! accounting as for any agent), then asks the strategy again with the reply, until it
//! decides. Each such call is booked in the layer it judges: it appears there as one more
//! call, after the agents (its events' `slot` is its place in that layer's report), and its
//! tokens and cost count in that layer's and the run's totals.

use super::attempt::{Slot, SlotState, Slots};
use super::deciding::Deciding;
use super::phase::{LayerPhase, Phase};
use super::{CallError, CallReport, Run, RunError, stair};
use crate::event::Event;
use crate::message::Message;
use crate::recipe::OnError;
use crate::strategy::{Ask, Decision, Proposal, Strategy, StrategyError, StrategyInput, Synthesize};
use crate::usage::add_cost;

/// Most calls one decision may ask for: a strategy that keeps asking is a bug, and
/// each ask is a paid call.
const MAX_ASKS: usize = 64;

/// The phase between layers while a strategy's call runs.
pub(super) struct Asking {
    /// The layer the decision feeds.
    pub(super) next: usize,
    /// The call's place in the judged layer's report.
    pub(super) slot: usize,
    /// Calls asked for in this decision.
    pub(super) asks: usize,
    /// The proposals it decides on.
    pub(super) proposals: Vec<Proposal>,
}

impl Run {
    /// Asks layer `next`'s strategy to decide on `proposals`, given the reply to its last
    /// ask; carries out what it decides. A strategy the driver runs (a plugin in the
    /// browser) is asked through [`crate::Action::Decide`], and the run waits for its answer.
    pub(super) fn decide(
        &mut self,
        next: usize,
        proposals: Vec<Proposal>,
        reply: Option<Result<String, String>>,
        asks: usize,
    ) {
        self.references = proposals.iter().map(|p| p.text.clone()).collect();
        // A copy: events are emitted while the strategy's input is still needed.
        let conversation = self.conversation.clone();
        let input = self.strategy_input(&conversation, next, &proposals, reply.as_ref());
        if let Some(external) = self.deciders[next - 1].strategy.external() {
            let request = external.request(&input);
            return self.await_decision(request, Deciding { next, proposals, reply, asks });
        }
        let decided = self.deciders[next - 1].strategy.decide(&input);
        self.carry_out(&input, decided, asks);
    }

    /// What layer `next`'s strategy is given.
    pub(super) fn strategy_input<'a>(
        &self,
        conversation: &'a [Message],
        next: usize,
        proposals: &'a [Proposal],
        reply: Option<&'a Result<String, String>>,
    ) -> StrategyInput<'a> {
        StrategyInput {
            conversation,
            layer: next,
            layer_count: self.recipe.layers.len(),
            proposals,
            reply: reply.map(|r| r.as_deref().map_err(String::as_str)),
            seed: self.seed ^ (next as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        }
    }

    /// Carries out what layer `input.layer`'s strategy decided (checked, noted, and on
    /// failure what the recipe's on_error says).
    pub(super) fn carry_out(
        &mut self,
        input: &StrategyInput<'_>,
        decided: Result<Decision, StrategyError>,
        asks: usize,
    ) {
        let next = input.layer;
        let name = self.deciders[next - 1].strategy.name().to_owned();
        let decision = self.strategy_decides(input, decided, asks, &name);
        let decision = self.with_tools(decision, input, next, &name);
        match decision {
            Ok(Decision::Messages(messages)) => {
                self.input = messages;
                if next == self.recipe.layers.len() {
                    // The staircase's last step: the whole proposals, and the answer so far.
                    let stair = self.layer_phase_mut().and_then(|l| l.stair.take());
                    if let Some(answer) = stair.as_ref().map(|s| s.answer.as_str()).filter(|a| !a.is_empty()) {
                        let kind = self.recipe.providers[&self.recipe.aggregator_agent().provider].kind;
                        stair::continue_from(&mut self.input, answer, kind);
                    }
                    self.begin_layer(next);
                    // The aggregator's layer keeps the steps' answer and books.
                    if let Some(l) = self.layer_phase_mut() {
                        l.stair = stair;
                    }
                    return;
                }
                self.begin_layer(next);
            }
            Ok(Decision::Aggregate(messages)) => {
                self.input = messages;
                self.begin_layer(self.recipe.layers.len());
            }
            Ok(Decision::Final(text)) => self.finish(Ok(text), Some(name)),
            Ok(Decision::Ask(ask)) => self.begin_ask(next, input.proposals.to_vec(), ask, asks + 1, &name),
            Err(e) => self.finish(Err(RunError::Strategy(e)), None),
        }
    }

    /// What layer `input.layer`'s strategy decided, bounded, noted, and on failure what
    /// the recipe's on_error says (synthesize, or the error).
    fn strategy_decides(
        &mut self,
        input: &StrategyInput<'_>,
        decided: Result<Decision, StrategyError>,
        asks: usize,
        name: &str,
    ) -> Result<Decision, StrategyError> {
        let next = input.layer;
        let note = self.deciders[next - 1].strategy.note();
        let decision = match decided {
            Ok(Decision::Ask(_)) if asks >= MAX_ASKS => Err(StrategyError {
                strategy: name.to_owned(),
                message: format!("asked for more than {MAX_ASKS} calls in one decision"),
            }),
            // A plugin names its judge at run time: an unknown provider is its failure,
            // handled as the recipe's on_error says, like any other.
            Ok(Decision::Ask(ask)) => match self.unknown_ask_provider(&ask) {
                Some(provider) => Err(StrategyError {
                    strategy: name.to_owned(),
                    message: format!(
                        "asked for a call to provider {}, which the recipe does not have",
                        crate::quote::Quoted(&provider)
                    ),
                }),
                None => Ok(Decision::Ask(ask)),
            },
            other => other,
        };
        if let Some(note) = note {
            self.emit(Event::StrategyNote { layer: next, strategy: name.to_owned(), note });
        }
        match decision {
            Ok(d) => Ok(d),
            Err(e) => {
                let fallback = self.deciders[next - 1].on_error == OnError::Synthesize;
                self.emit(Event::StrategyFailed {
                    layer: next,
                    strategy: name.to_owned(),
                    error: e.to_string(),
                    fallback,
                });
                if fallback { Synthesize.decide(input) } else { Err(e) }
            }
        }
    }

    /// With tools a proposal is advice (or calls the next layer must weigh), not an
    /// answer: a strategy that would pick one lets the aggregator decide instead.
    fn with_tools(
        &mut self,
        decision: Result<Decision, StrategyError>,
        input: &StrategyInput<'_>,
        layer: usize,
        strategy: &str,
    ) -> Result<Decision, StrategyError> {
        match decision {
            Ok(Decision::Final(_)) if self.toolbox.tools.is_some() => {
                let note = "with tools, the aggregator decides: the proposals are synthesized".to_owned();
                self.emit(Event::StrategyNote { layer, strategy: strategy.to_owned(), note });
                match Synthesize.decide(input) {
                    Ok(Decision::Messages(m)) => Ok(Decision::Aggregate(m)),
                    other => other,
                }
            }
            other => other,
        }
    }

    /// The provider an ask names that the recipe does not have, if any.
    fn unknown_ask_provider(&self, ask: &Ask) -> Option<String> {
        let agent = self.recipe.ask_agent(ask.model.as_deref(), &ask.label, ask.max_tokens);
        (!self.recipe.providers.contains_key(&agent.provider)).then_some(agent.provider)
    }

    fn begin_ask(&mut self, next: usize, proposals: Vec<Proposal>, ask: Ask, asks: usize, strategy: &str) {
        let agent = self.recipe.ask_agent(ask.model.as_deref(), &ask.label, ask.max_tokens);
        let Some(kind) = self.recipe.providers.get(&agent.provider).map(|p| p.kind) else {
            // Checked in `decide`; kept so that a miss can never index a missing provider.
            let message = format!("asked for a call to an unknown provider {}", crate::quote::Quoted(&agent.provider));
            return self.finish(Err(RunError::Strategy(StrategyError { strategy: strategy.into(), message })), None);
        };
        // The judged layer's phase ends here (a staircase never precedes an ask: it
        // requires `synthesize`).
        let slot = self.reports.last().map_or(0, |r| r.calls.len());
        self.input = ask.messages;
        self.slots = Slots::agents(vec![Slot::new(agent, kind)]);
        self.timers.new_layer();
        self.phase = Phase::Asking(Asking { next, slot, asks, proposals });
    }

    /// The ask call is over: books it in the judged layer and lets the strategy go on.
    pub(super) fn finish_ask(&mut self) {
        // Between the ask and what the strategy decides, a layer phase with nothing in it.
        let Phase::Asking(asking) = std::mem::replace(&mut self.phase, Phase::Layer(LayerPhase::default())) else {
            return;
        };
        let reply = self.book_ask(asking.slot);
        self.decide(asking.next, asking.proposals, Some(reply), asking.asks);
    }

    /// Books the ask slot's call in the last layer report; returns its reply.
    pub(super) fn book_ask(&mut self, place: usize) -> Result<String, String> {
        let s = &self.slots.agents[0];
        let ok = matches!(s.state, SlotState::Succeeded);
        let cost = if ok { self.price(&s.agent, s.usage) } else { None };
        let wasted_cost = if s.wasted.is_zero() { None } else { self.price(&s.agent, Some(s.wasted)) };
        let report = CallReport { asked: true, ..self.call_report(0, place, cost) };
        let s = &self.slots.agents[0];
        let mut usage = if ok { s.usage.unwrap_or_default() } else { Default::default() };
        usage += s.wasted;
        let wasted = s.wasted;
        let reply = if ok {
            Ok(s.text.clone())
        } else {
            Err(s.errors.last().cloned().unwrap_or_else(|| CallError::Cancelled.to_string()))
        };
        let mut total = None;
        add_cost(&mut total, cost);
        add_cost(&mut total, wasted_cost);
        if let Some(r) = self.reports.last_mut() {
            r.calls.push(report);
            r.usage += usage;
            r.wasted += wasted;
            add_cost(&mut r.cost, total);
        }
        self.usage += usage;
        self.wasted += wasted;
        add_cost(&mut self.cost, total);
        reply
    }
}
