//! Chat messages: the conversation a run answers, and what each agent is sent.

use serde::{Deserialize, Serialize};

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person asking.
    User,
    /// A model's earlier reply.
    Assistant,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message { role: Role::System, content: content.into() }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message { role: Role::User, content: content.into() }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message { role: Role::Assistant, content: content.into() }
    }
}

/// Checks that a conversation can be answered: not empty, and ending with the user's turn.
pub fn validate_conversation(messages: &[Message]) -> Result<(), String> {
    match messages.last() {
        None => Err("the conversation is empty: give at least one user message".into()),
        Some(m) if m.role != Role::User => {
            Err(format!("the conversation ends with a {:?} message; the last message must be the user's", m.role)
                .to_lowercase())
        }
        Some(_) => Ok(()),
    }
}

/// Puts `system` in front of the conversation's system prompt, or adds it as a new first
/// message. Used for an agent's own system prompt, before any strategy text that is
/// already in the first system message.
pub fn prepend_system(messages: &mut Vec<Message>, system: &str) {
    match messages.first_mut() {
        Some(first) if first.role == Role::System => {
            first.content = format!("{system}\n\n{}", first.content);
        }
        _ => messages.insert(0, Message::system(system)),
    }
}
