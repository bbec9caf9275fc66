//! One agent's attempts: its slot in a layer, and the attempt on the wire.

use super::ErrorKind;
use super::redact::StreamRedactor;
use super::stop::StopFilter;
use super::tooling::Offer;
use crate::event::CallId;
use crate::message::Message;
use crate::provider::ToolCallBuffer;
use crate::provider::{ProviderKind, ResponseParser};
use crate::recipe::ResolvedAgent;
use crate::time::Time;
use crate::usage::Usage;
use crate::vocab::tools::ToolCall;
use std::time::Duration;

/// One agent's progress through its attempts.
pub(super) struct Slot {
    pub(super) agent: ResolvedAgent,
    pub(super) kind: ProviderKind,
    pub(super) state: SlotState,
    pub(super) attempts: u32,
    /// The current attempt's streamed text.
    pub(super) text: String,
    /// The current attempt's usage, as reported so far.
    pub(super) usage: Option<Usage>,
    pub(super) errors: Vec<String>,
    pub(super) latency: Option<Duration>,
    pub(super) ttft: Option<Duration>,
    /// When its last attempt started.
    pub(super) started: Option<Time>,
    pub(super) server_ms: Option<f64>,
    /// Why the current attempt's model stopped, as the provider said (or `stop` when
    /// the engine cut it at a stop sequence).
    pub(super) finish: Option<String>,
    /// The current attempt's stop-sequence filter.
    pub(super) stop: StopFilter,
    /// Keeps keys out of the current attempt's streamed text.
    pub(super) redact: StreamRedactor,
    /// Tokens of attempts that failed or were cancelled.
    pub(super) wasted: Usage,
    /// The kind of its last error, with the HTTP status if it had one.
    pub(super) last_error: Option<(ErrorKind, Option<u16>)>,
    /// What the current attempt was offered of the run's tools.
    pub(super) offer: Offer,
    /// The current attempt's tool calls, as they stream.
    pub(super) tool_buffer: ToolCallBuffer,
    /// The calls of its accepted answer.
    pub(super) calls: Vec<ToolCall>,
    /// Its text is held back until its answer is checked (it writes the final answer,
    /// and the run has tools or a format): what was delivered cannot be refused.
    pub(super) hold: bool,
    /// Why its last answer was refused, as messages appended to its retry.
    pub(super) correction: Vec<Message>,
}

pub(super) enum SlotState {
    /// Ready: it starts when its provider has room.
    Queued,
    /// Waiting out a retry's delay ([`super::timers::Timer::Retry`]).
    Waiting,
    InFlight(Box<Flight>),
    Succeeded,
    Failed,
}

/// One attempt on the wire.
pub(super) struct Flight {
    pub(super) call: CallId,
    /// When its clocks started: when it was asked for, or when it was sent.
    pub(super) started: Time,
    /// Its deadlines run (false while it waits in a transport's queue).
    pub(super) clocks_running: bool,
    /// The provider accepted it (a 2xx head): its prompt is being processed.
    pub(super) accepted: bool,
    /// Characters of prompt sent, for estimates when no usage comes back.
    pub(super) prompt_chars: usize,
    pub(super) first_token: Option<Time>,
    pub(super) response: Response,
}

pub(super) enum Response {
    Waiting,
    Streaming(ResponseParser),
    Error { status: u16, body: Vec<u8>, retry_after: Option<Duration> },
}

/// Which slot a call belongs to: one of the phase's agents, by index, or the
/// aggregator's staircase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SlotId {
    /// The layer's agent (or the aggregator, or a strategy's call) at this index.
    Agent(usize),
    /// The aggregator's staircase, beside the last proposer layer's agents.
    Stair,
}

/// The current phase's slots: its agents, and while a staircase recipe's last proposer
/// layer runs, the aggregator's stair slot beside them (never among them).
#[derive(Default)]
pub(super) struct Slots {
    /// The layer's agents (the aggregator, in its layer; a strategy's call, asking).
    pub(super) agents: Vec<Slot>,
    /// The staircase's slot.
    pub(super) stair: Option<Slot>,
}

impl Slots {
    /// The agents' slots, and no stair.
    pub(super) fn agents(agents: Vec<Slot>) -> Slots {
        Slots { agents, stair: None }
    }

    /// Every slot's id: the agents in order, then the stair.
    pub(super) fn ids(&self) -> impl Iterator<Item = SlotId> + use<> {
        (0..self.agents.len()).map(SlotId::Agent).chain(self.stair.is_some().then_some(SlotId::Stair))
    }

    /// Every slot.
    pub(super) fn all(&self) -> impl Iterator<Item = &Slot> {
        self.agents.iter().chain(self.stair.as_ref())
    }
}

impl std::ops::Index<SlotId> for Slots {
    type Output = Slot;
    fn index(&self, id: SlotId) -> &Slot {
        match id {
            SlotId::Agent(i) => &self.agents[i],
            SlotId::Stair => self.stair.as_ref().expect("a stair call outlives its slot"),
        }
    }
}

impl std::ops::IndexMut<SlotId> for Slots {
    fn index_mut(&mut self, id: SlotId) -> &mut Slot {
        match id {
            SlotId::Agent(i) => &mut self.agents[i],
            SlotId::Stair => self.stair.as_mut().expect("a stair call outlives its slot"),
        }
    }
}

impl Slot {
    /// A slot for `agent`, queued.
    pub(super) fn new(agent: ResolvedAgent, kind: ProviderKind) -> Slot {
        Slot {
            kind,
            agent,
            state: SlotState::Queued,
            attempts: 0,
            text: String::new(),
            usage: None,
            errors: Vec::new(),
            latency: None,
            ttft: None,
            started: None,
            server_ms: None,
            finish: None,
            stop: StopFilter::default(),
            redact: StreamRedactor::default(),
            wasted: Usage::default(),
            last_error: None,
            offer: Offer::Plain,
            tool_buffer: ToolCallBuffer::default(),
            calls: Vec::new(),
            hold: false,
            correction: Vec::new(),
        }
    }
}

impl Slot {
    /// What its attempt in `flight`, which did not succeed, consumed: the provider's
    /// count where it sent one (raised to what was visibly streamed, since a count sent
    /// early, like Anthropic's `message_start`, lags the text), else an estimate; nothing
    /// when the provider refused the request.
    pub(super) fn failed_usage(&self, flight: &Flight) -> Usage {
        let estimate = Usage::estimate(flight.accepted.then_some(flight.prompt_chars), &self.text);
        match self.usage {
            Some(u) if u.output_tokens >= estimate.output_tokens => u,
            Some(u) => Usage { output_tokens: estimate.output_tokens, estimated: true, ..u },
            None if estimate.is_zero() => Usage::default(),
            None => estimate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Sampling;

    fn slot(text: &str, usage: Option<Usage>) -> Slot {
        let agent = ResolvedAgent {
            label: "p:m".into(),
            provider: "p".into(),
            model: "m".into(),
            temperature: 0.7,
            max_tokens: 100,
            system: None,
            sampling: Sampling::default(),
            context_tokens: None,
        };
        Slot { text: text.into(), usage, ..Slot::new(agent, ProviderKind::OpenAi) }
    }

    fn flight(accepted: bool) -> Flight {
        Flight {
            call: CallId(1),
            started: Time::from_millis(0),
            clocks_running: true,
            accepted,
            prompt_chars: 400,
            first_token: None,
            response: Response::Waiting,
        }
    }

    #[test]
    fn a_failed_attempt_costs_what_the_provider_counted_or_an_estimate_never_less_than_shown() {
        let reported = Usage { input_tokens: 90, output_tokens: 9, estimated: false };
        // The provider's count, when it covers what was streamed.
        assert_eq!(slot("12345678", Some(reported)).failed_usage(&flight(true)), reported);
        // A count sent early lags the text: raised to the streamed text, and marked.
        let lagging = slot(&"x".repeat(80), Some(reported)).failed_usage(&flight(true));
        assert_eq!((lagging.input_tokens, lagging.output_tokens, lagging.estimated), (90, 20, true));
        // No count: the prompt (it was accepted) and the text, estimated.
        let estimated = slot("12345678", None).failed_usage(&flight(true));
        assert_eq!((estimated.input_tokens, estimated.output_tokens, estimated.estimated), (100, 2, true));
        // Refused (no 2xx) and nothing streamed: it consumed nothing.
        assert_eq!(slot("", None).failed_usage(&flight(false)), Usage::default());
    }

    #[test]
    fn the_stair_slot_stands_beside_the_agents_never_among_them() {
        let mut slots = Slots::agents(vec![slot("a", None), slot("b", None)]);
        assert_eq!(slots.ids().collect::<Vec<_>>(), [SlotId::Agent(0), SlotId::Agent(1)]);
        slots.stair = Some(slot("step", None));
        assert_eq!(slots.ids().collect::<Vec<_>>(), [SlotId::Agent(0), SlotId::Agent(1), SlotId::Stair]);
        assert_eq!(slots.agents.len(), 2, "the layer's agents are still two");
        assert_eq!(slots[SlotId::Stair].text, "step");
        slots[SlotId::Agent(1)].text.push('!');
        let texts: Vec<&str> = slots.all().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["a", "b!", "step"]);
    }
}
