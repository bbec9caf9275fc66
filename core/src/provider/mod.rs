//! Provider wire formats, shared by every transport: how a chat request is written, and
//! how a streamed (or, from a server that ignores `stream`, a plain JSON) response is read.

pub mod anthropic;
pub mod batch;
pub mod openai;

use crate::http::HttpRequest;
use crate::message::Message;
use crate::sse::{self, SseError, SseEvent};
use crate::usage::Usage;
pub use crate::vocab::ProviderKind;
use crate::vocab::tools::{ResponseFormat, ToolCall, Tools};
use thiserror::Error;

/// Largest non-streamed response body accepted, in bytes.
const MAX_JSON_BODY: usize = 8 << 20;

/// One chat completion to ask for.
#[derive(Clone, Copy, Debug)]
pub struct ChatRequest<'a> {
    /// The provider's model name.
    pub model: &'a str,
    /// The messages, system prompts included.
    pub messages: &'a [Message],
    /// Sampling temperature.
    pub temperature: f64,
    /// Cap on generated tokens.
    pub max_tokens: u32,
    /// Further sampling options.
    pub sampling: &'a crate::vocab::Sampling,
    /// Tools to offer natively, with the choice and parallel setting.
    pub tools: Option<&'a Tools>,
    /// The answer's shape, asked natively where the provider takes it.
    pub response_format: Option<&'a ResponseFormat>,
}

/// What a response yields as it is read.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    /// More generated text.
    Text(String),
    /// The usage so far; a later report replaces an earlier one.
    Usage(Usage),
    /// The server's own processing time for the call, in milliseconds, where it reports
    /// one (llama.cpp's `timings`: prompt plus generation).
    ServerTime(f64),
    /// Why the model stopped, in OpenAI's words: `stop`, `length`, `content_filter`, ...
    /// (Anthropic's `end_turn` and `stop_sequence` read `stop`, `max_tokens` reads
    /// `length`).
    Finish(String),
    /// A piece of a tool call: the call at `index` starts (with its id and name) or its
    /// arguments grow.
    ToolCall(ToolCallDelta),
}

/// A piece of a streamed tool call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolCallDelta {
    /// Which call of the answer (its place among the calls).
    pub index: u32,
    /// Its id, when this piece starts it.
    pub id: Option<String>,
    /// The function's name, when this piece starts it.
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: String,
}

/// Builds whole calls from their streamed pieces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolCallBuffer {
    /// Each call with the index its pieces carry on the wire, in the order started.
    calls: Vec<(u32, ToolCall)>,
}

impl ToolCallBuffer {
    /// Adds a piece. A piece with a new id at an index whose call has another id starts a
    /// new call (some OpenAI-compatible servers send every call at index 0); pieces
    /// without an id go to the latest call started at their index; a name sent again is
    /// not doubled.
    pub fn push(&mut self, d: ToolCallDelta) {
        let id = d.id.filter(|s| !s.is_empty());
        let latest = self.calls.iter().rposition(|(i, _)| *i == d.index);
        let at = match (latest, &id) {
            (Some(at), Some(id)) if !self.calls[at].1.id.is_empty() && &self.calls[at].1.id != id => None,
            (latest, _) => latest,
        };
        let at = at.unwrap_or_else(|| {
            self.calls.push((d.index, ToolCall::new("", "", "")));
            self.calls.len() - 1
        });
        let call = &mut self.calls[at].1;
        if let Some(id) = id {
            call.id = id;
        }
        match d.name {
            Some(name) if call.function.name.is_empty() || call.function.name == name => call.function.name = name,
            Some(name) => call.function.name.push_str(&name),
            None => {}
        }
        call.function.arguments.push_str(&d.arguments);
    }

    /// Whether no call has started.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The calls in order, each with an id (`call_N` where the provider gave none) and
    /// arguments (`{}` where it streamed none).
    pub fn finish(&mut self) -> Vec<ToolCall> {
        let mut calls = std::mem::take(&mut self.calls);
        // By wire index, calls started at the same index in the order they started.
        calls.sort_by_key(|(i, _)| *i);
        calls
            .into_iter()
            .enumerate()
            .map(|(n, (_, mut c))| {
                if c.id.is_empty() {
                    c.id = format!("call_{n}");
                }
                if c.function.arguments.trim().is_empty() {
                    c.function.arguments = "{}".into();
                }
                c
            })
            .collect()
    }
}

/// A response that cannot be used.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum ProviderError {
    /// The provider reported an error (an error body, or an error event mid-stream).
    #[error("{message}")]
    Api {
        /// The provider's own words.
        message: String,
        /// Whether the provider says it is transient (overloaded, rate limited).
        retryable: bool,
    },
    /// The bytes do not follow the protocol.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The event stream broke the decoder's limits.
    #[error(transparent)]
    Sse(#[from] SseError),
    /// The body ended before a finish reason or the protocol's end-of-stream marker.
    #[error("the response ended before the stream was complete")]
    Truncated,
}

impl ProviderError {
    /// Whether trying the same request again may work.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Api { retryable, .. } => *retryable,
            ProviderError::Truncated => true,
            ProviderError::Malformed(_) | ProviderError::Sse(_) => false,
        }
    }
}

/// Writes the HTTP request for `req` to a provider of `kind` at `base_url`.
pub fn build_request(kind: ProviderKind, base_url: &str, key: Option<&str>, req: &ChatRequest<'_>) -> HttpRequest {
    let base = base_url.trim_end_matches('/');
    let mut http = match kind {
        ProviderKind::OpenAi => openai::request(base, key, req),
        ProviderKind::Anthropic => anthropic::request(base, key, req),
    };
    // A recipe's base URL was checked when it was validated; the fallback only serves
    // callers that build requests without one.
    http.endpoint = crate::http::normalize_base_url(base_url).unwrap_or_else(|_| base.to_owned());
    http
}

/// Reads one response body, incrementally.
#[derive(Debug)]
pub struct ResponseParser {
    kind: ProviderKind,
    body: Body,
    /// The answer is whole: ending the body now is not a truncation.
    finished: bool,
    /// The end-of-stream marker was seen: anything after it is ignored.
    complete: bool,
    events: Vec<SseEvent>,
    anthropic_usage: Usage,
}

#[derive(Debug)]
enum Body {
    Sse(sse::Decoder),
    Json(Vec<u8>),
}

impl ResponseParser {
    /// A parser for a successful response from a provider of `kind`. A JSON
    /// `content-type` means the server ignored `stream: true` and sent one whole object.
    pub fn new(kind: ProviderKind, content_type: Option<&str>) -> ResponseParser {
        let json = content_type.is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
        ResponseParser {
            kind,
            body: if json { Body::Json(Vec::new()) } else { Body::Sse(sse::Decoder::default()) },
            finished: false,
            complete: false,
            events: Vec::new(),
            anthropic_usage: Usage::default(),
        }
    }

    /// Feeds the next bytes of the body; appends what they yield to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        match &mut self.body {
            Body::Json(buf) => {
                if buf.len() + bytes.len() > MAX_JSON_BODY {
                    return Err(ProviderError::Malformed(format!("response body over {MAX_JSON_BODY} bytes")));
                }
                buf.extend_from_slice(bytes);
                Ok(())
            }
            Body::Sse(decoder) => {
                decoder.feed(bytes, &mut self.events)?;
                let events = std::mem::take(&mut self.events);
                let result = events.iter().try_for_each(|ev| self.on_event(ev, out));
                self.events = events;
                self.events.clear();
                result
            }
        }
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        if self.complete {
            return Ok(()); // anything after the end marker is noise
        }
        let marker = match self.kind {
            ProviderKind::OpenAi => openai::on_event(ev, out)?,
            ProviderKind::Anthropic => anthropic::on_event(ev, &mut self.anthropic_usage, out)?,
        };
        self.finished |= marker != Marker::None;
        self.complete |= marker == Marker::Done;
        Ok(())
    }

    /// The body ended: yields what a whole JSON body holds, or checks that the stream
    /// reached a finish reason or its end marker.
    pub fn finish(&mut self, out: &mut Vec<StreamItem>) -> Result<(), ProviderError> {
        match &self.body {
            Body::Json(buf) => {
                match self.kind {
                    ProviderKind::OpenAi => openai::on_whole_body(buf, out)?,
                    ProviderKind::Anthropic => anthropic::on_whole_body(buf, out)?,
                }
                self.finished = true;
                self.complete = true;
                Ok(())
            }
            Body::Sse(_) if self.finished => Ok(()),
            Body::Sse(_) => Err(ProviderError::Truncated),
        }
    }

    /// Whether the stream's end marker has been seen.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

/// Where in its protocol a stream event left the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// Nothing ended.
    None,
    /// The text is whole (a finish reason); usage and the end marker may follow.
    Finished,
    /// The end-of-stream marker.
    Done,
}

/// The message in an error response body, in any of the shapes providers use
/// (`{"error": {"message"}}`, `{"error": "..."}`, `{"message"}`, `{"detail"}`, plain text),
/// shortened to something fit for a terminal.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = crate::json_text::parse(&text).ok().and_then(|v| {
        let e = v.get("error").unwrap_or(&v);
        e.get("message").or_else(|| v.get("detail")).or(Some(e)).and_then(|m| m.as_str().map(str::to_owned))
    });
    let msg = from_json.unwrap_or_else(|| text.trim().to_owned());
    shorten(&msg, 500)
}

/// Whether an error's type or code names a transient condition.
pub(crate) fn transient(kind: &str) -> bool {
    ["overloaded", "rate_limit", "server_error", "timeout", "unavailable", "api_error"].iter().any(|k| kind.contains(k))
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn malformed(what: &str, err: crate::json_text::Error, data: &str) -> ProviderError {
    ProviderError::Malformed(format!("{what}: {err} in {}", crate::quote::Quoted(&shorten(data, 120))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_cpp_timings_are_the_servers_own_time() {
        let mut p = ResponseParser::new(ProviderKind::OpenAi, None);
        let mut items = Vec::new();
        let chunk = br#"data: {"choices":[],"usage":{"completion_tokens":5,"prompt_tokens":31},"timings":{"prompt_n":7,"prompt_ms":44.5,"predicted_n":5,"predicted_ms":40.75}}

data: [DONE]

"#;
        p.feed(chunk, &mut items).expect("valid");
        p.finish(&mut items).expect("complete");
        assert_eq!(items, [StreamItem::Usage(Usage::new(31, 5)), StreamItem::ServerTime(85.25)]);
    }

    #[test]
    fn error_bodies_in_every_common_shape() {
        assert_eq!(error_message(br#"{"error":{"message":"bad key","type":"auth"}}"#), "bad key");
        assert_eq!(error_message(br#"{"type":"error","error":{"type":"x","message":"overloaded"}}"#), "overloaded");
        assert_eq!(error_message(br#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message(br#"{"detail":"nope"}"#), "nope");
        assert_eq!(error_message(b"  Bad Gateway \n"), "Bad Gateway");
        assert!(error_message(&[b'x'; 2000]).chars().count() <= 501);
    }
}
