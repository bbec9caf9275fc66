//! Why a plugin could not be loaded or could not decide, typed, and how a wasmtime error
//! becomes one of them.

use super::MAX_DESCRIBE;
use super::sandbox::{Call, Limits, OverCap, copy_budget, inert};
use thiserror::Error;
use wasmtime::Trap;

/// Why a plugin could not be loaded or could not decide. Always names the plugin.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("plugin {plugin}: cannot read it: {reason}")]
    Read {
        /// The plugin's path.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// Not a valid WebAssembly component.
    #[error("plugin {plugin}: not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The plugin's path.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// A valid component that does not implement a supported contract, or that imports
    /// what the contract does not grant.
    #[error("plugin {plugin}: {reason}")]
    Contract {
        /// The plugin's path.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin ran past its deadline (wall time).
    #[error("plugin {plugin}: ran past its deadline of {ms} ms (timeout_ms, wall time) and was stopped")]
    Timeout {
        /// The plugin's path.
        plugin: String,
        /// The deadline.
        ms: u128,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin {plugin}: tried to use more than its {mib} MiB memory cap (memory_mib) and was stopped")]
    Memory {
        /// The plugin's path.
        plugin: String,
        /// The cap.
        mib: usize,
    },
    /// The plugin trapped: a panic, a stack overflow, a bad memory access.
    #[error("plugin {plugin}: crashed: {reason}")]
    Trap {
        /// The plugin's path.
        plugin: String,
        /// The trap, in words.
        reason: String,
    },
    /// The plugin returned more than the host copies out of it: refused while lifting,
    /// before the host held any of it.
    #[error(
        "plugin {plugin}: {what} returned more than the {cap} bytes the host copies out of a plugin{why}; refused before the host held it"
    )]
    TooLarge {
        /// The plugin's path.
        plugin: String,
        /// `describe` or `a decision`.
        what: &'static str,
        /// The most the host copies.
        cap: usize,
        /// Which setting sets the cap, when the recipe does.
        why: &'static str,
    },
    /// The plugin returned more than the cap.
    #[error("plugin {plugin}: returned {bytes} bytes, over its cap of {cap} bytes (max_output_kib)")]
    Output {
        /// The plugin's path.
        plugin: String,
        /// What it returned.
        bytes: usize,
        /// The cap.
        cap: usize,
    },
    /// The plugin returned something impossible, or reported an error itself.
    #[error("plugin {plugin}: {reason}")]
    Decision {
        /// The plugin's path.
        plugin: String,
        /// What was wrong.
        reason: String,
    },
}

/// Turns a wasmtime error into what the user needs to know.
pub(crate) fn classify(plugin: &str, e: &wasmtime::Error, limits: Limits, copy: Call, stderr: &str) -> PluginError {
    let plugin = plugin.to_owned();
    let text = inert(&format!("{e:#}"));
    let said: String = inert(&stderr.chars().take(300).collect::<String>());
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout { plugin, ms: limits.timeout.as_millis() },
        _ if e.downcast_ref::<OverCap>().is_some() => PluginError::Memory { plugin, mib: limits.memory >> 20 },
        // wasmtime's words when a lift runs out of hostcall fuel: its error type for that
        // is private, so its message is the one thing to tell it by
        // (`what_a_decision_causes_is_bounded...` in host/tests/plugins.rs holds it).
        _ if text.contains("fuel allocated for hostcalls has been exhausted") => match copy {
            Call::Describe => PluginError::TooLarge { plugin, what: "describe", cap: MAX_DESCRIBE, why: "" },
            Call::Decision => PluginError::TooLarge {
                plugin,
                what: "a decision",
                cap: copy_budget(limits.output),
                why: " (twice max_output_kib, and 64 KiB)",
            },
        },
        Some(Trap::StackOverflow) => PluginError::Trap { plugin, reason: "stack overflow (runaway recursion?)".into() },
        Some(Trap::UnreachableCodeReached) if !said.is_empty() => {
            PluginError::Trap { plugin, reason: format!("it panicked: {said}") }
        }
        Some(Trap::UnreachableCodeReached) => {
            PluginError::Trap { plugin, reason: "it panicked or aborted (wasm `unreachable` executed)".into() }
        }
        Some(Trap::MemoryOutOfBounds) => PluginError::Trap {
            plugin,
            reason: "out-of-bounds memory access (a stack overflow in linear memory, or a bug)".into(),
        },
        Some(t) => PluginError::Trap { plugin, reason: t.to_string() },
        None => PluginError::Trap { plugin, reason: text },
    }
}
