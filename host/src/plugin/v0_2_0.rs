//! Contract `moa:strategy@0.2.0` (`host/wit/v0.2.0`): bindings and conversions. New over
//! 0.1: a decision may ask the engine for calls (`ask`), end the debate (`aggregate`,
//! `aggregate-kept`) and carry a note; the context carries the run's seed and every ask
//! of this decision with its reply.

use super::{Asked, Reply};
use moa_core::strategy::{Ask, Proposal, StrategyInput};
use moa_core::{Message, Role};

/// Generated from the WIT; its items mirror the contract's own documentation.
#[allow(missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/v0.2.0",
        world: "plugin",
    });
}

pub use bindings::exports::moa::strategy::strategy::{Context, Decided, Info};
use bindings::moa::strategy::types as wit;
pub use bindings::{Plugin, PluginPre};
use wit::Decision;

/// This contract's version.
pub const VERSION: &str = "0.2.0";

fn role_to_wit(r: Role) -> wit::Role {
    match r {
        Role::System => wit::Role::System,
        Role::User => wit::Role::User,
        Role::Assistant => wit::Role::Assistant,
        // The contract knows no tool role; tool traffic reaches it as text (`flattened`).
        Role::Tool => wit::Role::User,
    }
}

fn message_to_wit(m: &Message) -> wit::Message {
    let m = m.flattened();
    wit::Message { role: role_to_wit(m.role), content: m.content }
}

fn message_from_wit(m: wit::Message) -> Message {
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

fn ask_to_wit(a: &Ask) -> wit::Ask {
    wit::Ask {
        model: a.model.clone(),
        label: a.label.clone(),
        messages: a.messages.iter().map(message_to_wit).collect(),
        max_tokens: a.max_tokens,
    }
}

fn ask_from_wit(a: wit::Ask) -> Ask {
    Ask {
        model: a.model,
        label: a.label,
        messages: a.messages.into_iter().map(message_from_wit).collect(),
        max_tokens: a.max_tokens,
    }
}

/// The context a plugin sees for one step of a decision.
pub fn context(input: &StrategyInput<'_>, params: &str, asked: &[Asked]) -> Context {
    Context {
        conversation: input.conversation.iter().map(message_to_wit).collect(),
        layer: input.layer as u32,
        layer_count: input.layer_count as u32,
        proposals: input.proposals.iter().map(proposal_to_wit).collect(),
        params: params.to_owned(),
        seed: input.seed,
        asked: asked.iter().map(|(ask, reply)| wit::Answered { ask: ask_to_wit(ask), reply: reply.clone() }).collect(),
    }
}

/// A decision as the host's [`Reply`], with its note.
pub fn reply(d: Decided) -> (Reply, Option<String>) {
    let reply = match d.decision {
        Decision::Messages(ms) => Reply::Messages(ms.into_iter().map(message_from_wit).collect()),
        Decision::Keep(ix) => Reply::Keep(ix),
        Decision::Answer(a) => Reply::Answer(a),
        Decision::Aggregate(ms) => Reply::Aggregate(ms.into_iter().map(message_from_wit).collect()),
        Decision::AggregateKept(ix) => Reply::AggregateKept(ix),
        Decision::Ask(a) => Reply::Ask(ask_from_wit(a)),
    };
    (reply, d.note)
}

/// What `describe` said, as the host's [`super::Info`].
pub fn info(i: Info) -> super::Info {
    super::Info { name: i.name, version: i.version, description: i.description, params: i.params }
}
