//! What an evaluation asks, decided without I/O: the dataset read and checked against the
//! scoring, the single-model baselines, and the inputs of every batch it runs (each
//! recipe's first turn, its later turns, and the judge's prompts, each under a typed key).

use super::ledger::Ledgers;
use super::{Entrant, EvalError, Scoring};
use moa_core::Message;
use moa_core::eval::Item;
use moa_core::eval::judge::{self, JudgeMode};
use moa_core::recipe::Aggregator;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// A dataset item under its id: the item's own, as canonical JSON text (`"q-1"`, `7`), or
/// its line number.
pub type Keyed = (String, Item);

/// Reads the dataset: each non-blank line an item; ids are the item's own or the line
/// number, and must be unique.
pub fn read_dataset(path: &Path, limit: Option<usize>) -> Result<Vec<Keyed>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(super::io(path))?;
    let mut items: Vec<Keyed> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
        let bad = |reason: String| EvalError::Dataset { path: path.display().to_string(), line: n, reason };
        let item = Item::parse(line).map_err(bad)?;
        let id = item.id.as_ref().map_or_else(|| n.to_string(), Value::to_string);
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(bad(format!("id {id} already used on line {first}")));
        }
        items.push((id, item));
    }
    if items.is_empty() {
        return Err(EvalError::Usage(format!("{}: no items", path.display())));
    }
    Ok(items)
}

/// Checks that the items can be scored the way asked, and that `--against` names an
/// entrant.
pub fn check(items: &[Keyed], scoring: &Scoring, entrants: &[Entrant]) -> Result<(), String> {
    if max_turns(items) > 1 && !matches!(scoring, Scoring::Judge { mode: JudgeMode::Grade, .. }) {
        return Err(
            "items with \"turns\" are judged turn by turn, MT-Bench style: use --scorer judge --judge-mode grade"
                .into(),
        );
    }
    let need_reference = matches!(scoring, Scoring::Judge { mode: JudgeMode::Pairwise, against: None, .. });
    for (id, item) in items {
        if matches!(scoring, Scoring::Rule(_)) && item.answer.is_none() {
            return Err(format!("item {id} has no \"answer\" to score against"));
        }
        if need_reference && item.reference.is_none() {
            return Err(format!("item {id} has no \"reference\" to judge against (or pass --against RECIPE)"));
        }
    }
    match scoring {
        Scoring::Judge { against: Some(a), .. } if !entrants.iter().any(|e| &e.name == a) => {
            Err(format!("--against {a}: no such recipe in this evaluation"))
        }
        _ => Ok(()),
    }
}

/// The most turns any item asks.
pub fn max_turns(items: &[Keyed]) -> usize {
    items.iter().map(|(_, i)| i.turn_count()).max().unwrap_or(1)
}

/// The single-model baselines of `recipes`: each distinct proposer model alone, as a
/// recipe of one call (no layers: the model answers the conversation itself), with its
/// recipe's providers, defaults and policy.
pub fn baselines(recipes: &[Entrant]) -> Vec<Entrant> {
    let mut out: Vec<Entrant> = Vec::new();
    for e in recipes {
        for agent in e.recipe.layers.iter().flat_map(|l| &l.agents) {
            let name = format!("{} alone", agent.model);
            if out.iter().any(|b| b.name == name) {
                continue;
            }
            let mut recipe = e.recipe.clone();
            recipe.name = name.clone();
            recipe.description = format!("{} alone, one call", agent.model);
            recipe.layers = vec![];
            recipe.aggregator = Aggregator {
                temperature: agent.temperature,
                max_tokens: agent.max_tokens,
                system: agent.system.clone(),
                ..Aggregator::new(&agent.model)
            };
            out.push(Entrant { name, recipe, baseline: true, resolver: None });
        }
    }
    out
}

/// A name as a file name: letters, digits, `.`, `_` and `-`.
pub fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect()
}

/// One line of a batch input the evaluation writes.
#[derive(Serialize)]
struct Request<'a> {
    id: Value,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
}

/// One batch line; an item's own tools go with it (a judge's request has none).
fn request(id: Value, messages: &[Message], item: Option<&Item>) -> String {
    let tools = item.and_then(|i| i.tools.as_ref());
    let tool_choice = item.and_then(|i| i.tool_choice.as_ref());
    // JSON values and messages of strings: serializing cannot fail.
    serde_json::to_string(&Request { id, messages, tools, tool_choice }).unwrap_or_default()
}

/// An item id's JSON text as a value (ids are strings or numbers).
fn id_value(id: &str) -> Value {
    serde_json::from_str(id).unwrap_or_else(|_| Value::String(id.to_owned()))
}

/// The first turn's input, shared by every recipe: each item's conversation.
pub fn first_turn(items: &[Keyed]) -> Vec<String> {
    items.iter().map(|(id, item)| request(id_value(id), &item.conversation(), Some(item))).collect()
}

/// Turn `t`'s input (0-based, `t >= 1`) for entrant `ei`: each item with that many turns,
/// asked after the entrant's own earlier answers. An item whose earlier turn failed is
/// not asked (it scores the lowest grade).
pub fn later_turn(items: &[Keyed], t: usize, ledgers: &Ledgers, ei: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for (id, item) in items.iter().filter(|(_, i)| i.turn_count() > t) {
        let before: Option<Vec<String>> = (0..t).map(|k| ledgers.answer(k, ei, id).map(str::to_owned)).collect();
        if let Some(before) = before {
            lines.push(request(id_value(id), &item.conversation_at(t, &before), Some(item)));
        }
    }
    lines
}

/// Which verdict of an item a judge's call gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The item's only verdict (a grade or a rubric).
    Whole,
    /// Pairwise, the entrant's answer shown first.
    Ab,
    /// Pairwise, the entrant's answer shown second.
    Ba,
    /// A multi-turn item's turn (1-based).
    Turn(usize),
}

/// The key of one judge call: the item and the verdict. Written into the judge's batch as
/// the line's id (a string: `7`, `"q-1"|ab`, `"q-1"|t2`), the form existing evaluation
/// folders hold, so a rerun resumes them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JudgeKey {
    /// The item's id, as canonical JSON text.
    pub item: String,
    /// Which verdict.
    pub part: Part,
}

impl JudgeKey {
    /// The key of `part` of `item`.
    pub fn new(item: &str, part: Part) -> JudgeKey {
        JudgeKey { item: item.to_owned(), part }
    }

    /// Reads a key back from its id; `None` for an id this evaluation did not write.
    pub fn parse(id: &str) -> Option<JudgeKey> {
        // The item is JSON (a string or a number), so a `|` inside a string id never
        // ends the text: only a suffix after a whole JSON value names a part.
        let part = |suffix: &str| match suffix {
            "ab" => Some(Part::Ab),
            "ba" => Some(Part::Ba),
            t => t.strip_prefix('t')?.parse().ok().filter(|n| *n > 0).map(Part::Turn),
        };
        let split = id.rsplit_once('|').and_then(|(item, s)| Some((item, part(s)?)));
        let (item, part) = split.unwrap_or((id, Part::Whole));
        serde_json::from_str::<Value>(item).ok().filter(|v| v.is_string() || v.is_number())?;
        Some(JudgeKey { item: item.to_owned(), part })
    }
}

impl fmt::Display for JudgeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.part {
            Part::Whole => write!(f, "{}", self.item),
            Part::Ab => write!(f, "{}|ab", self.item),
            Part::Ba => write!(f, "{}|ba", self.item),
            Part::Turn(t) => write!(f, "{}|t{t}", self.item),
        }
    }
}

/// The judge's input for entrant `ei`: its prompts under their keys. `against` is the
/// entrant it is compared with pairwise (else each item's reference).
pub fn judge_requests(
    items: &[Keyed],
    scoring: &Scoring,
    ledgers: &Ledgers,
    ei: usize,
    against: Option<usize>,
) -> Vec<(JudgeKey, Vec<Message>)> {
    let Scoring::Judge { mode, skills, .. } = scoring else { return vec![] };
    let mut out = Vec::new();
    for (id, item) in items {
        let Some(answer) = ledgers.answer(0, ei, id) else { continue };
        let conv = item.conversation();
        let reference = item.reference.as_deref().or(item.answer.as_deref());
        let key = |part| JudgeKey::new(id, part);
        match mode {
            JudgeMode::Pairwise => {
                let other = match against {
                    Some(ai) => ledgers.answer(0, ai, id),
                    None => item.reference.as_deref(),
                };
                let Some(other) = other else { continue };
                out.push((key(Part::Ab), judge::pairwise_prompt(&conv, answer, other)));
                out.push((key(Part::Ba), judge::pairwise_prompt(&conv, other, answer)));
            }
            JudgeMode::Grade if item.turn_count() > 1 => {
                // Each turn graded in its own conversation, as the model had it.
                let mut before = Vec::new();
                for t in 0..item.turn_count() {
                    let Some(a) = ledgers.answer(t, ei, id) else { break };
                    let conv = item.conversation_at(t, &before);
                    out.push((key(Part::Turn(t + 1)), judge::grade_prompt(&conv, a, None)));
                    before.push(a.to_owned());
                }
            }
            JudgeMode::Grade => out.push((key(Part::Whole), judge::grade_prompt(&conv, answer, reference))),
            JudgeMode::Rubric => out.push((key(Part::Whole), judge::rubric_prompt(&conv, answer, reference, skills))),
        }
    }
    out
}

/// The judge's requests as batch input lines.
pub fn judge_input(requests: &[(JudgeKey, Vec<Message>)]) -> Vec<String> {
    requests.iter().map(|(key, messages)| request(Value::String(key.to_string()), messages, None)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ResultLine;

    fn item(json: &str) -> Keyed {
        let item = Item::parse(json).expect("as written");
        (item.id.as_ref().expect("as written").to_string(), item)
    }

    fn line(id: &str, answer: Option<&str>) -> ResultLine {
        let answer = answer.map_or("\"error\":\"e\"".to_owned(), |a| format!("\"answer\":{}", Value::from(a)));
        serde_json::from_str(&format!("{{\"id\":{id},{answer}}}")).expect("as written")
    }

    #[test]
    fn judge_keys_read_back_as_written() {
        for key in [
            JudgeKey::new("\"q|1\"", Part::Whole),
            JudgeKey::new("7", Part::Ab),
            JudgeKey::new("\"a|b\"", Part::Ba),
            JudgeKey::new("\"x\"", Part::Turn(12)),
        ] {
            assert_eq!(JudgeKey::parse(&key.to_string()), Some(key.clone()), "{key}");
        }
        assert_eq!(JudgeKey::new("\"q\"", Part::Turn(2)).to_string(), "\"q\"|t2");
        // Not keys this evaluation wrote: no part, or not an item id before it.
        assert_eq!(JudgeKey::parse("\"q\"|t0"), None);
        assert_eq!(JudgeKey::parse("\"q\"|zz"), None);
        assert_eq!(JudgeKey::parse("plain"), None);
    }

    #[test]
    fn pairwise_asks_both_orders_and_skips_items_without_both_answers() {
        let items = vec![item(r#"{"id":"a","prompt":"p"}"#), item(r#"{"id":"b","prompt":"q"}"#)];
        let ledgers = Ledgers::from_turns(vec![vec![
            [line("\"a\"", Some("mine")), line("\"b\"", Some("mine too"))].into_iter().collect(),
            [line("\"a\"", Some("theirs")), line("\"b\"", None)].into_iter().collect(),
        ]]);
        let scoring = super::super::tests::judge(JudgeMode::Pairwise, Some("other"));
        let reqs = judge_requests(&items, &scoring, &ledgers, 0, Some(1));
        let keys: Vec<String> = reqs.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["\"a\"|ab", "\"a\"|ba"]);
        let first = |m: &[Message]| {
            m.last().expect("as written").content.find("mine").expect("as written")
                < m.last().expect("as written").content.find("theirs").expect("as written")
        };
        assert!(first(&reqs[0].1) && !first(&reqs[1].1));
    }

    #[test]
    fn a_later_turn_follows_the_entrants_own_answers_and_skips_what_failed() {
        let items = vec![
            item(r#"{"id":"a","turns":["one?","two?"]}"#),
            item(r#"{"id":"b","turns":["uno?","dos?"]}"#),
            item(r#"{"id":"c","prompt":"single"}"#),
        ];
        let ledgers = Ledgers::from_turns(vec![vec![
            [line("\"a\"", Some("first answer")), line("\"b\"", None), line("\"c\"", Some("x"))].into_iter().collect(),
        ]]);
        let lines = later_turn(&items, 1, &ledgers, 0);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let v: Value = serde_json::from_str(&lines[0]).expect("as written");
        assert_eq!(v["id"], "a");
        let roles: Vec<&str> = v["messages"]
            .as_array()
            .expect("as written")
            .iter()
            .map(|m| m["role"].as_str().expect("as written"))
            .collect();
        assert_eq!(roles, ["user", "assistant", "user"]);
        assert_eq!(v["messages"][1]["content"], "first answer");
    }

    #[test]
    fn multi_turn_items_need_the_grading_judge_and_pairwise_needs_a_reference() {
        let turns = vec![item(r#"{"id":"a","turns":["one?","two?"],"answer":"1"}"#)];
        let rule = Scoring::Rule(moa_core::eval::Scorer::Exact);
        assert!(check(&turns, &rule, &[]).expect_err("an error").contains("--judge-mode grade"));
        let plain = vec![item(r#"{"id":"a","prompt":"p"}"#)];
        assert!(check(&plain, &rule, &[]).expect_err("an error").contains("no \"answer\""));
        let pairwise = super::super::tests::judge(JudgeMode::Pairwise, None);
        assert!(check(&plain, &pairwise, &[]).expect_err("an error").contains("no \"reference\""));
        let against = super::super::tests::judge(JudgeMode::Pairwise, Some("nobody"));
        assert!(check(&plain, &against, &[]).expect_err("an error").contains("--against nobody"));
    }
}
