//! The contract versions this host accepts, as one enum: a plugin is pre-instantiated
//! under the version it implements, and callers get one [`Info`] and one [`Reply`]
//! whatever the version. A new version is a WIT folder, a module of bindings beside
//! [`v0_1_0`], and a variant here; nothing that calls a plugin changes.

use super::sandbox::PluginState;
use super::{v0_1_0, v0_2_0};
use moa_core::Message;
use moa_core::strategy::{Ask, StrategyInput};
use wasmtime::Store;
use wasmtime::component::InstancePre;

/// Contract versions this host accepts, newest first.
pub const SUPPORTED: [&str; 2] = [v0_2_0::VERSION, v0_1_0::VERSION];

/// An ask of the decision under way and its reply: the text, or why the call failed.
pub type Asked = (Ask, Result<String, String>);

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

/// A plugin's decision, whatever its contract version.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Messages for the next layer's agents (or the aggregator).
    Messages(Vec<Message>),
    /// The final answer.
    Answer(String),
    /// Keep these proposals (indices), dropping the rest.
    Keep(Vec<u32>),
    /// End the debate: these messages go to the final aggregator (contract 0.2).
    Aggregate(Vec<Message>),
    /// End the debate with these proposals kept (contract 0.2).
    AggregateKept(Vec<u32>),
    /// Make this call, then decide again with its reply (contract 0.2).
    Ask(Ask),
}

/// A reply with the plugin's note on it (contract 0.2; none before).
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    /// What it decided.
    pub reply: Reply,
    /// What it chose and why, for the user; as the plugin wrote it (not yet inert).
    pub note: Option<String>,
}

impl Reply {
    /// Bytes of text in it, for the output cap.
    pub fn size(&self) -> usize {
        match self {
            Reply::Messages(ms) | Reply::Aggregate(ms) => ms.iter().map(|m| m.content.len() + 16).sum(),
            Reply::Keep(ix) | Reply::AggregateKept(ix) => ix.len() * 4,
            Reply::Answer(a) => a.len(),
            Reply::Ask(a) => {
                let model = a.model.as_ref().map_or(0, String::len);
                a.label.len() + model + a.messages.iter().map(|m| m.content.len() + 16).sum::<usize>()
            }
        }
    }
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
        let export = |v: &str| format!("moa:strategy/strategy@{v}");
        if let Some(v) = SUPPORTED.iter().find(|v| exports.contains(&export(v))) {
            return Ok(v);
        }
        let found: Vec<&String> = exports.iter().filter(|e| e.starts_with("moa:strategy/")).collect();
        Err(match found.first() {
            Some(other) => format!("implements {other}, but this host supports moa:strategy@{}", SUPPORTED.join(", @")),
            None => format!("exports no moa:strategy contract (it exports: {})", exports.join(", ")),
        })
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

    #[test]
    fn a_replys_size_counts_its_text() {
        assert_eq!(Reply::Answer("abc".into()).size(), 3);
        assert_eq!(Reply::Keep(vec![0, 1]).size(), 8);
        assert_eq!(Reply::Messages(vec![Message::user("hi")]).size(), 18);
        assert_eq!(Reply::Aggregate(vec![Message::user("hi")]).size(), 18);
        let ask = Ask {
            model: Some("p:m".into()),
            label: "judge".into(),
            messages: vec![Message::user("hi")],
            max_tokens: None,
        };
        assert_eq!(Reply::Ask(ask).size(), 3 + 5 + 18);
    }
}
