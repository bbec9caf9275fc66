//! The shared vocabulary: the words every other part of the core speaks (messages,
//! usage, provider kinds, sampling, strategy specs and the built-in strategies' names).
//! A leaf: it depends on no other module of the crate, so recipe, provider, strategy and
//! engine can all use it without depending on one another.

pub mod failure;
pub mod message;
pub mod tools;
pub mod usage;

use serde::{Deserialize, Serialize};

/// Which wire protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions (OpenAI, Together, Groq, OpenRouter, Fireworks,
    /// DeepInfra, vLLM, llama.cpp's `llama-server`, Ollama, LM Studio, ...).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages.
    #[serde(rename = "anthropic")]
    Anthropic,
}

/// Sampling options beyond temperature and length that reach a provider.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampling {
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Stop sequences, enforced by the engine too.
    pub stop: Vec<String>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
}

/// A strategy: a built-in by `name` (one of [`StrategyKind`]: a bare name, or the table
/// form with `params`), or a WebAssembly component `plugin` run by the native host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct StrategySpec {
    /// A built-in strategy's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path of a plugin component (`.wasm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Parameters handed to the strategy.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub params: serde_json::Value,
    /// What to do when the strategy fails to decide.
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
    /// Plugin deadline per decision, in milliseconds of wall time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Plugin linear-memory cap, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Cap on what a plugin may return, in KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_kib: Option<u32>,
}

impl StrategySpec {
    /// The built-in strategy `kind` with no parameters.
    pub fn builtin(kind: StrategyKind) -> StrategySpec {
        StrategySpec { name: Some(kind.name().to_owned()), ..StrategySpec::default() }
    }

    /// How the strategy is named in events and errors.
    pub fn label(&self) -> &str {
        self.name.as_deref().or(self.plugin.as_deref()).unwrap_or(StrategyKind::Synthesize.name())
    }
}

/// What a run does when a strategy fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum OnError {
    /// Fail the run.
    #[default]
    Fail,
    /// Use the built-in `synthesize` for that decision instead.
    Synthesize,
}

impl OnError {
    pub(crate) fn is_fail(&self) -> bool {
        *self == OnError::Fail
    }
}

/// A built-in strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    /// The paper's aggregate-and-synthesize prompt over every proposal.
    Synthesize,
    /// A majority of final answers decides with no call; else synthesize.
    Vote,
    /// Only the most different proposals go on.
    Diverse,
    /// A judge picks the best proposal, which is the answer.
    Rank,
    /// SMoA: a judge keeps the best few and may end the debate.
    Select,
    /// Self-MoA-Seq: synthesis over windows, the result carried forward.
    Sequential,
}

impl StrategyKind {
    /// Every built-in, in the order menus show them.
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Synthesize,
        StrategyKind::Vote,
        StrategyKind::Diverse,
        StrategyKind::Rank,
        StrategyKind::Select,
        StrategyKind::Sequential,
    ];

    /// Its name in recipes, events and errors.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Synthesize => "synthesize",
            StrategyKind::Vote => "vote",
            StrategyKind::Diverse => "diverse",
            StrategyKind::Rank => "rank",
            StrategyKind::Select => "select",
            StrategyKind::Sequential => "sequential",
        }
    }

    /// The built-in called `name`.
    pub fn from_name(name: &str) -> Option<StrategyKind> {
        StrategyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What it does, in a line (the page's menus).
    pub fn summary(self) -> &'static str {
        match self {
            StrategyKind::Synthesize => "synthesize (the paper's prompt)",
            StrategyKind::Vote => "vote (majority, no LLM call when agents agree)",
            StrategyKind::Diverse => "diverse (only the 3 most different proposals)",
            StrategyKind::Rank => "rank (a judge picks the best one)",
            StrategyKind::Select => "select (SMoA: a judge keeps the 2 best, may stop early)",
            StrategyKind::Sequential => "sequential (Self-MoA-Seq: windows of 4)",
        }
    }

    /// The parameters it takes; any other is an error.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            StrategyKind::Synthesize => &[],
            StrategyKind::Vote => &["threshold", "max_answer_chars"],
            StrategyKind::Diverse => &["k", "duplicate"],
            StrategyKind::Rank => &["judge", "max_tokens"],
            StrategyKind::Select => &["k", "stop", "judge", "max_tokens"],
            StrategyKind::Sequential => &["window"],
        }
    }
}
