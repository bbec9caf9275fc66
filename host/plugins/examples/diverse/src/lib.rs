//! The built-in `diverse` strategy, written as a plugin: the `k` most mutually different
//! proposals go on (greedy max-min over word 3-shingle Jaccard similarity), near-duplicates
//! dropped, and the host writes the paper's synthesize prompt from them (`Decision::Keep`).
//!
//! Standalone on purpose (it does not link moa-core): it is what a user would write, and
//! `host/tests/plugins.rs` checks it decides exactly as the built-in does on the same
//! proposals, so the two cannot drift apart unnoticed.
//!
//! Params: `k` (default 3), `duplicate` (0 < d ≤ 1, default 0.8).

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info};

struct Diverse;

/// A text's word 3-shingles (its words, when it has fewer than three), each a 64-bit
/// FNV-1a hash of its lowercased words, without repeats.
fn shingles(text: &str) -> Vec<u64> {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c.is_ascii_punctuation())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let size = if words.len() < 3 { 1 } else { 3 };
    let mut out = Vec::new();
    for window in words.windows(size) {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in window.iter().flat_map(|w| w.bytes().chain([0])) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}

fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let both = a.iter().filter(|h| b.contains(h)).count();
    let union = a.len() + b.len() - both;
    if union == 0 { 1.0 } else { both as f64 / union as f64 }
}

/// Greedy max-min: first the proposal least similar on average to the others; then, each
/// time, the one whose closest kept proposal is farthest, never a near-duplicate; ties to
/// the earlier proposal. Returned in proposal order.
fn pick(texts: &[&str], k: usize, duplicate: f64) -> Vec<usize> {
    let sets: Vec<Vec<u64>> = texts.iter().map(|t| shingles(t)).collect();
    let n = sets.len();
    if n == 0 {
        return Vec::new();
    }
    let sim = |i: usize, j: usize| jaccard(&sets[i], &sets[j]);
    let mean = |i: usize| (0..n).filter(|&j| j != i).map(|j| sim(i, j)).sum::<f64>() / (n.max(2) - 1) as f64;
    let mut first = 0;
    for i in 1..n {
        if mean(i) < mean(first) {
            first = i;
        }
    }
    let mut kept = vec![first];
    while kept.len() < k {
        let mut best: Option<(usize, f64)> = None;
        for i in (0..n).filter(|i| !kept.contains(i)) {
            let closest = kept.iter().map(|&j| sim(i, j)).fold(0.0, f64::max);
            if closest < duplicate && best.is_none_or(|(_, c)| closest < c) {
                best = Some((i, closest));
            }
        }
        match best {
            Some((i, _)) => kept.push(i),
            None => break,
        }
    }
    (0..n).filter(|i| kept.contains(i)).collect()
}

impl Guest for Diverse {
    fn describe() -> Info {
        Info {
            name: "diverse".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "The built-in diverse strategy as a plugin: the k most different proposals, then synthesize."
                .into(),
            params: r#"{"k": "how many go on (3)", "duplicate": "similarity at which one is a near-duplicate (0.8)"}"#
                .into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decision, String> {
        let params: serde_json::Value = serde_json::from_str(&ctx.params).map_err(|e| format!("params: {e}"))?;
        let k = match params.get("k") {
            None => 3,
            Some(v) => v.as_u64().filter(|k| *k > 0).ok_or("k must be a positive integer")? as usize,
        };
        let duplicate = match params.get("duplicate") {
            None => 0.8,
            Some(v) => v.as_f64().filter(|d| *d > 0.0 && *d <= 1.0).ok_or("duplicate must be a number in 0 < d ≤ 1")?,
        };
        let texts: Vec<&str> = ctx.proposals.iter().map(|p| p.text.as_str()).collect();
        Ok(Decision::Keep(pick(&texts, k, duplicate).into_iter().map(|i| i as u32).collect()))
    }
}

export!(Diverse);
