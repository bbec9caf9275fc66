//! What a driver exchanges with [`super::Run`]: the actions it is asked to carry out, the
//! inputs it feeds back, and the options a run starts with.

use crate::event::{CallId, Event};
use crate::http::HttpRequest;
use crate::named::Named;
use crate::strategy::plugin::PluginRequest;
use crate::strategy::{Builtins, Resolver};
use crate::time::Time;
use crate::vocab::tools::{ResponseFormat, Tools};

use super::Outcome;
use super::deciding::DecisionId;

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
    /// Run this plugin's decision and feed back [`Input::Decided`] (only for strategies
    /// the driver runs itself, [`crate::strategy::plugin::External`]: a plugin in the
    /// browser's Worker). The run waits for it; nothing else happens meanwhile.
    Decide {
        /// The decision's id.
        decision: DecisionId,
        /// What to run, and under which caps.
        request: PluginRequest,
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
    /// The request actually left. A transport that queues requests (to share a provider's
    /// concurrency cap across runs) sends this when a request leaves the queue; with
    /// [`RunOptions::reports_sent`] the call's deadlines start only then, so waiting in
    /// the queue is never mistaken for a stall.
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
    /// The call failed in transport (refused, reset, DNS, TLS, CORS...). Retried by
    /// policy, except a refused connection to this machine's own address (a local server
    /// that is not running will not start by itself).
    Failed {
        /// Which call.
        call: CallId,
        /// What failed, told from the HTTP library's own error (not its message).
        kind: super::NetError,
        /// The transport's description.
        error: String,
        /// When.
        now: Time,
    },
    /// The transport could not make the request at all (its URL or a header value is
    /// not acceptable to the HTTP library). Trying again cannot help: never retried.
    Invalid {
        /// Which call.
        call: CallId,
        /// The transport's description.
        error: String,
        /// When.
        now: Time,
    },
    /// The answer to [`Action::Decide`]: the plugin's reply in the
    /// [`crate::strategy::plugin::wire`] format, or why running it failed (it ran past
    /// its deadline, over its memory or output cap, trapped). The engine checks the
    /// reply; a failure is the strategy's, handled as its `on_error` says.
    Decided {
        /// Which decision.
        decision: DecisionId,
        /// The reply, or why there is none.
        answer: Result<&'a str, &'a str>,
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
    pub(super) fn now(&self) -> Time {
        match self {
            Input::Sent { now, .. }
            | Input::Head { now, .. }
            | Input::Body { now, .. }
            | Input::End { now, .. }
            | Input::Failed { now, .. }
            | Input::Invalid { now, .. }
            | Input::Decided { now, .. }
            | Input::Tick { now } => *now,
        }
    }
}

/// Options for [`super::Run::with_options`].
pub struct RunOptions<'a> {
    /// Seeds retry jitter; the same seed and inputs give the same run.
    pub seed: u64,
    /// API keys by provider name. Sent only to that provider, never put in events.
    pub keys: Named<String>,
    /// Makes the recipe's strategies; [`Builtins`] unless the host adds plugins.
    pub resolver: &'a dyn Resolver,
    /// The transport reports [`Input::Sent`] for every request it sends. Each call's
    /// `timeout_secs` and `stall_timeout_secs` then run from that moment, not from when
    /// the engine asked for it, so a request waiting in the transport's queue (a provider
    /// cap shared by many runs) cannot time out or "stall" before it is sent.
    pub reports_sent: bool,
    /// The driver delivers the aggregator's text where it cannot be taken back (a pipe,
    /// a streamed HTTP response). Then, once any of an aggregator attempt's text was
    /// delivered, a failure of that attempt ends the run ([`super::RunError::AnswerBroken`])
    /// instead of retrying, which would append a second answer to the first one's start.
    /// Drivers that can take text back (a terminal that redraws, a page, a result built
    /// from the whole outcome) leave this off and reset on [`Event::CallFailed`]'s
    /// `discarded_chars`.
    pub irrevocable_answer: bool,
    /// The calls go through the providers' batch APIs: costs are at each price's `batch`
    /// share.
    pub batch_prices: bool,
    /// Tools the answer may call, with the choice and parallel setting (the recipe's
    /// `tool_policy` says how the mixture uses them).
    pub tools: Option<Tools>,
    /// The shape the final answer must have; checked before it is the answer.
    pub response_format: ResponseFormat,
}

static BUILTINS: Builtins = Builtins;

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            seed: 0,
            keys: Named::new(),
            resolver: &BUILTINS,
            reports_sent: false,
            irrevocable_answer: false,
            batch_prices: false,
            tools: None,
            response_format: ResponseFormat::Text,
        }
    }
}
