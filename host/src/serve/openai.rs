//! What `moa serve` sends, as OpenAI's types: a chat completion, a stream's chunks, the
//! usage, the model list and an error body. One definition of each shape, so the whole
//! answer, every chunk and every error are written the same way.

// The fields are OpenAI's, named and meant as its API reference has them.
#![allow(missing_docs)]

use moa_core::{LayerReport, Outcome, ToolCall};
use serde::Serialize;

/// `usage`: tokens over every attempt of every call of the run, failed ones included
/// (OpenAI's shape), with moa's own breakdown: how much went to failed or cancelled
/// attempts, and whether some of it is estimated.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub moa_wasted_tokens: u64,
    pub moa_estimated: bool,
}

impl Usage {
    /// The run's usage.
    pub fn of(o: &Outcome) -> Usage {
        Usage {
            prompt_tokens: o.usage.input_tokens,
            completion_tokens: o.usage.output_tokens,
            total_tokens: o.usage.total(),
            moa_wasted_tokens: o.wasted.total(),
            moa_estimated: o.usage.estimated,
        }
    }
}

/// The assistant's message in a whole answer: its text (null when it only calls
/// tools, as OpenAI writes it) and its tool calls.
#[derive(Debug, Serialize)]
pub struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    pub tool_calls: &'a [ToolCall],
}

/// One choice of a whole answer (moa gives one).
#[derive(Debug, Serialize)]
pub struct Choice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    pub finish_reason: &'a str,
}

/// The `moa` extension: every layer's proposals, and who decided (whole answers only).
#[derive(Debug, Serialize)]
pub struct Proposals<'a> {
    pub layers: &'a [LayerReport],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Option<&'a str>>,
}

/// `chat.completion`: a whole answer.
#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [Choice<'a>; 1],
    pub usage: Usage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moa: Option<Proposals<'a>>,
}

impl<'a> ChatCompletion<'a> {
    /// The whole answer `answer` of `outcome`; with the proposals when asked.
    pub fn new(head: &Head<'a>, answer: &'a str, outcome: &'a Outcome, proposals: bool) -> ChatCompletion<'a> {
        ChatCompletion {
            id: head.id,
            object: "chat.completion",
            created: head.created,
            model: head.model,
            choices: [Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant",
                    content: Some(answer).filter(|a| !a.is_empty() || outcome.tool_calls.is_empty()),
                    tool_calls: &outcome.tool_calls,
                },
                finish_reason: outcome.finish_reason.as_deref().unwrap_or("stop"),
            }],
            usage: Usage::of(outcome),
            moa: proposals
                .then(|| Proposals { layers: &outcome.layers, decided_by: Some(outcome.decided_by.as_deref()) }),
        }
    }
}

/// What every response and chunk of one completion shares.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub id: &'a str,
    pub created: u64,
    pub model: &'a str,
}

/// A chunk's delta: the role first, then content or tool calls.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta<'a>>,
}

/// A tool call in a stream: OpenAI's delta shape, with its `index`. moa sends each call
/// whole, in one delta (it is checked before it is sent).
#[derive(Debug, Serialize)]
pub struct ToolCallDelta<'a> {
    pub index: usize,
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: &'a moa_core::tools::FunctionCall,
}

/// One choice of a chunk.
#[derive(Debug, Serialize)]
pub struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub finish_reason: Option<&'a str>,
}

/// `chat.completion.chunk`: one event of a streamed answer.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moa: Option<Proposals<'a>>,
}

impl<'a> Chunk<'a> {
    fn bare(head: &Head<'a>, choices: Vec<ChunkChoice<'a>>) -> Chunk<'a> {
        Chunk {
            id: head.id,
            object: "chat.completion.chunk",
            created: head.created,
            model: head.model,
            choices,
            usage: None,
            moa: None,
        }
    }

    /// The first chunk: the assistant's role and empty content.
    pub fn role(head: &Head<'a>) -> Chunk<'a> {
        let delta = Delta { role: Some("assistant"), content: Some(""), ..Delta::default() };
        Chunk::bare(head, vec![ChunkChoice { index: 0, delta, finish_reason: None }])
    }

    /// A piece of the answer.
    pub fn text(head: &Head<'a>, text: &'a str) -> Chunk<'a> {
        let delta = Delta { content: Some(text), ..Delta::default() };
        Chunk::bare(head, vec![ChunkChoice { index: 0, delta, finish_reason: None }])
    }

    /// The answer's tool calls, each whole.
    pub fn tool_calls(head: &Head<'a>, calls: &'a [ToolCall]) -> Chunk<'a> {
        let tool_calls = calls
            .iter()
            .enumerate()
            .map(|(index, c)| ToolCallDelta { index, id: &c.id, kind: "function", function: &c.function })
            .collect();
        let delta = Delta { tool_calls, ..Delta::default() };
        Chunk::bare(head, vec![ChunkChoice { index: 0, delta, finish_reason: None }])
    }

    /// The last choice chunk: an empty delta and why the answer ended.
    pub fn finish(head: &Head<'a>, reason: &'a str) -> Chunk<'a> {
        Chunk::bare(head, vec![ChunkChoice { index: 0, delta: Delta::default(), finish_reason: Some(reason) }])
    }

    /// The usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage(head: &Head<'a>, outcome: &Outcome) -> Chunk<'a> {
        Chunk { usage: Some(Usage::of(outcome)), ..Chunk::bare(head, vec![]) }
    }

    /// The proposals chunk (`moa_proposals`): no choices.
    pub fn proposals(head: &Head<'a>, layers: &'a [LayerReport]) -> Chunk<'a> {
        Chunk { moa: Some(Proposals { layers, decided_by: None }), ..Chunk::bare(head, vec![]) }
    }
}

/// The body of an error response, and of a stream's error event.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

/// OpenAI's error object.
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// One model of `GET /v1/models`: a recipe.
#[derive(Debug, Serialize)]
pub struct Model<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
    pub description: &'a str,
}

/// `GET /v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList<'a> {
    pub object: &'static str,
    pub data: Vec<Model<'a>>,
}

/// JSON text of a value of these types (plain structs of strings and numbers, and the
/// core's reports: serializing cannot fail).
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn v<T: Serialize>(t: &T) -> Value {
        serde_json::from_str(&to_json(t)).expect("as written")
    }

    const HEAD: Head<'static> = Head { id: "chatcmpl-1", created: 7, model: "moa" };

    #[test]
    fn chunks_have_openais_shapes() {
        let base = json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "moa" });
        let with = |choices: Value| {
            let mut b = base.clone();
            b["choices"] = choices;
            b
        };
        assert_eq!(
            v(&Chunk::role(&HEAD)),
            with(json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }]))
        );
        assert_eq!(
            v(&Chunk::text(&HEAD, "Hi")),
            with(json!([{ "index": 0, "delta": { "content": "Hi" }, "finish_reason": null }]))
        );
        assert_eq!(
            v(&Chunk::finish(&HEAD, "length")),
            with(json!([{ "index": 0, "delta": {}, "finish_reason": "length" }]))
        );
        let proposals = v(&Chunk::proposals(&HEAD, &[]));
        assert_eq!(proposals["choices"], json!([]));
        assert_eq!(proposals["moa"], json!({ "layers": [] }));
    }

    #[test]
    fn errors_and_models_have_openais_shapes() {
        let e = ErrorBody { error: ErrorDetail { message: "m", kind: "api_error", param: None, code: Some("c") } };
        assert_eq!(v(&e), json!({ "error": { "message": "m", "type": "api_error", "param": null, "code": "c" } }));
        let list = ModelList {
            object: "list",
            data: vec![Model { id: "moa", object: "model", created: 0, owned_by: "moa", description: "d" }],
        };
        assert_eq!(
            v(&list),
            json!({ "object": "list", "data": [{ "id": "moa", "object": "model", "created": 0, "owned_by": "moa", "description": "d" }] })
        );
    }
}
