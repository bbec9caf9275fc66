//! Recipes: loading (TOML or JSON into one struct), validation with field paths, and the
//! built-in presets.

pub mod json_path;
mod model;
mod preset;
mod read;

pub use crate::named::Named;
pub use model::*;
pub use preset::{LOCAL_SMOLLM_PORT, PAPER_PROPOSERS, PRESETS, preset};

use crate::float::Shortest;
use crate::quote::Quoted;
use crate::vocab::StrategyKind;
use std::fmt;
use thiserror::Error;

/// The longest duration a policy may give, in seconds: a week. Longer ones mean a typo,
/// and every timer must stay within what a browser's `setTimeout` can wait (2^31 ms, about
/// 24.8 days) and what a `Duration` can hold.
pub const MAX_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// The longest a plugin's decision may run (`timeout_ms`), in milliseconds of wall time:
/// a decision holds a thread of the host, so it must end soon.
pub const MAX_PLUGIN_TIMEOUT_MS: u64 = 10_000;

/// Largest staircase `growth`: beyond it the second step already waits for nearly whole
/// proposals.
pub const MAX_GROWTH: u32 = 16;

/// One problem in a recipe: where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, like `layers[1].agents[0]`.
    pub path: String,
    /// What is wrong and, where it helps, what would be right.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A recipe that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecipeError {
    /// The text is not a recipe (syntax, a wrong type, an unknown field).
    #[error("{format} recipe, at {path}: {message}")]
    Parse {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// Path of the offending field (`.` for the whole document).
        path: String,
        /// The parser's explanation.
        message: String,
    },
    /// The recipe parsed but says something impossible; every problem found is listed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

/// An agent with its recipe defaults applied and its `provider:model` split.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedAgent {
    /// Name shown in events.
    pub label: String,
    /// The provider's name in the recipe.
    pub provider: String,
    /// The model name as the provider knows it.
    pub model: String,
    /// Sampling temperature.
    pub temperature: f64,
    /// Cap on generated tokens.
    pub max_tokens: u32,
    /// The agent's own system prompt.
    pub system: Option<String>,
    /// Further sampling options (the aggregator's; none for proposers).
    pub sampling: Sampling,
    /// Its context window in tokens, when the recipe declares one.
    pub context_tokens: Option<u32>,
}

impl Recipe {
    /// Parses and validates a TOML recipe.
    #[cfg(feature = "toml")]
    pub fn from_toml(text: &str) -> Result<Recipe, RecipeError> {
        let de = toml::Deserializer::parse(text).map_err(|e| RecipeError::Parse {
            format: "TOML",
            path: ".".into(),
            message: e.to_string().trim().to_owned(),
        })?;
        let recipe: Recipe = serde_path_to_error::deserialize(de).map_err(|e| RecipeError::Parse {
            format: "TOML",
            path: e.path().to_string(),
            message: e.inner().message().trim().to_owned(),
        })?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// Writes the recipe as TOML.
    #[cfg(feature = "toml")]
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot write this recipe as TOML: {e}\n"))
    }

    /// Parses and validates a JSON recipe.
    pub fn from_json(text: &str) -> Result<Recipe, RecipeError> {
        let parse = |path, message| RecipeError::Parse { format: "JSON", path, message };
        let value = crate::json_text::parse(text).map_err(|e| parse(json_path::error_path(text, &e), e.to_string()))?;
        // Checked before reading: a second `providers.together` must not hide behind the
        // first one a reader of the file sees.
        if let Some((path, key)) = json_path::repeated_key(text) {
            return Err(parse(path, format!("duplicate key {}", crate::quote::Quoted(&key))));
        }
        let recipe = read::recipe(&value).map_err(|e| parse(e.path, e.message))?;
        recipe.validate()?;
        Ok(recipe)
    }

    /// Writes the recipe as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The number of calls a run makes when nothing fails and no strategy stops early:
    /// every agent's, the aggregator's, and the calls built-in strategies make between
    /// layers (a judge's verdict, a window's synthesis). Not counted: a staircase's steps
    /// (how many depends on how the proposals stream) and calls a plugin asks for.
    pub fn call_count(&self) -> usize {
        let size = |l: &Layer| l.agents.iter().map(|a| a.samples as usize).sum::<usize>();
        let specs = self.layers.iter().skip(1).map(|l| l.strategy.as_ref()).chain([self.aggregator.strategy.as_ref()]);
        let asks: usize = specs
            .zip(&self.layers)
            .filter_map(|(spec, before)| {
                let s = crate::strategy::Resolver::resolve(&crate::strategy::Builtins, spec?).ok()?;
                Some(s.planned_asks(size(before)))
            })
            .sum();
        self.layers.iter().map(size).sum::<usize>() + 1 + asks
    }

    /// The agents of layer `layer`, samples expanded, defaults applied.
    pub fn layer_agents(&self, layer: usize) -> Vec<ResolvedAgent> {
        let mut out = Vec::new();
        for agent in &self.layers[layer].agents {
            for k in 1..=agent.samples {
                let base = agent.name.clone().unwrap_or_else(|| agent.model.clone());
                let label = if agent.samples > 1 { format!("{base}#{k}") } else { base };
                let mut resolved =
                    self.resolve(&agent.model, label, agent.temperature, agent.max_tokens, &agent.system);
                resolved.context_tokens = agent.context_tokens.or(resolved.context_tokens);
                out.push(resolved);
            }
        }
        out
    }

    /// The aggregator, defaults applied.
    pub fn aggregator_agent(&self) -> ResolvedAgent {
        let a = &self.aggregator;
        let label = a.name.clone().unwrap_or_else(|| a.model.clone());
        let agent = self.resolve(&a.model, label, a.temperature, a.max_tokens, &a.system);
        ResolvedAgent { sampling: a.sampling(), context_tokens: a.context_tokens.or(agent.context_tokens), ..agent }
    }

    /// The agent a strategy's call runs as: `model` (`provider:model`) at temperature 0,
    /// or the aggregator when `None`; named `label`, its output capped at `max_tokens`.
    pub fn ask_agent(&self, model: Option<&str>, label: &str, max_tokens: Option<u32>) -> ResolvedAgent {
        let mut agent = match model {
            None => self.aggregator_agent(),
            Some(spec) => self.resolve(spec, String::new(), Some(0.0), None, &None),
        };
        agent.label = label.to_owned();
        if let Some(m) = max_tokens {
            agent.max_tokens = m;
        }
        agent
    }

    fn resolve(
        &self,
        spec: &str,
        label: String,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        system: &Option<String>,
    ) -> ResolvedAgent {
        let (provider, model) = spec.split_once(':').unwrap_or(("", spec));
        ResolvedAgent {
            label,
            provider: provider.to_owned(),
            model: model.to_owned(),
            temperature: temperature.or(self.temperature).unwrap_or(DEFAULT_TEMPERATURE),
            max_tokens: max_tokens.or(self.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS),
            system: system.clone(),
            sampling: Sampling::default(),
            context_tokens: self.providers.get(provider).and_then(|p| p.context_tokens),
        }
    }

    /// Checks everything serde cannot: references between fields, ranges, and counts.
    /// Lists every problem, each with its path.
    pub fn validate(&self) -> Result<(), RecipeError> {
        let mut v = Validator { recipe: self, errors: Vec::new() };
        v.check();
        // One bad policy value can be reached from many layers; say it once. (A list, not
        // a set: a recipe has few errors, and a set type costs the browser module kilobytes.)
        let mut errors: Vec<FieldError> = Vec::new();
        for e in v.errors {
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(RecipeError::Invalid(errors)) }
    }
}

struct Validator<'a> {
    recipe: &'a Recipe,
    errors: Vec<FieldError>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { path: path.into(), message: message.into() });
    }

    fn check(&mut self) {
        let r = self.recipe;
        self.providers();
        self.temperature("temperature", r.temperature, None);
        self.max_tokens("max_tokens", r.max_tokens);
        // No layers is a recipe of one call: the aggregator answers the conversation alone
        // (a single-model baseline for `moa eval`).
        for (i, layer) in r.layers.iter().enumerate() {
            self.layer(i, layer);
        }
        self.aggregator();
        self.policy();
        self.prices();
    }

    fn providers(&mut self) {
        let r = self.recipe;
        if r.providers.is_empty() {
            self.err("providers", "a recipe needs at least one provider");
        }
        for (name, p) in &r.providers {
            let path = format!("providers.{name}");
            if name.is_empty() || name.contains(':') {
                self.err(&path, "a provider name must be non-empty and contain no ':'");
            }
            if p.context_tokens == Some(0) {
                self.err(format!("{path}.context_tokens"), "must be at least 1 (leave it out for no limit)");
            }
            if let Err(e) = crate::http::normalize_base_url(&p.base_url) {
                self.err(format!("{path}.base_url"), e);
            }
            if let Some(env) = &p.api_key_env
                && (env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                self.err(format!("{path}.api_key_env"), format!("{} is not an environment variable name", Quoted(env)));
            }
            if p.max_concurrency == Some(0) {
                self.err(format!("{path}.max_concurrency"), "must be at least 1 (leave it out for no limit)");
            }
        }
    }

    /// Layer `i`: its agents, its strategy, and the successes and quorum it needs.
    fn layer(&mut self, i: usize, layer: &Layer) {
        let path = format!("layers[{i}]");
        if layer.agents.is_empty() {
            self.err(format!("{path}.agents"), "a layer needs at least one agent");
        }
        let mut bad_samples = false;
        for (j, a) in layer.agents.iter().enumerate() {
            bad_samples |= !self.agent(&format!("{path}.agents[{j}]"), a);
        }
        if let Some(s) = &layer.strategy {
            if i == 0 {
                self.err(format!("{path}.strategy"), "the first layer has no earlier proposals to aggregate; set strategies on later layers or the aggregator");
            } else {
                self.strategy(&format!("{path}.strategy"), s);
            }
        }
        // With a bad sample count (or none) the agent count means nothing: no message
        // compares with it.
        let slots: u32 = layer.agents.iter().map(|a| a.samples).sum();
        let counted = (!layer.agents.is_empty() && !bad_samples).then_some(slots);
        let min = self.successes(i, layer, counted);
        self.quorum(i, layer, counted, min);
        if layer.early_exit && slots < 2 && !bad_samples {
            self.err(format!("{path}.early_exit"), "needs at least two agents to agree");
        }
    }

    /// One agent; false when its sample count is out of range.
    fn agent(&mut self, path: &str, a: &Agent) -> bool {
        let kind = self.model(path, &a.model);
        self.temperature(&format!("{path}.temperature"), a.temperature, kind);
        self.max_tokens(&format!("{path}.max_tokens"), a.max_tokens);
        if a.context_tokens == Some(0) {
            self.err(format!("{path}.context_tokens"), "must be at least 1 (leave it out for the provider's)");
        }
        let ok = (1..=64).contains(&a.samples);
        if !ok {
            self.err(format!("{path}.samples"), format!("{} is out of range 1..=64", a.samples));
        }
        ok
    }

    /// The successes layer `i` needs, against its agents when they can be counted;
    /// returns them.
    fn successes(&mut self, i: usize, layer: &Layer, slots: Option<u32>) -> u32 {
        let min = layer.min_successes.unwrap_or(self.recipe.policy.min_successes);
        let path = if layer.min_successes.is_some() {
            format!("layers[{i}].min_successes")
        } else {
            "policy.min_successes".into()
        };
        if min == 0 {
            self.err(path, "must be at least 1");
        } else if let Some(slots) = slots.filter(|s| min > *s) {
            self.err(path, format!("{min} successes needed but layer {i} has only {slots} agents"));
        }
        min
    }

    /// Layer `i`'s quorum (its own or the policy's), against its agents and successes.
    fn quorum(&mut self, i: usize, layer: &Layer, slots: Option<u32>, min: u32) {
        let (quorum, path) = match (layer.quorum, self.recipe.policy.quorum) {
            (Some(q), _) => (q, format!("layers[{i}].quorum")),
            (None, Some(q)) => (q, "policy.quorum".into()),
            (None, None) => return,
        };
        if quorum.min == 0 {
            self.err(format!("{path}.min"), "must be at least 1");
        } else if let Some(slots) = slots.filter(|s| quorum.min > *s) {
            self.err(
                format!("{path}.min"),
                format!("a quorum of {} but layer {i} has only {slots} agents", quorum.min),
            );
        } else if quorum.min < min {
            self.err(
                format!("{path}.min"),
                format!("a quorum of {} is below the {min} successes the layer needs", quorum.min),
            );
        }
        if quorum.grace_ms as f64 > MAX_SECS * 1000.0 {
            self.err(format!("{path}.grace_ms"), "must be at most a week");
        }
    }

    fn aggregator(&mut self) {
        let r = self.recipe;
        let agg = &r.aggregator;
        let kind = self.model("aggregator", &agg.model);
        self.temperature("aggregator.temperature", agg.temperature, kind);
        self.max_tokens("aggregator.max_tokens", agg.max_tokens);
        if agg.context_tokens == Some(0) {
            self.err("aggregator.context_tokens", "must be at least 1 (leave it out for the provider's)");
        }
        if let Some(s) = &agg.strategy {
            self.strategy("aggregator.strategy", s);
        }
        if let Some(st) = agg.staircase {
            self.staircase(st);
        }
        self.sampling(agg, kind);
    }

    fn staircase(&mut self, st: Staircase) {
        let r = self.recipe;
        if st.chunk_chars == 0 || st.step_tokens == 0 {
            self.err("aggregator.staircase", "chunk_chars and step_tokens must be at least 1");
        }
        if !(1..=MAX_GROWTH).contains(&st.growth) {
            self.err("aggregator.staircase.growth", format!("must be 1 to {MAX_GROWTH} (1: every step the same size)"));
        }
        if r.layers.is_empty() {
            self.err("aggregator.staircase", "a staircase needs a layer of proposers to step on");
        }
        let synthesizes = r
            .aggregator
            .strategy
            .as_ref()
            .is_none_or(|s| s.plugin.is_none() && s.name.as_deref() == Some(StrategyKind::Synthesize.name()));
        if !synthesizes {
            self.err(
                "aggregator.staircase",
                "works with the synthesize strategy only (the aggregator writes from partial proposals)",
            );
        }
        if r.layers.last().is_some_and(|l| l.early_exit) {
            self.err("aggregator.staircase", "the last layer's early_exit would end a run whose answer has begun");
        }
    }

    fn prices(&mut self) {
        for (key, price) in &self.recipe.prices {
            let path = format!("prices.{}", Quoted(key));
            self.model(&path, key);
            if !(price.input.is_finite() && price.input >= 0.0 && price.output.is_finite() && price.output >= 0.0) {
                self.err(path.clone(), "prices must be finite and not negative (US dollars per million tokens)");
            }
            if price.batch.is_some_and(|b| !(b > 0.0 && b <= 1.0)) {
                self.err(format!("{path}.batch"), "the batch share must be in 0 < share ≤ 1");
            }
        }
    }

    /// Checks `provider:model`; returns the provider's kind when it is known.
    fn model(&mut self, path: &str, spec: &str) -> Option<ProviderKind> {
        let Some((provider, model)) = spec.split_once(':') else {
            self.err(path, format!("{} must be \"provider:model\"", Quoted(spec)));
            return None;
        };
        if model.is_empty() {
            self.err(path, format!("{} names no model after the colon", Quoted(spec)));
        }
        match self.recipe.providers.get(provider) {
            Some(p) => Some(p.kind),
            None => {
                let known: Vec<&str> = self.recipe.providers.keys().map(String::as_str).collect();
                self.err(path, format!("unknown provider {} (known: {})", Quoted(provider), known.join(", ")));
                None
            }
        }
    }

    fn temperature(&mut self, path: &str, t: Option<f64>, kind: Option<ProviderKind>) {
        let Some(t) = t else { return };
        let max = if kind == Some(ProviderKind::Anthropic) { 1.0 } else { 2.0 };
        if !(t.is_finite() && (0.0..=max).contains(&t)) {
            self.err(path, format!("{} is out of range 0..={}", Shortest(t), Shortest(max)));
        }
    }

    fn sampling(&mut self, a: &Aggregator, kind: Option<ProviderKind>) {
        if let Some(p) = a.top_p
            && !(p.is_finite() && (0.0..=1.0).contains(&p))
        {
            self.err("aggregator.top_p", format!("{} is out of range 0..=1", Shortest(p)));
        }
        for (field, value) in [("presence_penalty", a.presence_penalty), ("frequency_penalty", a.frequency_penalty)] {
            if let Some(v) = value
                && !(v.is_finite() && (-2.0..=2.0).contains(&v))
            {
                self.err(format!("aggregator.{field}"), format!("{} is out of range -2..=2", Shortest(v)));
            }
        }
        if a.stop.len() > 4 {
            self.err("aggregator.stop", format!("{} stop sequences; at most 4", a.stop.len()));
        }
        if a.stop.iter().any(String::is_empty) {
            self.err("aggregator.stop", "a stop sequence cannot be empty");
        }
        if kind == Some(ProviderKind::Anthropic) {
            for (field, set) in [
                ("seed", a.seed.is_some()),
                ("presence_penalty", a.presence_penalty.is_some()),
                ("frequency_penalty", a.frequency_penalty.is_some()),
            ] {
                if set {
                    self.err(format!("aggregator.{field}"), "Anthropic's Messages API has no such option");
                }
            }
        }
    }

    fn max_tokens(&mut self, path: &str, n: Option<u32>) {
        if n == Some(0) {
            self.err(path, "must be at least 1");
        }
    }

    fn strategy(&mut self, path: &str, s: &StrategySpec) {
        match (&s.name, &s.plugin) {
            (Some(_), Some(_)) => {
                self.err(path, "give either `name` (a built-in) or `plugin` (a .wasm file), not both")
            }
            (None, None) => self.err(path, "give `name` (a built-in) or `plugin` (a .wasm file)"),
            (Some(name), None) => {
                let kind = StrategyKind::from_name(name);
                if kind.is_none() {
                    let builtins: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.name()).collect();
                    self.err(
                        path,
                        format!(
                            "unknown strategy {} (built-in: {}; or use {{ plugin = \"file.wasm\" }})",
                            Quoted(name),
                            builtins.join(", ")
                        ),
                    );
                }
                if s.timeout_ms.is_some() || s.memory_mib.is_some() || s.max_output_kib.is_some() {
                    self.err(path, "timeout_ms, memory_mib and max_output_kib apply to plugins only");
                }
                // A built-in's parameters are checked now, not when a run reaches it.
                if kind.is_some()
                    && s.params.is_object()
                    && let Err(e) = crate::strategy::Resolver::resolve(&crate::strategy::Builtins, s)
                {
                    self.err(format!("{path}.params"), e.message);
                }
                // A judge is called through one of the recipe's providers.
                if let Some(judge) = s.params.get("judge").and_then(|j| j.as_str()) {
                    self.model(&format!("{path}.params.judge"), judge);
                }
            }
            (None, Some(p)) => {
                if p.is_empty() {
                    self.err(format!("{path}.plugin"), "the plugin path is empty");
                }
                if s.timeout_ms == Some(0) || s.memory_mib == Some(0) || s.max_output_kib == Some(0) {
                    self.err(path, "plugin limits must be positive");
                }
                if let Some(ms) = s.timeout_ms.filter(|ms| *ms > MAX_PLUGIN_TIMEOUT_MS) {
                    self.err(
                        format!("{path}.timeout_ms"),
                        format!("{ms} ms is over the most a decision may take, {MAX_PLUGIN_TIMEOUT_MS} ms (wall time)"),
                    );
                }
            }
        }
        if !(s.params.is_null() || s.params.is_object()) {
            self.err(format!("{path}.params"), "params must be a table of named values");
        }
    }

    fn policy(&mut self) {
        let p = &self.recipe.policy;
        for (field, value) in [
            ("timeout_secs", p.timeout_secs),
            ("stall_timeout_secs", p.stall_timeout_secs),
            ("max_backoff_secs", p.max_backoff_secs),
        ] {
            if !(value.is_finite() && value > 0.0 && value <= MAX_SECS) {
                self.err(
                    format!("policy.{field}"),
                    format!(
                        "{} must be a positive number of seconds, at most {} (a week)",
                        Shortest(value),
                        Shortest(MAX_SECS)
                    ),
                );
            }
        }
        for (field, value) in [("backoff_secs", p.backoff_secs), ("max_retry_after_secs", p.max_retry_after_secs)] {
            if !(value.is_finite() && (0.0..=MAX_SECS).contains(&value)) {
                self.err(
                    format!("policy.{field}"),
                    format!(
                        "{} must be zero or a positive number of seconds, at most {} (a week)",
                        Shortest(value),
                        Shortest(MAX_SECS)
                    ),
                );
            }
        }
        if p.retries > 100 {
            self.err("policy.retries", format!("{} retries is more than 100", p.retries));
        }
        if p.max_concurrency == Some(0) {
            self.err("policy.max_concurrency", "must be at least 1 (leave it out for no limit)");
        }
    }
}
