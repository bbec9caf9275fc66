//! Tools and structured output in a run: what each call is offered, and how an answer
//! that must call tools or match a schema is checked before it counts.
//!
//! The policy (the docs' "Tools" page says why): with `aggregator`, proposers see the
//! tools described and the results as text and advise; the aggregator alone gets the real
//! tools. With `vote`, the last proposer layer gets the real tools and a majority of
//! identical calls is the answer. Only calls with the real tools, and the final answer
//! when a format is asked, are checked; a check that fails is a failed attempt, retried
//! with the reason, then reported.

use super::attempt::SlotId;
use super::{Run, RunError};
pub(super) use crate::message::with_calls;
use crate::message::{Message, prepend_system};
use crate::provider::ToolCallBuffer;
use crate::schema::Schema;
use crate::vocab::tools::{ResponseFormat, ToolCall, ToolChoice, ToolPolicy, Tools};
use serde_json::Value;
use thiserror::Error;

/// The tools and format a run was given, checked.
#[derive(Default)]
pub(super) struct Toolbox {
    /// The tools, when the run offers any.
    pub(super) tools: Option<Tools>,
    /// Each tool's argument schema, in the tools' order.
    schemas: Vec<Schema>,
    /// The final answer's shape.
    pub(super) format: ResponseFormat,
    /// The schema the final answer must match.
    answer_schema: Option<Schema>,
}

/// What one call is offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Offer {
    /// Nothing: the run has no tools (tool messages in the conversation become text).
    Plain,
    /// The tools described as text, to advise on.
    Advise,
    /// The real tools, natively.
    Native,
    /// The real tools, described as text, called by answering with JSON (a provider
    /// with `tools = false`).
    AsText,
}

/// Why an answer was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejection {
    /// A call names no tool the run offers.
    #[error("called {}, which is not one of the tools offered", crate::quote::Quoted(.0))]
    UnknownTool(String),
    /// A call's arguments are not JSON.
    #[error("the arguments of {tool} are not JSON: {error}")]
    ArgumentsNotJson {
        /// The tool.
        tool: String,
        /// The parser's words.
        error: String,
    },
    /// A call's arguments do not match the tool's parameters.
    #[error("the arguments of {tool} do not match its parameters: {error}")]
    BadArguments {
        /// The tool.
        tool: String,
        /// The validator's words.
        error: String,
    },
    /// A call was required (`tool_choice`) and the model answered instead.
    #[error("a tool call was required (tool_choice {0}) and the model answered without one")]
    CallRequired(String),
    /// The model called a tool it was not allowed to.
    #[error("called {}, which tool_choice does not allow", crate::quote::Quoted(.0))]
    CallNotAllowed(String),
    /// More than one call when `parallel_tool_calls` is false.
    #[error("{0} tool calls at once, and parallel_tool_calls is false")]
    TooManyCalls(usize),
    /// The answer is not the JSON the format asks for.
    #[error("the answer is not JSON: {0}")]
    NotJson(String),
    /// The answer does not match the schema.
    #[error("the answer does not match the schema: {0}")]
    SchemaMismatch(String),
}

impl Toolbox {
    /// Checks what a run was given: every tool's parameters a schema, the choice naming
    /// an offered tool, the format's schema usable.
    pub(super) fn new(tools: Option<Tools>, format: ResponseFormat) -> Result<Toolbox, RunError> {
        let bad = |field: String, message: String| RunError::Tools { field, message };
        let tools = tools.filter(|t| !t.tools.is_empty());
        let mut schemas = Vec::new();
        for (i, t) in tools.iter().flat_map(|t| t.tools.iter()).enumerate() {
            if t.name.is_empty() {
                return Err(bad(format!("tools[{i}].function.name"), "a tool needs a name".into()));
            }
            if !t.parameters.is_object() {
                let m = "a tool's parameters are a JSON schema object".into();
                return Err(bad(format!("tools[{i}].function.parameters"), m));
            }
            let schema = Schema::compile(&t.parameters).map_err(|e| {
                bad(format!("tools[{i}].function.parameters"), format!("not a usable JSON schema: {e}"))
            })?;
            schemas.push(schema);
        }
        if let Some(t) = &tools
            && let ToolChoice::Function(name) = &t.choice
            && t.get(name).is_none()
        {
            return Err(bad(
                "tool_choice".into(),
                format!("names {}, which is not one of the tools given", crate::quote::Quoted(name)),
            ));
        }
        let answer_schema = match format.schema() {
            Some(s) => Some(Schema::compile(s).map_err(|e| {
                bad("response_format.json_schema.schema".into(), format!("not a usable JSON schema: {e}"))
            })?),
            None => None,
        };
        Ok(Toolbox { tools, schemas, format, answer_schema })
    }

    /// Whether the run's answer must be checked at all.
    pub(super) fn any(&self) -> bool {
        self.tools.is_some() || self.format.is_json()
    }

    /// The system text an offer adds: the tools as text (to advise on, or to call in
    /// JSON).
    fn describe(&self, offer: Offer) -> Option<String> {
        let tools = self.tools.as_ref()?;
        let list: Vec<String> = tools
            .tools
            .iter()
            .map(|t| {
                let about = t.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
                format!("- {}{about}\n  arguments (JSON schema): {}", t.name, crate::json_text::write(&t.parameters))
            })
            .collect();
        let list = list.join("\n");
        match offer {
            Offer::Advise => Some(format!(
                "Another assistant will write the final reply and can call these tools:\n{list}\n\
                 Tool calls and their results so far appear in the conversation as text. Advise it: \
                 say which tool to call next and with what arguments, or, if the results already \
                 suffice, write the answer."
            )),
            Offer::AsText => {
                let must = match &tools.choice {
                    ToolChoice::Required => "\nYou must call at least one tool.".to_owned(),
                    ToolChoice::Function(name) => format!("\nYou must call {name}."),
                    ToolChoice::None => "\nDo not call a tool now; answer.".to_owned(),
                    ToolChoice::Auto => String::new(),
                };
                Some(format!(
                    "You can call these tools:\n{list}\nTo call tools, reply with only a JSON object, \
                     nothing else: {{\"tool_calls\": [{{\"name\": \"...\", \"arguments\": {{...}}}}]}}. \
                     Otherwise reply normally. The results of calls already made appear in the \
                     conversation as \"[result of tool call ...]\" messages: do not call again for \
                     what they answer; use them in your reply.{must}"
                ))
            }
            Offer::Plain | Offer::Native => None,
        }
    }

    /// The system text asking the final answer for JSON.
    fn format_note(&self) -> Option<String> {
        match &self.format {
            ResponseFormat::Text => None,
            ResponseFormat::JsonObject => Some("Reply with a single JSON object and nothing else.".into()),
            ResponseFormat::JsonSchema { json_schema } => Some(format!(
                "Reply with a single JSON value and nothing else (no prose, no code fence) that matches \
                 this JSON schema:\n{}",
                crate::json_text::write(&json_schema.schema)
            )),
        }
    }

    /// `messages` made ready for a call with `offer`: tool traffic as text unless the
    /// call has the real tools, the tools described where it advises or calls in text,
    /// and the format asked of the final answer.
    pub(super) fn prepare(&self, offer: Offer, final_answer: bool, mut messages: Vec<Message>) -> Vec<Message> {
        if offer != Offer::Native {
            messages = messages.iter().map(Message::flattened).collect();
        }
        if let Some(note) = self.describe(offer) {
            prepend_system(&mut messages, &note);
        }
        if final_answer && let Some(note) = self.format_note() {
            prepend_system(&mut messages, &note);
        }
        messages
    }

    /// Checks an answer: the calls of an attempt that had the real tools (`offer`), and,
    /// for the final answer, the format. `text` loses a JSON calls object read as calls
    /// (`AsText`).
    pub(super) fn check(
        &self,
        offer: Offer,
        final_answer: bool,
        text: &mut String,
        buffer: &mut ToolCallBuffer,
    ) -> Result<Vec<ToolCall>, Rejection> {
        let mut calls = buffer.finish();
        let names: Vec<&str> = self.tools.iter().flat_map(|t| t.tools.iter()).map(|t| t.name.as_str()).collect();
        if offer == Offer::AsText
            && let Some(found) = calls_in_text(text, &names)
        {
            calls = found;
            text.clear();
        }
        let Some(tools) = self.tools.as_ref().filter(|_| matches!(offer, Offer::Native | Offer::AsText)) else {
            return self.check_format(final_answer, text).map(|()| Vec::new());
        };
        for c in &calls {
            self.check_call(tools, c)?;
        }
        match &tools.choice {
            ToolChoice::None if !calls.is_empty() => {
                return Err(Rejection::CallNotAllowed(calls[0].function.name.clone()));
            }
            ToolChoice::Required if calls.is_empty() => return Err(Rejection::CallRequired("required".into())),
            ToolChoice::Function(name) if calls.is_empty() => {
                return Err(Rejection::CallRequired(crate::quote::Quoted(name).to_string()));
            }
            ToolChoice::Function(name) => {
                if let Some(c) = calls.iter().find(|c| &c.function.name != name) {
                    return Err(Rejection::CallNotAllowed(c.function.name.clone()));
                }
            }
            _ => {}
        }
        if !tools.parallel && calls.len() > 1 {
            return Err(Rejection::TooManyCalls(calls.len()));
        }
        if calls.is_empty() {
            self.check_format(final_answer, text)?;
        }
        Ok(calls)
    }

    fn check_call(&self, tools: &Tools, c: &ToolCall) -> Result<(), Rejection> {
        let name = &c.function.name;
        let Some(at) = tools.tools.iter().position(|t| &t.name == name) else {
            return Err(Rejection::UnknownTool(name.clone()));
        };
        let args = crate::json_text::parse(&c.function.arguments)
            .map_err(|e| Rejection::ArgumentsNotJson { tool: name.clone(), error: e.to_string() })?;
        self.schemas[at]
            .validate(&args)
            .map_err(|e| Rejection::BadArguments { tool: name.clone(), error: e.to_string() })
    }

    pub(super) fn check_format(&self, final_answer: bool, text: &str) -> Result<(), Rejection> {
        if !final_answer || !self.format.is_json() {
            return Ok(());
        }
        let value = crate::json_text::parse(text.trim()).map_err(|e| Rejection::NotJson(e.to_string()))?;
        if self.format == ResponseFormat::JsonObject && !value.is_object() {
            return Err(Rejection::NotJson("a JSON object was asked for".into()));
        }
        match &self.answer_schema {
            Some(schema) => schema.validate(&value).map_err(|e| Rejection::SchemaMismatch(e.to_string())),
            None => Ok(()),
        }
    }

    /// Whether the run's tools may be called.
    pub(super) fn callable(&self) -> bool {
        self.tools.as_ref().is_some_and(Tools::callable)
    }

    /// Whether the answer needs a call: `required`, or a named function.
    pub(super) fn call_required(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| matches!(t.choice, ToolChoice::Required | ToolChoice::Function(_)))
    }
}

/// The messages that tell a model why its last answer was refused, for the retry.
pub(super) fn correction(answer: &str, calls: &[ToolCall], why: &Rejection) -> Vec<Message> {
    let mut said = answer.to_owned();
    for c in calls {
        said.push_str(&format!("\n[calls {}({})]", c.function.name, c.function.arguments));
    }
    let retry = Message::user(format!("That reply was refused: {why}. Reply again, correcting it."));
    // An empty assistant turn is refused by some providers (Anthropic).
    match said.trim() {
        "" => vec![retry],
        said => vec![Message::assistant(said.to_owned()), retry],
    }
}

/// Calls written as JSON text by a model that got the tools as text: the whole reply
/// (alone, in a code fence, or in Hermes' `<tool_call>` tags) is `{"tool_calls": [...]}`,
/// one `{"name", "arguments"}` object (how Qwen models write a call), or a list of them;
/// a bare object only when its name is one of `tools` (else it is a JSON answer).
fn calls_in_text(text: &str, tools: &[&str]) -> Option<Vec<ToolCall>> {
    let t = text.trim();
    let t = t.strip_prefix("```json").or_else(|| t.strip_prefix("```")).map_or(t, |s| s.trim_end_matches("```"));
    let t = t.trim();
    let t = t.strip_prefix("<tool_call>").map_or(t, |s| s.trim_end().trim_end_matches("</tool_call>"));
    let v = crate::json_text::parse(t.trim()).ok()?;
    let one = |v: &Value| {
        let keys: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        let named = v.get("name").and_then(Value::as_str).is_some_and(|n| tools.contains(&n));
        named && keys.iter().all(|k| matches!(*k, "name" | "arguments"))
    };
    let list = match &v {
        Value::Object(o) if o.contains_key("tool_calls") => v.get("tool_calls")?.as_array()?.clone(),
        Value::Object(_) if one(&v) => vec![v.clone()],
        Value::Array(items) if !items.is_empty() && items.iter().all(one) => items.clone(),
        _ => return None,
    };
    let calls = list
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            let args = match c.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => crate::json_text::write(other),
                None => "{}".into(),
            };
            ToolCall::new(format!("call_{i}"), name, args)
        })
        .collect();
    Some(calls)
}

/// The calls a majority of the proposals made (the same names and canonical arguments,
/// in any order), with how many made them; `None` without a strict majority of `of`.
pub fn tool_majority(proposals: &[&[ToolCall]], of: usize) -> Option<(Vec<ToolCall>, usize)> {
    let key = |calls: &[ToolCall]| {
        let mut keys: Vec<String> = calls.iter().map(ToolCall::canonical).collect();
        keys.sort();
        keys.join("\n")
    };
    let keys: Vec<String> = proposals.iter().map(|c| key(c)).collect();
    let (at, count) = keys
        .iter()
        .enumerate()
        .filter(|(i, _)| !proposals[*i].is_empty())
        .map(|(i, k)| (i, keys.iter().filter(|o| *o == k).count()))
        .max_by_key(|(i, n)| (*n, std::cmp::Reverse(*i)))?;
    (count * 2 > of).then(|| (proposals[at].to_vec(), count))
}

impl Run {
    /// What slot `i`'s next call is offered.
    pub(super) fn offer(&self, i: SlotId) -> Offer {
        let Some(tools) = &self.toolbox.tools else { return Offer::Plain };
        if self.asking().is_some() || i == SlotId::Stair || tools.choice == ToolChoice::None && !self.is_final_layer() {
            return if self.asking().is_some() { Offer::Plain } else { Offer::Advise };
        }
        let real = self.is_final_layer()
            || (self.recipe.tool_policy == ToolPolicy::Vote && self.layer + 1 == self.recipe.layers.len());
        match real {
            false => Offer::Advise,
            true if self.recipe.providers[&self.slots[i].agent.provider].tools => Offer::Native,
            true => Offer::AsText,
        }
    }

    /// Whether slot `i` writes the final answer (the aggregator's own call).
    pub(super) fn writes_answer(&self, i: SlotId) -> bool {
        self.is_final_layer() && self.asking().is_none() && i != SlotId::Stair
    }

    /// Checks an answer no checked call wrote (a strategy's, an agreement's) against
    /// what the run asked for; the aggregator's own passes again unchanged.
    pub(super) fn check_decided(
        &self,
        result: Result<String, RunError>,
        decided_by: Option<&str>,
    ) -> Result<String, RunError> {
        let Ok(text) = result else { return result };
        let rejected = |rejection| RunError::Rejected { decided_by: decided_by.unwrap_or("the run").into(), rejection };
        if !self.answer_calls.is_empty() {
            return Ok(text);
        }
        if self.toolbox.call_required() {
            let choice = match self.toolbox.tools.as_ref().map(|t| &t.choice) {
                Some(ToolChoice::Function(name)) => crate::quote::Quoted(name).to_string(),
                _ => "required".into(),
            };
            return Err(rejected(Rejection::CallRequired(choice)));
        }
        self.toolbox.check_format(true, &text).map_err(rejected)?;
        Ok(text)
    }

    /// Checks slot `i`'s answer, now whole: its calls are kept, and text held back
    /// until the check is released. A refusal is a failed attempt, its retry told why.
    /// Returns whether the answer stands.
    pub(super) fn accept_answer(&mut self, i: SlotId, call: crate::event::CallId) -> bool {
        if i == SlotId::Stair {
            return true;
        }
        let final_answer = self.writes_answer(i);
        let slot = &mut self.slots[i];
        let mut text = std::mem::take(&mut slot.text);
        let said = text.clone();
        let mut pending = slot.tool_buffer.clone();
        let checked = self.toolbox.check(slot.offer, final_answer, &mut text, &mut slot.tool_buffer);
        slot.text = text;
        match checked {
            Ok(calls) => {
                slot.calls = calls;
                slot.correction.clear();
                if slot.hold {
                    self.release_held(i, call);
                }
                true
            }
            Err(why) => {
                let calls = pending.finish();
                self.slots[i].correction = correction(&said, &calls, &why);
                self.fail_attempt(i, super::CallError::Rejected(why), None, false);
                false
            }
        }
    }

    /// Delivers the text a checked answer held back, in one piece.
    fn release_held(&mut self, i: SlotId, call: crate::event::CallId) {
        let text = self.slots[i].text.clone();
        if text.is_empty() {
            return;
        }
        self.answer_first_token.get_or_insert(self.now);
        let (layer, slot) = self.place_of(i);
        let at = crate::event::Place { call, layer, slot };
        self.emit(crate::event::Event::TextDelta { at, text });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Role;
    use crate::vocab::tools::{JsonSchemaFormat, Tool};
    use serde_json::json;

    fn weather() -> Tools {
        let parameters = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        Tools {
            tools: vec![Tool { name: "weather".into(), description: None, parameters, strict: None }],
            ..Tools::default()
        }
    }

    fn check(b: &Toolbox, offer: Offer, text: &str, calls: &[(&str, &str)]) -> Result<Vec<ToolCall>, Rejection> {
        let mut buffer = ToolCallBuffer::default();
        for (n, (name, args)) in calls.iter().enumerate() {
            buffer.push(crate::provider::ToolCallDelta {
                index: n as u32,
                id: Some(format!("c{n}")),
                name: Some((*name).into()),
                arguments: (*args).into(),
            });
        }
        b.check(offer, true, &mut text.to_owned(), &mut buffer)
    }

    #[test]
    fn calls_are_checked_against_the_tools() {
        let b = Toolbox::new(Some(weather()), ResponseFormat::Text).expect("valid");
        assert_eq!(check(&b, Offer::Native, "", &[("weather", r#"{"city":"Oslo"}"#)]).map(|c| c.len()), Ok(1));
        assert_eq!(check(&b, Offer::Native, "", &[("wether", "{}")]), Err(Rejection::UnknownTool("wether".into())));
        assert!(matches!(
            check(&b, Offer::Native, "", &[("weather", "{city")]),
            Err(Rejection::ArgumentsNotJson { .. })
        ));
        let e = check(&b, Offer::Native, "", &[("weather", "{}")]).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "the arguments of weather do not match its parameters: missing required property \"city\""
        );
        // Advisers' text is not checked.
        assert_eq!(check(&b, Offer::Advise, "call weather!", &[]), Ok(vec![]));
    }

    #[test]
    fn the_choice_and_parallel_setting_hold() {
        let mut t = weather();
        t.choice = ToolChoice::Required;
        t.parallel = false;
        let b = Toolbox::new(Some(t), ResponseFormat::Text).expect("valid");
        assert_eq!(check(&b, Offer::Native, "It is sunny.", &[]), Err(Rejection::CallRequired("required".into())));
        let two = [("weather", r#"{"city":"a"}"#), ("weather", r#"{"city":"b"}"#)];
        assert_eq!(check(&b, Offer::Native, "", &two), Err(Rejection::TooManyCalls(2)));
        let mut t = weather();
        t.choice = ToolChoice::None;
        let b = Toolbox::new(Some(t), ResponseFormat::Text).expect("valid");
        assert!(matches!(check(&b, Offer::Native, "", &two[..1]), Err(Rejection::CallNotAllowed(_))));
        let mut t = weather();
        t.choice = ToolChoice::Function("nope".into());
        assert!(
            matches!(Toolbox::new(Some(t), ResponseFormat::Text), Err(RunError::Tools { field, .. }) if field == "tool_choice")
        );
    }

    #[test]
    fn calls_written_as_text_are_read() {
        let b = Toolbox::new(Some(weather()), ResponseFormat::Text).expect("valid");
        let text = "```json\n{\"tool_calls\": [{\"name\": \"weather\", \"arguments\": {\"city\": \"Rome\"}}]}\n```";
        let calls = check(&b, Offer::AsText, text, &[]).expect("a call");
        assert_eq!(calls, vec![ToolCall::new("call_0", "weather", r#"{"city":"Rome"}"#)]);
        assert_eq!(check(&b, Offer::AsText, "Rome is sunny.", &[]), Ok(vec![]));
        // Qwen's own way: one {"name", "arguments"} object in a fence, or in Hermes' tags.
        let qwen = "```json\n{\n  \"name\": \"weather\",\n  \"arguments\": {\"city\": \"Oslo\"}\n}\n```";
        assert_eq!(check(&b, Offer::AsText, qwen, &[]).expect("a call")[0].function.arguments, r#"{"city":"Oslo"}"#);
        let hermes = "<tool_call>\n{\"name\": \"weather\", \"arguments\": {\"city\": \"Bergen\"}}\n</tool_call>";
        assert_eq!(check(&b, Offer::AsText, hermes, &[]).expect("a call").len(), 1);
        // A JSON answer that is not a call stays an answer.
        assert_eq!(check(&b, Offer::AsText, r#"{"name": "Ada", "age": 36}"#, &[]), Ok(vec![]));
    }

    #[test]
    fn a_format_checks_the_final_answer_only() {
        let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
        let json_schema = JsonSchemaFormat { name: "n".into(), schema, strict: Some(true) };
        let b = Toolbox::new(None, ResponseFormat::JsonSchema { json_schema }).expect("valid");
        let mut buffer = ToolCallBuffer::default();
        assert_eq!(b.check(Offer::Plain, true, &mut r#"{"n": 3}"#.to_owned(), &mut buffer), Ok(vec![]));
        let e = b.check(Offer::Plain, true, &mut r#"{"n": "3"}"#.to_owned(), &mut buffer).expect_err("refused");
        assert_eq!(e.to_string(), "the answer does not match the schema: at /n: expected integer, got string");
        assert!(matches!(
            b.check(Offer::Plain, true, &mut "n is 3".to_owned(), &mut buffer),
            Err(Rejection::NotJson(_))
        ));
        assert_eq!(b.check(Offer::Plain, false, &mut "n is 3".to_owned(), &mut buffer), Ok(vec![]));
        let bad = JsonSchemaFormat { name: "x".into(), schema: json!({"type": "thing"}), strict: None };
        let e = Toolbox::new(None, ResponseFormat::JsonSchema { json_schema: bad }).err().expect("refused");
        assert!(matches!(e, RunError::Tools { field, .. } if field == "response_format.json_schema.schema"));
    }

    #[test]
    fn a_strict_majority_of_identical_calls_decides() {
        let a = [ToolCall::new("1", "f", r#"{"x":1,"y":2}"#)];
        let b = [ToolCall::new("2", "f", r#"{"y":2, "x":1}"#)];
        let c = [ToolCall::new("3", "f", r#"{"x":2}"#)];
        let (calls, n) = tool_majority(&[&a, &b, &c], 3).expect("2 of 3");
        assert_eq!((calls[0].id.as_str(), n), ("1", 2));
        assert_eq!(tool_majority(&[&a, &c, &[]], 3), None);
        // Answers without calls are no majority for calling.
        assert_eq!(tool_majority(&[&[], &[], &a], 3), None);
    }

    #[test]
    fn advisers_see_tool_traffic_as_text() {
        let b = Toolbox::new(Some(weather()), ResponseFormat::Text).expect("valid");
        let conversation = vec![
            Message::user("Weather in Oslo?"),
            Message::tool_calls("", vec![ToolCall::new("c1", "weather", r#"{"city":"Oslo"}"#)]),
            Message::tool_result("c1", "12 C"),
        ];
        let advised = b.prepare(Offer::Advise, false, conversation.clone());
        assert_eq!(advised[0].role, Role::System);
        assert!(advised[0].content.contains("- weather"));
        assert_eq!(advised[2].content, r#"[tool call c1: weather({"city":"Oslo"})]"#);
        assert_eq!((advised[3].role, advised[3].content.as_str()), (Role::User, "[result of tool call c1]\n12 C"));
        assert!(advised.iter().all(|m| m.tool_calls.is_empty() && m.tool_call_id.is_none()));
        assert_eq!(b.prepare(Offer::Native, true, conversation.clone()), conversation);
    }
}
