//! The run engine: a sans-IO state machine that plays a recipe.
//!
//! The driver (native or browser transport) loops: [`Run::poll`] until it says
//! [`Action::Wait`], carry out what it asked, feed every response back with
//! [`Run::handle`], and pass [`Input::Tick`] when the wait's deadline passes. The engine
//! never reads a clock; every input carries `now`, so tests run whole recipes in
//! simulated time.

mod api;
mod ask;
mod attempt;
mod backoff;
mod error;
mod fit;
mod layer;
mod redact;
mod report;
mod stair;
mod stop;
mod timers;

pub use api::{Action, Input, RunOptions};
pub use error::{CallError, ErrorKind, NetError};
pub use report::{CallReport, Failure, LayerReport, Outcome, RunError};

use crate::event::{CallId, Event, Place};
use crate::http;
use crate::message::{Message, prepend_system, validate_conversation};
use crate::provider::{self, ChatRequest, ResponseParser, StreamItem};
use crate::recipe::{OnError, Recipe, ResolvedAgent, StrategySpec};
use crate::rng::Rng;
use crate::strategy::{Strategy, StrategyKind};
use crate::time::{Time, millis};
use crate::usage::Usage;
use attempt::{Flight, Response, Slot, SlotState};
use backoff::backoff;
use redact::{Redactor, StreamRedactor};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use stop::StopFilter;

/// Largest error body kept to explain a failed call.
const MAX_ERROR_BODY: usize = 64 << 10;

/// How long a call whose stream has ended (`[DONE]`, `message_stop`) may keep its
/// connection open before it is cancelled. The answer is used at once; the grace only
/// lets a well-behaved server finish the body, so the connection can be reused.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// A strategy and what to do if it fails.
struct Decider {
    strategy: Box<dyn Strategy>,
    on_error: OnError,
}

/// A duration in seconds from a validated recipe, saturating instead of panicking on
/// anything a validation missed.
fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// A failure the engine itself finds in what the transport delivered.
fn transport(kind: NetError, message: &str) -> CallError {
    CallError::Transport { kind, message: message.into(), loopback: false }
}

/// One run of a recipe on one conversation.
pub struct Run {
    recipe: Recipe,
    conversation: Vec<Message>,
    keys: BTreeMap<String, String>,
    /// Finds the keys in provider-supplied text.
    redactor: Redactor,
    /// `deciders[i]` feeds layer `i + 1`; the last one feeds the aggregator.
    deciders: Vec<Decider>,
    reports_sent: bool,
    irrevocable_answer: bool,
    batch_prices: bool,
    started: Time,
    now: Time,
    layer: usize,
    input: Vec<Message>,
    slots: Vec<Slot>,
    reports: Vec<LayerReport>,
    in_flight: BTreeMap<String, u32>,
    /// Which slot each call in flight belongs to. (A list: a layer has few calls in
    /// flight, and a hash map type costs the browser module 4 KB.)
    calls: Vec<(CallId, usize)>,
    /// Calls whose answer is complete but whose body has not ended: the time by which
    /// it must, or they are cancelled, and their provider, whose concurrency slot they
    /// hold until then (the connection is still open).
    /// (A list: there are only ever a few, and a map type would cost the browser module.)
    draining: Vec<(CallId, Time, String)>,
    /// The aggregator broke off after delivering text that cannot be taken back: the
    /// characters delivered, the error and its kind.
    broken: Option<(usize, String, ErrorKind)>,
    /// Why the aggregator's model stopped, once it has.
    finish_reason: Option<String>,
    /// When the first text of the answer arrived (see [`Outcome::ttft_ms`]).
    answer_first_token: Option<Time>,
    /// When the current layer's quorum grace ends (it has its quorum).
    quorum_at: Option<Time>,
    /// The current layer's agents agreed: the answer, and why it ends the run.
    agreed: Option<(String, String)>,
    /// The aggregator's staircase, when the recipe asks for one.
    stair: Option<stair::Stair>,
    /// A strategy's call is under way (between layers).
    asking: Option<ask::Asking>,
    /// The proposals the asking strategy decides on.
    asked: Vec<crate::strategy::Proposal>,
    /// The run's seed, for strategies' seeded choices.
    seed: u64,
    /// The texts of the proposals the current calls' messages were made from: what
    /// [`fit`] may shorten.
    references: Vec<String>,
    next_call: u64,
    queue: VecDeque<Action>,
    usage: Usage,
    cost: Option<f64>,
    wasted: Usage,
    outcome: Option<Outcome>,
    scratch: Vec<StreamItem>,
}

impl Run {
    /// Starts a run with built-in strategies, no keys and seed 0.
    pub fn new(recipe: &Recipe, conversation: Vec<Message>, now: Time) -> Result<Run, RunError> {
        Run::with_options(recipe, conversation, now, RunOptions::default())
    }

    /// Starts a run. Fails at once on a bad recipe or conversation, a missing key, or a
    /// strategy that cannot be made.
    pub fn with_options(
        recipe: &Recipe,
        conversation: Vec<Message>,
        now: Time,
        options: RunOptions<'_>,
    ) -> Result<Run, RunError> {
        recipe.validate()?;
        validate_conversation(&conversation).map_err(RunError::Conversation)?;
        for (name, p) in &recipe.providers {
            if let Some(env) = &p.api_key_env
                && !options.keys.contains_key(name)
            {
                return Err(RunError::MissingKey { provider: name.clone(), env: env.clone() });
            }
        }
        let synthesize = StrategySpec::builtin(StrategyKind::Synthesize);
        let specs =
            recipe.layers.iter().skip(1).map(|l| l.strategy.as_ref()).chain([recipe.aggregator.strategy.as_ref()]);
        let deciders = specs
            .map(|spec| {
                let spec = spec.unwrap_or(&synthesize);
                Ok(Decider { strategy: options.resolver.resolve(spec)?, on_error: spec.on_error })
            })
            .collect::<Result<Vec<_>, RunError>>()?;
        let mut run = Run {
            recipe: recipe.clone(),
            input: conversation.clone(),
            conversation,
            redactor: Redactor::new(options.keys.values()),
            keys: options.keys,
            deciders,
            reports_sent: options.reports_sent,
            irrevocable_answer: options.irrevocable_answer,
            batch_prices: options.batch_prices,
            started: now,
            now,
            layer: 0,
            slots: Vec::new(),
            reports: Vec::new(),
            in_flight: BTreeMap::new(),
            calls: Vec::new(),
            draining: Vec::new(),
            broken: None,
            finish_reason: None,
            answer_first_token: None,
            quorum_at: None,
            agreed: None,
            stair: None,
            asking: None,
            asked: Vec::new(),
            seed: options.seed,
            references: Vec::new(),
            next_call: 0,
            queue: VecDeque::new(),
            usage: Usage::default(),
            cost: None,
            wasted: Usage::default(),
            outcome: None,
            scratch: Vec::new(),
        };
        run.emit(Event::RunStarted {
            recipe: recipe.name.clone(),
            layers: recipe.layers.len(),
            planned_calls: recipe.call_count(),
        });
        run.begin_layer(0);
        run.step();
        Ok(run)
    }

    /// The next thing for the driver to do.
    pub fn poll(&mut self) -> Action {
        if let Some(action) = self.queue.pop_front() {
            return action;
        }
        match &self.outcome {
            Some(o) => Action::Done(o.clone()),
            None => Action::Wait(self.next_deadline()),
        }
    }

    /// Feeds back what happened. Input for an unknown or cancelled call is ignored.
    pub fn handle(&mut self, input: Input<'_>) {
        self.now = self.now.max(input.now());
        if self.outcome.is_some() {
            return;
        }
        match input {
            Input::Sent { call, .. } => {
                // The run's clock, never the input's own: a late `Sent` must not move a
                // call's start back before what the engine has already seen.
                let now = self.now;
                if let Some((_, f)) = self.flight(call) {
                    f.started = now;
                    f.last_byte = now;
                    f.clocks_running = true;
                }
            }
            Input::Head { call, status, headers, .. } => self.on_head(call, status, &headers),
            Input::Body { call, bytes, .. } => self.on_body(call, bytes),
            Input::End { call, .. } => self.on_end(call),
            Input::Failed { call, kind, error, .. } => {
                let loopback = self.slot_of(call).is_some_and(|i| {
                    let provider = &self.slots[i].agent.provider;
                    self.recipe.providers.get(provider).is_some_and(|p| crate::http::is_loopback(&p.base_url))
                });
                self.on_transport_error(call, CallError::Transport { kind, message: error, loopback })
            }
            Input::Invalid { call, error, .. } => self.on_transport_error(call, CallError::Invalid(error)),
            Input::Tick { .. } => {}
        }
        self.check_timers();
        self.step();
    }

    /// Cancels the run: every call in flight is cancelled and the run ends with
    /// [`RunError::Cancelled`].
    pub fn cancel(&mut self, now: Time) {
        self.now = self.now.max(now);
        if self.outcome.is_none() {
            self.finish(Err(RunError::Cancelled), None);
        }
    }

    /// Whether the run is over.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    fn emit(&mut self, event: Event) {
        self.queue.push_back(Action::Event(event));
    }

    fn t_ms(&self) -> f64 {
        millis(self.now.since(self.started))
    }

    fn is_final_layer(&self) -> bool {
        self.layer == self.recipe.layers.len()
    }

    fn begin_layer(&mut self, layer: usize) {
        self.layer = layer;
        self.quorum_at = None;
        let agents =
            if self.is_final_layer() { vec![self.recipe.aggregator_agent()] } else { self.recipe.layer_agents(layer) };
        let now = self.now;
        self.slots = agents
            .into_iter()
            .map(|agent| {
                let kind = self.recipe.providers[&agent.provider].kind;
                Slot::new(agent, kind, now)
            })
            .collect();
        self.stair_begin();
    }

    /// Starts what may start, and moves to the next layer whenever one completes.
    fn step(&mut self) {
        while self.outcome.is_none() {
            for i in 0..self.slots.len() {
                if matches!(self.slots[i].state, SlotState::Queued { not_before } if not_before <= self.now)
                    && self.has_capacity(&self.slots[i].agent.provider)
                {
                    self.start(i);
                }
            }
            if self.quorum_at.is_some_and(|at| at <= self.now) {
                self.quorum_at = None;
                self.stop_open(CallError::Cut("the layer had its quorum"));
            }
            self.stair_check();
            if !self.slots.iter().all(|s| matches!(s.state, SlotState::Succeeded | SlotState::Failed)) {
                return;
            }
            self.finish_layer();
        }
    }

    fn has_capacity(&self, provider: &str) -> bool {
        let busy = self.in_flight.get(provider).copied().unwrap_or(0);
        let total: u32 = self.in_flight.values().sum();
        self.recipe.providers[provider].max_concurrency.is_none_or(|cap| busy < cap)
            && self.recipe.policy.max_concurrency.is_none_or(|cap| total < cap)
    }

    fn start(&mut self, i: usize) {
        let messages = self.input.clone();
        self.start_with(i, messages);
    }

    /// Starts an attempt of slot `i` on `messages`.
    fn start_with(&mut self, i: usize, mut messages: Vec<Message>) {
        let (place_layer, place_slot) = self.place_of(i);
        let stair = self.is_stair(i);
        let call = CallId(self.next_call);
        self.next_call += 1;
        let slot = &mut self.slots[i];
        slot.attempts += 1;
        slot.started = Some(self.now);
        slot.text.clear();
        slot.usage = None;
        slot.server_ms = None;
        slot.finish = None;
        slot.stop = StopFilter::default();
        slot.redact = StreamRedactor::default();
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
        *self.in_flight.entry(agent.provider.clone()).or_default() += 1;
        slot.state = SlotState::InFlight(Box::new(Flight {
            call,
            started: self.now,
            last_byte: self.now,
            clocks_running: !self.reports_sent,
            accepted: false,
            prompt_chars: messages.iter().map(|m| m.content.chars().count()).sum(),
            first_token: None,
            response: Response::Waiting,
        }));
        self.calls.push((call, i));
        self.emit(event);
        if let Some((window, t)) = trim.filter(|_| self.slots[i].attempts == 1) {
            let at = Place { call, layer: place_layer, slot: place_slot };
            let (before, after, references, kept) = (t.before, t.after, t.references, t.kept);
            self.emit(Event::ReferencesTrimmed { at, window, before, after, references, kept });
        }
        self.queue.push_back(Action::Request { call, http });
    }

    /// The slot of a call in flight.
    fn slot_of(&self, call: CallId) -> Option<usize> {
        self.calls.iter().find(|(c, _)| *c == call).map(|(_, i)| *i)
    }

    /// The slot and flight of a call still in flight; `None` for stale input.
    fn flight(&mut self, call: CallId) -> Option<(usize, &mut Flight)> {
        let i = self.slot_of(call)?;
        match &mut self.slots[i].state {
            SlotState::InFlight(f) => Some((i, f)),
            _ => None,
        }
    }

    fn on_transport_error(&mut self, call: CallId, error: CallError) {
        // A call that was draining has its answer already; its connection just ended.
        if self.end_drain(call) {
            return;
        }
        if let Some(i) = self.slot_of(call) {
            self.fail_attempt(i, error, None, false);
        }
    }

    fn on_head(&mut self, call: CallId, status: u16, headers: &[(String, String)]) {
        let now = self.now;
        let Some(kind) = self.slot_of(call).map(|i| self.slots[i].kind) else { return };
        let Some((_, f)) = self.flight(call) else { return };
        // A response means the request was sent, whether or not the transport said so.
        if !f.clocks_running {
            f.started = now;
            f.clocks_running = true;
        }
        f.last_byte = now;
        f.accepted = (200..300).contains(&status);
        f.response = if f.accepted {
            Response::Streaming(ResponseParser::new(kind, http::header(headers, "content-type")))
        } else {
            Response::Error { status, body: Vec::new(), retry_after: http::retry_after(headers, now) }
        };
    }

    fn on_body(&mut self, call: CallId, bytes: &[u8]) {
        let now = self.now;
        let mut items = std::mem::take(&mut self.scratch);
        let (i, result, complete) = match self.flight(call) {
            None => return self.scratch = items,
            Some((i, f)) => {
                f.last_byte = now;
                let r = match &mut f.response {
                    Response::Waiting => Err(transport(NetError::Other, "body bytes before the response head")),
                    Response::Error { body, .. } => {
                        let room = MAX_ERROR_BODY.saturating_sub(body.len());
                        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                        Ok(())
                    }
                    Response::Streaming(parser) => parser.feed(bytes, &mut items).map_err(CallError::from),
                };
                let complete = matches!(&f.response, Response::Streaming(p) if p.is_complete());
                (i, r, complete)
            }
        };
        let stopped = self.apply_items(i, call, &mut items);
        self.scratch = items;
        match result {
            Err(e) => self.fail_attempt(i, e, None, true),
            // A stop sequence ends the answer; the provider would go on generating.
            Ok(()) if stopped => {
                self.queue.push_back(Action::Cancel { call });
                // Cut before its end, the provider never sends its usage: estimate it.
                let slot = &mut self.slots[i];
                if let (None, SlotState::InFlight(f)) = (slot.usage, &slot.state) {
                    slot.usage = Some(Usage::estimate(Some(f.prompt_chars), &slot.text));
                }
                self.succeed(i);
            }
            // The stream's end marker finishes the call even if the connection stays
            // open (some proxies keep it); the body gets a short grace to end by itself.
            Ok(()) if complete => {
                let provider = self.slots[i].agent.provider.clone();
                self.flush_held(i, call);
                self.succeed(i);
                // Still on the wire: it keeps its provider slot until the body ends.
                *self.in_flight.entry(provider.clone()).or_default() += 1;
                self.draining.push((call, now + DRAIN_GRACE, provider));
            }
            Ok(()) => {}
        }
    }

    /// Applies what a response yielded; returns true when a stop sequence ended the
    /// answer (what follows it is dropped).
    fn apply_items(&mut self, i: usize, call: CallId, items: &mut Vec<StreamItem>) -> bool {
        let now = self.now;
        let (layer, place_slot) = self.place_of(i);
        for item in items.drain(..) {
            let slot = &mut self.slots[i];
            match item {
                StreamItem::Usage(u) => slot.usage = Some(u),
                StreamItem::ServerTime(ms) => slot.server_ms = Some(ms),
                StreamItem::Finish(reason) => slot.finish = Some(reason),
                StreamItem::Text(piece) => {
                    if let SlotState::InFlight(f) = &mut slot.state {
                        f.first_token.get_or_insert(now);
                    }
                    let (text, hit) = slot.stop.push(&piece, &slot.agent.sampling.stop);
                    let mut text = slot.redact.push(&text, &self.redactor);
                    if hit {
                        slot.finish = Some("stop".into());
                        text.push_str(&slot.redact.flush(&self.redactor));
                    }
                    if !text.is_empty() {
                        slot.text.push_str(&text);
                        if layer == self.recipe.layers.len() {
                            self.answer_first_token.get_or_insert(now);
                        }
                        let at = Place { call, layer, slot: place_slot };
                        self.queue.push_back(Action::Event(Event::TextDelta { at, text }));
                    }
                    if hit {
                        // Dropping the drain drops whatever followed the stop.
                        return true;
                    }
                }
            }
        }
        false
    }

    /// The stream ended whole: text held back as a possible stop sequence is text.
    fn flush_held(&mut self, i: usize, call: CallId) {
        let slot = &mut self.slots[i];
        let held = slot.stop.flush();
        let text = slot.redact.push(&held, &self.redactor) + &slot.redact.flush(&self.redactor);
        if !text.is_empty() {
            self.slots[i].text.push_str(&text);
            let (layer, slot) = self.place_of(i);
            if layer == self.recipe.layers.len() {
                self.answer_first_token.get_or_insert(self.now);
            }
            let at = Place { call, layer, slot };
            self.emit(Event::TextDelta { at, text });
        }
    }

    /// Ends the drain of `call`, if it was draining, freeing its provider slot.
    fn end_drain(&mut self, call: CallId) -> bool {
        let Some(at) = self.draining.iter().position(|(c, _, _)| *c == call) else { return false };
        let (_, _, provider) = self.draining.swap_remove(at);
        if let Some(n) = self.in_flight.get_mut(&provider) {
            *n = n.saturating_sub(1);
        }
        true
    }

    fn on_end(&mut self, call: CallId) {
        if self.end_drain(call) {
            return;
        }
        let mut items = std::mem::take(&mut self.scratch);
        let (i, result) = match self.flight(call) {
            None => return self.scratch = items,
            Some((i, f)) => {
                let r = match &mut f.response {
                    Response::Waiting => {
                        Err((transport(NetError::Reset, "the connection closed before a response"), None))
                    }
                    Response::Error { status, body, retry_after } => Err((
                        CallError::Status { status: *status, message: provider::error_message(body) },
                        *retry_after,
                    )),
                    Response::Streaming(parser) => parser.finish(&mut items).map_err(|e| (CallError::from(e), None)),
                };
                (i, r)
            }
        };
        self.apply_items(i, call, &mut items);
        self.scratch = items;
        match result {
            Ok(()) => {
                self.flush_held(i, call);
                self.succeed(i)
            }
            Err((e, retry_after)) => self.fail_attempt(i, e, retry_after, false),
        }
    }

    /// Ends the attempt in flight on slot `i`, returning its flight.
    fn end_flight(&mut self, i: usize, next: SlotState) -> Option<Box<Flight>> {
        let slot = &mut self.slots[i];
        if !matches!(slot.state, SlotState::InFlight(_)) {
            return None;
        }
        let SlotState::InFlight(flight) = std::mem::replace(&mut slot.state, next) else { return None };
        self.calls.retain(|(c, _)| *c != flight.call);
        if let Some(n) = self.in_flight.get_mut(&slot.agent.provider) {
            *n = n.saturating_sub(1);
        }
        Some(flight)
    }

    fn price(&self, agent: &ResolvedAgent, usage: Option<Usage>) -> Option<f64> {
        let price = self.recipe.prices.get(&format!("{}:{}", agent.provider, agent.model))?;
        Some(if self.batch_prices { price.batch_cost(&usage?) } else { price.cost(&usage?) })
    }

    fn succeed(&mut self, i: usize) {
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
        if self.is_stair(i) {
            return self.stair_step_done(i, &flight);
        }
        self.on_success();
    }

    /// What an attempt that did not succeed consumed: the provider's count where it sent
    /// one (raised to what was visibly streamed, since a count sent early, like
    /// Anthropic's `message_start`, lags the text), else an estimate; nothing when the
    /// provider refused the request.
    fn attempt_usage(slot: &Slot, flight: &Flight) -> Usage {
        let estimate = Usage::estimate(flight.accepted.then_some(flight.prompt_chars), &slot.text);
        match slot.usage {
            Some(u) if u.output_tokens >= estimate.output_tokens => u,
            Some(u) => Usage { output_tokens: estimate.output_tokens, estimated: true, ..u },
            None if estimate.is_zero() => Usage::default(),
            None => estimate,
        }
    }

    /// Closes the books of a failed attempt on slot `i`: its tokens go to the slot's
    /// waste, its text is void. Returns the event's accounting fields.
    fn void_attempt(&mut self, i: usize, flight: &Flight) -> (usize, Usage, Option<f64>) {
        let slot = &mut self.slots[i];
        let usage = Run::attempt_usage(slot, flight);
        slot.wasted += usage;
        let discarded = slot.text.chars().count();
        slot.text.clear();
        slot.usage = None;
        slot.server_ms = None;
        let cost = if usage.is_zero() { None } else { self.price(&self.slots[i].agent, Some(usage)) };
        (discarded, usage, cost)
    }

    /// Records a failed attempt and either schedules a retry or gives the agent up.
    fn fail_attempt(&mut self, i: usize, error: CallError, retry_after: Option<Duration>, cancel: bool) {
        if self.is_stair(i) {
            return self.stair_step_failed(i, error, cancel);
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
        let delivered = self.slots[i].text.chars().count();
        let irrevocable = self.irrevocable_answer && self.is_final_layer() && delivered > 0;
        if error.retryable() && self.slots[i].attempts <= policy.retries && !irrevocable {
            match retry_after {
                Some(d) if d.as_secs_f64() > policy.max_retry_after_secs => {
                    message
                        .push_str(&format!(" (Retry-After {} s is over policy.max_retry_after_secs)", d.as_secs_f64()));
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
            self.broken = Some((delivered, message.clone(), error.kind()));
        }
        self.slots[i].last_error = Some((error.kind(), error.status()));
        let (discarded_chars, usage, cost) = self.void_attempt(i, &flight);
        // Voided text is no longer the answer's start, unless a staircase delivered it.
        let stair_delivered = self.stair.as_ref().is_some_and(|s| !s.answer.is_empty());
        if self.is_final_layer() && discarded_chars > 0 && !irrevocable && !stair_delivered {
            self.answer_first_token = None;
        }
        let slot = &mut self.slots[i];
        slot.errors.push(message.clone());
        if let Some(d) = delay {
            slot.state = SlotState::Queued { not_before: self.now + d };
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
    fn stop_open(&mut self, why: CallError) {
        let reason = why.kind();
        for i in 0..self.slots.len() {
            // A cut is for proposers: the aggregator's staircase step goes on (its text
            // is already the user's); cancelling the run ends it, booked as a step.
            if self.is_stair(i) {
                if matches!(why, CallError::Cancelled) {
                    self.stair_step_failed(i, why.clone(), true);
                }
                continue;
            }
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
            } else if matches!(self.slots[i].state, SlotState::Queued { .. }) {
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
    }

    fn finish(&mut self, result: Result<String, RunError>, decided_by: Option<String>) {
        // A run that ends mid-layer (cancelled) still accounts for that layer, and ends
        // every state a UI may show: calls in flight fail as cancelled, agents waiting
        // to retry are stopped.
        let open = self.slots.iter().any(|s| matches!(s.state, SlotState::InFlight(_) | SlotState::Queued { .. }));
        if open {
            self.stop_open(CallError::Cancelled);
            match self.asking.take() {
                // A strategy's call belongs to the layer it judges, already reported.
                Some(asking) => drop(self.book_ask(asking.slot)),
                None => drop(self.report_layer()),
            }
        }
        self.stair_close_books();
        for (call, _, _) in std::mem::take(&mut self.draining) {
            self.queue.push_back(Action::Cancel { call });
        }
        let wall_ms = self.t_ms();
        let first_token = self.answer_first_token.map_or(wall_ms, |t| millis(t.since(self.started)));
        let ttft_ms = result.is_ok().then_some(first_token);
        match &result {
            Ok(text) => self.emit(Event::Final {
                text: text.clone(),
                decided_by: decided_by.clone().unwrap_or_default(),
                usage: self.usage,
                cost: self.cost,
                wasted: self.wasted,
                wall_ms,
                ttft_ms,
            }),
            Err(e) => self.emit(Event::RunFailed { error: e.to_string(), t_ms: wall_ms }),
        }
        self.outcome = Some(Outcome {
            answer: result,
            decided_by,
            layers: std::mem::take(&mut self.reports),
            usage: self.usage,
            cost: self.cost,
            wasted: self.wasted,
            finish_reason: self.finish_reason.clone(),
            wall_ms,
            ttft_ms,
        });
    }
}
