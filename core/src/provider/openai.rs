//! OpenAI-compatible chat completions.

use super::{ChatRequest, Marker, ProviderError, StreamItem, ToolCallDelta, malformed, transient};
use crate::http::HttpRequest;
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::vocab::tools::{ResponseFormat, ToolChoice, Tools};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn request(base: &str, key: Option<&str>, req: &ChatRequest<'_>) -> HttpRequest {
    // The reference implementation sends 0 for temperatures that round to nothing.
    let temperature = if req.temperature > 1e-4 { req.temperature } else { 0.0 };
    let mut body = json!({
        "model": req.model,
        "messages": req.messages,
        "temperature": temperature,
        "max_tokens": req.max_tokens,
        "stream": true,
        "stream_options": { "include_usage": true },
    });
    let s = req.sampling;
    if let Some(v) = s.top_p {
        body["top_p"] = json!(v);
    }
    if let Some(v) = s.seed {
        body["seed"] = json!(v);
    }
    if !s.stop.is_empty() {
        body["stop"] = json!(s.stop);
    }
    if let Some(v) = s.presence_penalty {
        body["presence_penalty"] = json!(v);
    }
    if let Some(v) = s.frequency_penalty {
        body["frequency_penalty"] = json!(v);
    }
    if let Some(tools) = req.tools.filter(|t| !t.tools.is_empty()) {
        add_tools(&mut body, tools);
    }
    match req.response_format {
        Some(ResponseFormat::JsonObject) => body["response_format"] = json!({ "type": "json_object" }),
        Some(format @ ResponseFormat::JsonSchema { .. }) => body["response_format"] = json!(format),
        _ => {}
    }
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), "text/event-stream".to_owned()),
    ];
    if let Some(key) = key {
        headers.push(("authorization".to_owned(), format!("Bearer {key}")));
    }
    HttpRequest {
        method: "POST",
        url: format!("{base}/chat/completions"),
        headers,
        body: body.to_string(),
        endpoint: String::new(),
        kind: crate::vocab::ProviderKind::OpenAi,
    }
}

/// OpenAI's `tools`, `tool_choice` and `parallel_tool_calls`.
fn add_tools(body: &mut Value, tools: &Tools) {
    let defs: Vec<Value> = tools.tools.iter().map(|t| json!({ "type": "function", "function": t })).collect();
    body["tools"] = Value::Array(defs);
    body["tool_choice"] = match &tools.choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Function(name) => json!({ "type": "function", "function": { "name": name } }),
    };
    // Sent only when off: it is the default, and some servers do not know the field.
    if !tools.parallel {
        body["parallel_tool_calls"] = json!(false);
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    /// llama.cpp's extension: the server's own timings.
    #[serde(default)]
    timings: Option<Timings>,
}

#[derive(Deserialize)]
struct Timings {
    #[serde(default)]
    prompt_ms: f64,
    #[serde(default)]
    predicted_ms: f64,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Content>,
    #[serde(default)]
    message: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<WireToolCall>>,
}

/// A tool call, whole (in a message) or in pieces (in a delta).
#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunction>,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

fn push_calls(calls: Option<Vec<WireToolCall>>, out: &mut Vec<StreamItem>) {
    for (n, c) in calls.into_iter().flatten().enumerate() {
        let f = c.function.unwrap_or(WireFunction { name: None, arguments: None });
        out.push(StreamItem::ToolCall(ToolCallDelta {
            index: c.index.unwrap_or(n as u32),
            id: c.id,
            name: f.name,
            arguments: f.arguments.unwrap_or_default(),
        }));
    }
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

/// Handles one event.
pub(super) fn on_event(ev: &SseEvent, out: &mut Vec<StreamItem>) -> Result<Marker, ProviderError> {
    let data = ev.data.trim();
    if data == "[DONE]" {
        return Ok(Marker::Done);
    }
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| malformed("stream chunk", e, data))?;
    if let Some(err) = chunk.error {
        return Err(api_error(&err));
    }
    let mut finished = false;
    for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push(StreamItem::Text(text));
            }
            push_calls(delta.tool_calls, out);
        }
        if let Some(reason) = choice.finish_reason {
            out.push(StreamItem::Finish(reason));
            finished = true;
        }
    }
    if let Some(u) = chunk.usage {
        out.push(StreamItem::Usage(u.into()));
    }
    if let Some(t) = chunk.timings {
        out.push(StreamItem::ServerTime(t.prompt_ms + t.predicted_ms));
    }
    // A finish reason ends the text; the usage chunk and `[DONE]` may still follow, but a
    // server that closes here has sent a whole answer.
    Ok(if finished { Marker::Finished } else { Marker::None })
}

/// Handles a whole `chat.completion` object from a server that did not stream.
pub(super) fn on_whole_body(body: &[u8], out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
    let text = String::from_utf8_lossy(body);
    let chunk: Chunk = serde_json::from_str(&text).map_err(|e| malformed("response", e, &text))?;
    if let Some(err) = chunk.error {
        return Err(api_error(&err));
    }
    let choice = chunk.choices.into_iter().find(|c| c.index == 0);
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let Some(message) = choice.and_then(|c| c.message) else {
        return Err(ProviderError::Malformed("response has no choices[0].message".into()));
    };
    // A message that calls tools may have no content at all.
    if message.content.is_none() && message.tool_calls.as_ref().is_none_or(Vec::is_empty) {
        return Err(ProviderError::Malformed("response has no choices[0].message.content".into()));
    }
    out.push(StreamItem::Text(message.content.unwrap_or_default()));
    push_calls(message.tool_calls, out);
    if let Some(reason) = finish {
        out.push(StreamItem::Finish(reason));
    }
    if let Some(u) = chunk.usage {
        out.push(StreamItem::Usage(u.into()));
    }
    Ok(())
}

fn api_error(err: &serde_json::Value) -> ProviderError {
    let message = err
        .get("message")
        .and_then(|m| m.as_str())
        .or_else(|| err.as_str())
        .unwrap_or("the provider reported an error")
        .to_owned();
    let kind = [err.get("type"), err.get("code")]
        .into_iter()
        .flatten()
        .map(|v| v.to_string().to_ascii_lowercase())
        .collect::<String>();
    ProviderError::Api { message, retryable: transient(&kind) }
}
