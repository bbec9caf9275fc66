//! What a run ends with: the answer or the error, and the accounts of every call.

use crate::recipe::RecipeError;
use crate::strategy::StrategyError;
use crate::usage::Usage;
use crate::vocab::failure::{ErrorKind, summary};
use serde::{Deserialize, Serialize, Serializer};
use thiserror::Error;

/// One agent that failed, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The agent's display name.
    pub agent: String,
    /// Its last error.
    pub error: String,
    /// The kind of that error.
    pub kind: ErrorKind,
    /// The HTTP status, when the provider answered with one.
    pub status: Option<u16>,
}

impl Failure {
    /// The kind in a few words (`HTTP 503`, `timeout`): nothing a provider wrote, no
    /// address. What a server may tell its clients.
    pub fn summary(&self) -> String {
        summary(self.kind, self.status)
    }
}

/// Why a run ended without an answer.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum RunError {
    /// The recipe is unusable.
    #[error("{0}")]
    Recipe(#[from] RecipeError),
    /// The conversation cannot be answered.
    #[error("{0}")]
    Conversation(String),
    /// A provider needs a key and none was given.
    #[error("provider {} needs an API key: set {env} (or pass it at run time)", crate::quote::Quoted(provider))]
    MissingKey {
        /// The provider's name.
        provider: String,
        /// The environment variable the recipe names.
        env: String,
    },
    /// A strategy could not be made or could not decide.
    #[error("{0}")]
    Strategy(#[from] StrategyError),
    /// Too few agents of a layer succeeded.
    #[error("{}", too_few(.what, *.succeeded, *.needed, .failures))]
    TooFewSuccesses {
        /// `layer N` or `the aggregator`.
        what: String,
        /// How many succeeded.
        succeeded: usize,
        /// How many were needed.
        needed: usize,
        /// Every agent that failed.
        failures: Vec<Failure>,
    },
    /// The aggregator's answer broke off after part of it had been delivered where it
    /// cannot be taken back ([`crate::RunOptions::irrevocable_answer`]), so it was not
    /// retried: a retry would have appended a second answer to the first one's start.
    #[error(
        "the aggregator's answer broke off after {delivered_chars} characters had been delivered ({error}); \
         not retried, because delivered text cannot be taken back"
    )]
    AnswerBroken {
        /// Characters already delivered.
        delivered_chars: usize,
        /// Why the attempt failed.
        error: String,
        /// The kind of that error.
        kind: ErrorKind,
    },
    /// The run was cancelled.
    #[error("the run was cancelled")]
    Cancelled,
    /// The tools or the response format given cannot be used: `field` names which, in
    /// OpenAI's request terms (`tools[0].function.parameters`, `tool_choice`).
    #[error("{field}: {message}")]
    Tools {
        /// The request field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The answer a strategy or an agreement decided breaks what the run asked for (a
    /// tool call was required; the format does not match).
    #[error("{decided_by} decided an answer that was refused: {rejection}")]
    Rejected {
        /// What decided it.
        decided_by: String,
        /// Why it was refused.
        rejection: super::tooling::Rejection,
    },
}

fn too_few(what: &str, succeeded: usize, needed: usize, failures: &[Failure]) -> String {
    let mut s = format!("{what}: {succeeded} agent(s) succeeded, {needed} needed");
    for f in failures {
        s.push_str(&format!("\n  {}: {}", f.agent, f.error));
    }
    s
}

impl Serialize for RunError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The account of one agent's call (its last attempt).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CallReport {
    /// The agent's index in its layer.
    pub slot: usize,
    /// Its display name.
    pub agent: String,
    /// Its provider's name.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The answer (trimmed, as strategies see it), empty on failure.
    pub text: String,
    /// The error of every failed attempt, in order, and a last `cancelled` or `cut` when
    /// the agent was stopped while it waited (to retry, or for a free slot).
    pub errors: Vec<String>,
    /// Attempts made.
    pub attempts: u32,
    /// Tokens of the successful attempt.
    pub usage: Option<Usage>,
    /// Its cost in dollars, when priced.
    pub cost: Option<f64>,
    /// Tokens of its failed, retried and cancelled attempts (reported or estimated).
    // Read as zero from ledgers written before calls counted them.
    #[serde(default)]
    pub wasted: Usage,
    /// Its latency.
    pub latency_ms: Option<f64>,
    /// Its time to first token.
    pub ttft_ms: Option<f64>,
    /// When its (last) attempt was asked of the transport, in ms from the run's start.
    /// `latency_ms` and `ttft_ms` count from when it was sent, which is later when it
    /// waited in the transport's queue.
    pub started_ms: Option<f64>,
    /// The server's own processing time, where it reports one (llama.cpp).
    pub server_ms: Option<f64>,
    /// A call a strategy asked for (a judge's verdict, a window's synthesis), not one of
    /// the layer's agents.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asked: bool,
}

/// The account of one layer; the aggregator's layer comes last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LayerReport {
    /// The layer's index.
    pub layer: usize,
    /// Whether it is the final aggregator.
    pub aggregator: bool,
    /// Every agent's call.
    pub calls: Vec<CallReport>,
    /// Tokens of every attempt in the layer, failed ones included.
    pub usage: Usage,
    /// Dollars, when priced, for the same.
    pub cost: Option<f64>,
    /// The part of `usage` spent on attempts that failed or were cancelled.
    // Read as zero from ledgers written before layers counted it.
    #[serde(default)]
    pub wasted: Usage,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Outcome {
    /// The final answer, or why there is none. Serialized as two fields, `answer` and
    /// `error`, one of them null.
    #[serde(flatten, serialize_with = "answer_or_error")]
    // Declared in TypeScript as `AnswerOrError & ...` (ts-rs cannot flatten a custom form).
    #[cfg_attr(test, ts(skip))]
    pub answer: Result<String, RunError>,
    /// The aggregator's name, the strategy that decided alone, or, when a layer's agents
    /// agreed (`early_exit`), the agreement (`agreement: 3 agents answered "7"`).
    pub decided_by: Option<String>,
    /// Every layer that ran, the aggregator's last.
    pub layers: Vec<LayerReport>,
    /// Tokens over every attempt of every call, failed, retried and cancelled ones
    /// included, so the total never reads low.
    pub usage: Usage,
    /// Dollars, when priced, for the same.
    pub cost: Option<f64>,
    /// The part of `usage` spent on attempts that failed or were cancelled.
    pub wasted: Usage,
    /// Why the aggregator's model stopped (`stop`, `length`, ...), when an aggregator
    /// wrote the answer and its provider said; `tool_calls` when the answer is calls.
    pub finish_reason: Option<String>,
    /// The tools the answer calls (then `answer` is what the model said beside them,
    /// often nothing). Empty for an answer in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(test, ts(optional, as = "Option<Vec<crate::vocab::tools::ToolCall>>"))]
    pub tool_calls: Vec<crate::vocab::tools::ToolCall>,
    /// Wall time of the run.
    pub wall_ms: f64,
    /// Time to first token: from the run's start to the first text of its answer that
    /// stayed in it (the aggregator's, or a staircase's first step's; text a failed
    /// attempt streamed and the retry voided does not count), or to the moment a
    /// strategy decided the answer without an aggregator call. `None` without an answer.
    /// The one definition that eval, serve's log, the CLI and the page report.
    pub ttft_ms: Option<f64>,
}

impl Outcome {
    /// The answer, or the error, borrowed.
    pub fn result(&self) -> Result<&str, &RunError> {
        self.answer.as_deref()
    }
}

/// `{"answer": "...", "error": null}` or `{"answer": null, "error": "..."}`: the shape
/// JSON readers (the page, `--json`) read.
fn answer_or_error<S: Serializer>(answer: &Result<String, RunError>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(2))?;
    match answer {
        Ok(text) => {
            map.serialize_entry("answer", text)?;
            map.serialize_entry("error", &())?;
        }
        Err(e) => {
            map.serialize_entry("answer", &())?;
            map.serialize_entry("error", e)?;
        }
    }
    map.end()
}
