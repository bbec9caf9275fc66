//! Anthropic Messages.

use super::{ChatRequest, Marker, ProviderError, StreamItem, malformed, transient};
use crate::http::HttpRequest;
use crate::message::Role;
use crate::sse::SseEvent;
use crate::usage::Usage;
use serde_json::{Value, json};

/// The API version this client speaks.
pub const API_VERSION: &str = "2023-06-01";

pub(super) fn request(base: &str, key: Option<&str>, req: &ChatRequest<'_>) -> HttpRequest {
    // Anthropic takes the system prompt as a field of its own, not as a message.
    let system: Vec<&str> =
        req.messages.iter().filter(|m| m.role == Role::System).map(|m| m.content.as_str()).collect();
    let messages: Vec<&crate::Message> = req.messages.iter().filter(|m| m.role != Role::System).collect();
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
        body: body.to_string(),
        endpoint: String::new(),
        kind: crate::vocab::ProviderKind::Anthropic,
    }
}

fn count(v: &Value, field: &str) -> u64 {
    v.get(field).and_then(Value::as_u64).unwrap_or(0)
}

/// Handles one event. `usage` accumulates across events: input tokens arrive in
/// `message_start`, the cumulative output count in `message_delta`.
pub(super) fn on_event(ev: &SseEvent, usage: &mut Usage, out: &mut Vec<StreamItem>) -> Result<Marker, ProviderError> {
    let v: Value = serde_json::from_str(&ev.data).map_err(|e| malformed("stream event", e, &ev.data))?;
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
        "content_block_delta" => {
            let delta = v.get("delta").unwrap_or(&Value::Null);
            if delta.get("type").and_then(Value::as_str) == Some("text_delta") {
                match delta.get("text").and_then(Value::as_str) {
                    Some("") => {}
                    Some(text) => out.push(StreamItem::Text(text.to_owned())),
                    None => return Err(ProviderError::Malformed("text_delta without text".into())),
                }
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
        // ping, content_block_start/stop, and event types added after this was written.
        _ => {}
    }
    Ok(Marker::None)
}

/// Handles a whole `message` object from a server that did not stream.
pub(super) fn on_whole_body(body: &[u8], out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
    let text = String::from_utf8_lossy(body);
    let v: Value = serde_json::from_str(&text).map_err(|e| malformed("response", e, &text))?;
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return Err(api_error(v.get("error").unwrap_or(&v)));
    }
    let Some(blocks) = v.get("content").and_then(Value::as_array) else {
        return Err(ProviderError::Malformed("response has no content array".into()));
    };
    let answer: String = blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect();
    out.push(StreamItem::Text(answer));
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
