//! LLM-as-judge: the prompts (ours), and forgiving parsers for what judges write back. A
//! verdict that cannot be read is `None` — counted and reported, never guessed.

use crate::message::Message;

/// The judging styles of the paper's benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeMode {
    /// AlpacaEval: which of two answers is better, judged in both orders.
    Pairwise,
    /// MT-Bench single-answer grading: 1–10.
    Grade,
    /// FLASK: 1–5 on each named skill.
    Rubric,
}

/// The skills a rubric judge scores, unless the user names others (FLASK's core set).
pub const DEFAULT_SKILLS: [&str; 4] = ["correctness", "factuality", "completeness", "readability"];

const SYSTEM: &str = "You are a careful, impartial judge of AI assistants' answers. Judge only \
the quality of the answers for the user's request: helpfulness, correctness, relevance, depth \
and clarity. Do not let the length of an answer, the order in which answers are shown, or an \
assistant's name sway you.";

/// Shows the conversation to a judge: every turn, labelled, the last user turn last.
fn transcript(conversation: &[Message]) -> String {
    conversation.iter().map(|m| format!("[{:?}]\n{}", m.role, m.content)).collect::<Vec<_>>().join("\n\n")
}

/// The pairwise prompt: `first` shown as Response A, `second` as Response B.
pub fn pairwise_prompt(conversation: &[Message], first: &str, second: &str) -> Vec<Message> {
    vec![
        Message::system(SYSTEM),
        Message::user(format!(
            "[Conversation]\n{}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n\
             Which response answers the last user turn better? Think briefly, then end with \
             exactly one line: \"Verdict: A\", \"Verdict: B\" or \"Verdict: tie\".",
            transcript(conversation)
        )),
    ]
}

/// The single-answer grading prompt (1–10).
pub fn grade_prompt(conversation: &[Message], answer: &str, reference: Option<&str>) -> Vec<Message> {
    let reference = reference.map(|r| format!("\n\n[Reference answer]\n{r}")).unwrap_or_default();
    vec![
        Message::system(SYSTEM),
        Message::user(format!(
            "[Conversation]\n{}{reference}\n\n[Response]\n{answer}\n\n\
             Rate the response to the last user turn on a scale of 1 to 10 (10 is best). \
             Think briefly, then end with exactly one line: \"Rating: [[N]]\".",
            transcript(conversation)
        )),
    ]
}

/// The rubric prompt: 1–5 for each skill.
pub fn rubric_prompt(
    conversation: &[Message],
    answer: &str,
    reference: Option<&str>,
    skills: &[String],
) -> Vec<Message> {
    let reference = reference.map(|r| format!("\n\n[Reference answer]\n{r}")).unwrap_or_default();
    let lines: Vec<String> = skills.iter().map(|s| format!("{s}: N")).collect();
    vec![
        Message::system(SYSTEM),
        Message::user(format!(
            "[Conversation]\n{}{reference}\n\n[Response]\n{answer}\n\n\
             Score the response to the last user turn from 1 (poor) to 5 (excellent) on each \
             of these skills: {}. Think briefly, then end with one line per skill, exactly:\n{}",
            transcript(conversation),
            skills.join(", "),
            lines.join("\n")
        )),
    ]
}

/// A pairwise verdict: `Some(1.0)` for A, `Some(0.0)` for B, `Some(0.5)` for a tie.
pub fn parse_pairwise(text: &str) -> Option<f64> {
    let lower = text.to_lowercase();
    // The last "verdict" wins (judges sometimes restate the format first).
    if let Some(pos) = lower.rfind("verdict") {
        let rest = lower[pos + "verdict".len()..].trim_start_matches([':', ' ', '*', '"', '[', '\'']);
        return verdict_word(rest);
    }
    // Else a last line that is only a verdict: "A", "[[B]]", "Tie.".
    let last = lower.lines().rev().find(|l| !l.trim().is_empty())?;
    let bare = last.trim().trim_matches(|c: char| !c.is_alphanumeric());
    match bare {
        "a" | "response a" => Some(1.0),
        "b" | "response b" => Some(0.0),
        "tie" => Some(0.5),
        _ => None,
    }
}

fn verdict_word(rest: &str) -> Option<f64> {
    let word: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
    match word.as_str() {
        "a" => Some(1.0),
        "b" => Some(0.0),
        "tie" => Some(0.5),
        "response" => verdict_word(rest["response".len()..].trim_start()),
        _ => None,
    }
}

/// A 1–10 rating: `[[N]]`, "Rating: N", "N/10", or a lone number on the last line.
pub fn parse_grade(text: &str) -> Option<f64> {
    parse_scale(text, "rating", 10.0)
}

fn parse_scale(text: &str, marker: &str, max: f64) -> Option<f64> {
    let ok = |v: f64| (1.0..=max).contains(&v).then_some(v);
    if let Some(start) = text.rfind("[[") {
        let inner = &text[start + 2..];
        if let Some(end) = inner.find("]]") {
            return inner[..end].trim().parse().ok().and_then(ok);
        }
    }
    let lower = text.to_lowercase();
    if let Some(pos) = lower.rfind(marker) {
        return leading_number(lower[pos + marker.len()..].trim_start_matches([':', ' ', '*', '='])).and_then(ok);
    }
    if let Some(pos) = lower.rfind(&format!("/{}", max as u32)) {
        let before: String = lower[..pos].chars().rev().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let n: String = before.chars().rev().collect();
        return n.parse().ok().and_then(ok);
    }
    let last = lower.lines().rev().find(|l| !l.trim().is_empty())?;
    last.trim().trim_end_matches('.').parse().ok().and_then(ok)
}

fn leading_number(s: &str) -> Option<f64> {
    let n: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    n.trim_end_matches('.').parse().ok()
}

/// Each skill's 1–5 score from a rubric verdict ("skill: N" lines); a skill the judge did
/// not score is `None`.
pub fn parse_rubric(text: &str, skills: &[String]) -> Vec<Option<f64>> {
    let lower = text.to_lowercase();
    skills
        .iter()
        .map(|skill| {
            let s = skill.to_lowercase();
            let pos = lower.rfind(&s)?;
            let rest = lower[pos + s.len()..].trim_start_matches([':', ' ', '*', '=', '-']);
            leading_number(rest).filter(|v| (1.0..=5.0).contains(v))
        })
        .collect()
}

/// AlpacaEval-style length control, our way: fit `P(first wins) = σ(θ + β·tanh(Δ/σ_Δ))` by
/// Newton's method, where Δ is the first answer's length minus the second's (characters)
/// and σ_Δ their standard deviation, and report `σ(θ)`: the win rate the fit predicts
/// when both answers are the same length. `prefs` are (preference for the first in 0..=1,
/// Δ). `None` when the fit cannot be made (fewer than 2 items, or no length variation).
pub fn length_controlled(prefs: &[(f64, f64)]) -> Option<f64> {
    if prefs.len() < 2 {
        return None;
    }
    let n = prefs.len() as f64;
    let mean = prefs.iter().map(|p| p.1).sum::<f64>() / n;
    let sd = (prefs.iter().map(|p| (p.1 - mean).powi(2)).sum::<f64>() / n).sqrt();
    if sd == 0.0 {
        return None;
    }
    let xs: Vec<(f64, f64)> = prefs.iter().map(|(y, d)| (*y, (d / sd).tanh())).collect();
    let (mut theta, mut beta) = (0.0_f64, 0.0_f64);
    for _ in 0..50 {
        let (mut g0, mut g1, mut h00, mut h01, mut h11) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (y, x) in &xs {
            let p = 1.0 / (1.0 + (-(theta + beta * x)).exp());
            let w = p * (1.0 - p);
            g0 += y - p;
            g1 += (y - p) * x;
            h00 += w;
            h01 += w * x;
            h11 += w * x * x;
        }
        // A small ridge keeps the step finite when the data separate perfectly.
        let (h00, h11) = (h00 + 1e-3, h11 + 1e-3);
        let det = h00 * h11 - h01 * h01;
        if det.abs() < 1e-12 {
            break;
        }
        let d0 = (h11 * g0 - h01 * g1) / det;
        let d1 = (h00 * g1 - h01 * g0) / det;
        theta += d0;
        beta += d1;
        if d0.abs() + d1.abs() < 1e-9 {
            break;
        }
    }
    Some(1.0 / (1.0 + (-theta).exp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_verdicts_are_read_forgivingly_and_never_guessed() {
        assert_eq!(parse_pairwise("A is more precise.\nVerdict: A"), Some(1.0));
        assert_eq!(parse_pairwise("**Verdict:** Response B"), Some(0.0));
        assert_eq!(parse_pairwise("Format: Verdict: A or B.\n...\nverdict: tie"), Some(0.5));
        assert_eq!(parse_pairwise("Both fine.\n[[B]]"), Some(0.0));
        assert_eq!(parse_pairwise("I like both of them."), None);
        assert_eq!(parse_pairwise("Verdict: maybe"), None);
    }

    #[test]
    fn grades_and_rubrics() {
        assert_eq!(parse_grade("Good.\nRating: [[8]]"), Some(8.0));
        assert_eq!(parse_grade("rating: 7"), Some(7.0));
        assert_eq!(parse_grade("I'd say 6/10."), Some(6.0));
        assert_eq!(parse_grade("Rating: [[11]]"), None);
        assert_eq!(parse_grade("no idea"), None);
        let skills: Vec<String> = DEFAULT_SKILLS.iter().map(|s| s.to_string()).collect();
        let v = parse_rubric("correctness: 5\nFactuality: 4\n**completeness**: 3", &skills);
        assert_eq!(v, vec![Some(5.0), Some(4.0), Some(3.0), None]);
    }

    #[test]
    fn length_control_removes_a_pure_length_preference() {
        // The first answer wins exactly when it is longer, half the time: raw 50%, and a
        // judge that only liked length has no preference left once length is held equal.
        let prefs: Vec<(f64, f64)> =
            (0..40).map(|i| if i % 2 == 0 { (1.0, 100.0 + i as f64) } else { (0.0, -100.0 - i as f64) }).collect();
        let lc = length_controlled(&prefs).expect("fits");
        assert!((lc - 0.5).abs() < 0.05, "{lc}");
        // A real preference survives: wins at every length difference.
        let prefs: Vec<(f64, f64)> =
            (0..40).map(|i| (if i % 5 == 0 { 0.0 } else { 1.0 }, (i as f64 - 20.0) * 10.0)).collect();
        assert!(length_controlled(&prefs).expect("fits") > 0.7);
    }
}
