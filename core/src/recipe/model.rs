//! The recipe's data types, as serde writes them and reads them from TOML (JSON is read
//! by `read.rs`, held to these derives by a property test).

use super::Named;
use crate::usage::Price;
use crate::vocab::tools::ToolPolicy;
pub use crate::vocab::{OnError, ProviderKind, Sampling, StrategySpec};
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::marker::PhantomData;

/// Temperature when neither the agent nor the recipe sets one (the reference implementation's).
pub const DEFAULT_TEMPERATURE: f64 = 0.7;
/// Generated-token cap when neither the agent nor the recipe sets one (the reference's).
pub const DEFAULT_MAX_TOKENS: u32 = 2048;

/// A whole Mixture-of-Agents setup: who answers, in how many layers, who aggregates, and
/// what to do when things fail. TOML (command line) and JSON (JavaScript) load this same
/// struct.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Recipe {
    /// A short name, shown in events and listings.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub name: String,
    /// One line on what the recipe is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The providers agents are served by, by name.
    #[cfg_attr(test, ts(as = "std::collections::BTreeMap<String, Provider>"))]
    pub providers: Named<Provider>,
    /// Temperature for every agent that does not set its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Generated-token cap for every agent that does not set its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Proposer layers, in order. The first answers the conversation; each later one
    /// sees the previous layer's answers through its strategy.
    pub layers: Vec<Layer>,
    /// The agent that writes the final answer from the last layer's proposals.
    #[serde(deserialize_with = "string_or_table")]
    #[cfg_attr(test, ts(type = "string | Aggregator"))]
    pub aggregator: Aggregator,
    /// Timeouts, retries and failure tolerance.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<Policy>", optional))]
    pub policy: Policy,
    /// Optional prices, keyed by `provider:model`, to report costs.
    #[serde(default, skip_serializing_if = "Named::is_empty")]
    #[cfg_attr(test, ts(as = "Option<std::collections::BTreeMap<String, Price>>", optional))]
    pub prices: Named<Price>,
    /// How the mixture uses the tools a run offers: `aggregator` (proposers advise, the
    /// aggregator calls) or `vote` (the last proposer layer calls; a majority decides).
    #[serde(default, skip_serializing_if = "ToolPolicy::is_default")]
    #[cfg_attr(test, ts(as = "Option<ToolPolicy>", optional))]
    pub tool_policy: ToolPolicy,
}

/// Where a provider lives and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Provider {
    /// The wire protocol: `"openai"` (chat completions) or `"anthropic"` (Messages).
    pub kind: ProviderKind,
    /// The API root, for example `https://api.together.xyz/v1` or `http://127.0.0.1:8081/v1`.
    pub base_url: String,
    /// The environment variable that holds the key (native host). A provider with one
    /// needs a key at run time; JavaScript callers pass it under the provider's name. A
    /// provider without one (a local server) is called without a key. Keys themselves
    /// are never part of a recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Most calls in flight to this provider at once; 1 serializes calls to a local
    /// single-GPU server. Unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// The models' context window, in tokens (prompt and answer together). When the
    /// references would not fit an agent's window, each is shortened by the same share
    /// (see docs/strategies.md, "References that fit"). Unlimited when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
    /// The provider takes tools natively (OpenAI's `tools`, Anthropic's `tool_use`).
    /// When false, a model that should call tools gets them described as text and calls
    /// by answering with JSON (`{"tool_calls": [{"name", "arguments"}]}`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub tools: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One layer of proposers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Layer {
    /// The agents, all started together.
    #[serde(deserialize_with = "seq_string_or_table")]
    #[cfg_attr(test, ts(type = "Array<string | Agent>"))]
    pub agents: Vec<Agent>,
    /// How the previous layer's proposals become this layer's input. Not allowed on the
    /// first layer, which has no previous layer; `synthesize` when unset.
    #[serde(default, deserialize_with = "opt_string_or_table", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(type = "string | StrategySpec"))]
    pub strategy: Option<StrategySpec>,
    /// Fewest agents (samples counted one by one) that must succeed for the run to go
    /// on; `policy.min_successes` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_successes: Option<u32>,
    /// Go on without the stragglers once this many have succeeded; `policy.quorum` when
    /// unset, and every agent when neither is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<Quorum>,
    /// End the run here, without an aggregator call, when the proposals that count (the
    /// quorum's, or all) agree on one short answer (the `vote` normalizer's), unanimously.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub early_exit: bool,
}

impl Layer {
    /// A layer of `agents` with every option at its default.
    pub fn new(agents: Vec<Agent>) -> Layer {
        Layer { agents, strategy: None, min_successes: None, quorum: None, early_exit: false }
    }
}

/// A quorum: a layer goes on once `min` agents have succeeded and either every call has
/// ended or `grace_ms` has passed since the `min`-th success; calls still running then
/// are cut (cancelled, their tokens counted as wasted), and agents waiting to retry are
/// stopped, so one agent stuck behind a 429 does not hold the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Quorum {
    /// Successes that make the quorum.
    pub min: u32,
    /// How long the stragglers may still finish after the quorum is met, in ms.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<u64>", optional))]
    pub grace_ms: u64,
}

/// A proposer: `"provider:model"`, or a table with that `model` and options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Agent {
    /// `provider:model`; the provider is everything before the first colon.
    pub model: String,
    /// Display name in events; `model`, with `#k` per sample, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sampling temperature (0–2; 0–1 for Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Cap on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// This agent's own system prompt, placed before any other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// How many independent answers to draw from this model (Self-MoA).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub samples: u32,
    /// This model's context window in tokens, over the provider's `context_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
}

/// The final aggregator: `"provider:model"`, or a table with that `model` and options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Aggregator {
    /// `provider:model`.
    pub model: String,
    /// Display name in events; `model` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Cap on generated tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The aggregator's own system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// How the last layer's proposals reach the aggregator; `synthesize` when unset.
    #[serde(default, deserialize_with = "opt_string_or_table", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(type = "string | StrategySpec"))]
    pub strategy: Option<StrategySpec>,
    /// Nucleus sampling (0..=1), sent to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Sampling seed, for providers that take one (OpenAI-compatible only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Up to 4 stop sequences: the answer ends before the first one. Sent to the provider
    /// and also enforced by moa, so they hold even where a provider ignores them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Presence penalty (-2..=2; OpenAI-compatible only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty (-2..=2; OpenAI-compatible only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Staircase streaming: start on the last layer's first chunks instead of waiting
    /// for it to finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staircase: Option<Staircase>,
    /// This model's context window in tokens, over the provider's `context_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<u32>,
}

/// Staircase streaming (arXiv 2510.05059): the aggregator starts once every live proposer
/// of the last layer has streamed its first `chunk_chars` (or finished), writes a step of
/// at most `step_tokens` from those partial proposals, and writes the next step, carrying
/// its answer so far, each time every live proposer has streamed another chunk; once they
/// have all finished, it finishes the answer. What reaches the user is only ever appended.
///
/// Each chunk and each step is `growth` times the one before: a small first step brings
/// the first token early, and larger later ones keep the steps few (every step reads the
/// proposals so far again). `staircase = {}` takes every default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Staircase {
    /// Characters of each proposal that make the first chunk (default 48).
    #[cfg_attr(test, ts(as = "Option<u32>", optional))]
    pub chunk_chars: u32,
    /// Most tokens the aggregator writes in its first step (default 32); no step writes
    /// past the aggregator's `max_tokens`.
    #[cfg_attr(test, ts(as = "Option<u32>", optional))]
    pub step_tokens: u32,
    /// How many times larger each chunk and step is than the one before (default 8; 1
    /// keeps them all the same size).
    #[cfg_attr(test, ts(as = "Option<u32>", optional))]
    pub growth: u32,
}

impl Default for Staircase {
    fn default() -> Staircase {
        Staircase { chunk_chars: 48, step_tokens: 32, growth: 8 }
    }
}

/// How a run treats time and failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Policy {
    /// Longest one attempt of a call may take, start to last byte, in seconds.
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub timeout_secs: f64,
    /// Longest wait for the next byte of a response, in seconds.
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub stall_timeout_secs: f64,
    /// Further attempts after a retryable failure (429, 5xx, transport error, timeout).
    #[cfg_attr(test, ts(as = "Option<u32>", optional))]
    pub retries: u32,
    /// First backoff, in seconds; it doubles per attempt, with jitter.
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub backoff_secs: f64,
    /// Cap on one backoff, in seconds.
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub max_backoff_secs: f64,
    /// A `Retry-After` longer than this, in seconds, fails the call instead of waiting.
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub max_retry_after_secs: f64,
    /// Fewest successful agents per layer for the run to go on.
    #[cfg_attr(test, ts(as = "Option<u32>", optional))]
    pub min_successes: u32,
    /// Most calls in flight at once for this run, over all providers. Unlimited when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub max_concurrency: Option<u32>,
    /// Every layer's quorum, unless the layer sets its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub quorum: Option<Quorum>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            timeout_secs: 600.0,
            stall_timeout_secs: 120.0,
            retries: 3,
            backoff_secs: 1.0,
            max_backoff_secs: 30.0,
            max_retry_after_secs: 120.0,
            min_successes: 1,
            max_concurrency: None,
            quorum: None,
        }
    }
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl Agent {
    /// An agent for `provider:model` with every option at its default.
    pub fn new(model: &str) -> Agent {
        Agent {
            model: model.to_owned(),
            name: None,
            temperature: None,
            max_tokens: None,
            system: None,
            samples: 1,
            context_tokens: None,
        }
    }
}

impl Aggregator {
    /// An aggregator for `provider:model` with every option at its default.
    pub fn new(model: &str) -> Aggregator {
        Aggregator {
            model: model.to_owned(),
            name: None,
            temperature: None,
            max_tokens: None,
            system: None,
            strategy: None,
            top_p: None,
            seed: None,
            stop: Vec::new(),
            presence_penalty: None,
            frequency_penalty: None,
            staircase: None,
            context_tokens: None,
        }
    }

    /// Its sampling options beyond temperature and length.
    pub fn sampling(&self) -> Sampling {
        Sampling {
            top_p: self.top_p,
            seed: self.seed,
            stop: self.stop.clone(),
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
        }
    }
}

/// Types that a bare string may stand for in a recipe (`"together:Qwen/..."`, `"vote"`).
trait Shorthand: Sized {
    const EXPECTING: &'static str;
    fn from_shorthand(s: &str) -> Self;
}

impl Shorthand for Agent {
    const EXPECTING: &'static str = "\"provider:model\" or a table with `model`";
    fn from_shorthand(s: &str) -> Self {
        Agent::new(s)
    }
}

impl Shorthand for Aggregator {
    const EXPECTING: &'static str = "\"provider:model\" or a table with `model`";
    fn from_shorthand(s: &str) -> Self {
        Aggregator::new(s)
    }
}

impl Shorthand for StrategySpec {
    const EXPECTING: &'static str = "a strategy name or a table with `name` or `plugin`";
    fn from_shorthand(s: &str) -> Self {
        StrategySpec { name: Some(s.to_owned()), ..StrategySpec::default() }
    }
}

/// Reads either a bare string or the type's own table, keeping serde's field-level errors
/// for the table (an untagged enum would replace them with "did not match any variant").
struct StringOrTable<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Shorthand> Visitor<'de> for StringOrTable<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from_shorthand(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

fn string_or_table<'de, D: Deserializer<'de>, T: Deserialize<'de> + Shorthand>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(StringOrTable(PhantomData))
}

fn opt_string_or_table<'de, D: Deserializer<'de>, T: Deserialize<'de> + Shorthand>(
    d: D,
) -> Result<Option<T>, D::Error> {
    string_or_table(d).map(Some)
}

struct Item<T>(T);

impl<'de, T: Deserialize<'de> + Shorthand> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_table(d).map(Item)
    }
}

fn seq_string_or_table<'de, D: Deserializer<'de>, T: Deserialize<'de> + Shorthand>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Item<T>>::deserialize(d)?.into_iter().map(|i| i.0).collect())
}
