//! Majority vote over short answers, with no LLM call.

use super::{Decision, Strategy, StrategyError, StrategyInput, StrategyKind, Synthesize, check_params};

/// Decides the final answer when more than `threshold` of the proposals agree on the same
/// normalized short answer; otherwise falls back to [`Synthesize`].
#[derive(Clone, Debug)]
pub struct Vote {
    threshold: f64,
    max_answer_chars: usize,
}

impl Default for Vote {
    fn default() -> Self {
        Vote { threshold: 0.5, max_answer_chars: 100 }
    }
}

impl Vote {
    /// Parameters: `threshold` (share of proposals that must agree, strictly more than;
    /// default 0.5) and `max_answer_chars` (longer answers never count as votes; default 100).
    pub fn from_params(params: &serde_json::Value) -> Result<Vote, StrategyError> {
        check_params(StrategyKind::Vote, params)?;
        let bad = |message: &str| StrategyKind::Vote.error(message);
        let mut vote = Vote::default();
        if let Some(t) = params.get("threshold") {
            vote.threshold = t
                .as_f64()
                .filter(|t| (0.0..1.0).contains(t))
                .ok_or_else(|| bad("threshold must be a number in 0 ≤ t < 1"))?;
        }
        if let Some(n) = params.get("max_answer_chars") {
            vote.max_answer_chars =
                n.as_u64().filter(|n| *n > 0).ok_or_else(|| bad("max_answer_chars must be a positive integer"))?
                    as usize;
        }
        Ok(vote)
    }
}

impl Strategy for Vote {
    fn name(&self) -> &str {
        StrategyKind::Vote.name()
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        // (answer, votes, first index); a list, as there are few answers.
        let mut tally: Vec<(String, usize, usize)> = Vec::new();
        for (i, p) in input.proposals.iter().enumerate() {
            if let Some(answer) = normalize_answer(&p.text, self.max_answer_chars) {
                match tally.iter_mut().find(|(a, _, _)| *a == answer) {
                    Some(t) => t.1 += 1,
                    None => tally.push((answer, 1, i)),
                }
            }
        }
        let total = input.proposals.len();
        let winner =
            tally.iter().map(|(_, v, f)| (*v, *f)).max_by_key(|(votes, first)| (*votes, std::cmp::Reverse(*first)));
        match winner {
            Some((votes, first)) if votes as f64 > self.threshold * total as f64 => {
                Ok(Decision::Final(input.proposals[first].text.clone()))
            }
            _ => Synthesize.decide(input),
        }
    }
}

/// The short answer in `text`, normalized for comparison, or `None` when there is no
/// short answer (longer than `max_chars` after extraction).
///
/// Extraction prefers the last `\boxed{...}`, then the text after the last "answer is" or
/// "answer:", then the whole text. Normalization folds case (`crate::fold`), drops Markdown emphasis,
/// `$`, quotes and trailing punctuation, collapses whitespace, and writes numbers
/// canonically (`1,000.0` → `1000`).
pub fn normalize_answer(text: &str, max_chars: usize) -> Option<String> {
    let lower = crate::fold::fold_case(text);
    let extracted = boxed(&lower).or_else(|| after_marker(&lower)).unwrap_or(&lower);
    let cleaned: String =
        extracted.chars().filter(|c| !matches!(c, '*' | '_' | '$' | '"' | '`' | '\u{201c}' | '\u{201d}')).collect();
    let mut words: Vec<&str> = cleaned.split_whitespace().collect();
    if let Some(last) = words.last_mut() {
        *last = last.trim_end_matches(['.', '!', '?', ',', ';', ':']);
    }
    let joined = words.join(" ");
    let answer = joined.trim().trim_start_matches(['(', '[']).trim_end_matches([')', ']']);
    if answer.is_empty() || answer.chars().count() > max_chars {
        return None;
    }
    Some(canonical_number(answer).unwrap_or_else(|| answer.to_owned()))
}

fn boxed(text: &str) -> Option<&str> {
    let start = text.rfind("\\boxed{")? + "\\boxed{".len();
    let mut depth = 1;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..start + i]);
                }
            }
            _ => {}
        }
    }
    None
}

fn after_marker(text: &str) -> Option<&str> {
    let (pos, len) =
        ["answer is", "answer:"].iter().filter_map(|m| text.rfind(m).map(|p| (p, m.len()))).max_by_key(|(p, _)| *p)?;
    let rest = &text[pos + len..];
    // The answer runs to the end of its line.
    Some(rest.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(""))
}

/// A plain decimal (an optional sign, digits with `,` between thousands, an optional
/// point) written canonically, `1,000.0` → `1000`, `-.50` → `-0.5`, `+007` → `7`, by
/// rewriting its digits rather than going through `f64`: exact at any length, and the
/// browser module carries no float parser for it (about 14 KB of tables and code).
fn canonical_number(s: &str) -> Option<String> {
    let plain: String = s.chars().filter(|c| *c != ',').collect();
    let (negative, digits) = match plain.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
    let mut out = String::with_capacity(int.len() + frac.len() + 3);
    if negative && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::strategy::Proposal;

    #[test]
    fn numbers_are_written_canonically_and_non_numbers_are_not_numbers() {
        for (given, want) in [
            ("1,000.0", Some("1000")),
            ("-.50", Some("-0.5")),
            ("+007", Some("7")),
            ("5.", Some("5")),
            ("-0.000", Some("0")),
            ("12345678901234567891", Some("12345678901234567891")),
            ("1.2.3", None),
            ("--5", None),
            ("+-1", None),
            ("1-2", None),
            (".", None),
            ("-", None),
            ("", None),
            ("1e3", None),
        ] {
            assert_eq!(canonical_number(given).as_deref(), want, "{given:?}");
        }
    }

    /// Apart from the tests above: proptest's prelude has a `Strategy` of its own.
    mod props {
        use super::super::canonical_number;
        use proptest::prelude::*;

        proptest! {
            /// Where `f64` is exact (15 significant digits or fewer), the digits' rewriting
            /// says what the float would have.
            #[test]
            fn canonical_numbers_agree_with_f64_where_it_is_exact(
                sign in prop::sample::select(vec!["", "-", "+"]),
                zeros in 0usize..3,
                int in 0u64..10_000_000,
                frac in prop::option::of(0u32..1_000_000),
            ) {
                let text = match frac {
                    Some(f) => format!("{sign}{}{int}.{f:06}", "0".repeat(zeros)),
                    None => format!("{sign}{}{int}", "0".repeat(zeros)),
                };
                let n: f64 = text.parse().expect("a decimal");
                let via_f64 = if n.fract() == 0.0 { format!("{}", n as i64) } else { format!("{n}") };
                prop_assert_eq!(canonical_number(&text), Some(via_f64));
            }
        }
    }

    fn proposals(texts: &[&str]) -> Vec<Proposal> {
        texts
            .iter()
            .map(|t| Proposal {
                agent: "a".into(),
                model: "m".into(),
                text: t.to_string(),
                usage: None,
                latency_ms: 1.0,
            })
            .collect()
    }

    fn decide(texts: &[&str]) -> Decision {
        let conv = [Message::user("What is 6*7?")];
        let ps = proposals(texts);
        let input = StrategyInput::new(&conv, 1, 1, &ps);
        Vote::default().decide(&input).expect("vote decides")
    }

    #[test]
    fn normalizes_short_answers() {
        assert_eq!(normalize_answer("The answer is **42**.", 100).as_deref(), Some("42"));
        assert_eq!(normalize_answer("so \\boxed{1,000.0}", 100).as_deref(), Some("1000"));
        assert_eq!(normalize_answer("  Paris. ", 100).as_deref(), Some("paris"));
        assert_eq!(normalize_answer("Answer: (B)", 100).as_deref(), Some("b"));
        assert_eq!(normalize_answer("\\boxed{\\frac{1}{2}}", 100).as_deref(), Some("\\frac{1}{2}"));
        assert_eq!(normalize_answer(&"long ".repeat(50), 100), None);
        assert_eq!(normalize_answer("  ", 100), None);
    }

    #[test]
    fn majority_decides_the_final_answer_without_a_call() {
        let d = decide(&["42", "The answer is 42.", "41", "\\boxed{42}"]);
        assert_eq!(d, Decision::Final("42".into()));
    }

    #[test]
    fn no_majority_falls_back_to_synthesize() {
        let d = decide(&["42", "41", "40", "42"]);
        let Decision::Messages(m) = d else { panic!("expected messages, got {d:?}") };
        assert!(m[0].content.contains("Responses from models:\n1. 42\n2. 41\n3. 40\n4. 42"));
    }

    #[test]
    fn rejects_bad_params() {
        assert!(Vote::from_params(&serde_json::json!({"threshold": 1.5})).is_err());
        assert!(Vote::from_params(&serde_json::json!({"treshold": 0.5})).is_err());
        assert!(Vote::from_params(&serde_json::json!({"threshold": 0.6, "max_answer_chars": 10})).is_ok());
    }
}
