//! # moa-core
//!
//! The portable heart of moa, a Mixture-of-Agents runner (Wang et al. 2024): several
//! LLMs answer, later layers refine using the earlier answers, and an aggregator writes
//! one final answer.
//!
//! This crate does no I/O. [`Run`] is a state machine in the style of `str0m` and
//! `quinn-proto`: it asks for HTTP requests ([`Action::Request`]), is fed their
//! responses ([`Input`]), and reports [`Event`]s. The native host (tokio) and the browser
//! module (`fetch`) drive the same engine, so provider protocols, retries, deadlines and
//! concurrency behave the same everywhere and are tested in simulated time.
//!
//! ```
//! use moa_core::{Action, Message, Run, Time, recipe};
//!
//! let recipe = recipe::preset("local").expect("built in");
//! let mut run = Run::new(&recipe, vec![Message::user("Hi!")], Time::from_millis(0))?;
//! let mut requests = 0;
//! while let Action::Request { .. } | Action::Event(_) = match run.poll() {
//!     a @ Action::Request { .. } => { requests += 1; a }
//!     a => a,
//! } {}
//! assert_eq!(requests, 3); // the local preset's three proposers start together
//! # Ok::<(), moa_core::RunError>(())
//! ```

pub mod engine;
pub mod event;
pub mod http;
pub mod message;
pub mod provider;
pub mod recipe;
pub mod sse;
pub mod strategy;
pub mod time;
pub mod usage;

pub use engine::{Action, CallError, Input, Outcome, Run, RunError, RunOptions};
pub use event::{CallId, Event};
pub use http::HttpRequest;
pub use message::{Message, Role};
pub use recipe::{Recipe, RecipeError};
pub use time::Time;
pub use usage::{Price, Usage};
