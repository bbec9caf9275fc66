//! Plugin strategies, the part every place that runs them shares: what a plugin may
//! reply ([`Reply`]), the checks a reply passes before it becomes a [`Decision`]
//! ([`Decisions`]), and the contract versions ([`Contract`]). The native host runs a
//! plugin with wasmtime and calls [`Decisions`] itself; a driver that runs plugins
//! elsewhere (the browser module, in a Worker) gets [`External`] strategies, and the
//! engine asks it for each decision ([`crate::Action::Decide`]) in the [`wire`] format.

mod external;
pub mod wire;

pub use external::{DEFAULT_MEMORY_MIB, DEFAULT_OUTPUT_KIB, DEFAULT_TIMEOUT_MS, External, PluginRequest};

use super::{Ask, Decision, StrategyInput, inject_references};
use crate::message::Message;

/// Most calls one plugin decision may ask for: each is a paid call, and a plugin that
/// keeps asking is a bug or an attack (the engine's own bound, for built-ins, is higher).
pub const MAX_ASKS: usize = 8;

/// Longest label an ask may carry (it names the call in events and reports).
pub const MAX_LABEL: usize = 64;

/// Longest `provider:model` an ask may name.
pub const MAX_MODEL: usize = 128;

/// Longest text kept from a plugin for a human to read (an error, a note, a description).
pub const MAX_TEXT: usize = 2 << 10;

/// Largest `max_tokens` an ask may set.
pub const MAX_ASK_TOKENS: u32 = 32_768;

/// The largest plugin file read: Rust examples are about 100 KB, JavaScript (QuickJS)
/// 1.6 MB, Python (componentize-py, its interpreter inside) 18.4 MB.
pub const MAX_FILE: u64 = 32 << 20;

/// What to do about a plugin too big to load, by the language it was likely written in.
pub const SMALLER: &str = "build it smaller: Rust with opt-level = \"s\" and strip = true; Python with componentize-py --stub-wasi; JavaScript with componentize-qjs (QuickJS), not StarlingMonkey";

/// Interfaces the contract grants: its own type definitions, and what Rust's std (and
/// the Python and JavaScript runtimes) need to start, all of it inert (no environment,
/// empty stdin, output kept only for error messages). Files, sockets, clocks and
/// randomness are not here.
pub const GRANTED_IMPORTS: [&str; 3] = ["moa:strategy/types", "wasi:io/", "wasi:cli/"];

/// Refuses a component that imports what the contract does not grant, naming each.
/// `imports` are interface names, with or without their `@version`.
pub fn check_imports(imports: impl Iterator<Item = String>) -> Result<(), String> {
    let granted = |name: &str| {
        let bare = name.split('@').next().unwrap_or(name);
        bare == GRANTED_IMPORTS[0] || GRANTED_IMPORTS[1..].iter().any(|g| bare.starts_with(g))
    };
    let denied: Vec<String> = imports.filter(|n| !granted(n)).map(|n| inert(&n)).collect();
    if denied.is_empty() {
        return Ok(());
    }
    Err(format!(
        "imports {}, which the moa:strategy contract does not grant (plugins get no files, sockets, clocks or randomness)",
        denied.join(", ")
    ))
}

/// An ask of the decision under way and its reply: the text, or why the call failed.
pub type Asked = (Ask, Result<String, String>);

/// A plugin's decision, whatever its contract version.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Messages for the next layer's agents (or the aggregator).
    Messages(Vec<Message>),
    /// The final answer.
    Answer(String),
    /// Keep these proposals (indices), dropping the rest.
    Keep(Vec<u32>),
    /// End the debate: these messages go to the final aggregator (contract 0.2).
    Aggregate(Vec<Message>),
    /// End the debate with these proposals kept (contract 0.2).
    AggregateKept(Vec<u32>),
    /// Make this call, then decide again with its reply (contract 0.2).
    Ask(Ask),
}

/// A reply with the plugin's note on it (contract 0.2; none before).
#[derive(Clone, Debug, PartialEq)]
pub struct Decided {
    /// What it decided.
    pub reply: Reply,
    /// What it chose and why, for the user; as the plugin wrote it (not yet inert).
    pub note: Option<String>,
}

impl Reply {
    /// Bytes of text in it, for the output cap.
    pub fn size(&self) -> usize {
        match self {
            Reply::Messages(ms) | Reply::Aggregate(ms) => ms.iter().map(|m| m.content.len() + 16).sum(),
            Reply::Keep(ix) | Reply::AggregateKept(ix) => ix.len() * 4,
            Reply::Answer(a) => a.len(),
            Reply::Ask(a) => {
                let model = a.model.as_ref().map_or(0, String::len);
                a.label.len() + model + a.messages.iter().map(|m| m.content.len() + 16).sum::<usize>()
            }
        }
    }
}

impl Decided {
    /// Bytes of text in the reply and the note, for the output cap.
    pub fn size(&self) -> usize {
        self.reply.size() + self.note.as_ref().map_or(0, String::len)
    }
}

/// The contract versions a plugin may implement, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contract {
    /// `moa:strategy@0.2.0`: asks, ending the debate, notes.
    V0_2_0,
    /// `moa:strategy@0.1.0`.
    V0_1_0,
}

impl Contract {
    /// Every version, newest first.
    pub const ALL: [Contract; 2] = [Contract::V0_2_0, Contract::V0_1_0];

    /// Its version number.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_2_0 => "0.2.0",
            Contract::V0_1_0 => "0.1.0",
        }
    }

    /// The version `version` names, if it is one of [`Contract::ALL`].
    pub fn from_version(version: &str) -> Option<Contract> {
        Contract::ALL.into_iter().find(|c| c.version() == version)
    }

    /// The newest of `supported` that `exports` (a component's export names) implement;
    /// else why none, in words that name what it exports and what is supported.
    pub fn find(exports: &[String], supported: &[Contract]) -> Result<Contract, String> {
        let export = |c: &Contract| format!("moa:strategy/strategy@{}", c.version());
        if let Some(c) = supported.iter().find(|c| exports.contains(&export(c))) {
            return Ok(*c);
        }
        let versions: Vec<&str> = supported.iter().map(|c| c.version()).collect();
        let found: Vec<&String> = exports.iter().filter(|e| e.starts_with("moa:strategy/")).collect();
        Err(match found.first() {
            Some(other) => {
                format!("implements {}, but this host supports moa:strategy@{}", inert(other), versions.join(", @"))
            }
            None => format!(
                "exports no moa:strategy contract (it exports: {})",
                exports.iter().map(|e| inert(e)).collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

/// Text from a plugin, made inert for a terminal or a log: control characters (escape
/// sequences, newlines that forge log lines) escaped, and at most [`MAX_TEXT`] bytes.
pub fn inert(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX_TEXT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One plugin's decisions as a run sees them: the asks of the decision under way, and
/// the checks every reply passes before it becomes a [`Decision`].
#[derive(Debug, Default)]
pub struct Decisions {
    /// This decision's asks that have replies, oldest first.
    asked: Vec<Asked>,
    /// The ask whose reply comes with the next call.
    pending: Option<Ask>,
    /// The last decision's note, inert and bounded.
    note: Option<String>,
}

impl Decisions {
    /// Files the reply to the last ask (or starts a new decision): the asks the plugin
    /// is shown for this step.
    pub fn begin(&mut self, input: &StrategyInput<'_>) -> &[Asked] {
        match (input.reply, self.pending.take()) {
            (Some(reply), Some(ask)) => self.asked.push((ask, reply.map(str::to_owned).map_err(str::to_owned))),
            _ => self.asked.clear(),
        }
        &self.asked
    }

    /// The plugin's reply as the core's decision, checked against `input`; else why it
    /// is refused.
    pub fn accept(&mut self, decided: Decided, input: &StrategyInput<'_>) -> Result<Decision, String> {
        self.note = decided.note.as_deref().map(inert);
        Ok(match decided.reply {
            Reply::Messages(ms) => Decision::Messages(some_messages(ms)?),
            Reply::Aggregate(ms) => Decision::Aggregate(some_messages(ms)?),
            Reply::Answer(a) => Decision::Final(a),
            Reply::Keep(ix) => Decision::Messages(inject_references(input.conversation, &kept(&ix, input)?)),
            Reply::AggregateKept(ix) => Decision::Aggregate(inject_references(input.conversation, &kept(&ix, input)?)),
            Reply::Ask(ask) => {
                self.check_ask(&ask)?;
                self.pending = Some(ask.clone());
                Decision::Ask(ask)
            }
        })
    }

    /// The last decision's note, taken once.
    pub fn note(&mut self) -> Option<String> {
        self.note.take()
    }

    /// An ask is a paid call made in the user's name: bounded in number, its label fit
    /// for an event, its model a `provider:model` (the engine checks the provider).
    fn check_ask(&self, ask: &Ask) -> Result<(), String> {
        if self.asked.len() >= MAX_ASKS {
            return Err(format!("asked for more than {MAX_ASKS} calls in one decision"));
        }
        let label_ok = !ask.label.is_empty()
            && ask.label.len() <= MAX_LABEL
            && ask.label.chars().all(|c| c.is_alphanumeric() || " -_./:()".contains(c));
        if !label_ok {
            return Err(format!(
                "asked with label {}: a label is 1 to {MAX_LABEL} bytes of letters, digits, spaces and -_./:()",
                crate::quote::Quoted(&ask.label.chars().take(80).collect::<String>())
            ));
        }
        if let Some(model) = &ask.model {
            // It names a call in events and may be echoed by a provider: plain text only.
            let plain = model.len() <= MAX_MODEL
                && model.chars().all(|c| !c.is_control() && !c.is_whitespace())
                && model.split_once(':').is_some_and(|(p, m)| !p.is_empty() && !m.is_empty());
            if !plain {
                let model: String = model.chars().take(80).collect();
                return Err(format!(
                    "asked for model {}: a model is \"provider:model\", at most {MAX_MODEL} bytes, without spaces or control characters",
                    crate::quote::Quoted(&model)
                ));
            }
        }
        if ask.messages.is_empty() {
            return Err("asked for a call with no messages".into());
        }
        if ask.max_tokens.is_some_and(|m| !(1..=MAX_ASK_TOKENS).contains(&m)) {
            return Err(format!("asked with max_tokens outside 1..={MAX_ASK_TOKENS}"));
        }
        Ok(())
    }
}

fn some_messages(ms: Vec<Message>) -> Result<Vec<Message>, String> {
    if ms.is_empty() {
        return Err("returned no messages".into());
    }
    Ok(ms)
}

/// The proposals' texts at `ix`: each index in range, each at most once (duplicates
/// would let a small answer multiply into a huge prompt), at least one.
fn kept<'a>(ix: &[u32], input: &StrategyInput<'a>) -> Result<Vec<&'a str>, String> {
    let n = input.proposals.len();
    if ix.is_empty() {
        return Err("kept no proposals".into());
    }
    let mut seen = vec![false; n];
    let mut refs = Vec::with_capacity(ix.len().min(n));
    for &i in ix {
        let Some(p) = input.proposals.get(i as usize) else {
            return Err(format!("kept proposal {i}, but there are only {n} (0..{n})"));
        };
        if std::mem::replace(&mut seen[i as usize], true) {
            return Err(format!("kept proposal {i} twice; each may be kept once"));
        }
        refs.push(p.text.as_str());
    }
    Ok(refs)
}

#[cfg(test)]
mod tests;
