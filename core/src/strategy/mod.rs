//! Strategies: how one layer's proposals become what the next agents see, or the final
//! answer itself. Built-ins live here; the native host adds WebAssembly plugins through
//! [`Resolver`].

mod diverse;
mod judge;
mod kind;
pub mod plugin;
mod rank;
mod select;
mod sequential;
mod synthesize;
mod vote;

pub use diverse::{Diverse, text_similarity};
pub use judge::judge_messages;
pub use kind::StrategyKind;
pub(crate) use kind::check_params;
pub use rank::{Rank, WORST_PROMPT, parse_pick, parse_rank};
pub use select::{Select, parse_selection};
pub use sequential::Sequential;
pub use synthesize::{REFERENCE_PROMPT, Synthesize, inject_references};
pub use vote::{Vote, normalize_answer};

use crate::message::Message;
use crate::usage::Usage;
use crate::vocab::StrategySpec;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One successful answer from the previous layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The agent's display name.
    pub agent: String,
    /// The model that wrote it.
    pub model: String,
    /// The answer, trimmed of surrounding whitespace as the reference implementation does.
    pub text: String,
    /// Tokens the call used, when the provider reported them.
    pub usage: Option<Usage>,
    /// How long the successful attempt took, in milliseconds.
    pub latency_ms: f64,
}

/// What a strategy is given.
#[derive(Clone, Copy, Debug)]
pub struct StrategyInput<'a> {
    /// The conversation the run answers.
    pub conversation: &'a [Message],
    /// The layer about to run: `1..layer_count` for proposer layers, `layer_count` for
    /// the final aggregator.
    pub layer: usize,
    /// How many proposer layers the recipe has.
    pub layer_count: usize,
    /// The previous layer's successful proposals, in agent order.
    pub proposals: &'a [Proposal],
    /// The reply to this decision's last [`Decision::Ask`]: the text, or why the call
    /// failed. `None` on the first call of a decision.
    pub reply: Option<Result<&'a str, &'a str>>,
    /// The run's seed mixed with the layer, for a strategy's seeded choices.
    pub seed: u64,
}

impl<'a> StrategyInput<'a> {
    /// The first call of a decision for `layer`.
    pub fn new(conversation: &'a [Message], layer: usize, layer_count: usize, proposals: &'a [Proposal]) -> Self {
        StrategyInput { conversation, layer, layer_count, proposals, reply: None, seed: 0 }
    }
}

impl StrategyInput<'_> {
    /// Whether the decision feeds the final aggregator.
    pub fn is_final(&self) -> bool {
        self.layer >= self.layer_count
    }
}

/// What a strategy decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Send these messages to every agent of the next layer (or the aggregator).
    Messages(Vec<Message>),
    /// This is the final answer: no further calls are made.
    Final(String),
    /// Skip the remaining proposer layers: send these messages to the final aggregator.
    Aggregate(Vec<Message>),
    /// Make one call first (a judge's verdict, a partial synthesis), then decide again with
    /// its reply in [`StrategyInput::reply`].
    Ask(Ask),
}

/// A call a strategy asks for before it decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    /// `provider:model` to call, at temperature 0; `None` for the recipe's aggregator
    /// (its temperature, system prompt and sampling).
    pub model: Option<String>,
    /// The name its events and accounts carry (`judge`, `window 2/5`).
    pub label: String,
    /// The messages sent.
    pub messages: Vec<Message>,
    /// Cap on its output; the agent's own cap when `None`.
    pub max_tokens: Option<u32>,
}

/// A strategy could not decide.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("strategy {}: {message}", crate::quote::Quoted(strategy))]
pub struct StrategyError {
    /// The strategy's name or plugin path.
    pub strategy: String,
    /// Why.
    pub message: String,
}

/// Turns the previous layer's proposals into the next layer's input, or a final answer.
pub trait Strategy: Send {
    /// The name used in events and errors.
    fn name(&self) -> &str;
    /// Decides for one layer. Called once per layer, and again after each
    /// [`Decision::Ask`] with its reply; `&mut self` lets a strategy keep state across
    /// the calls of a decision and the layers of one run.
    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError>;
    /// What the last decision chose and why, when it is worth an event (a judge's pick,
    /// a fallback after an unreadable verdict). Taken once.
    fn note(&mut self) -> Option<String> {
        None
    }
    /// How many calls it asks for when deciding on `proposals` answers, for plans.
    fn planned_asks(&self, proposals: usize) -> usize {
        let _ = proposals;
        0
    }
    /// A strategy the driver runs (a plugin in the browser's Worker): the engine asks
    /// the driver for its decisions ([`crate::Action::Decide`]) instead of calling
    /// [`Strategy::decide`].
    fn external(&mut self) -> Option<&mut plugin::External> {
        None
    }
}

/// Makes strategies from their recipe specs. The core resolves built-ins; the native host
/// wraps it to add plugins.
pub trait Resolver {
    /// The strategy `spec` describes, or why it cannot be made.
    fn resolve(&self, spec: &StrategySpec) -> Result<Box<dyn Strategy>, StrategyError>;
}

/// Resolves the built-in strategies; plugins are refused with a clear error.
#[derive(Clone, Copy, Debug, Default)]
pub struct Builtins;

impl Resolver for Builtins {
    fn resolve(&self, spec: &StrategySpec) -> Result<Box<dyn Strategy>, StrategyError> {
        match (&spec.name, &spec.plugin) {
            (_, Some(plugin)) => Err(StrategyError {
                strategy: plugin.clone(),
                message: "this place runs no plugins: the native host loads them from files, the browser module from options.plugins".into(),
            }),
            (Some(name), None) => match StrategyKind::from_name(name) {
                Some(kind) => kind.build(&spec.params),
                None => Err(StrategyError { strategy: name.clone(), message: "unknown built-in strategy".into() }),
            },
            (None, None) => StrategyKind::Synthesize.build(&spec.params),
        }
    }
}
