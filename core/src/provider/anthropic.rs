//! Anthropic Messages.

use super::{ChatRequest, Marker, ProviderError, StreamItem, ToolCallDelta, malformed, transient};
use crate::http::HttpRequest;
use crate::message::{Message, Role};
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::vocab::tools::{ToolChoice, Tools};
use serde_json::{Value, json};

/// The API version this client speaks.
pub const API_VERSION: &str = "2023-06-01";

pub(super) fn request(base: &str, key: Option<&str>, req: &ChatRequest<'_>) -> HttpRequest {
    // Anthropic takes the system prompt as a field of its own, not as a message.
    let system: Vec<&str> =
        req.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let messages = messages(req.messages);
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens,
        "temperature": req.temperature,
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = Value::String(system.join("\n\n"));
    }
    if let Some(p) = req.sampling.top_p {
        body["top_p"] = json!(p);
    }
    if !req.sampling.stop.is_empty() {
        body["stop_sequences"] = json!(req.sampling.stop);
    }
    if let Some(tools) = req.tools.filter(|t| !t.tools.is_empty()) {
        add_tools(&mut body, tools);
    }
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), "text/event-stream".to_owned()),
        ("anthropic-version".to_owned(), API_VERSION.to_owned()),
        // Lets a web page call the API directly with the user's own key.
        ("anthropic-dangerous-direct-browser-access".to_owned(), "true".to_owned()),
    ];
    if let Some(key) = key {
        headers.push(("x-api-key".to_owned(), key.to_owned()));
    }
    HttpRequest {
        method: "POST",
        url: format!("{base}/messages"),
        headers,
        body: crate::json_text::write(&body),
        endpoint: String::new(),
        kind: crate::vocab::ProviderKind::Anthropic,
    }
}

/// Anthropic's `tools` and `tool_choice`.
fn add_tools(body: &mut Value, tools: &Tools) {
    let defs: Vec<Value> = tools
        .tools
        .iter()
        .map(|t| {
            let mut d = json!({ "name": t.name, "input_schema": t.parameters });
            if let Some(text) = &t.description {
                d["description"] = json!(text);
            }
            d
        })
        .collect();
    body["tools"] = Value::Array(defs);
    let mut choice = match &tools.choice {
        ToolChoice::Auto => json!({ "type": "auto" }),
        ToolChoice::None => json!({ "type": "none" }),
        ToolChoice::Required => json!({ "type": "any" }),
        ToolChoice::Function(name) => json!({ "type": "tool", "name": name }),
    };
    if !tools.parallel && tools.choice != ToolChoice::None {
        choice["disable_parallel_tool_use"] = json!(true);
    }
    body["tool_choice"] = choice;
}

/// The conversation in Anthropic's terms: no system messages (a field of their own);
/// an assistant's tool calls as `tool_use` blocks; tool results as `tool_result` blocks
/// of a user turn, with any user text that follows them in the same turn (turns must
/// alternate). Plain text turns stay plain strings.
fn messages(conversation: &[Message]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for m in conversation.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = match m.role {
            Role::Assistant if !m.tool_calls.is_empty() => {
                let text = (!m.content.is_empty()).then(|| json!({ "type": "text", "text": m.content }));
                let uses = m.tool_calls.iter().map(|c| {
                    let input = crate::json_text::parse(&c.function.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    json!({ "type": "tool_use", "id": c.id, "name": c.function.name, "input": input })
                });
                ("assistant", text.into_iter().chain(uses).collect())
            }
            Role::Tool => {
                let id = m.tool_call_id.clone().unwrap_or_default();
                ("user", vec![json!({ "type": "tool_result", "tool_use_id": id, "content": m.content })])
            }
            Role::User if out.last().is_some_and(has_tool_results) => {
                ("user", vec![json!({ "type": "text", "text": m.content })])
            }
            Role::User => ("user", vec![Value::String(m.content.clone())]),
            _ => ("assistant", vec![Value::String(m.content.clone())]),
        };
        match out.last_mut() {
            Some(last) if role == "user" && has_tool_results(last) => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ if blocks.len() == 1 && blocks[0].is_string() => {
                out.push(json!({ "role": role, "content": blocks[0] }));
            }
            _ => out.push(json!({ "role": role, "content": blocks })),
        }
    }
    out
}

fn has_tool_results(m: &Value) -> bool {
    m["role"] == "user" && m["content"].as_array().is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
}

fn count(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// Handles one event. `usage` accumulates across events: input tokens arrive in
/// `message_start`, the cumulative output count in `message_delta`.
pub(super) fn on_event(ev: &SseEvent, usage: &mut Usage, out: &mut Vec<StreamItem>) -> Result<Marker, ProviderError> {
    let v = crate::json_text::parse(&ev.data).map_err(|e| malformed("stream event", e, &ev.data))?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or(ev.event.as_str());
    match kind {
        "message_start" => {
            let u = v.pointer("/message/usage").unwrap_or(&Value::Null);
            usage.input_tokens = count(u, "input_tokens")
                + count(u, "cache_creation_input_tokens")
                + count(u, "cache_read_input_tokens");
            usage.output_tokens = count(u, "output_tokens");
            out.push(StreamItem::Usage(*usage));
        }
        "content_block_start" => {
            let block = v.get("content_block").unwrap_or(&Value::Null);
            if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                out.push(StreamItem::ToolCall(ToolCallDelta {
                    index: block_index(&v),
                    id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                    name: Some(block.get("name").and_then(Value::as_str).unwrap_or_default().to_owned()),
                    arguments: String::new(),
                }));
            }
        }
        "content_block_delta" => {
            let delta = v.get("delta").unwrap_or(&Value::Null);
            match delta.get("type").and_then(Value::as_str) {
                Some("text_delta") => match delta.get("text").and_then(Value::as_str) {
                    Some("") => {}
                    Some(text) => out.push(StreamItem::Text(text.to_owned())),
                    None => return Err(ProviderError::Malformed("text_delta without text".into())),
                },
                Some("input_json_delta") => out.push(StreamItem::ToolCall(ToolCallDelta {
                    index: block_index(&v),
                    arguments: delta.get("partial_json").and_then(Value::as_str).unwrap_or_default().to_owned(),
                    ..ToolCallDelta::default()
                })),
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(u) = v.get("usage") {
                usage.output_tokens = usage.output_tokens.max(count(u, "output_tokens"));
                out.push(StreamItem::Usage(*usage));
            }
            if let Some(reason) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                out.push(StreamItem::Finish(finish_reason(reason)));
                return Ok(Marker::Finished);
            }
        }
        "message_stop" => return Ok(Marker::Done),
        "error" => return Err(api_error(v.get("error").unwrap_or(&v))),
        // ping, content_block_stop, and event types added after this was written.
        _ => {}
    }
    Ok(Marker::None)
}

/// Handles a whole `message` object from a server that did not stream.
pub(super) fn on_whole_body(body: &[u8], out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
    let text = String::from_utf8_lossy(body);
    let v = crate::json_text::parse(&text).map_err(|e| malformed("response", e, &text))?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Err(api_error(v.get("error").unwrap_or(&v)));
    }
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(ProviderError::Malformed("response has no content array".into()));
    };
    let answer: String = blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    out.push(StreamItem::Text(answer));
    for (index, b) in blocks.iter().enumerate().filter(|(_, b)| b["type"] == "tool_use") {
        out.push(StreamItem::ToolCall(ToolCallDelta {
            index: index as u32,
            id: b.get("id").and_then(Value::as_str).map(str::to_owned),
            name: b.get("name").and_then(Value::as_str).map(str::to_owned),
            arguments: b.get("input").map(crate::json_text::write).unwrap_or_default(),
        }));
    }
    if let Some(reason) = v.get("stop_reason").and_then(Value::as_str) {
        out.push(StreamItem::Finish(finish_reason(reason)));
    }
    if let Some(u) = v.get("usage") {
        out.push(StreamItem::Usage(Usage::new(
            count(u, "input_tokens") + count(u, "cache_creation_input_tokens") + count(u, "cache_read_input_tokens"),
            count(u, "output_tokens"),
        )));
    }
    Ok(())
}

/// The content block an event is about.
fn block_index(v: &Value) -> u32 {
    v.get("index").and_then(Value::as_u64).unwrap_or(0) as u32
}

/// Anthropic's stop reason in OpenAI's words.
fn finish_reason(reason: &str) -> String {
    match reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

fn api_error(err: &Value) -> ProviderError {
    let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
    let message = err.get("message").and_then(Value::as_str).unwrap_or("the provider reported an error");
    ProviderError::Api { message: format!("{kind}: {message}"), retryable: transient(kind) }
}
