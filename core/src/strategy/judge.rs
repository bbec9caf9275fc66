//! What `rank` and `select` share: the judge's parameters, the numbered list of answers it
//! reads, reading a JSON verdict out of whatever a model wraps it in, and the seeded
//! choice made when no verdict can be read.

use super::{Proposal, StrategyError, StrategyKind};
use crate::message::{Message, Role};
use crate::rng::Rng;

/// The judge's parameters: `judge` (`provider:model`; the recipe's aggregator when unset)
/// and `max_tokens` (its reply's cap; default 512, room for a model that reasons first).
#[derive(Clone, Debug, Default)]
pub(super) struct Judge {
    pub(super) model: Option<String>,
    pub(super) max_tokens: u32,
}

impl Judge {
    pub(super) fn from_params(strategy: StrategyKind, params: &serde_json::Value) -> Result<Judge, StrategyError> {
        let bad = |message: &str| strategy.error(message);
        let model = match params.get("judge") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|s| s.split_once(':').is_some_and(|(p, m)| !p.is_empty() && !m.is_empty()))
                    .ok_or_else(|| bad("judge must be \"provider:model\""))?
                    .to_owned(),
            ),
        };
        let max_tokens = match params.get("max_tokens") {
            None => 512,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=32_768).contains(n))
                .ok_or_else(|| bad("max_tokens must be an integer in 1..=32768"))? as u32,
        };
        Ok(Judge { model, max_tokens })
    }

    /// The judge's messages (see [`judge_messages`]).
    pub(super) fn messages(instructions: &str, conversation: &[Message], proposals: &[Proposal]) -> Vec<Message> {
        let answers: Vec<&str> = proposals.iter().map(|p| p.text.as_str()).collect();
        judge_messages(instructions, conversation, &answers)
    }
}

/// A judge's messages: `instructions` as the system prompt; the conversation's last user
/// message and every answer, numbered from 1 (`[Response i]`), as the user's.
pub fn judge_messages(instructions: &str, conversation: &[Message], answers: &[&str]) -> Vec<Message> {
    let question = conversation.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
    let mut user = format!("Question:\n{question}\n");
    for (i, a) in answers.iter().enumerate() {
        user.push_str(&format!("\n[Response {}]\n{a}\n", i + 1));
    }
    vec![Message::system(instructions), Message::user(user)]
}

/// The first JSON object in `text` that parses, wherever it is: inside a code fence or
/// not, with prose before or after it.
pub(super) fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    text.match_indices('{').find_map(|(at, _)| {
        // The value that starts there; what follows it is not looked at.
        match crate::json_text::Cursor::new(&text[at..]).value() {
            Ok(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        }
    })
}

/// A 1-based answer number from a JSON value (a number or a numeric string) as a 0-based
/// index below `n`.
pub(super) fn index(v: &serde_json::Value, n: usize) -> Option<usize> {
    let k = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
    (k >= 1 && (k as usize) <= n).then(|| k as usize - 1)
}

/// `k` distinct indexes below `n`, chosen by `seed`, in ascending order.
pub(super) fn seeded(seed: u64, n: usize, k: usize) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut all: Vec<usize> = (0..n).collect();
    // Fisher–Yates over the first k places.
    for i in 0..k.min(n) {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(k.min(n));
    // Ascending, without a sort (each sort costs the browser module kilobytes).
    (0..n).filter(|i| all.contains(i)).collect()
}

/// 1-based numbers for notes: `1, 3`.
pub(super) fn numbers(ix: &[usize]) -> String {
    ix.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_object_is_found_wherever_the_model_put_it() {
        let fenced = "Sure!\n```json\n{\"best\": 2}\n```\nHope that helps {not json}.";
        assert_eq!(json_object(fenced).and_then(|m| m.get("best").cloned()), Some(serde_json::json!(2)));
        assert_eq!(json_object("{oops} then {\"a\": [1, {\"b\": 2}]} trailing").map(|m| m.len()), Some(1));
        assert!(json_object("no object here").is_none());
        assert!(json_object("{\"unterminated\": ").is_none());
    }

    #[test]
    fn indexes_are_one_based_and_bounded() {
        assert_eq!(index(&serde_json::json!(1), 3), Some(0));
        assert_eq!(index(&serde_json::json!("3"), 3), Some(2));
        assert_eq!(index(&serde_json::json!(4), 3), None);
        assert_eq!(index(&serde_json::json!(0), 3), None);
        assert_eq!(index(&serde_json::json!(-1), 3), None);
        assert_eq!(index(&serde_json::json!(1.5), 3), None);
    }

    #[test]
    fn seeded_choices_are_distinct_replayable_and_vary_with_the_seed() {
        let a = seeded(7, 10, 3);
        assert_eq!(a, seeded(7, 10, 3));
        assert_eq!(a.len(), 3);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!((0..20).map(|s| seeded(s, 10, 3)).any(|b| b != a));
        assert_eq!(seeded(1, 2, 5), vec![0, 1]);
    }
}
