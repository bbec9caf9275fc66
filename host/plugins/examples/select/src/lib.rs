//! The built-in `select` strategy, written as a contract 0.2 plugin: SMoA's selection (Li
//! et al. 2024, arXiv 2411.03284). A judge keeps the `k` best proposals for the next
//! layer and may end the debate: then the kept proposals go straight to the aggregator.
//!
//! Standalone (it does not link moa-core): `host/tests/plugins.rs` checks it decides
//! exactly as the built-in does, asks and notes included.
//!
//! Params: `k` (kept proposals, default 2), `stop` (whether the judge may end the debate,
//! default true), `judge` (`provider:model`; the aggregator when unset), `max_tokens`
//! (the verdict's cap, default 512).

wit_bindgen::generate!({ path: "../../../wit/v0.2.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use judging::{Judge, index, json_object, numbers, quoted, seeded};
use moa::strategy::types::{Ask, Context, Decided, Decision, Info, Message, Role};

struct Select;

fn prompt(k: usize, may_stop: bool) -> String {
    let stop = if may_stop {
        " Also decide whether the debate can end now: set \"stop\" to true when the selected responses already agree on a correct, complete answer that further rounds of revision would not improve, otherwise false."
    } else {
        ""
    };
    format!(
        "You are the judge of a discussion among several assistants. You are given a question and their numbered responses. Select the {k} best responses, judging correctness, fluency, relevance and overall quality.{stop} Answer with a JSON object and nothing else, in the form {{\"selected\": [numbers of the {k} best responses, best first], \"stop\": {}}}.",
        if may_stop { "true or false" } else { "false" }
    )
}

/// What the judge chose: up to `k` distinct indexes, best first; whether the debate
/// ends; how many of its numbers were ignored.
struct Selection {
    kept: Vec<usize>,
    stop: bool,
    ignored: usize,
}

fn parse(text: &str, n: usize, k: usize) -> Result<Selection, String> {
    let map = json_object(text).ok_or("no JSON object in the reply")?;
    let list = map
        .get("selected")
        .or_else(|| map.get("select"))
        .and_then(|v| v.as_array())
        .ok_or("the reply's object has no \"selected\" list")?;
    let mut kept = Vec::new();
    let mut ignored = 0;
    for v in list {
        match index(v, n) {
            Some(i) if !kept.contains(&i) && kept.len() < k => kept.push(i),
            Some(_) if kept.len() >= k => {}
            _ => ignored += 1,
        }
    }
    if kept.is_empty() {
        return Err(format!("no selected number is a response (1..={n})"));
    }
    let stop = match map.get("stop") {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes"),
        _ => false,
    };
    Ok(Selection { kept, stop, ignored })
}

struct Params {
    k: usize,
    may_stop: bool,
    judge: Judge,
}

fn read_params(text: &str) -> Result<Params, String> {
    let map = judging::params(text, &["k", "stop", "judge", "max_tokens"])?;
    let k = match map.get("k") {
        None => 2,
        Some(v) => v.as_u64().filter(|k| (1..=64).contains(k)).ok_or("k must be an integer in 1..=64")? as usize,
    };
    let may_stop = match map.get("stop") {
        None => true,
        Some(v) => v.as_bool().ok_or("stop must be true or false")?,
    };
    Ok(Params { k, may_stop, judge: Judge::from_params(&map)? })
}

fn ask(ctx: &Context, p: Params) -> Decided {
    let question = ctx.conversation.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
    let answers: Vec<&str> = ctx.proposals.iter().map(|p| p.text.as_str()).collect();
    let messages = vec![
        Message { role: Role::System, content: prompt(p.k, p.may_stop) },
        Message { role: Role::User, content: judging::judge_question(question, &answers) },
    ];
    let ask = Ask { model: p.judge.model, label: "judge".into(), messages, max_tokens: Some(p.judge.max_tokens) };
    Decided { decision: Decision::Ask(ask), note: None }
}

/// The judge's verdict read into what is kept, whether to stop, and the note.
fn verdict(ctx: &Context, p: &Params, reply: &Result<String, String>) -> (Vec<usize>, bool, String) {
    let n = ctx.proposals.len();
    match reply {
        Ok(reply) => match parse(reply, n, p.k) {
            Ok(sel) => {
                let stop = sel.stop && p.may_stop && ctx.layer < ctx.layer_count;
                let mut note = format!("the judge kept {} of {n}", numbers(&sel.kept));
                if sel.kept.len() < p.k {
                    note.push_str(&format!(" (fewer than k = {})", p.k));
                }
                if sel.ignored > 0 {
                    note.push_str(&format!("; {} of its numbers were out of range or repeated", sel.ignored));
                }
                if stop {
                    note.push_str("; it ended the debate: on to the aggregator");
                }
                (sel.kept, stop, note)
            }
            Err(why) => {
                let kept = seeded(ctx.seed, n, p.k);
                let note = format!(
                    "the judge's reply was unreadable ({why}); kept {} of {n} at random (seeded): {}",
                    numbers(&kept),
                    quoted(reply)
                );
                (kept, false, note)
            }
        },
        Err(error) => {
            let kept = seeded(ctx.seed, n, p.k);
            let note = format!("the judge's call failed ({error}); kept {} of {n} at random (seeded)", numbers(&kept));
            (kept, false, note)
        }
    }
}

impl Guest for Select {
    fn describe() -> Info {
        Info {
            name: "select".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "A judge keeps the k best proposals and may end the debate (SMoA).".into(),
            params: r#"{"k": "kept proposals (2)", "stop": "the judge may end the debate (true)", "judge": "provider:model (the aggregator)", "max_tokens": "the verdict's cap (512)"}"#.into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decided, String> {
        let p = read_params(&ctx.params)?;
        let n = ctx.proposals.len();
        let (kept, stop, note) = match ctx.asked.last() {
            // Nothing to choose: every proposal goes on.
            _ if n <= p.k => ((0..n).collect(), false, None),
            None => return Ok(ask(&ctx, p)),
            Some(answered) => {
                let (kept, stop, note) = verdict(&ctx, &p, &answered.reply);
                (kept, stop, Some(note))
            }
        };
        let kept: Vec<u32> = kept.into_iter().map(|i| i as u32).collect();
        let decision = if stop { Decision::AggregateKept(kept) } else { Decision::Keep(kept) };
        Ok(Decided { decision, note })
    }
}

export!(Select);
