//! The commands, one module each; `main` only parses and dispatches.

pub(crate) mod batch;
pub(crate) mod common;
pub(crate) mod display;
pub(crate) mod eval;
pub(crate) mod local;
pub(crate) mod mcp;
pub(crate) mod plugin;
pub(crate) mod plugin_new;
pub(crate) mod progress;
pub(crate) mod recipes;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod tools;
pub(crate) mod tune;
