//! Contract `moa:strategy@0.1.0` (`host/wit/v0.1.0`): bindings and conversions. A later
//! contract version gets a module of its own beside this one, as Zed's extension host
//! keeps one per WIT version, and the runtime accepts every version it still supports.

use super::Reply;
use moa_core::strategy::{Proposal, StrategyInput};
use moa_core::{Message, Role};

/// Generated from the WIT; its items mirror the contract's own documentation.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/v0.1.0",
        world: "plugin",
    });
}

pub use bindings::exports::moa::strategy::strategy::{Context, Decision, Info};
use bindings::moa::strategy::types as wit;
pub use bindings::{Plugin, PluginPre};

/// This contract's version.
pub const VERSION: &str = "0.1.0";

fn role_to_wit(r: Role) -> wit::Role {
    match r {
        Role::System => wit::Role::System,
        Role::User => wit::Role::User,
        Role::Assistant => wit::Role::Assistant,
        // Contract 0.1 knows no tool role; tool traffic reaches it as text (`flattened`).
        Role::Tool => wit::Role::User,
    }
}

/// Converts a plugin's message back into the core's.
pub fn message_from_wit(m: wit::Message) -> Message {
    let role = match m.role {
        wit::Role::System => Role::System,
        wit::Role::User => Role::User,
        wit::Role::Assistant => Role::Assistant,
    };
    Message::new(role, m.content)
}

fn proposal_to_wit(p: &Proposal) -> wit::Proposal {
    wit::Proposal {
        agent: p.agent.clone(),
        model: p.model.clone(),
        text: p.text.clone(),
        input_tokens: p.usage.map(|u| u.input_tokens),
        output_tokens: p.usage.map(|u| u.output_tokens),
        latency_ms: p.latency_ms,
    }
}

/// The context a plugin sees for one decision.
pub fn context(input: &StrategyInput<'_>, params: &str) -> Context {
    Context {
        conversation: input
            .conversation
            .iter()
            .map(|m| {
                let m = m.flattened();
                wit::Message { role: role_to_wit(m.role), content: m.content }
            })
            .collect(),
        layer: input.layer as u32,
        layer_count: input.layer_count as u32,
        proposals: input.proposals.iter().map(proposal_to_wit).collect(),
        params: params.to_owned(),
    }
}

/// A decision as the host's [`Reply`].
pub fn reply(d: Decision) -> Reply {
    match d {
        Decision::Messages(ms) => Reply::Messages(ms.into_iter().map(message_from_wit).collect()),
        Decision::Answer(a) => Reply::Answer(a),
        Decision::Keep(ix) => Reply::Keep(ix),
    }
}

/// What `describe` said, as the host's [`super::Info`].
pub fn info(i: Info) -> super::Info {
    super::Info { name: i.name, version: i.version, description: i.description, params: i.params }
}
