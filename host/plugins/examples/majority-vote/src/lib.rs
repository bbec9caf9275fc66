//! Decides the final answer by majority over short answers, with no LLM call; with no
//! majority, keeps every proposal for the host's synthesize prompt.
//!
//! Params: `threshold` (share that must agree, strictly more than; default 0.5).

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info};
use std::collections::BTreeMap;

struct MajorityVote;

/// The answer's last line, lowercased, without emphasis or trailing punctuation.
fn normalize(text: &str) -> String {
    let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let last = last.rsplit_once("answer is").map_or(last, |(_, a)| a);
    let last = last.rsplit_once("answer:").map_or(last, |(_, a)| a);
    last.chars()
        .filter(|c| !matches!(c, '*' | '_' | '`' | '"'))
        .collect::<String>()
        .trim()
        .trim_end_matches(['.', '!', '?'])
        .to_lowercase()
}

impl Guest for MajorityVote {
    fn describe() -> Info {
        Info {
            name: "majority-vote".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Majority vote over short answers; no LLM call when the proposers agree.".into(),
            params: r#"{"threshold": "share that must agree, strictly more than (0.5)"}"#.into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decision, String> {
        let params: serde_json::Value = serde_json::from_str(&ctx.params).map_err(|e| format!("params: {e}"))?;
        let threshold = params.get("threshold").map_or(Ok(0.5), |v| v.as_f64().ok_or("threshold must be a number"))?;
        let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (i, p) in ctx.proposals.iter().enumerate() {
            let answer = normalize(&p.text);
            if !answer.is_empty() && answer.len() <= 100 {
                tally.entry(answer).or_insert((0, i)).0 += 1;
            }
        }
        let best = tally.values().max_by_key(|(votes, first)| (*votes, std::cmp::Reverse(*first)));
        match best {
            Some(&(votes, first)) if votes as f64 > threshold * ctx.proposals.len() as f64 => {
                Ok(Decision::Answer(ctx.proposals[first].text.clone()))
            }
            _ => Ok(Decision::Keep((0..ctx.proposals.len() as u32).collect())),
        }
    }
}

export!(MajorityVote);
