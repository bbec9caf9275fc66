//! The contract versions this host accepts, as one enum: a plugin is pre-instantiated
//! under the version it implements, and callers get one [`Info`] and one [`Reply`]
//! whatever the version. A new version is a WIT folder, a module of bindings beside
//! [`v0_1_0`], and a variant here; nothing that calls a plugin changes.

use super::sandbox::PluginState;
use super::{v0_1_0, v0_2_0};
use moa_core::strategy::{StrategyInput, plugin};
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// Contract versions this host accepts, newest first.
pub const SUPPORTED: [&str; 2] = [v0_2_0::VERSION, v0_1_0::VERSION];

pub use moa_core::strategy::plugin::{Asked, Decided, Reply};

/// What a plugin says of itself (`describe`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Info {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Its params, described.
    pub params: String,
}

/// A plugin pre-instantiated under the contract version it implements.
pub enum Contract {
    /// `moa:strategy@0.1.0`.
    V0_1_0(v0_1_0::PluginPre<PluginState>),
    /// `moa:strategy@0.2.0`: asks, ending the debate, notes.
    V0_2_0(v0_2_0::PluginPre<PluginState>),
}

impl Contract {
    /// The contract version that `exports` (a component's export names) implement, the
    /// newest this host supports; else why none.
    pub fn find(exports: &[String]) -> Result<&'static str, String> {
        plugin::Contract::find(exports, &plugin::Contract::ALL).map(plugin::Contract::version)
    }

    /// `pre` under contract `version` (one of [`SUPPORTED`]).
    pub fn new(version: &str, pre: InstancePre<PluginState>) -> wasmtime::Result<Contract> {
        match version {
            v0_1_0::VERSION => Ok(Contract::V0_1_0(v0_1_0::PluginPre::new(pre)?)),
            v0_2_0::VERSION => Ok(Contract::V0_2_0(v0_2_0::PluginPre::new(pre)?)),
            other => Err(wasmtime::format_err!("contract version {other} is not supported by this host")),
        }
    }

    /// Its contract version.
    pub fn version(&self) -> &'static str {
        match self {
            Contract::V0_1_0(_) => v0_1_0::VERSION,
            Contract::V0_2_0(_) => v0_2_0::VERSION,
        }
    }

    /// A fresh instance in `store` describes the plugin.
    pub fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Info> {
        match self {
            Contract::V0_1_0(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                plugin.moa_strategy_strategy().call_describe(store).map(v0_1_0::info)
            }
            Contract::V0_2_0(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                plugin.moa_strategy_strategy().call_describe(store).map(v0_2_0::info)
            }
        }
    }

    /// A fresh instance in `store` decides on `input` with `params` (JSON text), given
    /// this decision's asks so far (`asked`, which 0.1 cannot see: it never asks): the
    /// reply, or the plugin's own refusal.
    pub fn decide(
        &self,
        store: &mut Store<PluginState>,
        input: &StrategyInput<'_>,
        params: &str,
        asked: &[Asked],
    ) -> wasmtime::Result<Result<Decided, String>> {
        match self {
            Contract::V0_1_0(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                let ctx = v0_1_0::context(input, params);
                let decided = plugin.moa_strategy_strategy().call_decide(store, &ctx)?;
                Ok(decided.map(|d| Decided { reply: v0_1_0::reply(d), note: None }))
            }
            Contract::V0_2_0(pre) => {
                let plugin = pre.instantiate(&mut *store)?;
                let ctx = v0_2_0::context(input, params, asked);
                let decided = plugin.moa_strategy_strategy().call_decide(store, &ctx)?;
                Ok(decided.map(|d| {
                    let (reply, note) = v0_2_0::reply(d);
                    Decided { reply, note }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_supported_contract_is_found_and_others_are_named() {
        let exports = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Contract::find(&exports(&["x", "moa:strategy/strategy@0.1.0"])), Ok("0.1.0"));
        assert_eq!(Contract::find(&exports(&["moa:strategy/strategy@0.2.0"])), Ok("0.2.0"));
        let err = Contract::find(&exports(&["moa:strategy/strategy@9.0.0"])).expect_err("an error");
        assert!(
            err.contains("implements moa:strategy/strategy@9.0.0, but this host supports moa:strategy@0.2.0, @0.1.0"),
            "{err}"
        );
        let err = Contract::find(&exports(&["run"])).expect_err("an error");
        assert!(err.contains("exports no moa:strategy contract (it exports: run)"), "{err}");
    }
}
