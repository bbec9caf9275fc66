//! A plugin decision as JSON, for a driver that runs plugins outside this process (the
//! browser module runs them in a Worker, through jco's bindings). The shapes are those
//! jco gives the contract's types in JavaScript, so the driver only moves them: records
//! with camelCase fields, enums as their case names, variants as `{tag, val}`, options
//! as absent fields. JSON has no 64-bit integers: `seed` and token counts travel as
//! decimal strings and the driver makes them `BigInt`s.
//!
//! The driver answers with `{"ok": {"decision": {...}, "note": "..."}}`, or
//! `{"err": "why"}` for the plugin's own refusal. A 0.1 plugin returns a bare decision;
//! the driver puts it under `decision`. Only the decisions the plugin's contract version
//! has are accepted.

use super::{Asked, Contract, Decided, Reply};
use crate::json_read::{Object, list, one_of, string, u32};
use crate::message::{Message, Role};
use crate::strategy::{Ask, Proposal, StrategyInput};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum WireRole {
    System,
    User,
    Assistant,
}

#[derive(Serialize)]
struct WireMessage {
    role: WireRole,
    content: String,
}

impl WireMessage {
    fn read(v: &Value, at: &str) -> Result<WireMessage, String> {
        let o = Object::new(v, at, &["role", "content"])?;
        let role = match one_of(o.req("role")?, &o.at("role"), &["system", "user", "assistant"])? {
            0 => WireRole::System,
            1 => WireRole::User,
            _ => WireRole::Assistant,
        };
        Ok(WireMessage { role, content: string(o.req("content")?, &o.at("content"))? })
    }

    fn from_core(m: &Message) -> WireMessage {
        // The contract knows no tool role; tool traffic reaches it as text.
        let m = m.flattened();
        let role = match m.role {
            Role::System => WireRole::System,
            Role::Assistant => WireRole::Assistant,
            Role::User | Role::Tool => WireRole::User,
        };
        WireMessage { role, content: m.content }
    }

    fn into_core(self) -> Message {
        let role = match self.role {
            WireRole::System => Role::System,
            WireRole::User => Role::User,
            WireRole::Assistant => Role::Assistant,
        };
        Message::new(role, self.content)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireProposal<'a> {
    agent: &'a str,
    model: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_tokens: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_tokens: Option<String>,
    latency_ms: f64,
}

impl<'a> WireProposal<'a> {
    fn from_core(p: &'a Proposal) -> Self {
        WireProposal {
            agent: &p.agent,
            model: &p.model,
            text: &p.text,
            input_tokens: p.usage.map(|u| u.input_tokens.to_string()),
            output_tokens: p.usage.map(|u| u.output_tokens.to_string()),
            latency_ms: p.latency_ms,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireAsk {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
    label: String,
    messages: Vec<WireMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
}

impl WireAsk {
    fn read(v: &Value, at: &str) -> Result<WireAsk, String> {
        let o = Object::new(v, at, &["model", "label", "messages", "maxTokens"])?;
        Ok(WireAsk {
            model: o.get("model", string)?,
            label: string(o.req("label")?, &o.at("label"))?,
            messages: list(o.req("messages")?, &o.at("messages"), WireMessage::read)?,
            max_tokens: o.get("maxTokens", u32)?,
        })
    }

    fn from_core(a: &Ask) -> WireAsk {
        WireAsk {
            model: a.model.clone(),
            label: a.label.clone(),
            messages: a.messages.iter().map(WireMessage::from_core).collect(),
            max_tokens: a.max_tokens,
        }
    }

    fn into_core(self) -> Ask {
        Ask {
            model: self.model,
            label: self.label,
            messages: self.messages.into_iter().map(WireMessage::into_core).collect(),
            max_tokens: self.max_tokens,
        }
    }
}

/// `result<string, string>` as jco writes it.
#[derive(Serialize)]
#[serde(tag = "tag", content = "val", rename_all = "lowercase")]
enum WireResult<'a> {
    Ok(&'a str),
    Err(&'a str),
}

#[derive(Serialize)]
struct WireAnswered<'a> {
    ask: WireAsk,
    reply: WireResult<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireContext<'a> {
    conversation: Vec<WireMessage>,
    layer: u32,
    layer_count: u32,
    proposals: Vec<WireProposal<'a>>,
    params: &'a str,
    /// 0.2 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<String>,
    /// 0.2 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    asked: Option<Vec<WireAnswered<'a>>>,
}

fn answered((ask, reply): &Asked) -> WireAnswered<'_> {
    WireAnswered {
        ask: WireAsk::from_core(ask),
        reply: match reply {
            Ok(text) => WireResult::Ok(text),
            Err(why) => WireResult::Err(why),
        },
    }
}

/// The context a plugin implementing `contract` sees for one step of a decision, as
/// JSON text.
pub fn context(contract: Contract, input: &StrategyInput<'_>, params: &str, asked: &[Asked]) -> String {
    let v2 = contract == Contract::V0_2_0;
    let ctx = WireContext {
        conversation: input.conversation.iter().map(WireMessage::from_core).collect(),
        layer: input.layer as u32,
        layer_count: input.layer_count as u32,
        proposals: input.proposals.iter().map(WireProposal::from_core).collect(),
        params,
        seed: v2.then(|| input.seed.to_string()),
        asked: v2.then(|| asked.iter().map(answered).collect()),
    };
    // Plain strings, numbers and lists: writing them cannot fail.
    serde_json::to_string(&ctx).unwrap_or_default()
}

/// A decision as jco writes the contract's variant: `{tag, val}`.
enum WireDecision {
    Messages(Vec<WireMessage>),
    Keep(Vec<u32>),
    Answer(String),
    Aggregate(Vec<WireMessage>),
    AggregateKept(Vec<u32>),
    Ask(WireAsk),
}

impl WireDecision {
    const TAGS: [&str; 6] = ["messages", "keep", "answer", "aggregate", "aggregate-kept", "ask"];

    fn read(v: &Value, at: &str) -> Result<WireDecision, String> {
        let o = Object::new(v, at, &["tag", "val"])?;
        let (tag, val, at) = (o.req("tag")?, o.req("val")?, o.at("val"));
        Ok(match one_of(tag, &o.at("tag"), &Self::TAGS)? {
            0 => WireDecision::Messages(list(val, &at, WireMessage::read)?),
            1 => WireDecision::Keep(list(val, &at, u32)?),
            2 => WireDecision::Answer(string(val, &at)?),
            3 => WireDecision::Aggregate(list(val, &at, WireMessage::read)?),
            4 => WireDecision::AggregateKept(list(val, &at, u32)?),
            _ => WireDecision::Ask(WireAsk::read(val, &at)?),
        })
    }
}

/// A decision and its note, under the driver's `ok`.
struct WireDecided {
    decision: WireDecision,
    note: Option<String>,
}

impl WireDecided {
    fn read(v: &Value, at: &str) -> Result<WireDecided, String> {
        let o = Object::new(v, at, &["decision", "note"])?;
        Ok(WireDecided {
            decision: WireDecision::read(o.req("decision")?, &o.at("decision"))?,
            note: o.get("note", string)?,
        })
    }
}

/// The driver's answer for a plugin implementing `contract`: its decision, or its own
/// refusal (`Ok(Err(why))`); `Err` when the answer is not what the contract allows.
pub fn decided(contract: Contract, json: &str) -> Result<Result<Decided, String>, String> {
    let refused = |why: String| format!("returned something the contract does not allow ({why})");
    let v = crate::json_text::parse(json).map_err(|e| refused(e.to_string()))?;
    let outcome = Object::new(&v, "", &["ok", "err"]).map_err(refused)?;
    let d = match outcome.only().map_err(refused)? {
        ("err", why) => return Ok(Err(string(why, "err").map_err(refused)?)),
        (_, d) => WireDecided::read(d, "ok").map_err(refused)?,
    };
    let v2 = contract == Contract::V0_2_0;
    let reply = match d.decision {
        WireDecision::Messages(ms) => Reply::Messages(ms.into_iter().map(WireMessage::into_core).collect()),
        WireDecision::Keep(ix) => Reply::Keep(ix),
        WireDecision::Answer(a) => Reply::Answer(a),
        WireDecision::Aggregate(ms) if v2 => Reply::Aggregate(ms.into_iter().map(WireMessage::into_core).collect()),
        WireDecision::AggregateKept(ix) if v2 => Reply::AggregateKept(ix),
        WireDecision::Ask(a) if v2 => Reply::Ask(a.into_core()),
        _ => return Err(format!("returned a decision that contract {} does not have", contract.version())),
    };
    if !v2 && d.note.is_some() {
        return Err(format!("returned a note, which contract {} does not have", contract.version()));
    }
    Ok(Ok(Decided { reply, note: d.note }))
}
