//! Drops near-duplicate proposals and keeps the best k, then lets the host write the
//! paper's synthesize prompt from them.
//!
//! Params: `k` (default 3), `similarity` (0–1, default 0.8: word-set Jaccard above it is a
//! duplicate). "Best" is the longest answer among near-duplicates' representatives, a
//! simple proxy for completeness.

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info};
use std::collections::BTreeSet;

struct DedupTopK;

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 { 1.0 } else { a.intersection(b).count() as f64 / union as f64 }
}

impl Guest for DedupTopK {
    fn describe() -> Info {
        Info {
            name: "dedup-top-k".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Drops near-duplicate proposals, keeps the k longest, then synthesizes.".into(),
            params: r#"{"k": "how many to keep (3)", "similarity": "Jaccard threshold for duplicates (0.8)"}"#.into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decision, String> {
        let params: serde_json::Value = serde_json::from_str(&ctx.params).map_err(|e| format!("params: {e}"))?;
        let k = params.get("k").map_or(Ok(3), |v| v.as_u64().ok_or("k must be a positive integer"))? as usize;
        let threshold =
            params.get("similarity").map_or(Ok(0.8), |v| v.as_f64().ok_or("similarity must be a number"))?;
        let sets: Vec<BTreeSet<String>> = ctx.proposals.iter().map(|p| words(&p.text)).collect();
        let mut kept: Vec<usize> = Vec::new();
        for i in 0..sets.len() {
            if !kept.iter().any(|&j| jaccard(&sets[i], &sets[j]) > threshold) {
                kept.push(i);
            }
        }
        kept.sort_by_key(|&i| std::cmp::Reverse(ctx.proposals[i].text.len()));
        kept.truncate(k.max(1));
        Ok(Decision::Keep(kept.into_iter().map(|i| i as u32).collect()))
    }
}

export!(DedupTopK);
