//! The run engine: a sans-IO state machine that plays a recipe.
//!
//! The driver (native or browser transport) loops: [`Run::poll`] until it says
//! [`Action::Wait`], carry out what it asked, feed every response back with
//! [`Run::handle`], and pass [`Input::Tick`] when the wait's deadline passes. The engine
//! never reads a clock; every input carries `now`, so tests run whole recipes in
//! simulated time.

mod backoff;
mod report;

pub use report::{CallError, CallReport, Failure, LayerReport, Outcome, RunError};

use crate::event::{CallId, Event, Place};
use crate::http::{self, HttpRequest};
use crate::message::{Message, prepend_system, validate_conversation};
use crate::provider::{self, ChatRequest, ProviderKind, ResponseParser, StreamItem};
use crate::recipe::{OnError, Recipe, ResolvedAgent, StrategySpec};
use crate::strategy::{Builtins, Decision, Proposal, Resolver, Strategy, StrategyInput, Synthesize};
use crate::time::{Time, millis};
use crate::usage::{Usage, add_cost};
use backoff::{Rng, backoff};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// Largest error body kept to explain a failed call.
const MAX_ERROR_BODY: usize = 64 << 10;

/// What the driver should do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send this request; feed its response back under `call`.
    Request {
        /// The call's id.
        call: CallId,
        /// What to send.
        http: HttpRequest,
    },
    /// Abort this call; anything still arriving for it is ignored.
    Cancel {
        /// The call's id.
        call: CallId,
    },
    /// Something happened; show it.
    Event(Event),
    /// Nothing to do until a response arrives or, if given, this time passes (then send
    /// [`Input::Tick`]).
    Wait(Option<Time>),
    /// The run is over. Polling again returns the same outcome.
    Done(Outcome),
}

/// What the driver reports back.
#[derive(Clone, Debug, PartialEq)]
pub enum Input<'a> {
    /// Optional: the request actually left. A transport that queues requests (to share
    /// a provider's concurrency cap across runs) sends this so that queueing counts
    /// toward neither the call's deadlines nor its latency.
    Sent {
        /// Which call.
        call: CallId,
        /// When.
        now: Time,
    },
    /// The response's status line and headers arrived.
    Head {
        /// Which call.
        call: CallId,
        /// HTTP status.
        status: u16,
        /// Response headers.
        headers: Vec<(String, String)>,
        /// When.
        now: Time,
    },
    /// More of the response body arrived, split anywhere.
    Body {
        /// Which call.
        call: CallId,
        /// The bytes.
        bytes: &'a [u8],
        /// When.
        now: Time,
    },
    /// The response body ended normally.
    End {
        /// Which call.
        call: CallId,
        /// When.
        now: Time,
    },
    /// The call failed in transport (refused, reset, TLS, CORS...).
    Failed {
        /// Which call.
        call: CallId,
        /// The transport's description.
        error: String,
        /// When.
        now: Time,
    },
    /// Time passed.
    Tick {
        /// Now.
        now: Time,
    },
}

impl Input<'_> {
    fn now(&self) -> Time {
        match self {
            Input::Sent { now, .. }
            | Input::Head { now, .. }
            | Input::Body { now, .. }
            | Input::End { now, .. }
            | Input::Failed { now, .. }
            | Input::Tick { now } => *now,
        }
    }
}

/// Options for [`Run::with_options`].
pub struct RunOptions<'a> {
    /// Seeds retry jitter; the same seed and inputs give the same run.
    pub seed: u64,
    /// API keys by provider name. Sent only to that provider, never put in events.
    pub keys: BTreeMap<String, String>,
    /// Makes the recipe's strategies; [`Builtins`] unless the host adds plugins.
    pub resolver: &'a dyn Resolver,
}

static BUILTINS: Builtins = Builtins;

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions { seed: 0, keys: BTreeMap::new(), resolver: &BUILTINS }
    }
}

/// One agent's progress through its attempts.
struct Slot {
    agent: ResolvedAgent,
    kind: ProviderKind,
    state: SlotState,
    attempts: u32,
    text: String,
    usage: Option<Usage>,
    errors: Vec<String>,
    latency: Option<Duration>,
    ttft: Option<Duration>,
    server_ms: Option<f64>,
}

enum SlotState {
    Queued { not_before: Time },
    InFlight(Box<Flight>),
    Succeeded,
    Failed,
}

struct Flight {
    call: CallId,
    started: Time,
    last_byte: Time,
    first_token: Option<Time>,
    response: Response,
}

enum Response {
    Waiting,
    Streaming(ResponseParser),
    Error { status: u16, body: Vec<u8>, retry_after: Option<Duration> },
}

/// A strategy and what to do if it fails.
struct Decider {
    strategy: Box<dyn Strategy>,
    on_error: OnError,
}

/// One run of a recipe on one conversation.
pub struct Run {
    recipe: Recipe,
    conversation: Vec<Message>,
    keys: BTreeMap<String, String>,
    /// `deciders[i]` feeds layer `i + 1`; the last one feeds the aggregator.
    deciders: Vec<Decider>,
    rng: Rng,
    started: Time,
    now: Time,
    layer: usize,
    input: Vec<Message>,
    slots: Vec<Slot>,
    reports: Vec<LayerReport>,
    in_flight: BTreeMap<String, u32>,
    calls: HashMap<CallId, usize>,
    next_call: u64,
    queue: VecDeque<Action>,
    usage: Usage,
    cost: Option<f64>,
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
        let synthesize = StrategySpec::builtin("synthesize");
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
            keys: options.keys,
            deciders,
            rng: Rng::new(options.seed),
            started: now,
            now,
            layer: 0,
            slots: Vec::new(),
            reports: Vec::new(),
            in_flight: BTreeMap::new(),
            calls: HashMap::new(),
            next_call: 0,
            queue: VecDeque::new(),
            usage: Usage::default(),
            cost: None,
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
            Input::Sent { call, now } => {
                if let Some((_, f)) = self.flight(call) {
                    f.started = now;
                    f.last_byte = now;
                }
            }
            Input::Head { call, status, headers, .. } => self.on_head(call, status, &headers),
            Input::Body { call, bytes, .. } => self.on_body(call, bytes),
            Input::End { call, .. } => self.on_end(call),
            Input::Failed { call, error, .. } => {
                if let Some(i) = self.calls.get(&call).copied() {
                    self.fail_attempt(i, CallError::Transport(error), None, false);
                }
            }
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
        let agents =
            if self.is_final_layer() { vec![self.recipe.aggregator_agent()] } else { self.recipe.layer_agents(layer) };
        let now = self.now;
        self.slots = agents
            .into_iter()
            .map(|agent| Slot {
                kind: self.recipe.providers[&agent.provider].kind,
                agent,
                state: SlotState::Queued { not_before: now },
                attempts: 0,
                text: String::new(),
                usage: None,
                errors: Vec::new(),
                latency: None,
                ttft: None,
                server_ms: None,
            })
            .collect();
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
        let call = CallId(self.next_call);
        self.next_call += 1;
        let slot = &mut self.slots[i];
        slot.attempts += 1;
        slot.text.clear();
        slot.usage = None;
        slot.server_ms = None;
        let agent = &slot.agent;
        let mut messages = self.input.clone();
        if let Some(system) = &agent.system {
            prepend_system(&mut messages, system);
        }
        let req = ChatRequest {
            model: &agent.model,
            messages: &messages,
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
        };
        let provider = &self.recipe.providers[&agent.provider];
        let http = provider::build_request(
            provider.kind,
            &provider.base_url,
            self.keys.get(&agent.provider).map(String::as_str),
            &req,
        );
        let event = Event::CallStarted {
            at: Place { call, layer: self.layer, slot: i },
            agent: agent.label.clone(),
            provider: agent.provider.clone(),
            model: agent.model.clone(),
            attempt: slot.attempts,
            aggregator: self.layer == self.recipe.layers.len(),
            t_ms: millis(self.now.since(self.started)),
        };
        *self.in_flight.entry(agent.provider.clone()).or_default() += 1;
        slot.state = SlotState::InFlight(Box::new(Flight {
            call,
            started: self.now,
            last_byte: self.now,
            first_token: None,
            response: Response::Waiting,
        }));
        self.calls.insert(call, i);
        self.emit(event);
        self.queue.push_back(Action::Request { call, http });
    }

    /// The slot and flight of a call still in flight; `None` for stale input.
    fn flight(&mut self, call: CallId) -> Option<(usize, &mut Flight)> {
        let i = *self.calls.get(&call)?;
        match &mut self.slots[i].state {
            SlotState::InFlight(f) => Some((i, f)),
            _ => None,
        }
    }

    fn on_head(&mut self, call: CallId, status: u16, headers: &[(String, String)]) {
        let now = self.now;
        let Some(kind) = self.calls.get(&call).map(|&i| self.slots[i].kind) else { return };
        let Some((_, f)) = self.flight(call) else { return };
        f.last_byte = now;
        f.response = if (200..300).contains(&status) {
            Response::Streaming(ResponseParser::new(kind, http::header(headers, "content-type")))
        } else {
            Response::Error { status, body: Vec::new(), retry_after: http::retry_after(headers, now) }
        };
    }

    fn on_body(&mut self, call: CallId, bytes: &[u8]) {
        let now = self.now;
        let mut items = std::mem::take(&mut self.scratch);
        let result = match self.flight(call) {
            None => return self.scratch = items,
            Some((i, f)) => {
                f.last_byte = now;
                let r = match &mut f.response {
                    Response::Waiting => Err(CallError::Transport("body bytes before the response head".into())),
                    Response::Error { body, .. } => {
                        let room = MAX_ERROR_BODY.saturating_sub(body.len());
                        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                        Ok(())
                    }
                    Response::Streaming(parser) => parser.feed(bytes, &mut items).map_err(CallError::from),
                };
                (i, r)
            }
        };
        let (i, result) = result;
        self.apply_items(i, call, &mut items);
        self.scratch = items;
        if let Err(e) = result {
            self.fail_attempt(i, e, None, true);
        }
    }

    fn apply_items(&mut self, i: usize, call: CallId, items: &mut Vec<StreamItem>) {
        let now = self.now;
        for item in items.drain(..) {
            let slot = &mut self.slots[i];
            match item {
                StreamItem::Usage(u) => slot.usage = Some(u),
                StreamItem::ServerTime(ms) => slot.server_ms = Some(ms),
                StreamItem::Text(text) => {
                    if let SlotState::InFlight(f) = &mut slot.state {
                        f.first_token.get_or_insert(now);
                    }
                    slot.text.push_str(&text);
                    let at = Place { call, layer: self.layer, slot: i };
                    self.queue.push_back(Action::Event(Event::TextDelta { at, text }));
                }
            }
        }
    }

    fn on_end(&mut self, call: CallId) {
        let mut items = std::mem::take(&mut self.scratch);
        let (i, result) = match self.flight(call) {
            None => return self.scratch = items,
            Some((i, f)) => {
                let r = match &mut f.response {
                    Response::Waiting => {
                        Err((CallError::Transport("the connection closed before a response".into()), None))
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
            Ok(()) => self.succeed(i),
            Err((e, retry_after)) => self.fail_attempt(i, e, retry_after, false),
        }
    }

    /// Ends the attempt in flight on slot `i`, returning its flight.
    fn end_flight(&mut self, i: usize, next: SlotState) -> Option<Box<Flight>> {
        let slot = &mut self.slots[i];
        let SlotState::InFlight(flight) = std::mem::replace(&mut slot.state, next) else { return None };
        self.calls.remove(&flight.call);
        if let Some(n) = self.in_flight.get_mut(&slot.agent.provider) {
            *n = n.saturating_sub(1);
        }
        Some(flight)
    }

    fn price(&self, agent: &ResolvedAgent, usage: Option<Usage>) -> Option<f64> {
        let price = self.recipe.prices.get(&format!("{}:{}", agent.provider, agent.model))?;
        Some(price.cost(&usage?))
    }

    fn succeed(&mut self, i: usize) {
        let Some(flight) = self.end_flight(i, SlotState::Succeeded) else { return };
        let now = self.now;
        let slot = &mut self.slots[i];
        slot.latency = Some(now.since(flight.started));
        slot.ttft = flight.first_token.map(|t| t.since(flight.started));
        let event = Event::CallFinished {
            at: Place { call: flight.call, layer: self.layer, slot: i },
            agent: slot.agent.label.clone(),
            usage: slot.usage,
            cost: self.price(&self.slots[i].agent, self.slots[i].usage),
            latency_ms: millis(now.since(flight.started)),
            ttft_ms: self.slots[i].ttft.map(millis),
            server_ms: self.slots[i].server_ms,
            t_ms: self.t_ms(),
        };
        self.emit(event);
    }

    /// Records a failed attempt and either schedules a retry or gives the agent up.
    fn fail_attempt(&mut self, i: usize, error: CallError, retry_after: Option<Duration>, cancel: bool) {
        let Some(flight) = self.end_flight(i, SlotState::Failed) else { return };
        if cancel {
            self.queue.push_back(Action::Cancel { call: flight.call });
        }
        let policy = &self.recipe.policy;
        let mut message = error.to_string();
        let mut delay = None;
        if error.retryable() && self.slots[i].attempts <= policy.retries {
            match retry_after {
                Some(d) if d.as_secs_f64() > policy.max_retry_after_secs => {
                    message
                        .push_str(&format!(" (Retry-After {} s is over policy.max_retry_after_secs)", d.as_secs_f64()));
                }
                Some(d) => delay = Some(d),
                None => {
                    let (base, max) = (policy.backoff_secs, policy.max_backoff_secs);
                    delay = Some(backoff(&mut self.rng, self.slots[i].attempts, base, max));
                }
            }
        }
        let slot = &mut self.slots[i];
        slot.errors.push(message.clone());
        if let Some(d) = delay {
            slot.state = SlotState::Queued { not_before: self.now + d };
        }
        let event = Event::CallFailed {
            at: Place { call: flight.call, layer: self.layer, slot: i },
            agent: slot.agent.label.clone(),
            error: message,
            will_retry: delay.is_some(),
            retry_in_ms: delay.map(millis),
            t_ms: self.t_ms(),
        };
        self.emit(event);
    }

    fn check_timers(&mut self) {
        let policy = &self.recipe.policy;
        let (timeout, stall) = (policy.timeout_secs, policy.stall_timeout_secs);
        for i in 0..self.slots.len() {
            let SlotState::InFlight(f) = &self.slots[i].state else { continue };
            let error = if self.now >= f.started + Duration::from_secs_f64(timeout) {
                CallError::Timeout(timeout)
            } else if self.now >= f.last_byte + Duration::from_secs_f64(stall) {
                CallError::Stalled(stall)
            } else {
                continue;
            };
            self.fail_attempt(i, error, None, true);
        }
    }

    fn next_deadline(&self) -> Option<Time> {
        let policy = &self.recipe.policy;
        let timeout = Duration::from_secs_f64(policy.timeout_secs);
        let stall = Duration::from_secs_f64(policy.stall_timeout_secs);
        self.slots
            .iter()
            .filter_map(|s| match &s.state {
                SlotState::InFlight(f) => Some((f.started + timeout).min(f.last_byte + stall)),
                SlotState::Queued { not_before } if *not_before > self.now => Some(*not_before),
                _ => None,
            })
            .min()
    }

    /// Closes the current layer's books; returns its proposals.
    fn report_layer(&mut self) -> Vec<Proposal> {
        let mut report = LayerReport {
            layer: self.layer,
            aggregator: self.is_final_layer(),
            calls: Vec::new(),
            usage: Usage::default(),
            cost: None,
        };
        let mut proposals = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let ok = matches!(s.state, SlotState::Succeeded);
            let cost = if ok { self.price(&s.agent, s.usage) } else { None };
            if ok {
                report.usage += s.usage.unwrap_or_default();
                add_cost(&mut report.cost, cost);
                proposals.push(Proposal {
                    agent: s.agent.label.clone(),
                    model: s.agent.model.clone(),
                    text: s.text.trim().to_owned(),
                    usage: s.usage,
                    latency_ms: s.latency.map(millis).unwrap_or(0.0),
                });
            }
            report.calls.push(CallReport {
                slot: i,
                agent: s.agent.label.clone(),
                provider: s.agent.provider.clone(),
                model: s.agent.model.clone(),
                ok,
                text: if ok { s.text.trim().to_owned() } else { String::new() },
                errors: s.errors.clone(),
                attempts: s.attempts,
                usage: if ok { s.usage } else { None },
                cost,
                latency_ms: s.latency.map(millis),
                ttft_ms: s.ttft.map(millis),
                server_ms: if ok { s.server_ms } else { None },
            });
        }
        self.usage += report.usage;
        add_cost(&mut self.cost, report.cost);
        self.emit(Event::LayerFinished {
            layer: self.layer,
            succeeded: proposals.len(),
            failed: self.slots.len() - proposals.len(),
            usage: report.usage,
            cost: report.cost,
            t_ms: self.t_ms(),
        });
        self.reports.push(report);
        proposals
    }

    fn finish_layer(&mut self) {
        let proposals = self.report_layer();
        let failures: Vec<Failure> = self
            .slots
            .iter()
            .filter(|s| matches!(s.state, SlotState::Failed))
            .map(|s| Failure { agent: s.agent.label.clone(), error: s.errors.last().cloned().unwrap_or_default() })
            .collect();
        if self.is_final_layer() {
            let label = self.slots[0].agent.label.clone();
            return match proposals.is_empty() {
                true => self.finish(
                    Err(RunError::TooFewSuccesses { what: "the aggregator".into(), succeeded: 0, needed: 1, failures }),
                    None,
                ),
                // The answer is what was streamed, untrimmed, so it equals the deltas.
                false => {
                    let text = self.slots[0].text.clone();
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
        let next = self.layer + 1;
        let input = StrategyInput {
            conversation: &self.conversation,
            layer: next,
            layer_count: self.recipe.layers.len(),
            proposals: &proposals,
        };
        let decider = &mut self.deciders[self.layer];
        let name = decider.strategy.name().to_owned();
        let decision = match decider.strategy.decide(&input) {
            Ok(d) => Ok(d),
            Err(e) if decider.on_error == OnError::Synthesize => {
                let fallback = Synthesize.decide(&input);
                self.emit(Event::StrategyFailed {
                    layer: next,
                    strategy: name.clone(),
                    error: e.to_string(),
                    fallback: true,
                });
                fallback
            }
            Err(e) => {
                self.emit(Event::StrategyFailed {
                    layer: next,
                    strategy: name.clone(),
                    error: e.to_string(),
                    fallback: false,
                });
                Err(e)
            }
        };
        match decision {
            Ok(Decision::Messages(messages)) => {
                self.input = messages;
                self.begin_layer(next);
            }
            Ok(Decision::Final(text)) => self.finish(Ok(text), Some(name)),
            Err(e) => self.finish(Err(RunError::Strategy(e)), None),
        }
    }

    fn finish(&mut self, result: Result<String, RunError>, decided_by: Option<String>) {
        // A run that ends mid-layer (cancelled) still accounts for that layer.
        let open = self.slots.iter().any(|s| matches!(s.state, SlotState::InFlight(_) | SlotState::Queued { .. }));
        if open {
            for i in 0..self.slots.len() {
                if let Some(f) = self.end_flight(i, SlotState::Failed) {
                    self.queue.push_back(Action::Cancel { call: f.call });
                    let error = CallError::Cancelled.to_string();
                    self.slots[i].errors.push(error.clone());
                    let at = Place { call: f.call, layer: self.layer, slot: i };
                    let agent = self.slots[i].agent.label.clone();
                    let t_ms = self.t_ms();
                    self.emit(Event::CallFailed { at, agent, error, will_retry: false, retry_in_ms: None, t_ms });
                } else if matches!(self.slots[i].state, SlotState::Queued { .. }) {
                    self.slots[i].state = SlotState::Failed;
                    self.slots[i].errors.push(CallError::Cancelled.to_string());
                }
            }
            self.report_layer();
        }
        let wall_ms = self.t_ms();
        let (answer, error) = match result {
            Ok(text) => {
                self.emit(Event::Final {
                    text: text.clone(),
                    decided_by: decided_by.clone().unwrap_or_default(),
                    usage: self.usage,
                    cost: self.cost,
                    wall_ms,
                });
                (Some(text), None)
            }
            Err(e) => {
                self.emit(Event::RunFailed { error: e.to_string(), t_ms: wall_ms });
                (None, Some(e))
            }
        };
        self.outcome = Some(Outcome {
            answer,
            error,
            decided_by,
            layers: std::mem::take(&mut self.reports),
            usage: self.usage,
            cost: self.cost,
            wall_ms,
        });
    }
}
