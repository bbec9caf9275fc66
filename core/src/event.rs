//! What a run reports as it goes: the same typed events for the command line (JSON
//! lines), the web page and JavaScript callbacks.

use crate::usage::Usage;
use crate::vocab::failure::ErrorKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one HTTP call (one attempt of one agent) within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call {}", self.0)
    }
}

/// Where a call sits in the run: its layer (the aggregator's is the number of proposer
/// layers) and its agent's index within that layer, samples counted one by one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Place {
    /// The call's id; a retry gets a new one.
    pub call: CallId,
    /// The layer.
    pub layer: usize,
    /// The agent's index in the layer.
    pub slot: usize,
}

/// One thing that happened in a run. Times (`t_ms`) are milliseconds since the run began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
#[cfg_attr(test, ts(rename = "MoaEvent"))]
pub enum Event {
    /// The run began.
    RunStarted {
        /// The recipe's name.
        recipe: String,
        /// Proposer layers.
        layers: usize,
        /// Calls the run makes if nothing fails or stops early
        /// ([`Recipe::call_count`](crate::Recipe::call_count)).
        planned_calls: usize,
    },
    /// A call was asked of the transport (`attempt` > 1 for a retry): the
    /// [`Action::Request`](crate::Action::Request) that follows. It may wait in the
    /// transport's queue before it is sent ([`Input::Sent`](crate::Input::Sent)).
    CallStarted {
        /// Which call.
        #[serde(flatten)]
        at: Place,
        /// The agent's display name.
        agent: String,
        /// The provider's name in the recipe.
        provider: String,
        /// The model.
        model: String,
        /// 1 for the first try.
        attempt: u32,
        /// Whether this is the final aggregator.
        aggregator: bool,
        /// When.
        t_ms: f64,
    },
    /// Generated text arrived.
    TextDelta {
        /// Which call.
        #[serde(flatten)]
        at: Place,
        /// The new text.
        text: String,
    },
    /// A call succeeded.
    CallFinished {
        /// Which call.
        #[serde(flatten)]
        at: Place,
        /// The agent's display name.
        agent: String,
        /// Tokens as the provider reported them, or an estimate (marked `estimated`) when
        /// the engine cut the answer at a stop sequence before the provider sent any.
        usage: Option<Usage>,
        /// Dollars, when the recipe prices the model.
        cost: Option<f64>,
        /// Start of this attempt to its last byte.
        latency_ms: f64,
        /// Start of this attempt to its first text.
        ttft_ms: Option<f64>,
        /// The server's own processing time, where it reports one (llama.cpp).
        server_ms: Option<f64>,
        /// Why the model stopped, in OpenAI's words (`stop`, `length`, ...), when the
        /// provider said; `stop` when the engine cut it at one of its stop sequences.
        finish_reason: Option<String>,
        /// When.
        t_ms: f64,
    },
    /// A call failed.
    CallFailed {
        /// Which call.
        #[serde(flatten)]
        at: Place,
        /// The agent's display name.
        agent: String,
        /// What went wrong.
        error: String,
        /// Its kind: what a front end switches on (a `cut` proposal is not a broken one).
        kind: ErrorKind,
        /// Whether the agent will be tried again.
        will_retry: bool,
        /// After how long, when it will.
        retry_in_ms: Option<f64>,
        /// Characters of text this attempt had streamed in [`Event::TextDelta`]s, all of
        /// which are now void: a consumer that showed them must take them back (a retry
        /// streams its answer from the start). 0 when it streamed nothing.
        discarded_chars: usize,
        /// Tokens the attempt consumed anyway: the provider's count when it sent one,
        /// else an estimate (marked `estimated`); zero when the provider refused it.
        usage: Usage,
        /// Their cost in dollars, when priced.
        cost: Option<f64>,
        /// When.
        t_ms: f64,
    },
    /// An agent that had made an attempt and was waiting (to retry, or for a free slot)
    /// was stopped before its next one began: the run was cancelled or ended
    /// (`cancelled`), or its layer went on without it (`cut`: its quorum was met, or its
    /// agents agreed). Ends the "retrying" state a UI shows after a [`Event::CallFailed`]
    /// with `will_retry`.
    AgentStopped {
        /// The layer.
        layer: usize,
        /// The agent's index in the layer.
        slot: usize,
        /// The agent's display name.
        agent: String,
        /// Why: `cancelled` or `cut`.
        reason: ErrorKind,
        /// When.
        t_ms: f64,
    },
    /// A strategy could not decide.
    StrategyFailed {
        /// The layer it was deciding for.
        layer: usize,
        /// The strategy's name or plugin path.
        strategy: String,
        /// Why.
        error: String,
        /// Whether `synthesize` decided instead.
        fallback: bool,
    },
    /// What a strategy chose and why, when it says (a judge's pick, a seeded fallback
    /// after an unreadable verdict, an early end of the debate).
    StrategyNote {
        /// The layer it was deciding for.
        layer: usize,
        /// The strategy's name.
        strategy: String,
        /// What it chose, and why.
        note: String,
    },
    /// A call's references were shortened to fit its agent's context window.
    ReferencesTrimmed {
        /// The call.
        #[serde(flatten)]
        at: Place,
        /// Its agent's context window, in tokens.
        window: u32,
        /// The prompt's estimated tokens before and after.
        before: usize,
        /// After.
        after: usize,
        /// References shortened (every one found in the prompt).
        references: usize,
        /// The share of each reference kept, 0..1.
        kept: f64,
    },
    /// Every agent of a layer finished or failed.
    LayerFinished {
        /// The layer.
        layer: usize,
        /// Agents that succeeded.
        succeeded: usize,
        /// Agents that failed after their retries.
        failed: usize,
        /// Tokens of every attempt of the layer: successful, failed, retried, cancelled.
        usage: Usage,
        /// Dollars, when priced, for the same.
        cost: Option<f64>,
        /// The part of `usage` spent on attempts that failed or were cancelled.
        wasted: Usage,
        /// When.
        t_ms: f64,
    },
    /// The final answer.
    Final {
        /// The whole answer.
        text: String,
        /// What decided it ([`Outcome::decided_by`](crate::Outcome::decided_by)).
        decided_by: String,
        /// Tokens over every attempt of every call of the run, failed ones included.
        usage: Usage,
        /// Dollars, when priced, for the same.
        cost: Option<f64>,
        /// The part of `usage` spent on attempts that failed or were cancelled.
        wasted: Usage,
        /// The run's wall time.
        wall_ms: f64,
        /// Time to first token of the answer ([`Outcome::ttft_ms`](crate::Outcome::ttft_ms)).
        ttft_ms: Option<f64>,
        /// The tools the answer calls ([`Outcome::tool_calls`](crate::Outcome::tool_calls)).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[cfg_attr(test, ts(optional, as = "Option<Vec<crate::vocab::tools::ToolCall>>"))]
        tool_calls: Vec<crate::vocab::tools::ToolCall>,
    },
    /// The run ended without an answer.
    RunFailed {
        /// Why.
        error: String,
        /// When.
        t_ms: f64,
    },
}
