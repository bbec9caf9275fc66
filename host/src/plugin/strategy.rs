//! Plugins as `moa_core` strategies, and the resolver that finds them from recipes. What
//! a reply may be is the core's ([`Decisions`]), shared with the browser module.

use super::{Limits, Plugin, PluginError, Runtime};
use moa_core::recipe::StrategySpec;
use moa_core::strategy::plugin::Decisions;
use moa_core::strategy::{Builtins, Decision, Resolver, Strategy, StrategyError, StrategyInput};
use std::path::PathBuf;
use std::sync::Arc;

/// A loaded plugin with the recipe's params and limits, and the decision under way.
pub struct PluginStrategy {
    runtime: Arc<Runtime>,
    plugin: Arc<Plugin>,
    params: String,
    limits: Limits,
    decisions: Decisions,
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
        Ok(PluginStrategy { runtime, plugin, params, limits, decisions: Decisions::default() })
    }
}

impl Strategy for PluginStrategy {
    fn name(&self) -> &str {
        &self.plugin.name
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        let asked = self.decisions.begin(input);
        // PluginError already names the plugin; StrategyError names it once more.
        let name = self.plugin.name.clone();
        let fail = |e: PluginError| strategy_error(&name, name.clone(), e);
        let decided = self.runtime.decide(&self.plugin, self.limits, input, &self.params, asked).map_err(fail)?;
        self.decisions
            .accept(decided, input)
            .map_err(|reason| fail(PluginError::Decision { plugin: name.clone(), reason }))
    }

    fn note(&mut self) -> Option<String> {
        self.decisions.note()
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
