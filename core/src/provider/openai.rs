//! OpenAI-compatible chat completions.

use super::{ChatRequest, Marker, ProviderError, StreamItem, ToolCallDelta, malformed, transient};
use crate::http::HttpRequest;
use crate::json_text::{self, Cursor};
use crate::sse::SseEvent;
use crate::usage::Usage;
use crate::vocab::tools::{ResponseFormat, ToolChoice, Tools};
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
        body: crate::json_text::write(&body),
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

// A chunk's types, read field by field (`read_chunk`); in tests `serde_json` reads them too,
// as the oracle the hand reader is held to.
#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct Chunk {
    choices: Vec<Choice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
    /// llama.cpp's extension: the server's own timings.
    timings: Option<Timings>,
}

#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct Timings {
    prompt_ms: f64,
    predicted_ms: f64,
}

#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct Choice {
    index: u32,
    delta: Option<Content>,
    message: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct Content {
    content: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

/// A tool call, whole (in a message) or in pieces (in a delta).
#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct WireToolCall {
    index: Option<u32>,
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Default)]
#[cfg_attr(test, derive(serde::Deserialize, Debug, PartialEq), serde(default))]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// A `chat.completion.chunk`, or a whole `chat.completion`, read straight from its text.
fn read_chunk(text: &str) -> Result<Chunk, json_text::Error> {
    let mut c = Cursor::new(text);
    let mut chunk = Chunk::default();
    c.fields("a chunk object", &["choices", "usage", "error", "timings"], &mut |c, field| {
        match field {
            0 => c.items("a list of choices", &mut |c| {
                chunk.choices.push(read_choice(c)?);
                Ok(())
            })?,
            1 => chunk.usage = optional(c, read_usage)?,
            2 => chunk.error = optional(c, Cursor::value)?,
            _ => chunk.timings = optional(c, read_timings)?,
        }
        Ok(())
    })?;
    c.end()?;
    Ok(chunk)
}

/// `null`, or what `read` reads.
fn optional<'a, T>(
    c: &mut Cursor<'a>,
    read: fn(&mut Cursor<'a>) -> Result<T, json_text::Error>,
) -> Result<Option<T>, json_text::Error> {
    if c.null()? { Ok(None) } else { read(c).map(Some) }
}

fn read_choice(c: &mut Cursor<'_>) -> Result<Choice, json_text::Error> {
    let mut choice = Choice::default();
    c.fields("a choice object", &["index", "delta", "message", "finish_reason"], &mut |c, field| {
        match field {
            0 => choice.index = c.unsigned(u32::MAX.into(), "a u32")? as u32,
            1 => choice.delta = optional(c, read_content)?,
            2 => choice.message = optional(c, read_content)?,
            _ => choice.finish_reason = optional(c, Cursor::text)?,
        }
        Ok(())
    })?;
    Ok(choice)
}

fn read_content(c: &mut Cursor<'_>) -> Result<Content, json_text::Error> {
    let mut content = Content::default();
    c.fields("a message object", &["content", "tool_calls"], &mut |c, field| {
        match field {
            0 => content.content = optional(c, Cursor::text)?,
            _ => {
                content.tool_calls = optional(c, |c| {
                    let mut calls = Vec::new();
                    c.items("a list of tool calls", &mut |c| {
                        calls.push(read_tool_call(c)?);
                        Ok(())
                    })?;
                    Ok(calls)
                })?
            }
        }
        Ok(())
    })?;
    Ok(content)
}

fn read_tool_call(c: &mut Cursor<'_>) -> Result<WireToolCall, json_text::Error> {
    let mut call = WireToolCall::default();
    c.fields("a tool call object", &["index", "id", "function"], &mut |c, field| {
        match field {
            0 => call.index = optional(c, |c| c.unsigned(u32::MAX.into(), "a u32").map(|n| n as u32))?,
            1 => call.id = optional(c, Cursor::text)?,
            _ => {
                call.function = optional(c, |c| {
                    let mut f = WireFunction::default();
                    c.fields("a function object", &["name", "arguments"], &mut |c, field| {
                        let text = optional(c, Cursor::text)?;
                        if field == 0 {
                            f.name = text
                        } else {
                            f.arguments = text
                        }
                        Ok(())
                    })?;
                    Ok(f)
                })?
            }
        }
        Ok(())
    })?;
    Ok(call)
}

fn read_usage(c: &mut Cursor<'_>) -> Result<WireUsage, json_text::Error> {
    let mut usage = WireUsage::default();
    c.fields("a usage object", &["prompt_tokens", "completion_tokens"], &mut |c, field| {
        let n = c.unsigned(u64::MAX, "a u64")?;
        if field == 0 {
            usage.prompt_tokens = n
        } else {
            usage.completion_tokens = n
        }
        Ok(())
    })?;
    Ok(usage)
}

fn read_timings(c: &mut Cursor<'_>) -> Result<Timings, json_text::Error> {
    let mut t = Timings::default();
    c.fields("a timings object", &["prompt_ms", "predicted_ms"], &mut |c, field| {
        let ms = c.float()?;
        if field == 0 {
            t.prompt_ms = ms
        } else {
            t.predicted_ms = ms
        }
        Ok(())
    })?;
    Ok(t)
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
    let chunk = read_chunk(data).map_err(|e| malformed("stream chunk", e, data))?;
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
    let chunk = read_chunk(&text).map_err(|e| malformed("response", e, &text))?;
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
        .map(|v| crate::json_text::write(v).to_ascii_lowercase())
        .collect::<String>();
    ProviderError::Api { message, retryable: transient(&kind) }
}

#[cfg(test)]
mod tests {
    //! The hand reader is held to serde's derived one (the oracle) on random chunks: fields
    //! present or not, of the right type or another, unknown fields among them, then broken
    //! a byte at a time. Not generated: an object written as a list of its fields in order,
    //! which serde alone accepts.
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Values put in place of a field: every shape but an array (see above).
    const WRONG: &[&str] = &["null", "\"x\"", "1", "-1", "1.5", "5000000000", "true", "{}", "{\"a\":[1]}"];

    /// Draws from `bytes`, round and round.
    struct Draw<'a>(&'a [u8], usize);
    impl Draw<'_> {
        fn next(&mut self) -> u8 {
            self.1 += 1;
            self.0[self.1 % self.0.len()]
        }
        fn field(&mut self, obj: &mut serde_json::Map<String, Value>, key: &str, good: Value) {
            match self.next() % 16 {
                0..=3 => {}
                4 => drop(obj.insert(
                    key.into(),
                    serde_json::from_str(WRONG[self.next() as usize % WRONG.len()]).expect("JSON"),
                )),
                _ => drop(obj.insert(key.into(), good)),
            }
        }
        fn text(&mut self) -> Value {
            json!(["", "Hi", "a\"b\\c\n", "é😀", "\u{1}"][self.next() as usize % 5])
        }
        fn tool_call(&mut self) -> Value {
            let mut o = serde_json::Map::new();
            let index = json!(self.next() % 4);
            self.field(&mut o, "index", index);
            let id = self.text();
            self.field(&mut o, "id", id);
            let mut f = serde_json::Map::new();
            let (name, args) = (self.text(), self.text());
            self.field(&mut f, "name", name);
            self.field(&mut f, "arguments", args);
            self.field(&mut o, "function", Value::Object(f));
            self.field(&mut o, "type", json!("function"));
            Value::Object(o)
        }
        fn content(&mut self) -> Value {
            let mut o = serde_json::Map::new();
            let text = self.text();
            self.field(&mut o, "content", text);
            let calls: Vec<Value> = (0..self.next() % 3).map(|_| self.tool_call()).collect();
            self.field(&mut o, "tool_calls", Value::Array(calls));
            self.field(&mut o, "role", json!("assistant"));
            Value::Object(o)
        }
        fn chunk(&mut self) -> Value {
            let mut o = serde_json::Map::new();
            let choices: Vec<Value> = (0..self.next() % 3)
                .map(|_| {
                    let mut c = serde_json::Map::new();
                    let index = json!(self.next() % 2);
                    self.field(&mut c, "index", index);
                    let (delta, message) = (self.content(), self.content());
                    self.field(&mut c, "delta", delta);
                    self.field(&mut c, "message", message);
                    self.field(&mut c, "finish_reason", json!("stop"));
                    self.field(&mut c, "logprobs", json!({"content": [{"token": "a", "logprob": -0.5}]}));
                    Value::Object(c)
                })
                .collect();
            self.field(&mut o, "choices", Value::Array(choices));
            let usage = json!({"prompt_tokens": self.next(), "completion_tokens": 18446744073709551615_u64});
            self.field(&mut o, "usage", usage);
            self.field(&mut o, "error", json!({"message": "busy", "code": 503}));
            let timings = json!({"prompt_ms": 12.5, "predicted_ms": self.next()});
            self.field(&mut o, "timings", timings);
            self.field(&mut o, "id", json!("chatcmpl-1"));
            Value::Object(o)
        }
    }

    /// Breaks that never make an object a list.
    const PIECES: &[&str] = &[
        "}", "]", ":", ",", "\"", "\\", " ", "0", "-", ".", "e", "n", "null", "\u{1}", "é", "1e400", "\\udc00",
        "\\ud800", "\\u12",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn a_chunk_reads_as_serde_reads_it(
            bytes in prop::collection::vec(any::<u8>(), 1..64),
            edit in proptest::option::of((any::<usize>(), 0..PIECES.len())),
        ) {
            let mut text = Draw(&bytes, 0).chunk().to_string();
            if let Some((at, piece)) = edit {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.insert_str(at, PIECES[piece]);
            }
            let oracle = serde_json::from_str::<Chunk>(&text);
            match (read_chunk(&text), oracle) {
                (Ok(ours), Ok(theirs)) => prop_assert_eq!(ours, theirs, "{}", text),
                (Err(_), Err(_)) => {}
                (ours, theirs) => prop_assert!(false, "{text}: ours {ours:?}, serde's {theirs:?}"),
            }
        }
    }

    #[test]
    fn a_hostile_chunk_is_refused_not_followed_down() {
        // An unknown field nested 100,000 deep: refused at the parser's depth limit (serde
        // skipped any depth), never a stack overflow.
        let deep = format!("{{\"x\": {}1{}, \"choices\": []}}", "[".repeat(100_000), "]".repeat(100_000));
        let err = read_chunk(&deep).map(|_| ()).expect_err("too deep");
        assert_eq!(err.to_string(), "recursion limit exceeded at line 1 column 133");
        // What serde skipped without looking, this skips too: a number too large for any
        // float, half a surrogate pair (Python servers write those in `logprobs`); a
        // malformed number or escape is refused.
        for text in [r#"{"x": 1e999, "choices": []}"#, r#"{"x": "\udc00", "choices": []}"#, r#"{"x": "\ud800z"}"#] {
            assert!(read_chunk(text).is_ok(), "{text}");
            assert!(serde_json::from_str::<Chunk>(text).is_ok(), "{text}");
        }
        for text in [r#"{"x": 1e}"#, r#"{"x": 01}"#, r#"{"x": "\q"}"#, r#"{"x": "\u12"}"#] {
            assert!(read_chunk(text).is_err(), "{text}");
            assert!(serde_json::from_str::<Chunk>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_stream_chunk_becomes_items() {
        let ev = |data: &str| SseEvent { event: String::new(), data: data.into(), id: None };
        let mut out = Vec::new();
        let data = r#"{"choices":[{"index":0,"delta":{"content":"Hi","tool_calls":[{"index":1,"id":"c","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":4},"timings":{"prompt_ms":1.5,"predicted_ms":2}}"#;
        assert!(matches!(on_event(&ev(data), &mut out), Ok(Marker::Finished)));
        assert!(matches!(&out[0], StreamItem::Text(t) if t == "Hi"));
        assert!(matches!(&out[1], StreamItem::ToolCall(d) if d.index == 1 && d.arguments == "{\"a\""));
        assert!(matches!(&out[2], StreamItem::Finish(r) if r == "stop"));
        assert!(matches!(&out[4], StreamItem::ServerTime(ms) if *ms == 3.5));
        let bad = on_event(&ev(r#"{"choices":[{"index":-1}]}"#), &mut out)
            .map(|_| ())
            .expect_err("a negative index")
            .to_string();
        assert!(bad.contains("stream chunk: expected a u32 at line 1 column 23"), "{bad}");
    }
}
