//! Users' own strategies as sandboxed WebAssembly components, run with wasmtime.
//!
//! A plugin is validated, compiled once (and cached on disk between runs by wasmtime's
//! cache), checked against the contract versions this host supports and the imports the
//! contract grants, and pre-instantiated (`InstancePre`). Every decision gets a fresh
//! `Store` — a trap poisons an instance, so none is ever reused — with an empty WASI
//! context (no files, sockets, environment or stdio but a capped stderr; a clock stopped
//! at the epoch and randomness that is all zeros, so even a plugin that found a way to
//! call them would learn nothing), one memory cap over all its linear memories and tables
//! together, a deadline by epoch interruption (wall time), and a cap on what it may
//! return. Loading is bounded too: the file's size and each function's size (compiling a
//! crafted huge function costs seconds and gigabytes).
//!
//! After Zed's extension host: each contract version has its WIT folder
//! (`host/wit/v0.1.0`) and a module of bindings and conversions ([`v0_1_0`]), and
//! [`Contract`] is the enum over the versions this host accepts, so callers see one
//! [`Info`] and one [`Reply`] whatever the version. The parts: [`sandbox`] (what a
//! plugin's store may use and see), [`compile`] (checking a file and compiling it in a
//! child process), [`runtime`] (the engine, loading, deciding), [`error`] (what went
//! wrong, typed).

pub mod compile;
pub mod contract;
pub mod error;
pub mod runtime;
pub mod sandbox;
mod strategy;
pub mod v0_1_0;
pub mod v0_2_0;

pub use compile::Compiler;
pub use contract::{Asked, Contract, Decided, Info, Reply, SUPPORTED};
pub use error::PluginError;
pub use runtime::{Plugin, Runtime};
pub use sandbox::{Limits, copy_budget, inert};
pub use strategy::{HostResolver, PluginStrategy};

use std::time::Duration;

/// How often the epoch advances: the granularity of plugin deadlines (wall time).
pub const TICK: Duration = Duration::from_millis(10);

/// The largest memory cap a recipe may give a plugin (`memory_mib`).
pub const MAX_MEMORY: usize = 1 << 30;

/// The largest function body compiled: the compiler's time and memory grow faster than
/// a function's size (a crafted 1 MB function took 6.5 s and 950 MiB). A Python plugin's
/// largest, libpython's data relocations, is 427 KB.
pub const MAX_FUNCTION: usize = 512 << 10;

/// How long compiling one plugin may take, in a child process (wall time).
pub const COMPILE_SECS: f64 = 20.0;

/// How much memory compiling one plugin may take, in a child process (its data limit).
pub const COMPILE_MIB: u64 = 1024;

/// Table elements a plugin may hold over all its tables.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The most `describe` may return, all fields together: what the host copies out of the
/// plugin before it cuts each field to [`moa_core::strategy::plugin::MAX_TEXT`].
pub const MAX_DESCRIBE: usize = 64 << 10;

pub(crate) use moa_core::strategy::plugin::SMALLER;
pub use moa_core::strategy::plugin::{MAX_ASKS, MAX_FILE, MAX_LABEL, MAX_MODEL};
