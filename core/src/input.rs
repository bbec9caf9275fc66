//! What a JavaScript caller hands a run (the browser module's `run(input, options)`), read
//! by hand from parsed JSON: the conversation, the keys, the tools and the answer's format.
//! The same shapes the types' derived readers take, held to them by
//! `core/tests/input_props.rs`; the browser module carries these instead of the derives.
//! Errors name the value's path from `at` (`messages[1].role: unknown variant ...`).

use crate::json_read::serde_like::{Fields, Read, bool, fail, invalid, join, list, named, string, variant};
use crate::message::{Message, Role};
use crate::recipe::FieldError;
use crate::tools::{FunctionCall, JsonSchemaFormat, ResponseFormat, Tool, ToolCall, ToolChoice};
use serde_json::Value;

/// A conversation: a list of messages.
pub fn messages(v: &Value, at: &str) -> Result<Vec<Message>, FieldError> {
    list(v, at, message)
}

const ROLES: [Role; 4] = [Role::System, Role::User, Role::Assistant, Role::Tool];

fn message(v: &Value, at: &str) -> Read<Message> {
    let f = Fields::new(v, at, "Message", &["role", "content", "tool_calls", "tool_call_id"])?;
    Ok(Message {
        role: f
            .req("role", |v, p| variant(v, p, "Role", &["system", "user", "assistant", "tool"]).map(|i| ROLES[i]))?,
        content: f.req("content", string)?,
        tool_calls: f.or("tool_calls", |v, p| list(v, p, tool_call), Vec::new())?,
        tool_call_id: f.opt("tool_call_id", string)?,
    })
}

fn tool_call(v: &Value, at: &str) -> Read<ToolCall> {
    let f = Fields::lenient(v, at, "ToolCall")?;
    Ok(ToolCall {
        id: f.req("id", string)?,
        kind: f.or("type", string, "function".to_owned())?,
        function: f.req("function", |v, p| {
            let f = Fields::lenient(v, p, "FunctionCall")?;
            Ok(FunctionCall { name: f.req("name", string)?, arguments: f.req("arguments", string)? })
        })?,
    })
}

/// Keys by provider name.
pub fn keys(v: &Value, at: &str) -> Result<crate::named::Named<String>, FieldError> {
    named(v, at, string).map_err(|e| match v {
        Value::Object(_) => e,
        _ => invalid(at, v, "a map"),
    })
}

/// The functions a model may call.
pub fn tools(v: &Value, at: &str) -> Result<Vec<Tool>, FieldError> {
    list(v, at, |v, at| {
        let f = Fields::lenient(v, at, "Tool")?;
        Ok(Tool {
            name: f.req("name", string)?,
            description: f.opt("description", string)?,
            parameters: f.or(
                "parameters",
                |v, _| Ok(v.clone()),
                serde_json::json!({"type": "object", "properties": {}}),
            )?,
            strict: f.opt("strict", bool)?,
        })
    })
}

/// `"auto"`, `"none"`, `"required"`, or `{"function": NAME}` (serde's externally tagged
/// form, which also takes `{"auto": null}`).
pub fn tool_choice(v: &Value, at: &str) -> Result<ToolChoice, FieldError> {
    let (name, content) = match v {
        Value::String(s) => (s.as_str(), &Value::Null),
        Value::Object(map) if map.len() == 1 => match map.iter().next() {
            Some((k, v)) => (k.as_str(), v),
            None => return Err(invalid(at, v, "enum ToolChoice")),
        },
        _ => return Err(invalid(at, v, "enum ToolChoice")),
    };
    let names = ["auto", "none", "required", "function"];
    let key = Value::String(name.to_owned());
    let choice = match variant(&key, at, "ToolChoice", &names)? {
        0 => ToolChoice::Auto,
        1 => ToolChoice::None,
        2 => ToolChoice::Required,
        _ if v.is_string() => return Err(invalid(at, v, "newtype variant")),
        _ => return Ok(ToolChoice::Function(string(content, &join(at, name))?)),
    };
    if content.is_null() { Ok(choice) } else { Err(invalid(at, content, "unit variant")) }
}

/// `{"type": "text" | "json_object" | "json_schema", "json_schema": {name, schema, strict}}`;
/// other fields are ignored, as OpenAI's API ignores them.
pub fn response_format(v: &Value, at: &str) -> Result<ResponseFormat, FieldError> {
    let Value::Object(_) = v else {
        let expected = "a response format: {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}";
        return Err(invalid(at, v, expected));
    };
    let f = Fields::lenient(v, at, "ResponseFormat")?;
    let kind = f.req("type", |v, p| variant(v, p, "FormatKind", &["text", "json_object", "json_schema"]))?;
    let schema = f.opt("json_schema", |v, p| {
        let f = Fields::lenient(v, p, "JsonSchemaFormat")?;
        Ok(JsonSchemaFormat {
            name: f.req("name", string)?,
            schema: f.or("schema", |v, _| Ok(v.clone()), Value::Bool(true))?,
            strict: f.opt("strict", bool)?,
        })
    })?;
    match (kind, schema) {
        (0, _) => Ok(ResponseFormat::Text),
        (1, _) => Ok(ResponseFormat::JsonObject),
        (_, Some(json_schema)) => Ok(ResponseFormat::JsonSchema { json_schema }),
        (_, None) => Err(fail(at, "missing field `json_schema`".to_owned())),
    }
}
