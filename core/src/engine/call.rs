//! One call's life in its slot: started (and its request made), then succeeded, failed
//! (retried or given up) or stopped, with its accounts closed each time.

use super::attempt::{Flight, Response, SlotId, SlotState};
use super::backoff::backoff;
use super::phase::Broken;
use super::redact::StreamRedactor;
use super::stop::StopFilter;
use super::timers::Timer;
use super::tooling::Offer;
use super::{Action, CallError, Run, fit};
use crate::event::{CallId, Event, Place};
use crate::message::{Message, prepend_system};
use crate::provider::{self, ChatRequest};
use crate::recipe::ResolvedAgent;
use crate::rng::Rng;
use crate::time::millis;
use crate::usage::Usage;
use std::time::Duration;

impl Run {
    pub(super) fn start(&mut self, i: SlotId) {
        let messages = self.input.clone();
        self.start_with(i, messages);
    }

    /// Starts an attempt of slot `i` on `messages`.
    pub(super) fn start_with(&mut self, i: SlotId, mut messages: Vec<Message>) {
        let (place_layer, place_slot) = self.place_of(i);
        let stair = i == SlotId::Stair;
        let call = CallId(self.next_call);
        self.next_call += 1;
        self.reset_attempt(i);
        let offer = self.offer(i);
        let final_answer = self.writes_answer(i);
        let slot = &mut self.slots[i];
        slot.offer = offer;
        slot.hold = final_answer && self.toolbox.any();
        messages = self.toolbox.prepare(offer, final_answer, messages);
        messages.extend(slot.correction.iter().cloned());
        let agent = &slot.agent;
        if let Some(system) = &agent.system {
            prepend_system(&mut messages, system);
        }
        // The staircase's steps read partial proposals, not these.
        let trim = match agent.context_tokens {
            Some(window) if !stair => {
                fit::fit(&mut messages, &self.references, window, agent.max_tokens).map(|t| (window, t))
            }
            _ => None,
        };
        let req = ChatRequest {
            model: &agent.model,
            messages: &messages,
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
            sampling: &agent.sampling,
            tools: self.toolbox.tools.as_ref().filter(|_| offer == Offer::Native),
            // Not natively with tools as text: a server's grammar for the format would
            // forbid the JSON a call is written in.
            response_format: Some(&self.toolbox.format)
                .filter(|f| final_answer && f.is_json() && !(offer == Offer::AsText && self.toolbox.callable())),
        };
        let provider = &self.recipe.providers[&agent.provider];
        // A key goes only to a provider that declares one: a recipe that drops
        // `api_key_env` from a provider gets no key for it, whatever the caller passed.
        let key = provider.api_key_env.as_ref().and(self.keys.get(&agent.provider));
        let http = provider::build_request(provider.kind, &provider.base_url, key.map(String::as_str), &req);
        let event = Event::CallStarted {
            at: Place { call, layer: place_layer, slot: place_slot },
            agent: agent.label.clone(),
            provider: agent.provider.clone(),
            model: agent.model.clone(),
            attempt: slot.attempts,
            aggregator: place_layer == self.recipe.layers.len(),
            t_ms: millis(self.now.since(self.started)),
        };
        self.caps.take(&agent.provider);
        slot.state = SlotState::InFlight(Box::new(Flight {
            call,
            started: self.now,
            clocks_running: !self.reports_sent,
            accepted: false,
            prompt_chars: messages.iter().map(|m| m.content.chars().count()).sum(),
            first_token: None,
            response: Response::Waiting,
        }));
        self.calls.push((call, i));
        if !self.reports_sent {
            self.arm_call(call);
        }
        self.emit(event);
        if let Some((window, t)) = trim.filter(|_| self.slots[i].attempts == 1) {
            let at = Place { call, layer: place_layer, slot: place_slot };
            let (before, after, references, kept) = (t.before, t.after, t.references, t.kept);
            self.emit(Event::ReferencesTrimmed { at, window, before, after, references, kept });
        }
        self.queue.push_back(Action::Request { call, http });
    }

    /// A new attempt of slot `i`: counted, its last attempt's text and accounts cleared.
    fn reset_attempt(&mut self, i: SlotId) {
        let slot = &mut self.slots[i];
        slot.attempts += 1;
        slot.started = Some(self.now);
        slot.text.clear();
        slot.usage = None;
        slot.server_ms = None;
        slot.finish = None;
        slot.stop = StopFilter::default();
        slot.redact = StreamRedactor::default();
        slot.tool_buffer = Default::default();
        slot.calls.clear();
    }

    /// The slot of a call in flight.
    pub(super) fn slot_of(&self, call: CallId) -> Option<SlotId> {
        self.calls.iter().find(|(c, _)| *c == call).map(|(_, i)| *i)
    }

    /// The slot and flight of a call still in flight; `None` for stale input.
    pub(super) fn flight(&mut self, call: CallId) -> Option<(SlotId, &mut Flight)> {
        let i = self.slot_of(call)?;
        match &mut self.slots[i].state {
            SlotState::InFlight(f) => Some((i, f)),
            _ => None,
        }
    }

    /// Ends the attempt in flight on slot `i`, returning its flight.
    pub(super) fn end_flight(&mut self, i: SlotId, next: SlotState) -> Option<Box<Flight>> {
        let slot = &mut self.slots[i];
        if !matches!(slot.state, SlotState::InFlight(_)) {
            return None;
        }
        let SlotState::InFlight(flight) = std::mem::replace(&mut slot.state, next) else { return None };
        self.calls.retain(|(c, _)| *c != flight.call);
        self.timers.stop(Timer::Attempt(flight.call));
        self.timers.stop(Timer::Stall(flight.call));
        self.caps.release(&slot.agent.provider);
        Some(flight)
    }

    pub(super) fn price(&self, agent: &ResolvedAgent, usage: Option<Usage>) -> Option<f64> {
        let price = self.recipe.prices.get(&format!("{}:{}", agent.provider, agent.model))?;
        Some(if self.batch_prices { price.batch_cost(&usage?) } else { price.cost(&usage?) })
    }

    pub(super) fn succeed(&mut self, i: SlotId) {
        let call = match &self.slots[i].state {
            SlotState::InFlight(f) => f.call,
            _ => return,
        };
        if !self.accept_answer(i, call) {
            return;
        }
        let (place_layer, place_slot) = self.place_of(i);
        let Some(flight) = self.end_flight(i, SlotState::Succeeded) else { return };
        let now = self.now;
        let slot = &mut self.slots[i];
        slot.latency = Some(now.since(flight.started));
        slot.ttft = flight.first_token.map(|t| t.since(flight.started));
        let event = Event::CallFinished {
            at: Place { call: flight.call, layer: place_layer, slot: place_slot },
            agent: slot.agent.label.clone(),
            usage: slot.usage,
            cost: self.price(&self.slots[i].agent, self.slots[i].usage),
            latency_ms: millis(now.since(flight.started)),
            ttft_ms: self.slots[i].ttft.map(millis),
            server_ms: self.slots[i].server_ms,
            finish_reason: self.slots[i].finish.clone(),
            t_ms: self.t_ms(),
        };
        self.emit(event);
        if i == SlotId::Stair {
            return self.stair_step_done(&flight);
        }
        self.on_success();
    }

    /// Closes the books of a failed attempt on slot `i`: its tokens go to the slot's
    /// waste, its text is void. Returns the event's accounting fields.
    pub(super) fn void_attempt(&mut self, i: SlotId, flight: &Flight) -> (usize, Usage, Option<f64>) {
        let slot = &mut self.slots[i];
        let usage = slot.failed_usage(flight);
        slot.wasted += usage;
        // Held text was never shown: nothing to take back.
        let discarded = if slot.hold { 0 } else { slot.text.chars().count() };
        slot.text.clear();
        slot.usage = None;
        slot.server_ms = None;
        let cost = if usage.is_zero() { None } else { self.price(&self.slots[i].agent, Some(usage)) };
        (discarded, usage, cost)
    }

    /// Records a failed attempt and either schedules a retry or gives the agent up.
    pub(super) fn fail_attempt(&mut self, i: SlotId, error: CallError, retry_after: Option<Duration>, cancel: bool) {
        if i == SlotId::Stair {
            return self.stair_step_failed(error, cancel);
        }
        let Some(flight) = self.end_flight(i, SlotState::Failed) else { return };
        if cancel {
            self.queue.push_back(Action::Cancel { call: flight.call });
        }
        let policy = &self.recipe.policy;
        // Provider-supplied text (error bodies, error events) may echo the key.
        let mut message = self.redactor.redact(&error.to_string());
        let mut delay = None;
        // Retry only while nothing irrevocable reached the user: with irrevocable output,
        // an aggregator that already streamed text is not tried again.
        // Text held back for a check was never delivered.
        let delivered = if self.slots[i].hold { 0 } else { self.slots[i].text.chars().count() };
        let irrevocable = self.irrevocable_answer && self.is_final_layer() && delivered > 0;
        if error.retryable() && self.slots[i].attempts <= policy.retries && !irrevocable {
            match retry_after {
                Some(d) if d.as_secs_f64() > policy.max_retry_after_secs => {
                    message.push_str(&format!(
                        " (Retry-After {} s is over policy.max_retry_after_secs)",
                        crate::float::Shortest(d.as_secs_f64())
                    ));
                }
                Some(d) => delay = Some(d),
                None => {
                    let (base, max) = (policy.backoff_secs, policy.max_backoff_secs);
                    // The call's own stream: the jitter replays whatever failed first.
                    let (layer, place) = self.place_of(i);
                    let attempt = self.slots[i].attempts;
                    let mut rng = Rng::derive(self.seed, &[layer as u64, place as u64, u64::from(attempt)]);
                    delay = Some(backoff(&mut rng, attempt, base, max));
                }
            }
        }
        if irrevocable {
            let broken = Broken { delivered_chars: delivered, error: message.clone(), kind: error.kind() };
            if let Some(l) = self.layer_phase_mut() {
                l.broken = Some(broken);
            }
        }
        self.slots[i].last_error = Some((error.kind(), error.status()));
        let (discarded_chars, usage, cost) = self.void_attempt(i, &flight);
        // Voided text is no longer the answer's start, unless a staircase delivered it.
        let stair_delivered = self.stair().is_some_and(|s| !s.answer.is_empty());
        if self.is_final_layer() && discarded_chars > 0 && !irrevocable && !stair_delivered {
            self.answer_first_token = None;
        }
        let slot = &mut self.slots[i];
        slot.errors.push(message.clone());
        if let Some(d) = delay {
            // No delay: ready now, with no timer to wait for.
            if d.is_zero() {
                slot.state = SlotState::Queued;
            } else {
                slot.state = SlotState::Waiting;
                self.timers.set(Timer::Retry(i), self.now + d);
            }
        }
        let (layer, place) = self.place_of(i);
        let event = Event::CallFailed {
            at: Place { call: flight.call, layer, slot: place },
            agent: self.slots[i].agent.label.clone(),
            error: message,
            kind: error.kind(),
            will_retry: delay.is_some(),
            retry_in_ms: delay.map(millis),
            discarded_chars,
            usage,
            cost,
            t_ms: self.t_ms(),
        };
        self.emit(event);
    }

    /// Ends every call of the layer still open, for `why` (cancelled, or cut): calls in
    /// flight fail, their tokens counted as wasted; agents waiting to retry are stopped.
    pub(super) fn stop_open(&mut self, why: CallError) {
        let reason = why.kind();
        for i in (0..self.slots.agents.len()).map(SlotId::Agent) {
            if let Some(f) = self.end_flight(i, SlotState::Failed) {
                self.queue.push_back(Action::Cancel { call: f.call });
                let error = why.to_string();
                let (discarded_chars, usage, cost) = self.void_attempt(i, &f);
                self.slots[i].errors.push(error.clone());
                self.slots[i].last_error = Some((reason, None));
                let (layer, slot) = self.place_of(i);
                let at = Place { call: f.call, layer, slot };
                let agent = self.slots[i].agent.label.clone();
                let t_ms = self.t_ms();
                self.emit(Event::CallFailed {
                    at,
                    agent,
                    error,
                    kind: reason,
                    will_retry: false,
                    retry_in_ms: None,
                    discarded_chars,
                    usage,
                    cost,
                    t_ms,
                });
            } else if matches!(self.slots[i].state, SlotState::Queued | SlotState::Waiting) {
                self.timers.stop(Timer::Retry(i));
                self.slots[i].state = SlotState::Failed;
                self.slots[i].errors.push(why.to_string());
                self.slots[i].last_error = Some((reason, None));
                if self.slots[i].attempts > 0 {
                    let (layer, slot) = self.place_of(i);
                    let event = Event::AgentStopped {
                        layer,
                        slot,
                        agent: self.slots[i].agent.label.clone(),
                        reason,
                        t_ms: self.t_ms(),
                    };
                    self.emit(event);
                }
            }
        }
        // A cut is for proposers: the aggregator's staircase step goes on (its text is
        // already the user's); cancelling the run ends it, booked as a step.
        if self.slots.stair.is_some() && matches!(why, CallError::Cancelled) {
            self.stair_step_failed(why, true);
        }
    }
}
