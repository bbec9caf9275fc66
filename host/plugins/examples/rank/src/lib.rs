//! The built-in `rank` strategy, written as a contract 0.2 plugin: the paper's LLM-ranker
//! baseline (Wang et al. 2024, §3.3). It asks a judge to pick the best proposal, which
//! becomes the answer (before the aggregator) or the next layer's only reference.
//!
//! Standalone (it does not link moa-core): `host/tests/plugins.rs` checks it decides
//! exactly as the built-in does, asks and notes included.
//!
//! Params: `judge` (`provider:model`; the recipe's aggregator when unset), `max_tokens`
//! (the verdict's cap, default 512).

wit_bindgen::generate!({ path: "../../../wit/v0.2.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use judging::{Judge, index, json_object, quoted, seeded};
use moa::strategy::types::{Ask, Context, Decided, Decision, Info, Message, Role};

const PROMPT: &str = "You are an impartial judge. You are given a question and several numbered responses to it. Pick the single best response: the one that is most correct, helpful and complete. Answer with a JSON object and nothing else, in the form {\"best\": N}, where N is the number of the best response.";

struct Rank;

/// The judge's pick: `{"best": N}` anywhere in the reply, else the one answer number the
/// text mentions, if it mentions exactly one.
fn parse(text: &str, n: usize) -> Option<usize> {
    if let Some(best) = json_object(text).and_then(|m| m.get("best").and_then(|v| index(v, n))) {
        return Some(best);
    }
    let mut found: Vec<usize> = Vec::new();
    for k in text.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse::<usize>().ok()) {
        if (1..=n).contains(&k) && !found.contains(&k) {
            found.push(k);
        }
    }
    match found.as_slice() {
        [one] => Some(one - 1),
        _ => None,
    }
}

fn ask(ctx: &Context, judge: Judge) -> Decided {
    let question = ctx.conversation.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.content.as_str());
    let answers: Vec<&str> = ctx.proposals.iter().map(|p| p.text.as_str()).collect();
    let messages = vec![
        Message { role: Role::System, content: PROMPT.into() },
        Message { role: Role::User, content: judging::judge_question(question, &answers) },
    ];
    let ask = Ask { model: judge.model, label: "judge".into(), messages, max_tokens: Some(judge.max_tokens) };
    Decided { decision: Decision::Ask(ask), note: None }
}

impl Guest for Rank {
    fn describe() -> Info {
        Info {
            name: "rank".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "A judge picks the best proposal (the paper's LLM-ranker).".into(),
            params: r#"{"judge": "provider:model (the aggregator)", "max_tokens": "the verdict's cap (512)"}"#.into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decided, String> {
        let judge = Judge::from_params(&judging::params(&ctx.params, &["judge", "max_tokens"])?)?;
        let n = ctx.proposals.len();
        if n == 0 {
            return Err("no proposals to rank".into());
        }
        let (best, note) = match ctx.asked.last().map(|a| &a.reply) {
            // One answer needs no judge.
            _ if n == 1 => (0, None),
            None => return Ok(ask(&ctx, judge)),
            Some(Ok(reply)) => match parse(reply, n) {
                Some(best) => (best, Some(format!("the judge picked response {} of {n}", best + 1))),
                None => {
                    let best = seeded(ctx.seed, n, 1)[0];
                    let note = format!(
                        "the judge's reply named no response (wanted {{\"best\": 1..={n}}}); response {} chosen at random (seeded): {}",
                        best + 1,
                        quoted(reply)
                    );
                    (best, Some(note))
                }
            },
            Some(Err(error)) => {
                let best = seeded(ctx.seed, n, 1)[0];
                (
                    best,
                    Some(format!("the judge's call failed ({error}); response {} chosen at random (seeded)", best + 1)),
                )
            }
        };
        let decision = if ctx.layer >= ctx.layer_count {
            Decision::Answer(ctx.proposals[best].text.clone())
        } else {
            Decision::Keep(vec![best as u32])
        };
        Ok(Decided { decision, note })
    }
}

export!(Rank);
