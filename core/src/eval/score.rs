//! Scoring an answer against an item's reference, without an LLM.

use crate::strategy::normalize_answer;
use serde::{Deserialize, Serialize};

/// How an answer is scored against its item's reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scorer {
    /// The normalized answer equals the normalized reference (the normalizer `vote` uses:
    /// the last `\boxed{}`, else the text after "answer is"/"answer:", lowercased, numbers
    /// canonical). When the reference is a number, the answer's last number counts too
    /// (the GSM8K convention), so "12 + 30 = 42" scores for 42.
    Exact,
    /// The multiple-choice letter the answer picks equals the reference's (a letter, or
    /// one of the item's `choices` by its text).
    Choice,
    /// The reference appears in the answer, case and spacing ignored.
    Contains,
    /// The reference is a regular expression that matches somewhere in the answer
    /// (case-insensitive).
    Regex,
    /// The answer calls exactly the tools the reference names, with the same arguments
    /// compared as canonical JSON: `name({"arg": 1})`, several calls one per line, in any
    /// order. An answer in words (no call) where the reference is `none` scores too.
    Tool,
}

impl Scorer {
    /// Every scorer, by the name the command line and the JS API use.
    pub const ALL: [(&'static str, Scorer); 5] = [
        ("exact", Scorer::Exact),
        ("choice", Scorer::Choice),
        ("contains", Scorer::Contains),
        ("regex", Scorer::Regex),
        ("tool", Scorer::Tool),
    ];

    /// The scorer called `name`.
    pub fn from_name(name: &str) -> Option<Scorer> {
        Scorer::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }
}

/// Calls written one per line as `name(arguments)` (how an eval's answer renders a run's
/// calls, and how a reference names them), canonical and sorted. Other lines are words,
/// not calls: an answer in words, or the reference `none`, calls nothing.
pub fn calls_key(text: &str) -> Vec<String> {
    let is_name = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let mut keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| match l.split_once('(') {
            Some((name, rest)) if rest.ends_with(')') && is_name(name.trim()) => {
                let args = &rest[..rest.len() - 1];
                Some(crate::tools::ToolCall::new("", name.trim(), args).canonical())
            }
            _ => None,
        })
        .collect();
    keys.sort();
    keys
}

/// Why an item cannot be scored: its reference is unusable for the scorer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScoreError(pub String);

/// Scores `answer` against `reference`: 1.0 or 0.0. `choices` are the item's options, in
/// letter order (A, B, ...).
pub fn score(scorer: Scorer, answer: &str, reference: &str, choices: &[String]) -> Result<f64, ScoreError> {
    let hit = match scorer {
        Scorer::Exact => exact(answer, reference),
        Scorer::Choice => {
            let want = choice_letter(reference, choices).ok_or_else(|| {
                ScoreError(format!("reference {reference:?} is neither a letter nor one of the item's choices"))
            })?;
            choice_letter(answer, choices) == Some(want)
        }
        Scorer::Contains => squash(answer).contains(&squash(reference)),
        Scorer::Regex => regex(answer, reference)?,
        Scorer::Tool => calls_key(answer) == calls_key(reference),
    };
    Ok(if hit { 1.0 } else { 0.0 })
}

#[cfg(feature = "regex")]
fn regex(answer: &str, pattern: &str) -> Result<bool, ScoreError> {
    Ok(regex_lite::RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ScoreError(format!("reference is not a regular expression: {e}")))?
        .is_match(answer))
}

#[cfg(not(feature = "regex"))]
fn regex(_answer: &str, _pattern: &str) -> Result<bool, ScoreError> {
    Err(ScoreError("the regex scorer is not in this build (the browser module leaves it out to stay small)".into()))
}

const SHORT: usize = 200;

fn exact(answer: &str, reference: &str) -> bool {
    let Some(want) = normalize_answer(reference, usize::MAX) else { return false };
    if normalize_answer(answer, SHORT).as_deref() == Some(want.as_str()) {
        return true;
    }
    want.parse::<f64>().is_ok() && last_number(answer).as_deref() == Some(want.as_str())
}

/// The last number written in `text`, canonical (`1,000.50` → `1000.5`).
fn last_number(text: &str) -> Option<String> {
    let bytes: Vec<char> = text.chars().collect();
    let mut end = bytes.len();
    while end > 0 {
        if bytes[end - 1].is_ascii_digit() {
            let mut start = end;
            while start > 0 && (bytes[start - 1].is_ascii_digit() || matches!(bytes[start - 1], ',' | '.')) {
                start -= 1;
            }
            if start > 0 && bytes[start - 1] == '-' && (start == 1 || !bytes[start - 2].is_ascii_alphanumeric()) {
                start -= 1;
            }
            let raw: String = bytes[start..end].iter().collect();
            let raw = raw.trim_start_matches([',', '.']);
            return normalize_answer(raw, SHORT);
        }
        end -= 1;
    }
    None
}

fn squash(s: &str) -> String {
    s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The letter (uppercase) an answer or reference picks among `choices`: an explicit
/// "answer is B" / `\boxed{B}` / "(B)" / "B." / "B)", a lone letter, or a choice's own
/// text. `None` when it picks none, or more than one.
pub fn choice_letter(text: &str, choices: &[String]) -> Option<char> {
    let n = if choices.is_empty() { 26 } else { choices.len().min(26) };
    let valid = |c: char| c.is_ascii_uppercase() && ((c as u8 - b'A') as usize) < n;
    if let Some(short) = normalize_answer(text, SHORT) {
        let s = short.trim_matches(|c: char| !c.is_alphanumeric());
        let mut chars = s.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            let c = c.to_ascii_uppercase();
            if valid(c) {
                return Some(c);
            }
        }
        // "B. Paris", "(b) paris", "b) paris": a letter, then its choice's text.
        let head: Vec<char> = s.chars().take(2).collect();
        if head.len() == 2 && !head[1].is_alphanumeric() && valid(head[0].to_ascii_uppercase()) {
            return Some(head[0].to_ascii_uppercase());
        }
    }
    // "(B)" anywhere, when only one letter is marked that way.
    let chars: Vec<char> = text.chars().collect();
    let marked: Vec<char> = chars
        .windows(3)
        .filter(|w| w[0] == '(' && w[2] == ')' && valid(w[1].to_ascii_uppercase()))
        .map(|w| w[1].to_ascii_uppercase())
        .collect();
    if let Some(first) = marked.first()
        && marked.iter().all(|c| c == first)
    {
        return Some(*first);
    }
    // A choice's own text, when exactly one choice appears.
    let lower = squash(text);
    let named: Vec<usize> = choices
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.trim().is_empty() && lower.contains(&squash(c)))
        .map(|(i, _)| i)
        .collect();
    match named.as_slice() {
        [i] => Some((b'A' + *i as u8) as char),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_compares_calls_canonically_in_any_order() {
        let s = |a: &str, r: &str| score(Scorer::Tool, a, r, &[]).expect("scored");
        assert_eq!(
            s("weather({\"city\": \"Oslo\", \"unit\": \"c\"})", "weather({\"unit\":\"c\",\"city\":\"Oslo\"})"),
            1.0
        );
        assert_eq!(s("weather({\"city\":\"Rome\"})", "weather({\"city\":\"Oslo\"})"), 0.0);
        assert_eq!(s("b({})\na({\"x\":1})", "a({\"x\": 1})\nb({})"), 1.0);
        assert_eq!(s("It is sunny.", "none"), 1.0, "words call nothing");
        assert_eq!(s("It is sunny.", "weather({\"city\":\"Oslo\"})"), 0.0);
        assert_eq!(s("weather({})", "none"), 0.0);
    }

    #[test]
    fn exact_uses_the_vote_normalizer_and_the_last_number() {
        assert_eq!(score(Scorer::Exact, "The answer is **42**.", "42", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Exact, "12 + 30 = 42", "42", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Exact, "It is 1,000.", "1000", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Exact, "The result is -7.", "-7", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Exact, "42 is wrong; it is 41", "42", &[]), Ok(0.0));
        assert_eq!(score(Scorer::Exact, "Paris.", "paris", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Exact, "I think Lyon", "Paris", &[]), Ok(0.0));
    }

    #[test]
    fn choice_finds_the_letter_however_it_is_written() {
        let choices: Vec<String> = ["Lyon", "Paris", "Nice"].map(String::from).to_vec();
        for answer in ["B", "(B)", "The answer is B.", "b) Paris", "I pick (B) because", "Paris", "\\boxed{B}"] {
            assert_eq!(score(Scorer::Choice, answer, "B", &choices), Ok(1.0), "{answer}");
        }
        assert_eq!(score(Scorer::Choice, "Paris", "Paris", &choices), Ok(1.0), "a reference by its text");
        assert_eq!(score(Scorer::Choice, "(A) or (B)", "B", &choices), Ok(0.0), "two letters pick none");
        assert_eq!(score(Scorer::Choice, "D", "B", &choices), Ok(0.0), "no such choice");
        assert!(score(Scorer::Choice, "B", "Marseille", &choices).is_err());
    }

    #[cfg(feature = "regex")]
    #[test]
    fn contains_and_regex() {
        assert_eq!(score(Scorer::Contains, "It is  New\nYork city", "new york", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Regex, "about 3.14 or so", r"3\.14\d*", &[]), Ok(1.0));
        assert_eq!(score(Scorer::Regex, "PARIS", "^paris$", &[]), Ok(1.0));
        assert!(score(Scorer::Regex, "x", "(", &[]).is_err());
    }
}
