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
//! use moa_core::{Action, Input, Message, Run, Time, recipe};
//!
//! // A driver: here every call answers at once with the same tiny stream.
//! let sse = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi!\"}}]}\n\ndata: [DONE]\n\n";
//! let recipe = recipe::preset("local").expect("built in");
//! let now = Time::from_millis(0);
//! let mut run = Run::new(&recipe, vec![Message::user("Hello?")], now)?;
//! let mut pending = Vec::new();
//! let outcome = loop {
//!     match run.poll() {
//!         Action::Request { call, http } => pending.push(call), // send `http`
//!         Action::Cancel { call } => {}                          // abort that call
//!         Action::Event(event) => {}                             // show it
//!         Action::Decide { decision, .. } => {                   // a strategy plugin's turn
//!             // This driver runs no plugins: it says so (the recipe's on_error decides).
//!             let answer = Err("this driver runs no plugins");
//!             run.handle(Input::Decided { decision, answer, now });
//!         }
//!         Action::Done(outcome) => break outcome,
//!         Action::Wait(_deadline) => {
//!             // Block until a response arrives or the deadline passes (then Input::Tick).
//!             let call = pending.pop().expect("a call in flight");
//!             run.handle(Input::Head { call, status: 200, headers: vec![], now });
//!             run.handle(Input::Body { call, bytes: sse, now });
//!             run.handle(Input::End { call, now });
//!         }
//!     }
//! };
//! assert_eq!(outcome.answer.as_deref().ok(), Some("Hi!"));
//! assert_eq!(outcome.layers[0].calls.len(), 3); // the local preset's three proposers
//! # Ok::<(), moa_core::RunError>(())
//! ```

pub mod engine;
pub mod eval;
pub mod event;
mod float;
mod fold;
pub mod http;
pub mod input;
mod json_read;
pub mod json_text;
pub mod named;
pub mod provider;
pub mod quote;
pub mod recipe;
mod rng;
pub mod schema;
pub mod sse;
pub mod strategy;
pub mod time;
#[cfg(test)]
mod ts;
pub mod vocab;

pub use vocab::{message, tools, usage};

pub use engine::redact::Redactor;
pub use engine::{Action, CallError, CallReport, Input, LayerReport, Outcome, Run, RunError, RunOptions};
pub use event::{CallId, Event};
pub use http::HttpRequest;
pub use message::{Message, Role};
pub use recipe::{Recipe, RecipeError};
pub use time::Time;
pub use tools::{ResponseFormat, Tool, ToolCall, ToolChoice, ToolPolicy, Tools};
pub use usage::{Price, Usage};
