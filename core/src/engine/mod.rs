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
mod call;

mod caps;
mod deciding;
mod error;
mod fit;
mod layer;
mod phase;
pub mod redact;
mod report;
mod response;
mod stair;
mod stop;
mod timers;
mod tooling;

pub use api::{Action, Input, RunOptions};
pub use error::{CallError, ErrorKind, NetError};
pub use report::{CallReport, Failure, LayerReport, Outcome, RunError};
pub use tooling::{Rejection, tool_majority};

use crate::event::{CallId, Event, Place};
use crate::message::{Message, validate_conversation};
use crate::provider::StreamItem;
use crate::recipe::{OnError, Recipe, StrategySpec};
use crate::strategy::{Strategy, StrategyKind};
use crate::time::{Time, millis};
use crate::usage::Usage;
use attempt::{Slot, SlotId, SlotState, Slots};
use phase::{LayerPhase, Phase};
use redact::Redactor;
use std::collections::VecDeque;
use std::time::Duration;
use timers::{Timer, TimerTable};

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
    keys: crate::named::Named<String>,
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
    slots: Slots,
    reports: Vec<LayerReport>,
    /// Calls holding each provider's slots.
    caps: caps::Caps,
    /// Which slot each call in flight belongs to. (A list: a layer has few calls in
    /// flight, and a hash map type costs the browser module 4 KB.)
    calls: Vec<(CallId, SlotId)>,
    /// Calls whose answer is complete but whose body has not ended (by their
    /// [`Timer::Drain`], or they are cancelled), and their provider, whose concurrency
    /// slot they hold until then (the connection is still open).
    /// (A list: there are only ever a few, and a map type would cost the browser module.)
    draining: Vec<(CallId, String)>,
    /// Every deadline the run keeps.
    timers: TimerTable,
    /// Why the aggregator's model stopped, once it has.
    finish_reason: Option<String>,
    /// When the first text of the answer arrived (see [`Outcome::ttft_ms`]).
    answer_first_token: Option<Time>,
    /// The run's seed, for strategies' seeded choices.
    seed: u64,
    /// The texts of the proposals the current calls' messages were made from: what
    /// [`fit`] may shorten.
    references: Vec<String>,
    next_call: u64,
    /// The last decision id handed to the driver ([`Action::Decide`]).
    next_decision: u64,
    queue: VecDeque<Action>,
    usage: Usage,
    cost: Option<f64>,
    wasted: Usage,
    /// The tools and the answer's format, checked.
    toolbox: tooling::Toolbox,
    /// The calls the answer makes, once decided.
    answer_calls: Vec<crate::vocab::tools::ToolCall>,
    /// Where the run is.
    phase: Phase,
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
        let toolbox = tooling::Toolbox::new(options.tools, options.response_format)?;
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
            slots: Slots::default(),
            reports: Vec::new(),
            caps: caps::Caps::default(),
            calls: Vec::new(),
            draining: Vec::new(),
            timers: TimerTable::default(),
            finish_reason: None,
            answer_first_token: None,
            seed: options.seed,
            references: Vec::new(),
            next_call: 0,
            next_decision: 0,
            queue: VecDeque::new(),
            usage: Usage::default(),
            cost: None,
            wasted: Usage::default(),
            toolbox,
            answer_calls: Vec::new(),
            phase: Phase::Layer(LayerPhase::default()),
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
        match &self.phase {
            Phase::Done(o) => Action::Done(o.clone()),
            _ => Action::Wait(self.next_deadline()),
        }
    }

    /// Feeds back what happened. Input for an unknown or cancelled call is ignored.
    pub fn handle(&mut self, input: Input<'_>) {
        self.now = self.now.max(input.now());
        if self.is_done() {
            return;
        }
        match input {
            Input::Sent { call, .. } => {
                // The run's clock, never the input's own: a late `Sent` must not move a
                // call's start back before what the engine has already seen.
                let now = self.now;
                if let Some((_, f)) = self.flight(call) {
                    f.started = now;
                    f.clocks_running = true;
                    self.arm_call(call);
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
            Input::Decided { decision, answer, .. } => self.on_decided(decision, answer),
            Input::Tick { .. } => {}
        }
        self.check_timers();
        self.step();
    }

    /// Cancels the run: every call in flight is cancelled and the run ends with
    /// [`RunError::Cancelled`].
    pub fn cancel(&mut self, now: Time) {
        self.now = self.now.max(now);
        if !self.is_done() {
            self.finish(Err(RunError::Cancelled), None);
        }
    }

    /// Whether the run is over.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done(_))
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
        self.phase = Phase::Layer(LayerPhase::default());
        self.timers.new_layer();
        let agents =
            if self.is_final_layer() { vec![self.recipe.aggregator_agent()] } else { self.recipe.layer_agents(layer) };
        let slots = agents
            .into_iter()
            .map(|agent| {
                let kind = self.recipe.providers[&agent.provider].kind;
                Slot::new(agent, kind)
            })
            .collect();
        self.slots = Slots::agents(slots);
        self.stair_begin();
    }

    /// Starts what may start, and moves to the next layer whenever one completes.
    fn step(&mut self) {
        while !self.is_done() {
            // Nothing runs while the driver decides.
            if matches!(self.phase, Phase::Deciding(..)) {
                return;
            }
            for i in self.slots.ids() {
                if matches!(self.slots[i].state, SlotState::Queued) && self.has_capacity(&self.slots[i].agent.provider)
                {
                    self.start(i);
                }
            }
            // A grace of 0 ends at once, before any input comes to check the timers.
            if self.timers.get(Timer::QuorumGrace).is_some_and(|at| at <= self.now) {
                self.timers.stop(Timer::QuorumGrace);
                self.stop_open(CallError::Cut("the layer had its quorum"));
            }
            self.stair_check();
            if !self.slots.all().all(|s| matches!(s.state, SlotState::Succeeded | SlotState::Failed)) {
                return;
            }
            self.finish_layer();
        }
    }

    fn has_capacity(&self, provider: &str) -> bool {
        self.caps.has_room(
            provider,
            self.recipe.providers[provider].max_concurrency,
            self.recipe.policy.max_concurrency,
        )
    }

    fn finish(&mut self, result: Result<String, RunError>, decided_by: Option<String>) {
        let result = self.check_decided(result, decided_by.as_deref());
        // A run that ends mid-layer (cancelled) still accounts for that layer, and ends
        // every state a UI may show: calls in flight fail as cancelled, agents waiting
        // to retry are stopped.
        let open = self
            .slots
            .all()
            .any(|s| matches!(s.state, SlotState::InFlight(_) | SlotState::Queued | SlotState::Waiting));
        if open {
            self.stop_open(CallError::Cancelled);
            match self.asking().map(|a| a.slot) {
                // A strategy's call belongs to the layer it judges, already reported.
                Some(place) => drop(self.book_ask(place)),
                None => drop(self.report_layer()),
            }
        }
        self.stair_close_books();
        for (call, _) in std::mem::take(&mut self.draining) {
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
                tool_calls: self.answer_calls.clone(),
            }),
            Err(e) => self.emit(Event::RunFailed { error: e.to_string(), t_ms: wall_ms }),
        }
        let tool_calls = if result.is_ok() { std::mem::take(&mut self.answer_calls) } else { Vec::new() };
        self.phase = Phase::Done(Outcome {
            answer: result,
            decided_by,
            layers: std::mem::take(&mut self.reports),
            usage: self.usage,
            cost: self.cost,
            wasted: self.wasted,
            finish_reason: self.finish_reason.clone(),
            wall_ms,
            ttft_ms,
            tool_calls,
        });
    }
}
