//! Tools and structured output: the functions a run may offer its models, the calls a
//! model makes, and the shape an answer must have. OpenAI's words and wire shapes (the
//! lingua franca of chat APIs); the Anthropic wire format translates to and from them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A function a model may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Tool {
    /// Its name, as calls give it.
    pub name: String,
    /// What it does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON schema of its arguments (an object schema).
    #[serde(default = "empty_object_schema")]
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub parameters: Value,
    /// OpenAI's strict mode: passed on to providers that take it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

fn empty_object_schema() -> Value {
    serde_json::json!({ "type": "object", "properties": {} })
}

/// A call a model made: OpenAI's shape (`{id, type: "function", function: {name,
/// arguments}}`), the arguments as the JSON text the model wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ToolCall {
    /// The call's id, which its result answers.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// Which function, with what.
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".into()
}

/// The function a call names and its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// Its arguments, as JSON text.
    pub arguments: String,
}

impl ToolCall {
    /// A call of `name` with `arguments` (JSON text).
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall { name: name.into(), arguments: arguments.into() },
        }
    }

    /// Name and arguments as canonical JSON (keys sorted, no spaces): two calls with the
    /// same key ask for the same thing, however the models spaced or ordered them.
    /// Arguments that are not JSON compare as their trimmed text.
    pub fn canonical(&self) -> String {
        let args = crate::json_text::parse(&self.function.arguments)
            .map(|v| canonical_json(&v))
            .unwrap_or_else(|_| self.function.arguments.trim().to_owned());
        format!("{}({args})", self.function.name)
    }
}

/// `v` as JSON text with every object's keys sorted.
pub fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", crate::json_text::write(&Value::String(k.clone())), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        // 1200.0 and 1200 are the same argument.
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        other => crate::json_text::write(other),
    }
}

/// Whether the model may, must or must not call a tool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ToolChoice {
    /// Answer or call, as the model sees fit.
    #[default]
    Auto,
    /// Answer; no call.
    None,
    /// Call at least one tool.
    Required,
    /// Call this function.
    Function(String),
}

/// How a mixture uses tools (a recipe's `tool_policy`; the docs' "Tools" page says why).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ToolPolicy {
    /// Proposers see the tools and the results as text and advise; the aggregator alone
    /// gets the real tools and decides: an answer, or calls.
    #[default]
    Aggregator,
    /// The last proposer layer gets the real tools; a majority of identical calls (name
    /// and canonical arguments) is the answer without an aggregator call, else the
    /// aggregator decides from all of them.
    Vote,
}

/// The tools a run offers, and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Tools {
    /// The functions.
    pub tools: Vec<Tool>,
    /// Whether a call is wanted.
    #[serde(default)]
    pub choice: ToolChoice,
    /// Whether more than one call may come at once (OpenAI's default: yes).
    #[serde(default = "yes")]
    pub parallel: bool,
}

fn yes() -> bool {
    true
}

impl Default for Tools {
    fn default() -> Tools {
        Tools { tools: Vec::new(), choice: ToolChoice::Auto, parallel: true }
    }
}

impl ToolPolicy {
    /// Whether this is the default.
    pub fn is_default(&self) -> bool {
        *self == ToolPolicy::default()
    }
}

impl Tools {
    /// The function named `name`.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Whether calls are wanted at all: there are tools, and the choice is not `none`.
    pub fn callable(&self) -> bool {
        !self.tools.is_empty() && self.choice != ToolChoice::None
    }
}

/// Tools as an OpenAI request gives them that cannot be read: the field, in the
/// request's terms (`tools[2].function`, `tool_choice`), and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ToolsError {
    /// The request field.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn tools_error(field: impl Into<String>, message: impl Into<String>) -> ToolsError {
    ToolsError { field: field.into(), message: message.into() }
}

impl Tools {
    /// Reads OpenAI's request fields: `tools` (each `{"type": "function", "function":
    /// {...}}`, or the function object alone), `tool_choice` (`auto`, `none`, `required`,
    /// `{"type": "function", "function": {"name"}}`) and `parallel_tool_calls`. `None`
    /// without tools; a choice that asks for a call without tools is an error. Whether
    /// each tool's parameters are a usable schema the run checks as it starts.
    pub fn from_openai(
        tools: Option<&Value>,
        choice: Option<&Value>,
        parallel: Option<bool>,
    ) -> Result<Option<Tools>, ToolsError> {
        let list = match tools {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(list)) => list.as_slice(),
            Some(_) => return Err(tools_error("tools", "expected a list of tools")),
        };
        let choice = match choice {
            None | Some(Value::Null) => ToolChoice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                other => {
                    let m = format!("{} is not auto, none, required or a function", crate::quote::Quoted(other));
                    return Err(tools_error("tool_choice", m));
                }
            },
            Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
                Some(name) if v.get("type").is_none_or(|t| t == "function") => ToolChoice::Function(name.to_owned()),
                _ => {
                    let m = "a named choice is {\"type\": \"function\", \"function\": {\"name\": ...}}";
                    return Err(tools_error("tool_choice", m));
                }
            },
        };
        if list.is_empty() {
            return match choice {
                ToolChoice::Auto | ToolChoice::None => Ok(None),
                _ => Err(tools_error("tool_choice", "it asks for a tool call, and there are no tools")),
            };
        }
        let tools = list
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let function = match t.get("type") {
                    None => t,
                    Some(kind) if kind == "function" => t.get("function").unwrap_or(&Value::Null),
                    Some(_) => return Err(tools_error(format!("tools[{i}].type"), "only \"function\" tools exist")),
                };
                Tool::deserialize(function).map_err(|e| tools_error(format!("tools[{i}].function"), e.to_string()))
            })
            .collect::<Result<Vec<Tool>, ToolsError>>()?;
        Ok(Some(Tools { tools, choice, parallel: parallel.unwrap_or(true) }))
    }
}

/// The shape the final answer must have.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "RawFormat")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ResponseFormat {
    /// Free text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that matches a schema.
    JsonSchema {
        /// OpenAI's wrapper: `{name, schema, strict}`.
        json_schema: JsonSchemaFormat,
    },
}

/// `ResponseFormat` as it is read: its tag and its one field, without the buffered copy of
/// the input a derived tagged enum reads through (about 10 KB of the browser module).
/// Fields other than these are ignored, as the tagged enum did.
#[derive(Deserialize)]
#[serde(expecting = "a response format: {\"type\": \"text\" | \"json_object\" | \"json_schema\", ...}")]
struct RawFormat {
    #[serde(rename = "type")]
    kind: FormatKind,
    #[serde(default)]
    json_schema: Option<JsonSchemaFormat>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FormatKind {
    Text,
    JsonObject,
    JsonSchema,
}

impl TryFrom<RawFormat> for ResponseFormat {
    type Error = &'static str;

    fn try_from(raw: RawFormat) -> Result<ResponseFormat, &'static str> {
        Ok(match (raw.kind, raw.json_schema) {
            (FormatKind::Text, _) => ResponseFormat::Text,
            (FormatKind::JsonObject, _) => ResponseFormat::JsonObject,
            (FormatKind::JsonSchema, Some(json_schema)) => ResponseFormat::JsonSchema { json_schema },
            (FormatKind::JsonSchema, None) => return Err("missing field `json_schema`"),
        })
    }
}

fn any_json() -> Value {
    Value::Bool(true)
}

/// A named JSON schema the answer must match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsonSchemaFormat {
    /// Its name.
    pub name: String,
    /// The schema (OpenAI makes it optional: absent, any JSON).
    #[serde(default = "any_json")]
    #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
    pub schema: Value,
    /// OpenAI's strict mode, passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

impl ResponseFormat {
    /// Whether the answer must be JSON.
    pub fn is_json(&self) -> bool {
        !matches!(self, ResponseFormat::Text)
    }

    /// The schema the answer must match, if any.
    pub fn schema(&self) -> Option<&Value> {
        match self {
            ResponseFormat::JsonSchema { json_schema } => Some(&json_schema.schema),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_compare_by_name_and_canonical_arguments() {
        let a = ToolCall::new("1", "weather", r#"{"city": "Paris", "unit": "c"}"#);
        let b = ToolCall::new("2", "weather", r#"{"unit":"c","city":"Paris"}"#);
        let c = ToolCall::new("3", "weather", r#"{"unit":"f","city":"Paris"}"#);
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), c.canonical());
        assert_eq!(a.canonical(), r#"weather({"city":"Paris","unit":"c"})"#);
        assert_eq!(ToolCall::new("4", "f", " not json ").canonical(), "f(not json)");
        assert_eq!(ToolCall::new("5", "f", r#"{"n": 1200.0}"#).canonical(), r#"f({"n":1200})"#);
    }

    #[test]
    fn openai_request_fields_read_with_the_field_named_on_error() {
        let list =
            serde_json::json!([{"type": "function", "function": {"name": "f"}}, {"name": "g", "description": "bare"}]);
        let choice = serde_json::json!({"type": "function", "function": {"name": "g"}});
        let t = Tools::from_openai(Some(&list), Some(&choice), Some(false)).expect("valid").expect("tools");
        assert_eq!((t.tools.len(), t.choice.clone(), t.parallel), (2, ToolChoice::Function("g".into()), false));
        assert_eq!(t.tools[0].parameters, serde_json::json!({"type": "object", "properties": {}}));
        let field = |tools: Value, choice: Value| {
            Tools::from_openai(Some(&tools), Some(&choice), None).expect_err("refused").field
        };
        assert_eq!(field(serde_json::json!([{"type": "web"}]), Value::Null), "tools[0].type");
        assert_eq!(field(serde_json::json!([{"type": "function", "function": {}}]), Value::Null), "tools[0].function");
        assert_eq!(field(list.clone(), serde_json::json!("sometimes")), "tool_choice");
        assert_eq!(field(serde_json::json!([]), serde_json::json!("required")), "tool_choice");
        assert_eq!(Tools::from_openai(None, Some(&serde_json::json!("none")), None), Ok(None));
    }

    #[test]
    fn the_wire_shapes_are_openais() {
        let call = ToolCall::new("call_1", "f", "{}");
        let v = serde_json::to_value(&call).expect("json");
        assert_eq!(
            v,
            serde_json::json!({"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}})
        );
        let format: ResponseFormat = serde_json::from_value(serde_json::json!({
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}
        }))
        .expect("a json_schema format");
        assert_eq!(format.schema(), Some(&serde_json::json!({"type": "object"})));
        let choice: ToolChoice = serde_json::from_value(serde_json::json!({"function": "f"})).expect("named");
        assert_eq!(choice, ToolChoice::Function("f".into()));
    }

    #[test]
    fn response_formats_read_as_the_tagged_enum_did() {
        let read = |text: &str| serde_json::from_str::<ResponseFormat>(text).map_err(|e| e.to_string());
        assert_eq!(read(r#"{"type": "text"}"#), Ok(ResponseFormat::Text));
        assert_eq!(read(r#"{"type": "json_object", "other": [1]}"#), Ok(ResponseFormat::JsonObject));
        let schema = JsonSchemaFormat { name: "x".into(), schema: Value::Bool(true), strict: None };
        let f = ResponseFormat::JsonSchema { json_schema: schema };
        assert_eq!(read(&serde_json::to_string(&f).expect("json")), Ok(f), "written and read back");
        for (bad, says) in [
            (r#"{"type": "json_schema"}"#, "missing field `json_schema`"),
            (r#"{"type": "xml"}"#, "unknown variant `xml`"),
            (r#"{"json_schema": {"name": "x"}}"#, "missing field `type`"),
            (r#"{"type": "json_schema", "json_schema": {"schema": {}}}"#, "missing field `name`"),
            (r#""text""#, "expected a response format: {\"type\""),
        ] {
            let err = read(bad).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
