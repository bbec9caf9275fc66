//! Strategies: how one layer's proposals become what the next agents see, or the final
//! answer itself. Built-ins live here; the native host adds WebAssembly plugins through
//! [`Resolver`].

mod diverse;
mod synthesize;
mod vote;

pub use diverse::Diverse;
pub use synthesize::{REFERENCE_PROMPT, Synthesize, inject_references};
pub use vote::{Vote, normalize_answer};

use crate::message::Message;
use crate::recipe::StrategySpec;
use crate::usage::Usage;
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
}

/// A strategy could not decide.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("strategy {strategy:?}: {message}")]
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
    /// Decides for one layer. Called once per layer; `&mut self` lets a strategy keep
    /// state across the layers of one run.
    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError>;
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
            (Some(name), None) if name == "synthesize" => Ok(Box::new(Synthesize::from_params(&spec.params)?)),
            (Some(name), None) if name == "vote" => Ok(Box::new(Vote::from_params(&spec.params)?)),
            (Some(name), None) if name == "diverse" => Ok(Box::new(Diverse::from_params(&spec.params)?)),
            (_, Some(plugin)) => Err(StrategyError {
                strategy: plugin.clone(),
                message: "plugin strategies run only in the native host (moa-host)".into(),
            }),
            _ => Err(StrategyError { strategy: spec.label().to_owned(), message: "unknown built-in strategy".into() }),
        }
    }
}

/// Rejects parameters a built-in does not take, so a typo is not silently ignored.
pub(crate) fn check_params(strategy: &str, params: &serde_json::Value, known: &[&str]) -> Result<(), StrategyError> {
    let Some(map) = params.as_object() else { return Ok(()) };
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(StrategyError {
            strategy: strategy.into(),
            message: format!(
                "unknown parameter {k:?} (it takes {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ),
        }),
        None => Ok(()),
    }
}
