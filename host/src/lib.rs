//! # moa-host
//!
//! The native side of moa: a tokio + reqwest transport that drives `moa-core`'s sans-IO
//! engine, the `moa` command line, and batch jobs that lose nothing.

pub mod batch;
pub mod clock;
pub mod eval;
pub mod keys;
pub mod local;
pub mod mcp;
pub mod plugin;
pub mod progress;
pub mod recipes;
pub mod serve;
pub mod transport;
pub mod tune;

pub use clock::Clock;
pub use transport::Transport;
