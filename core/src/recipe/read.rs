//! A JSON recipe read by hand from a parsed [`Value`].
//!
//! The derived `Deserialize` of the recipe's types was the browser module's largest reader
//! (a visitor per struct, for maps and for sequences, with `Option`s and lists of each):
//! TOML still goes through it; JSON comes here. The two agree on what they accept, what
//! they read and the path of what they refuse, held by `core/tests/json_path_props.rs`
//! with the derived reader as the oracle; the messages keep serde's wording. One
//! difference, on purpose: serde also takes a struct written as a list of its fields in
//! order (`"quorum": [2, 500]`), which here is refused as the wrong type.

use super::Named;
use super::model::*;
use crate::json_read::serde_like::{Fields, Read, bool, f64, list, named, string, string_or_table, u32, u64, variant};
use crate::usage::Price;
use crate::vocab::tools::ToolPolicy;
use serde_json::Value;

const MODEL_OR_TABLE: &str = "\"provider:model\" or a table with `model`";

/// Reads a recipe from a parsed JSON value (not yet validated).
pub(super) fn recipe(v: &Value) -> Read<Recipe> {
    let known = [
        "name",
        "description",
        "providers",
        "temperature",
        "max_tokens",
        "layers",
        "aggregator",
        "policy",
        "prices",
        "tool_policy",
    ];
    let f = Fields::new(v, "", "Recipe", &known)?;
    Ok(Recipe {
        name: f.or("name", string, String::new())?,
        description: f.or("description", string, String::new())?,
        providers: f.req("providers", |v, p| named(v, p, provider))?,
        temperature: f.opt("temperature", f64)?,
        max_tokens: f.opt("max_tokens", u32)?,
        layers: f.req("layers", |v, p| list(v, p, layer))?,
        aggregator: f.req("aggregator", |v, p| string_or_table(v, p, MODEL_OR_TABLE, Aggregator::new, aggregator))?,
        policy: f.or("policy", policy, Policy::default())?,
        prices: f.or("prices", |v, p| named(v, p, price), Named::new())?,
        tool_policy: f.or("tool_policy", tool_policy, ToolPolicy::default())?,
    })
}

fn provider(v: &Value, path: &str) -> Read<Provider> {
    let known = ["kind", "base_url", "api_key_env", "max_concurrency", "context_tokens", "tools"];
    let f = Fields::new(v, path, "Provider", &known)?;
    Ok(Provider {
        kind: f.req("kind", |v, p| {
            variant(v, p, "ProviderKind", &["openai", "anthropic"])
                .map(|i| [ProviderKind::OpenAi, ProviderKind::Anthropic][i])
        })?,
        base_url: f.req("base_url", string)?,
        api_key_env: f.opt("api_key_env", string)?,
        max_concurrency: f.opt("max_concurrency", u32)?,
        context_tokens: f.opt("context_tokens", u32)?,
        tools: f.or("tools", bool, true)?,
    })
}

fn layer(v: &Value, path: &str) -> Read<Layer> {
    let known = ["agents", "strategy", "min_successes", "quorum", "early_exit"];
    let f = Fields::new(v, path, "Layer", &known)?;
    Ok(Layer {
        agents: f.req("agents", |v, p| list(v, p, |v, p| string_or_table(v, p, MODEL_OR_TABLE, Agent::new, agent)))?,
        strategy: f.present("strategy", strategy)?,
        min_successes: f.opt("min_successes", u32)?,
        quorum: f.opt("quorum", quorum)?,
        early_exit: f.or("early_exit", bool, false)?,
    })
}

fn quorum(v: &Value, path: &str) -> Read<Quorum> {
    let f = Fields::new(v, path, "Quorum", &["min", "grace_ms"])?;
    Ok(Quorum { min: f.req("min", u32)?, grace_ms: f.or("grace_ms", u64, 0)? })
}

fn agent(v: &Value, path: &str) -> Read<Agent> {
    let known = ["model", "name", "temperature", "max_tokens", "system", "samples", "context_tokens"];
    let f = Fields::new(v, path, "Agent", &known)?;
    Ok(Agent {
        model: f.req("model", string)?,
        name: f.opt("name", string)?,
        temperature: f.opt("temperature", f64)?,
        max_tokens: f.opt("max_tokens", u32)?,
        system: f.opt("system", string)?,
        samples: f.or("samples", u32, 1)?,
        context_tokens: f.opt("context_tokens", u32)?,
    })
}

fn aggregator(v: &Value, path: &str) -> Read<Aggregator> {
    let known = [
        "model",
        "name",
        "temperature",
        "max_tokens",
        "system",
        "strategy",
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "staircase",
        "context_tokens",
    ];
    let f = Fields::new(v, path, "Aggregator", &known)?;
    Ok(Aggregator {
        model: f.req("model", string)?,
        name: f.opt("name", string)?,
        temperature: f.opt("temperature", f64)?,
        max_tokens: f.opt("max_tokens", u32)?,
        system: f.opt("system", string)?,
        strategy: f.present("strategy", strategy)?,
        top_p: f.opt("top_p", f64)?,
        seed: f.opt("seed", u64)?,
        stop: f.or("stop", |v, p| list(v, p, string), Vec::new())?,
        presence_penalty: f.opt("presence_penalty", f64)?,
        frequency_penalty: f.opt("frequency_penalty", f64)?,
        staircase: f.opt("staircase", staircase)?,
        context_tokens: f.opt("context_tokens", u32)?,
    })
}

fn staircase(v: &Value, path: &str) -> Read<Staircase> {
    let f = Fields::new(v, path, "Staircase", &["chunk_chars", "step_tokens", "growth"])?;
    let d = Staircase::default();
    Ok(Staircase {
        chunk_chars: f.or("chunk_chars", u32, d.chunk_chars)?,
        step_tokens: f.or("step_tokens", u32, d.step_tokens)?,
        growth: f.or("growth", u32, d.growth)?,
    })
}

fn policy(v: &Value, path: &str) -> Read<Policy> {
    let known = [
        "timeout_secs",
        "stall_timeout_secs",
        "retries",
        "backoff_secs",
        "max_backoff_secs",
        "max_retry_after_secs",
        "min_successes",
        "max_concurrency",
        "quorum",
    ];
    let f = Fields::new(v, path, "Policy", &known)?;
    let d = Policy::default();
    Ok(Policy {
        timeout_secs: f.or("timeout_secs", f64, d.timeout_secs)?,
        stall_timeout_secs: f.or("stall_timeout_secs", f64, d.stall_timeout_secs)?,
        retries: f.or("retries", u32, d.retries)?,
        backoff_secs: f.or("backoff_secs", f64, d.backoff_secs)?,
        max_backoff_secs: f.or("max_backoff_secs", f64, d.max_backoff_secs)?,
        max_retry_after_secs: f.or("max_retry_after_secs", f64, d.max_retry_after_secs)?,
        min_successes: f.or("min_successes", u32, d.min_successes)?,
        max_concurrency: f.opt("max_concurrency", u32)?,
        quorum: f.opt("quorum", quorum)?,
    })
}

fn price(v: &Value, path: &str) -> Read<Price> {
    let f = Fields::new(v, path, "Price", &["input", "output", "batch"])?;
    Ok(Price { input: f.req("input", f64)?, output: f.req("output", f64)?, batch: f.opt("batch", f64)? })
}

fn tool_policy(v: &Value, path: &str) -> Read<ToolPolicy> {
    let policies = [ToolPolicy::Aggregator, ToolPolicy::Vote];
    variant(v, path, "ToolPolicy", &["aggregator", "vote"]).map(|i| policies[i])
}

fn strategy(v: &Value, path: &str) -> Read<StrategySpec> {
    let short = |s: &str| StrategySpec { name: Some(s.to_owned()), ..StrategySpec::default() };
    let expecting = "a strategy name or a table with `name` or `plugin`";
    string_or_table(v, path, expecting, short, strategy_table)
}

fn strategy_table(v: &Value, path: &str) -> Read<StrategySpec> {
    let known = ["name", "plugin", "params", "on_error", "timeout_ms", "memory_mib", "max_output_kib"];
    let f = Fields::new(v, path, "StrategySpec", &known)?;
    Ok(StrategySpec {
        name: f.opt("name", string)?,
        plugin: f.opt("plugin", string)?,
        params: f.or("params", |v, _| Ok(v.clone()), Value::Null)?,
        on_error: f.or(
            "on_error",
            |v, p| variant(v, p, "OnError", &["fail", "synthesize"]).map(|i| [OnError::Fail, OnError::Synthesize][i]),
            OnError::Fail,
        )?,
        timeout_ms: f.opt("timeout_ms", u64)?,
        memory_mib: f.opt("memory_mib", u32)?,
        max_output_kib: f.opt("max_output_kib", u32)?,
    })
}
