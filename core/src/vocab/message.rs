//! Chat messages: the conversation a run answers, and what each agent is sent.

use super::tools::ToolCall;
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
    /// The result of a tool call (`tool_call_id` names the call).
    Tool,
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
    /// An assistant's calls of tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }
    /// A message from `role`, text only.
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }
    /// An assistant's calls of tools, with what it said beside them.
    pub fn tool_calls(content: impl Into<String>, calls: Vec<ToolCall>) -> Message {
        Message { tool_calls: calls, ..Message::assistant(content) }
    }
    /// The result of the call `id`.
    pub fn tool_result(id: impl Into<String>, content: impl Into<String>) -> Message {
        Message { tool_call_id: Some(id.into()), ..Message::new(Role::Tool, content) }
    }
}

impl Message {
    /// The message with its tool traffic as text, for a model (or a plugin) that gets no
    /// real tools: a tool result becomes the user's turn, an assistant's calls lines of
    /// its text.
    pub fn flattened(&self) -> Message {
        match self.role {
            Role::Tool => {
                let id = self.tool_call_id.as_deref().unwrap_or("?");
                Message::user(format!("[result of tool call {id}]\n{}", self.content))
            }
            Role::Assistant if !self.tool_calls.is_empty() => {
                Message::assistant(with_calls(&self.content, &self.tool_calls))
            }
            _ => self.clone(),
        }
    }
}

/// Text followed by the calls it made, one per line.
pub fn with_calls(text: &str, calls: &[ToolCall]) -> String {
    let mut out = text.trim().to_owned();
    for c in calls {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[tool call {}: {}({})]", c.id, c.function.name, c.function.arguments));
    }
    out
}

/// Checks that a conversation can be answered: not empty, ending with the user's turn
/// (or a tool's result), every tool result answering an earlier call.
pub fn validate_conversation(messages: &[Message]) -> Result<(), String> {
    match messages.last() {
        None => Err("the conversation is empty: give at least one user message".into()),
        // A tool's result asks the model to go on, as a user's turn does.
        Some(m) if !matches!(m.role, Role::User | Role::Tool) => {
            Err(format!("the conversation ends with a {:?} message; the last message must be the user's", m.role)
                .to_ascii_lowercase())
        }
        Some(_) => check_tool_results(messages),
    }
}

/// Every tool result answers a call of the assistant message before it (OpenAI's rule).
fn check_tool_results(messages: &[Message]) -> Result<(), String> {
    let mut open: Vec<&str> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::Assistant => open = m.tool_calls.iter().map(|c| c.id.as_str()).collect(),
            Role::Tool => {
                let Some(id) = m.tool_call_id.as_deref() else {
                    return Err(format!("messages[{i}]: a tool message needs tool_call_id"));
                };
                if !open.contains(&id) {
                    return Err(format!(
                        "messages[{i}]: tool_call_id {} answers no tool call of the assistant message before it",
                        crate::quote::Quoted(id)
                    ));
                }
            }
            _ => open.clear(),
        }
    }
    Ok(())
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
