//! References that fit: when a call's messages would not fit its agent's context window,
//! the references in them are shortened, each by the same share, and an event says so.
//!
//! The rule: estimate the prompt's tokens (below), reserve the agent's `max_tokens` for
//! the answer, and if the prompt is over what is left, cut that excess out of the
//! references only (the previous layer's answers, wherever the strategy placed them
//! verbatim), every one by the same share of its length, each cut marked `[…]`. No
//! reference is ever dropped: each keeps its place and its mark, and its start whenever
//! there is room for any. The question and the instructions are never cut; if they alone
//! are over the window, the references are cut to their marks and the provider has the
//! last word.
//!
//! The estimate counts a token per ASCII digit, per ASCII punctuation mark and per
//! non-ASCII character, a token per four ASCII letters, none for spaces, and four per
//! message for the chat template. Against llama-server's own tokenizer counts (SmolLM2 and
//! Gemma 3) on 119 texts (README prose and tables, model answers, code, JSONL, French,
//! Chinese, Russian) it is 0.99× and 1.04× the true count on average, 0.83× at the 5th
//! percentile, 0.64× at worst; the usual characters / 4 was 0.84× on average and 0.16× at
//! worst (Chinese; digit-heavy tables 0.34×). docs/strategies.md, "References that fit".

use crate::message::Message;

/// Tokens a chat template adds per message (role markers).
const PER_MESSAGE: usize = 4;
/// What replaces the end of a shortened reference.
pub(super) const MARK: &str = " […]";

/// Estimated tokens of `text` (the rule in the module's comment).
pub(super) fn tokens(text: &str) -> usize {
    let (mut letters, mut other) = (0usize, 0usize);
    for c in text.chars() {
        match c {
            'a'..='z' | 'A'..='Z' => letters += 1,
            c if c.is_ascii_whitespace() => {}
            _ => other += 1,
        }
    }
    letters.div_ceil(4) + other
}

/// Estimated prompt tokens of `messages`.
pub(super) fn estimate(messages: &[Message]) -> usize {
    messages.iter().map(|m| tokens(&m.content) + PER_MESSAGE).sum()
}

/// What fitting did to one call's messages.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Trim {
    /// The prompt's estimated tokens before.
    pub(super) before: usize,
    /// And after.
    pub(super) after: usize,
    /// References found and shortened.
    pub(super) references: usize,
    /// The share of each reference kept (0..1).
    pub(super) kept: f64,
}

/// Shortens the `references` found in `messages` so that the prompt's estimate plus
/// `max_tokens` fits `window`; `None` when it fits already or holds none of them.
pub(super) fn fit(messages: &mut [Message], references: &[String], window: u32, max_tokens: u32) -> Option<Trim> {
    let before = estimate(messages);
    let budget = (window as usize).saturating_sub(max_tokens as usize);
    if before <= budget {
        return None;
    }
    // Where each reference sits: (message, byte offset, reference). The first place
    // not yet taken, so two equal references are two places.
    let mut places: Vec<(usize, usize, &str)> = Vec::new();
    for r in references.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
        let found = messages.iter().enumerate().find_map(|(m, msg)| {
            msg.content
                .match_indices(r)
                .map(|(at, _)| at)
                .find(|at| !places.iter().any(|(pm, pa, pr)| *pm == m && *pa < at + r.len() && *at < pa + pr.len()))
                .map(|at| (m, at))
        });
        if let Some((m, at)) = found {
            places.push((m, at, r));
        }
    }
    if places.is_empty() {
        return None;
    }
    let original = messages.to_vec();
    let total: usize = places.iter().map(|(_, _, r)| tokens(r)).sum::<usize>().max(1);
    let marks = places.len() * tokens(MARK);
    // Each reference keeps the same share; the marks' own tokens come out of it too. The
    // estimate is not linear in a cut (a reference's digits may sit at its end), so the
    // share shrinks until the prompt fits, or nothing is left to cut.
    let mut kept = total.saturating_sub(before - budget + marks) as f64 / total as f64;
    let n = places.len();
    loop {
        messages.clone_from_slice(&original);
        let mut todo = places.clone();
        // From the last place back, so earlier offsets stay valid. (Picked one by one,
        // not sorted: there are few, and a sort costs the browser module kilobytes.)
        while let Some(last) = (0..todo.len()).max_by_key(|&j| (todo[j].0, todo[j].1)) {
            let (m, at, r) = todo.swap_remove(last);
            let keep = (r.chars().count() as f64 * kept).floor() as usize;
            let cut = r.char_indices().nth(keep).map_or(r.len(), |(i, _)| i);
            messages[m].content.replace_range(at + cut..at + r.len(), MARK);
        }
        if kept == 0.0 || estimate(messages) <= budget {
            break;
        }
        kept = if kept < 0.01 { 0.0 } else { kept * 0.9 };
    }
    Some(Trim { before, after: estimate(messages), references: n, kept })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::inject_references;

    fn refs(n: usize, len: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i}{}", "x".repeat(len - 1))).collect()
    }

    #[test]
    fn what_fits_is_left_alone() {
        let r = refs(3, 100);
        let rr: Vec<&str> = r.iter().map(String::as_str).collect();
        let mut m = inject_references(&[Message::user("q")], &rr);
        let want = m.clone();
        assert_eq!(fit(&mut m, &r, 100_000, 512), None);
        assert_eq!(m, want);
    }

    #[test]
    fn every_reference_is_cut_by_the_same_share_and_none_is_dropped() {
        let r = vec!["a".repeat(4000), "b".repeat(2000), "c".repeat(1000)];
        let rr: Vec<&str> = r.iter().map(String::as_str).collect();
        let mut m = inject_references(&[Message::user("question?")], &rr);
        let trim = fit(&mut m, &r, 1500, 200).expect("trimmed");
        assert!(trim.after + 200 <= 1500, "{trim:?}");
        assert_eq!(trim.references, 3);
        let system = &m[0].content;
        let listed = system.split_once("Responses from models:").map_or("", |x| x.1);
        let kept: Vec<usize> = ['a', 'b', 'c'].iter().map(|c| listed.chars().filter(|x| x == c).count()).collect();
        // Same share, to within rounding.
        let share: Vec<f64> = kept.iter().zip([4000.0, 2000.0, 1000.0]).map(|(k, n)| *k as f64 / n).collect();
        assert!(share.iter().all(|s| (s - share[2]).abs() < 0.01 && *s > 0.0), "{share:?}");
        assert_eq!(system.matches(MARK).count(), 3);
        assert_eq!(m[1], Message::user("question?"), "the question is never cut");
    }

    #[test]
    fn a_window_too_small_for_the_question_leaves_each_reference_its_mark() {
        let r = refs(2, 400);
        let rr: Vec<&str> = r.iter().map(String::as_str).collect();
        let mut m = inject_references(&[Message::user("q")], &rr);
        let trim = fit(&mut m, &r, 10, 5).expect("trimmed");
        assert_eq!(trim.kept, 0.0);
        assert_eq!(m[0].content.matches(MARK).count(), 2);
        // Equal references are two places, both cut; text that is no reference is kept.
        let r = vec!["same answer ".repeat(50), "same answer ".repeat(50)];
        let rr: Vec<&str> = r.iter().map(|s| s.trim()).collect();
        let mut m = inject_references(&[Message::user("q")], &rr);
        assert_eq!(fit(&mut m, &r, 300, 10).map(|t| t.references), Some(2));
        assert_eq!(fit(&mut [Message::user("y".repeat(9000))], &r, 300, 10), None);
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let r = vec!["é😀".repeat(500), "日本語".repeat(300)];
        let rr: Vec<&str> = r.iter().map(String::as_str).collect();
        let mut m = inject_references(&[Message::user("q")], &rr);
        assert!(fit(&mut m, &r, 600, 100).is_some());
        assert!(m[0].content.contains("é😀") && m[0].content.contains("日本語"));
    }
}
