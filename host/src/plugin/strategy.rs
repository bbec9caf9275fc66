//! Plugins as `moa_core` strategies, and the resolver that finds them from recipes.

use super::{Asked, Limits, MAX_ASKS, MAX_LABEL, MAX_MODEL, Plugin, PluginError, Reply, Runtime, inert};
use moa_core::Message;
use moa_core::recipe::StrategySpec;
use moa_core::strategy::{
    Ask, Builtins, Decision, Resolver, Strategy, StrategyError, StrategyInput, inject_references,
};
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded plugin with the recipe's params and limits, and the decision under way.
pub struct PluginStrategy {
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
    params: String,
    limits: Limits,
    /// This decision's asks that have replies, oldest first.
    asked: Vec<Asked>,
    /// The ask whose reply comes with the next call.
    pending: Option<Ask>,
    /// The last decision's note, inert and bounded.
    note: Option<String>,
}

impl PluginStrategy {
    /// The plugin of `spec`, loaded (or found loaded) from `path`.
    pub fn new(
        runtime: Arc<Runtime>,
        path: &std::path::Path,
        spec: &StrategySpec,
    ) -> Result<PluginStrategy, PluginError> {
        if let Some(mib) = spec.memory_mib.filter(|m| (*m as usize) << 20 > super::MAX_MEMORY) {
            return Err(PluginError::Contract {
                plugin: path.display().to_string(),
                reason: format!("memory_mib = {mib} is over this host's maximum of {} MiB", super::MAX_MEMORY >> 20),
            });
        }
        let limits = Limits::from_spec(spec);
        let plugin = runtime.load_with(path, limits)?;
        let params = if spec.params.is_null() { "{}".to_owned() } else { spec.params.to_string() };
        Ok(PluginStrategy { runtime, plugin, params, limits, asked: Vec::new(), pending: None, note: None })
    }

    fn refuse(&self, reason: String) -> PluginError {
        PluginError::Decision { plugin: self.plugin.name.clone(), reason }
    }

    /// Files the reply to the last ask, or starts a new decision.
    fn track(&mut self, input: &StrategyInput<'_>) {
        match (input.reply, self.pending.take()) {
            (Some(reply), Some(ask)) => self.asked.push((ask, reply.map(str::to_owned).map_err(str::to_owned))),
            _ => self.asked.clear(),
        }
    }

    /// `reply` as the core's decision, checked against `input`.
    fn decision(&mut self, reply: Reply, input: &StrategyInput<'_>) -> Result<Decision, PluginError> {
        Ok(match reply {
            Reply::Messages(ms) => Decision::Messages(self.some_messages(ms)?),
            Reply::Aggregate(ms) => Decision::Aggregate(self.some_messages(ms)?),
            Reply::Answer(a) => Decision::Final(a),
            Reply::Keep(ix) => Decision::Messages(inject_references(input.conversation, &self.kept(&ix, input)?)),
            Reply::AggregateKept(ix) => {
                Decision::Aggregate(inject_references(input.conversation, &self.kept(&ix, input)?))
            }
            Reply::Ask(ask) => {
                self.check_ask(&ask)?;
                self.pending = Some(ask.clone());
                Decision::Ask(ask)
            }
        })
    }

    fn some_messages(&self, ms: Vec<Message>) -> Result<Vec<Message>, PluginError> {
        if ms.is_empty() {
            return Err(self.refuse("returned no messages".into()));
        }
        Ok(ms)
    }

    /// The proposals' texts at `ix`: each index in range, each at most once (duplicates
    /// would let a small answer multiply into a huge prompt), at least one.
    fn kept<'a>(&self, ix: &[u32], input: &StrategyInput<'a>) -> Result<Vec<&'a str>, PluginError> {
        let n = input.proposals.len();
        if ix.is_empty() {
            return Err(self.refuse("kept no proposals".into()));
        }
        let mut seen = vec![false; n];
        let mut refs = Vec::with_capacity(ix.len().min(n));
        for &i in ix {
            let Some(p) = input.proposals.get(i as usize) else {
                return Err(self.refuse(format!("kept proposal {i}, but there are only {n} (0..{n})")));
            };
            if std::mem::replace(&mut seen[i as usize], true) {
                return Err(self.refuse(format!("kept proposal {i} twice; each may be kept once")));
            }
            refs.push(p.text.as_str());
        }
        Ok(refs)
    }

    /// An ask is a paid call made in the user's name: bounded in number, its label fit
    /// for an event, its model a `provider:model` (the engine checks the provider).
    fn check_ask(&self, ask: &Ask) -> Result<(), PluginError> {
        if self.asked.len() >= MAX_ASKS {
            return Err(self.refuse(format!("asked for more than {MAX_ASKS} calls in one decision")));
        }
        let label_ok = !ask.label.is_empty()
            && ask.label.len() <= MAX_LABEL
            && ask.label.chars().all(|c| c.is_alphanumeric() || " -_./:()".contains(c));
        if !label_ok {
            return Err(self.refuse(format!(
                "asked with label {:?}: a label is 1 to {MAX_LABEL} bytes of letters, digits, spaces and -_./:()",
                ask.label.chars().take(80).collect::<String>()
            )));
        }
        if let Some(model) = &ask.model {
            // It names a call in events and may be echoed by a provider: plain text only.
            let plain = model.len() <= MAX_MODEL
                && model.chars().all(|c| !c.is_control() && !c.is_whitespace())
                && model.split_once(':').is_some_and(|(p, m)| !p.is_empty() && !m.is_empty());
            if !plain {
                let model: String = model.chars().take(80).collect();
                return Err(self.refuse(format!(
                    "asked for model {model:?}: a model is \"provider:model\", at most {MAX_MODEL} bytes, without spaces or control characters"
                )));
            }
        }
        if ask.messages.is_empty() {
            return Err(self.refuse("asked for a call with no messages".into()));
        }
        if ask.max_tokens.is_some_and(|m| !(1..=32_768).contains(&m)) {
            return Err(self.refuse("asked with max_tokens outside 1..=32768".into()));
        }
        Ok(())
    }
}

impl Strategy for PluginStrategy {
    fn name(&self) -> &str {
        &self.plugin.name
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        self.track(input);
        // PluginError already names the plugin; StrategyError names it once more.
        let name = self.plugin.name.clone();
        let fail = |e: PluginError| strategy_error(&name, name.clone(), e);
        let decided = self.runtime.decide(&self.plugin, self.limits, input, &self.params, &self.asked).map_err(fail)?;
        self.note = decided.note.as_deref().map(inert);
        self.decision(decided.reply, input).map_err(fail)
    }

    fn note(&mut self) -> Option<String> {
        self.note.take()
    }
}

/// Resolves built-ins through the core, and `plugin` specs by loading the component.
/// Relative plugin paths are taken from `base` (the recipe file's folder).
pub struct HostResolver {
    /// The plugin runtime.
    pub runtime: Arc<Runtime>,
    /// Folder relative plugin paths start from.
    pub base: PathBuf,
}

impl Resolver for HostResolver {
    fn resolve(&self, spec: &StrategySpec) -> Result<Box<dyn Strategy>, StrategyError> {
        match &spec.plugin {
            None => Builtins.resolve(spec),
            Some(p) => {
                let path = self.base.join(p);
                PluginStrategy::new(self.runtime.clone(), &path, spec)
                    .map(|s| Box::new(s) as Box<dyn Strategy>)
                    .map_err(|e| strategy_error(&path.display().to_string(), p.clone(), e))
            }
        }
    }
}

/// A plugin's error as a strategy error: `PluginError` already names the plugin, and
/// `StrategyError` names it again, so the message drops the first naming.
fn strategy_error(plugin: &str, strategy: String, e: PluginError) -> StrategyError {
    let text = e.to_string();
    let message = text.strip_prefix(&format!("plugin {plugin}: ")).unwrap_or(&text).to_owned();
    StrategyError { strategy, message }
}
