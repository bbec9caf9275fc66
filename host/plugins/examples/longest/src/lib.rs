//! longest: a moa strategy plugin (contract moa:strategy@0.2.0).
//!
//! Keeps the `k` longest proposals (params: `{"k": 2}`), counted in characters, ties to
//! the earlier proposal, in proposal order; on the final layer with one proposal left,
//! that proposal is the answer. The same strategy is written in Python
//! (`host/plugins/python/longest`) and JavaScript (`host/plugins/js/longest`), and a test
//! holds the three equal; `moa plugin new NAME --lang rust|python|js` starts from them.

wit_bindgen::generate!({ path: "../../../wit/v0.2.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decided, Decision, Info};

struct Plugin;

fn k(params: &str) -> Result<usize, String> {
    let params: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(params).map_err(|e| format!("params: {e}"))?;
    if let Some(key) = params.keys().find(|key| *key != "k") {
        return Err(format!("unknown parameter {key:?} (it takes k)"));
    }
    match params.get("k") {
        None => Ok(2),
        Some(v) => v.as_u64().filter(|k| *k >= 1).map(|k| k as usize).ok_or_else(|| "k must be an integer >= 1".into()),
    }
}

impl Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "longest".into(),
            version: "0.1.0".into(),
            description: "Keeps the k longest proposals.".into(),
            params: r#"{"k": "proposals kept (2)"}"#.into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decided, String> {
        let k = k(&ctx.params)?;
        let n = ctx.proposals.len();
        if ctx.layer >= ctx.layer_count && n == 1 {
            let note = Some("the only proposal is the answer".to_owned());
            return Ok(Decided { decision: Decision::Answer(ctx.proposals[0].text.clone()), note });
        }
        // Longest first; ties to the earlier proposal (the sort is stable).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ctx.proposals[i].text.chars().count()));
        let mut kept: Vec<u32> = order.into_iter().take(k).map(|i| i as u32).collect();
        kept.sort_unstable();
        let note = Some(format!("kept the {} longest of {n}", kept.len()));
        Ok(Decided { decision: Decision::Keep(kept), note })
    }
}

export!(Plugin);
