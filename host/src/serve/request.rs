//! Reading a chat-completions request: what moa honours, what it refuses by name, and
//! what it ignores.
//!
//! Refused with a 400 that names the parameter (OpenAI's `param`), because answering 200
//! would pretend to do what moa does not: `n` > 1, `functions` and `function_call` (the
//! old names of tools: use `tools`), `logprobs`, `top_logprobs`, `audio`, `modalities`
//! other than `["text"]`. Honoured: `tools`, `tool_choice`, `parallel_tool_calls` and
//! `response_format` (through the mixture: docs/tools.md), and on the final aggregator
//! `temperature`, `max_tokens` / `max_completion_tokens`, `top_p`, `seed`, `stop`,
//! `presence_penalty`, `frequency_penalty`. Ignored: every other field (`user`,
//! `metadata`, `store`, `service_tier`, and fields newer than this list), as
//! OpenAI-compatible servers commonly do; they change nothing moa does.

use moa_core::tools::{ResponseFormat, ToolCall, Tools};
use moa_core::{Message, Recipe, RecipeError, Role};
use serde::Deserialize;
use serde_json::Value;

/// A request moa will run.
pub struct ChatRequest {
    /// The recipe's name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// Add a usage chunk at the end of the stream.
    pub include_usage: bool,
    /// Extension: also return every layer's proposals.
    pub moa_proposals: bool,
    /// The tools offered, with the choice and parallel setting.
    pub tools: Option<Tools>,
    /// The answer's shape.
    pub response_format: ResponseFormat,
    wire: ChatCompletionRequest,
}

/// Why a request is refused: a 400 with OpenAI's `param` and `code`.
#[derive(Debug)]
pub struct BadRequest {
    /// What is wrong, in words.
    pub message: String,
    /// The offending parameter, in the request's own terms.
    pub param: Option<String>,
    /// OpenAI's code, where one fits.
    pub code: Option<&'static str>,
}

fn bad(param: &str, message: impl Into<String>) -> BadRequest {
    BadRequest { message: message.into(), param: Some(param.to_owned()), code: None }
}

fn unsupported(param: &str, what: &str) -> BadRequest {
    BadRequest {
        message: format!("{param}: {what} is not supported by moa (yet); leave it out"),
        param: Some(param.to_owned()),
        code: Some("unsupported_parameter"),
    }
}

/// A chat-completions request body as OpenAI defines it, the fields moa reads typed (a
/// field of the wrong type is a 400 naming it, by its path); every other field is
/// ignored.
#[derive(Debug, Default, Deserialize)]
pub struct ChatCompletionRequest {
    /// The recipe's name.
    pub model: Option<String>,
    /// The conversation.
    pub messages: Option<Vec<WireMessage>>,
    /// Stream the answer.
    pub stream: Option<bool>,
    /// Stream options.
    pub stream_options: Option<StreamOptions>,
    /// moa's extension: every layer's proposals too.
    pub moa_proposals: Option<bool>,
    /// Choices wanted (only 1).
    pub n: Option<u64>,
    /// Tools: OpenAI's list.
    pub tools: Option<Value>,
    /// Functions, the old name of tools (refused unless empty).
    pub functions: Option<Vec<Value>>,
    /// Tool choice: `auto`, `none`, `required` or `{"type": "function", "function": {"name"}}`.
    pub tool_choice: Option<Value>,
    /// Whether several tools may be called at once (default: yes).
    pub parallel_tool_calls: Option<bool>,
    /// Function call, the old name of tool choice (refused unless "none").
    pub function_call: Option<Value>,
    /// Response format: `text`, `json_object`, or `json_schema`.
    pub response_format: Option<ResponseFormat>,
    /// Log probabilities (refused when true).
    pub logprobs: Option<bool>,
    /// Top log probabilities (refused).
    pub top_logprobs: Option<Value>,
    /// Audio output (refused).
    pub audio: Option<Value>,
    /// Output modalities (only text).
    pub modalities: Option<Vec<String>>,
    /// The aggregator's sampling temperature.
    pub temperature: Option<f64>,
    /// The aggregator's answer length.
    pub max_tokens: Option<u64>,
    /// The aggregator's answer length (the newer name; it wins).
    pub max_completion_tokens: Option<u64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Seed.
    pub seed: Option<u64>,
    /// Stop sequences.
    pub stop: Option<Stop>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: Option<WireRole>,
    /// Text, or a list of text parts.
    #[serde(default)]
    pub content: Option<Content>,
    /// An assistant's tool calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// The roles moa takes.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    /// A system prompt.
    System,
    /// A system prompt, by its newer name.
    Developer,
    /// The user.
    User,
    /// The assistant.
    Assistant,
    /// A tool's result.
    Tool,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts (only text ones).
    Parts(Vec<Part>),
}

/// A part of a message's content.
#[derive(Debug, Deserialize)]
pub struct Part {
    /// `text` (other types are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text.
    pub text: Option<String>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Add a usage chunk at the end (null: no).
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// `stop`: one sequence or several.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<ChatRequest, BadRequest> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BadRequest {
        message: format!("the body is not valid JSON: {e}"),
        param: None,
        code: Some("invalid_json"),
    })?;
    if !v.is_object() {
        return Err(BadRequest { message: "the body must be a JSON object".into(), param: None, code: None });
    }
    let req: ChatCompletionRequest = serde_path_to_error::deserialize(v).map_err(|e| {
        let param = e.path().to_string();
        let message = format!("{param}: {}", e.inner());
        BadRequest { message, param: Some(param), code: None }
    })?;
    refuse_unsupported(&req)?;
    let model =
        req.model.clone().ok_or_else(|| bad("model", "model is required (a recipe name; see GET /v1/models)"))?;
    let messages = match &req.messages {
        Some(ms) if !ms.is_empty() => ms.iter().enumerate().map(|(i, m)| to_message(m, i)).collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("messages", "messages must not be empty")),
        None => return Err(bad("messages", "messages is required")),
    };
    let tools = tools(&req)?;
    Ok(ChatRequest {
        model,
        messages,
        tools,
        response_format: req.response_format.clone().unwrap_or_default(),
        stream: req.stream.unwrap_or(false),
        include_usage: req.stream_options.as_ref().and_then(|o| o.include_usage).unwrap_or(false),
        moa_proposals: req.moa_proposals.unwrap_or(false),
        wire: req,
    })
}

fn refuse_unsupported(r: &ChatCompletionRequest) -> Result<(), BadRequest> {
    if r.n.is_some_and(|n| n != 1) {
        return Err(unsupported("n", "more than one choice"));
    }
    if r.functions.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(unsupported("functions", "the deprecated functions parameter (use tools)"));
    }
    if r.function_call.as_ref().is_some_and(|v| !v.is_null() && v != "none") {
        return Err(unsupported("function_call", "the deprecated function_call parameter (use tool_choice)"));
    }
    if r.logprobs == Some(true) {
        return Err(unsupported("logprobs", "log probabilities"));
    }
    if r.top_logprobs.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(unsupported("top_logprobs", "log probabilities"));
    }
    if r.audio.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(unsupported("audio", "audio output"));
    }
    if r.modalities.as_ref().is_some_and(|m| m.iter().any(|x| x != "text")) {
        return Err(unsupported("modalities", "an output modality other than text"));
    }
    Ok(())
}

/// The request's tools, choice and parallel setting (the core reads OpenAI's fields);
/// a 400 naming what is malformed.
fn tools(r: &ChatCompletionRequest) -> Result<Option<Tools>, BadRequest> {
    Tools::from_openai(r.tools.as_ref(), r.tool_choice.as_ref(), r.parallel_tool_calls)
        .map_err(|e| bad(&e.field, e.to_string()))
}

fn to_message(m: &WireMessage, i: usize) -> Result<Message, BadRequest> {
    let param = format!("messages[{i}]");
    let role = match m.role {
        Some(WireRole::System | WireRole::Developer) => Role::System,
        Some(WireRole::User) => Role::User,
        Some(WireRole::Assistant) => Role::Assistant,
        Some(WireRole::Tool) => Role::Tool,
        None => return Err(bad(&format!("{param}.role"), format!("{param}.role is required"))),
    };
    let content = match &m.content {
        None => String::new(),
        Some(Content::Text(s)) => s.clone(),
        Some(Content::Parts(parts)) => parts
            .iter()
            .map(|p| match (p.kind.as_str(), &p.text) {
                ("text", Some(t)) => Ok(t.as_str()),
                _ => Err(bad(&format!("{param}.content"), format!("{param}.content: only text parts are supported"))),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(""),
    };
    let mut message = Message::new(role, content);
    if let Some(calls) = m.tool_calls.as_ref().filter(|c| !c.is_empty()) {
        if role != Role::Assistant {
            return Err(bad(
                &format!("{param}.tool_calls"),
                format!("{param}: only an assistant message has tool_calls"),
            ));
        }
        message.tool_calls = calls.clone();
    }
    if role == Role::Tool {
        let Some(id) = m.tool_call_id.clone() else {
            return Err(bad(&format!("{param}.tool_call_id"), format!("{param}: a tool message needs tool_call_id")));
        };
        message.tool_call_id = Some(id);
    }
    Ok(message)
}

impl ChatRequest {
    /// The recipe with the request's sampling parameters on its final aggregator, or a
    /// 400 naming the parameter that does not fit (a range, a provider that lacks it).
    pub fn apply(&self, recipe: &Recipe) -> Result<Recipe, BadRequest> {
        let mut r = recipe.clone();
        let (agg, w) = (&mut r.aggregator, &self.wire);
        agg.temperature = w.temperature.or(agg.temperature);
        if let Some(n) = w.max_completion_tokens.or(w.max_tokens) {
            agg.max_tokens = Some(u32::try_from(n).map_err(|_| bad("max_tokens", "max_tokens is too large"))?);
        }
        agg.top_p = w.top_p.or(agg.top_p);
        agg.seed = w.seed.or(agg.seed);
        agg.presence_penalty = w.presence_penalty.or(agg.presence_penalty);
        agg.frequency_penalty = w.frequency_penalty.or(agg.frequency_penalty);
        match &w.stop {
            None => {}
            Some(Stop::One(s)) => agg.stop = vec![s.clone()],
            Some(Stop::Many(a)) => agg.stop = a.clone(),
        }
        match r.validate() {
            Ok(()) => Ok(r),
            Err(RecipeError::Invalid(errors)) => {
                let e = &errors[0];
                let param = e.path.strip_prefix("aggregator.").unwrap_or(&e.path);
                let param = if param == "max_tokens" && self.wire.max_completion_tokens.is_some() {
                    "max_completion_tokens"
                } else {
                    param
                };
                Err(bad(param, format!("{param}: {}", e.message)))
            }
            Err(e) => Err(BadRequest { message: e.to_string(), param: None, code: None }),
        }
    }

    /// The parameters the request set for the aggregator, for the access log.
    pub fn knob_names(&self) -> Vec<&str> {
        let w = &self.wire;
        let set = [
            ("temperature", w.temperature.is_some()),
            ("max_tokens", w.max_tokens.is_some()),
            ("max_completion_tokens", w.max_completion_tokens.is_some()),
            ("top_p", w.top_p.is_some()),
            ("seed", w.seed.is_some()),
            ("stop", w.stop.is_some()),
            ("presence_penalty", w.presence_penalty.is_some()),
            ("frequency_penalty", w.frequency_penalty.is_some()),
        ];
        set.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(body: &str) -> Option<String> {
        parse(body.as_bytes()).err().and_then(|e| e.param)
    }

    #[test]
    fn what_moa_cannot_do_is_refused_by_name() {
        let base = r#""model": "m", "messages": [{"role": "user", "content": "hi"}]"#;
        for (extra, name) in [
            (r#""n": 2"#, "n"),
            (r#""tools": [{"type": "retrieval", "function": {"name": "f"}}]"#, "tools[0].type"),
            (r#""tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "maybe""#, "tool_choice"),
            (r#""tool_choice": "required""#, "tool_choice"),
            (r#""functions": [{"name": "f"}]"#, "functions"),
            (r#""function_call": "auto""#, "function_call"),
            (r#""response_format": {"type": "xml"}"#, "response_format.type"),
            (r#""logprobs": true"#, "logprobs"),
            (r#""top_logprobs": 2"#, "top_logprobs"),
            (r#""audio": {"voice": "alloy", "format": "wav"}"#, "audio"),
            (r#""modalities": ["text", "audio"]"#, "modalities"),
        ] {
            assert_eq!(param(&format!("{{{base}, {extra}}}")).as_deref(), Some(name), "{extra}");
        }
        for fine in [
            r#""n": 1"#,
            r#""tools": []"#,
            r#""tool_choice": "none""#,
            r#""tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto""#,
            r#""response_format": {"type": "text"}"#,
            r#""response_format": {"type": "json_object"}"#,
            r#""logprobs": false"#,
            r#""modalities": ["text"]"#,
            r#""user": "u", "metadata": {"a": "b"}, "store": false, "some_future_field": 1"#,
        ] {
            assert!(parse(format!("{{{base}, {fine}}}").as_bytes()).is_ok(), "{fine}");
        }
        assert_eq!(param(r#"{"messages": []}"#).as_deref(), Some("model"));
        assert_eq!(
            param(r#"{"model": "m", "messages": [{"role": "function", "content": "x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named_by_its_path() {
        let base = r#""model": "m", "messages": [{"role": "user", "content": "hi"}]"#;
        for (extra, name) in [
            (r#""stream": "yes""#, "stream"),
            (r#""temperature": "hot""#, "temperature"),
            (r#""max_tokens": -1"#, "max_tokens"),
            (r#""stop": [1, 2]"#, "stop"),
            (r#""stream_options": {"include_usage": 1}"#, "stream_options.include_usage"),
        ] {
            assert_eq!(param(&format!("{{{base}, {extra}}}")).as_deref(), Some(name), "{extra}");
        }
        assert_eq!(param(r#"{"model": 5, "messages": []}"#).as_deref(), Some("model"));
        assert_eq!(
            param(r#"{"model": "m", "messages": [{"role": "user", "content": 7}]}"#).as_deref(),
            Some("messages[0].content")
        );
        let e = parse(br#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#);
        assert_eq!(e.err().and_then(|e| e.param).as_deref(), Some("messages[0].content"));
    }

    #[test]
    fn the_knobs_reach_the_aggregator_the_newer_length_name_winning() {
        let body = br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
            "max_tokens": 9, "max_completion_tokens": 12, "stop": "END", "seed": 3, "user": "ignored"}"#;
        let req = parse(body).expect("a request");
        let recipe = moa_core::recipe::preset("moa-lite").expect("a preset");
        let agg = req.apply(&recipe).expect("applies").aggregator;
        assert_eq!((agg.temperature, agg.max_tokens, agg.seed), (Some(0.2), Some(12), Some(3)));
        assert_eq!(agg.stop, ["END"]);
        assert_eq!(req.knob_names(), ["temperature", "max_tokens", "max_completion_tokens", "seed", "stop"]);
    }

    #[test]
    fn tools_choices_and_tool_messages_are_read() {
        let body = r#"{"model": "m", "parallel_tool_calls": false,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "42"}]}"#;
        let req = parse(body.as_bytes()).expect("valid");
        let tools = req.tools.expect("tools");
        assert_eq!((tools.choice, tools.parallel), (moa_core::ToolChoice::Function("f".into()), false));
        assert_eq!(req.messages[1].tool_calls[0].function.name, "f");
        assert_eq!(req.messages[2].tool_call_id.as_deref(), Some("c1"));
        assert!(req.response_format.schema().is_some());
        let no_id = r#"{"model": "m", "messages": [{"role": "tool", "content": "42"}]}"#;
        assert_eq!(param(no_id).as_deref(), Some("messages[0].tool_call_id"));
    }
}
