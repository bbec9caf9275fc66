//! Reading a chat-completions request: what moa honours, what it refuses by name, and
//! what it ignores.
//!
//! Refused with a 400 that names the parameter (OpenAI's `param`), because answering 200
//! would pretend to do what moa does not: `n` > 1, `tools`, `tool_choice`, `functions`,
//! `function_call`, `response_format` other than `text`, `logprobs`, `top_logprobs`,
//! `audio`, `modalities` other than `["text"]`. Honoured on the final aggregator:
//! `temperature`, `max_tokens` / `max_completion_tokens`, `top_p`, `seed`, `stop`,
//! `presence_penalty`, `frequency_penalty`. Ignored: every other field (`user`,
//! `metadata`, `store`, `service_tier`, `parallel_tool_calls`, and fields newer than
//! this list), as OpenAI-compatible servers commonly do; they change nothing moa does.

use moa_core::{Message, Recipe, RecipeError, Role};
use serde_json::{Map, Value};

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
    knobs: Map<String, Value>,
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

/// The parameters moa passes to the final aggregator, by request name.
const KNOBS: [&str; 8] = [
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "seed",
    "stop",
    "presence_penalty",
    "frequency_penalty",
];

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<ChatRequest, BadRequest> {
    let v: Value = serde_json::from_slice(body).map_err(|e| BadRequest {
        message: format!("the body is not valid JSON: {e}"),
        param: None,
        code: Some("invalid_json"),
    })?;
    let Value::Object(mut o) = v else {
        return Err(BadRequest { message: "the body must be a JSON object".into(), param: None, code: None });
    };
    refuse_unsupported(&o)?;
    let model = match o.remove("model") {
        Some(Value::String(m)) => m,
        Some(_) => return Err(bad("model", "model must be a string")),
        None => return Err(bad("model", "model is required (a recipe name; see GET /v1/models)")),
    };
    let messages = match o.remove("messages") {
        Some(Value::Array(ms)) if !ms.is_empty() => {
            ms.into_iter().enumerate().map(|(i, m)| to_message(m, i)).collect::<Result<Vec<_>, _>>()?
        }
        Some(Value::Array(_)) => return Err(bad("messages", "messages must not be empty")),
        Some(_) => return Err(bad("messages", "messages must be an array")),
        None => return Err(bad("messages", "messages is required")),
    };
    let flag = |o: &Map<String, Value>, k: &str| -> Result<bool, BadRequest> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(k, format!("{k} must be true or false"))),
        }
    };
    let stream = flag(&o, "stream")?;
    let moa_proposals = flag(&o, "moa_proposals")?;
    let include_usage = match o.get("stream_options") {
        Some(Value::Object(so)) => matches!(so.get("include_usage"), Some(Value::Bool(true))),
        _ => false,
    };
    let knobs =
        KNOBS.iter().filter_map(|k| o.remove(*k).filter(|v| !v.is_null()).map(|v| ((*k).to_owned(), v))).collect();
    Ok(ChatRequest { model, messages, stream, include_usage, moa_proposals, knobs })
}

fn refuse_unsupported(o: &Map<String, Value>) -> Result<(), BadRequest> {
    let present = |k: &str| o.get(k).is_some_and(|v| !v.is_null());
    if let Some(n) = o.get("n").filter(|v| !v.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(unsupported("n", "more than one choice"));
    }
    for k in ["tools", "functions"] {
        if o.get(k).is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(unsupported(k, "tool and function calling"));
        }
    }
    for k in ["tool_choice", "function_call"] {
        if o.get(k).is_some_and(|v| !v.is_null() && v != "none") {
            return Err(unsupported(k, "tool and function calling"));
        }
    }
    if let Some(rf) = o.get("response_format").filter(|v| !v.is_null())
        && rf.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(unsupported("response_format", "a response format other than text"));
    }
    if o.get("logprobs").is_some_and(|v| v == true) {
        return Err(unsupported("logprobs", "log probabilities"));
    }
    if present("top_logprobs") {
        return Err(unsupported("top_logprobs", "log probabilities"));
    }
    if present("audio") {
        return Err(unsupported("audio", "audio output"));
    }
    if let Some(m) = o.get("modalities").filter(|v| !v.is_null()) {
        let text_only = m.as_array().is_some_and(|a| a.iter().all(|x| x == "text"));
        if !text_only {
            return Err(unsupported("modalities", "an output modality other than text"));
        }
    }
    Ok(())
}

fn to_message(m: Value, i: usize) -> Result<Message, BadRequest> {
    let param = format!("messages[{i}]");
    let role = match m.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(bad(
                &format!("{param}.role"),
                format!("{param}.role: {other:?} is not supported (system, developer, user, assistant)"),
            ));
        }
        None => return Err(bad(&format!("{param}.role"), format!("{param}.role is required"))),
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(t)) => Ok(t),
                _ => Err(bad(&format!("{param}.content"), format!("{param}.content: only text parts are supported"))),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(""),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(bad(
                &format!("{param}.content"),
                format!("{param}.content must be a string or a list of text parts"),
            ));
        }
    };
    Ok(Message { role, content })
}

impl ChatRequest {
    /// The recipe with the request's sampling parameters on its final aggregator, or a
    /// 400 naming the parameter that does not fit (a range, a provider that lacks it).
    pub fn apply(&self, recipe: &Recipe) -> Result<Recipe, BadRequest> {
        let mut r = recipe.clone();
        let agg = &mut r.aggregator;
        let num = |k: &str| -> Result<Option<f64>, BadRequest> {
            match self.knobs.get(k) {
                None => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or_else(|| bad(k, format!("{k} must be a number"))),
            }
        };
        let int = |k: &str| -> Result<Option<u64>, BadRequest> {
            match self.knobs.get(k) {
                None => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| bad(k, format!("{k} must be a non-negative integer"))),
            }
        };
        if let Some(t) = num("temperature")? {
            agg.temperature = Some(t);
        }
        let max = int("max_completion_tokens")?.or(int("max_tokens")?);
        if let Some(n) = max {
            agg.max_tokens = Some(u32::try_from(n).map_err(|_| bad("max_tokens", "max_tokens is too large"))?);
        }
        if let Some(p) = num("top_p")? {
            agg.top_p = Some(p);
        }
        if let Some(s) = int("seed")? {
            agg.seed = Some(s);
        }
        if let Some(p) = num("presence_penalty")? {
            agg.presence_penalty = Some(p);
        }
        if let Some(p) = num("frequency_penalty")? {
            agg.frequency_penalty = Some(p);
        }
        match self.knobs.get("stop") {
            None => {}
            Some(Value::String(s)) => agg.stop = vec![s.clone()],
            Some(Value::Array(a)) => {
                agg.stop = a
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("stop", "stop must be a string or an array of strings"))?;
            }
            Some(_) => return Err(bad("stop", "stop must be a string or an array of strings")),
        }
        match r.validate() {
            Ok(()) => Ok(r),
            Err(RecipeError::Invalid(errors)) => {
                let e = &errors[0];
                let param = e.path.strip_prefix("aggregator.").unwrap_or(&e.path);
                let param = if param == "max_tokens" && self.knobs.contains_key("max_completion_tokens") {
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
        self.knobs.keys().map(String::as_str).collect()
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
            (r#""tools": [{"type": "function", "function": {"name": "f"}}]"#, "tools"),
            (r#""tool_choice": "auto""#, "tool_choice"),
            (r#""functions": [{"name": "f"}]"#, "functions"),
            (r#""function_call": "auto""#, "function_call"),
            (r#""response_format": {"type": "json_object"}"#, "response_format"),
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
            r#""response_format": {"type": "text"}"#,
            r#""logprobs": false"#,
            r#""modalities": ["text"]"#,
            r#""user": "u", "metadata": {"a": "b"}, "store": false, "some_future_field": 1"#,
        ] {
            assert!(parse(format!("{{{base}, {fine}}}").as_bytes()).is_ok(), "{fine}");
        }
        assert_eq!(param(r#"{"messages": []}"#).as_deref(), Some("model"));
        assert_eq!(
            param(r#"{"model": "m", "messages": [{"role": "tool", "content": "x"}]}"#).as_deref(),
            Some("messages[0].role")
        );
    }
}
