//! A plugin the driver runs (the browser module, in a Worker): the engine asks the driver
//! for each decision with a [`PluginRequest`] and checks the answer here, with the same
//! [`Decisions`] a native plugin's replies pass.

use super::{Contract, Decisions, wire};
use crate::recipe::StrategySpec;
use crate::strategy::{Decision, Strategy, StrategyError, StrategyInput};

/// A plugin's deadline per decision when the recipe sets none (`timeout_ms`).
pub const DEFAULT_TIMEOUT_MS: u64 = 300;

/// A plugin's memory cap when the recipe sets none (`memory_mib`).
pub const DEFAULT_MEMORY_MIB: u32 = 64;

/// A plugin's output cap when the recipe sets none (`max_output_kib`).
pub const DEFAULT_OUTPUT_KIB: u32 = 1024;

/// One decision for the driver to run.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginRequest {
    /// The plugin, as the recipe names it (`plugin = "..."`).
    pub plugin: String,
    /// The contract version it implements.
    pub contract: Contract,
    /// Its context in the [`wire`] format (JSON text).
    pub context: String,
    /// Its deadline, in milliseconds of wall time.
    pub timeout_ms: u64,
    /// Its memory cap, in MiB.
    pub memory_mib: u32,
    /// The most it may return, in KiB (the driver refuses a larger answer unread).
    pub max_output_kib: u32,
}

/// A plugin strategy whose decisions the driver makes.
#[derive(Debug)]
pub struct External {
    plugin: String,
    contract: Contract,
    params: String,
    timeout_ms: u64,
    memory_mib: u32,
    max_output_kib: u32,
    decisions: Decisions,
}

impl External {
    /// The plugin of `spec` (which names one), implementing `contract`.
    pub fn new(spec: &StrategySpec, contract: Contract) -> External {
        External {
            plugin: spec.plugin.clone().unwrap_or_default(),
            contract,
            params: if spec.params.is_null() { "{}".to_owned() } else { crate::json_text::write(&spec.params) },
            timeout_ms: spec.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            memory_mib: spec.memory_mib.unwrap_or(DEFAULT_MEMORY_MIB),
            max_output_kib: spec.max_output_kib.unwrap_or(DEFAULT_OUTPUT_KIB),
            decisions: Decisions::default(),
        }
    }

    /// What the driver runs for one step of the decision on `input`.
    pub fn request(&mut self, input: &StrategyInput<'_>) -> PluginRequest {
        let asked = self.decisions.begin(input);
        PluginRequest {
            plugin: self.plugin.clone(),
            contract: self.contract,
            context: wire::context(self.contract, input, &self.params, asked),
            timeout_ms: self.timeout_ms,
            memory_mib: self.memory_mib,
            max_output_kib: self.max_output_kib,
        }
    }

    /// The driver's answer (the plugin's reply in the wire format, or why running it
    /// failed) as a decision on `input`, checked; else why not.
    pub fn answer(&mut self, answer: Result<&str, &str>, input: &StrategyInput<'_>) -> Result<Decision, String> {
        let json = answer.map_err(str::to_owned)?;
        // The driver holds the cap before it reads; the engine holds it again, so a
        // driver's slip cannot pass a larger reply on.
        let cap = (self.max_output_kib as usize) << 10;
        if json.len() > cap.saturating_mul(2).saturating_add(64 << 10) {
            return Err(format!("returned more than its output cap of {} KiB", self.max_output_kib));
        }
        match wire::decided(self.contract, json)? {
            Err(why) => Err(format!("declined to decide: {}", super::inert(&why))),
            Ok(d) if d.size() > cap => Err(format!("returned more than its output cap of {} KiB", self.max_output_kib)),
            Ok(d) => self.decisions.accept(d, input),
        }
    }
}

impl Strategy for External {
    fn name(&self) -> &str {
        &self.plugin
    }

    /// Never called by the engine, which asks the driver instead ([`Strategy::external`]).
    fn decide(&mut self, _: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        Err(StrategyError { strategy: self.plugin.clone(), message: "runs only through its driver".into() })
    }

    fn note(&mut self) -> Option<String> {
        self.decisions.note()
    }

    fn external(&mut self) -> Option<&mut External> {
        Some(self)
    }
}
