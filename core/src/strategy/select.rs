//! SMoA's selection (Li et al. 2024, arXiv 2411.03284): a judge keeps the `k` best
//! proposals (by correctness, fluency, relevance and quality) for the next layer, and may
//! end the debate: then the kept proposals go straight to the final aggregator.

use super::judge::{Judge, index, json_object, numbers, seeded};
use super::{Ask, Decision, Strategy, StrategyError, StrategyInput, StrategyKind, check_params, inject_references};

/// The judge's instructions (ours, after SMoA's judge): a JSON verdict.
pub fn select_prompt(k: usize, may_stop: bool) -> String {
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

/// What the judge chose: up to `k` distinct 0-based indexes, best first, and whether the
/// debate ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Kept proposals, best first.
    pub kept: Vec<usize>,
    /// The judge ended the debate.
    pub stop: bool,
    /// Indexes the judge gave that were out of range or not numbers, or repeated before
    /// `k` were kept (numbers after the first `k` kept are dropped uncounted).
    pub ignored: usize,
}

/// Reads `{"selected": [...], "stop": ...}` from the judge's reply, forgivingly: fenced or
/// not, with text around it; numbers or numeric strings; out-of-range and repeated
/// indexes ignored (and counted); a `stop` of `true`/`"yes"`. `Err` says why nothing
/// usable was found.
pub fn parse_selection(text: &str, n: usize, k: usize) -> Result<Selection, String> {
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

/// Keeps the judge's `k` best proposals; may end the debate early.
#[derive(Clone, Debug)]
pub struct Select {
    k: usize,
    may_stop: bool,
    judge: Judge,
    note: Option<String>,
}

impl Select {
    /// Parameters: `k` (kept proposals, default 2), `stop` (whether the judge may end the
    /// debate, default true), `judge` (`provider:model`; the aggregator when unset) and
    /// `max_tokens` (the verdict's cap, default 512).
    pub fn from_params(params: &serde_json::Value) -> Result<Select, StrategyError> {
        check_params(StrategyKind::Select, params)?;
        let bad = |message: &str| StrategyKind::Select.error(message);
        let k = match params.get("k") {
            None => 2,
            Some(v) => {
                v.as_u64().filter(|k| (1..=64).contains(k)).ok_or_else(|| bad("k must be an integer in 1..=64"))?
                    as usize
            }
        };
        let may_stop = match params.get("stop") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| bad("stop must be true or false"))?,
        };
        Ok(Select { k, may_stop, judge: Judge::from_params(StrategyKind::Select, params)?, note: None })
    }
}

impl Strategy for Select {
    fn name(&self) -> &str {
        StrategyKind::Select.name()
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        let n = input.proposals.len();
        let (kept, stop) = match input.reply {
            // Nothing to choose: every proposal goes on.
            _ if n <= self.k => ((0..n).collect(), false),
            None => {
                return Ok(Decision::Ask(Ask {
                    model: self.judge.model.clone(),
                    label: "judge".into(),
                    messages: Judge::messages(
                        &select_prompt(self.k, self.may_stop),
                        input.conversation,
                        input.proposals,
                    ),
                    max_tokens: Some(self.judge.max_tokens),
                }));
            }
            Some(Ok(reply)) => match parse_selection(reply, n, self.k) {
                Ok(sel) => {
                    let stop = sel.stop && self.may_stop && !input.is_final();
                    let mut note = format!("the judge kept {} of {n}", numbers(&sel.kept));
                    if sel.kept.len() < self.k {
                        note.push_str(&format!(" (fewer than k = {})", self.k));
                    }
                    if sel.ignored > 0 {
                        note.push_str(&format!("; {} of its numbers were out of range or repeated", sel.ignored));
                    }
                    if stop {
                        note.push_str("; it ended the debate: on to the aggregator");
                    }
                    self.note = Some(note);
                    (sel.kept, stop)
                }
                Err(why) => {
                    let kept = seeded(input.seed, n, self.k);
                    self.note = Some(format!(
                        "the judge's reply was unreadable ({why}); kept {} of {n} at random (seeded): {}",
                        numbers(&kept),
                        crate::quote::Quoted(&reply.chars().take(200).collect::<String>())
                    ));
                    (kept, false)
                }
            },
            Some(Err(error)) => {
                let kept = seeded(input.seed, n, self.k);
                self.note = Some(format!(
                    "the judge's call failed ({error}); kept {} of {n} at random (seeded)",
                    numbers(&kept)
                ));
                (kept, false)
            }
        };
        let refs: Vec<&str> = kept.iter().map(|&i| input.proposals[i].text.as_str()).collect();
        let messages = inject_references(input.conversation, &refs);
        Ok(if stop { Decision::Aggregate(messages) } else { Decision::Messages(messages) })
    }

    fn planned_asks(&self, proposals: usize) -> usize {
        usize::from(proposals > self.k)
    }

    fn note(&mut self) -> Option<String> {
        self.note.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_are_read_forgivingly() {
        let sel = |t: &str| parse_selection(t, 4, 2);
        assert_eq!(
            sel("{\"selected\": [3, 1], \"stop\": false}"),
            Ok(Selection { kept: vec![2, 0], stop: false, ignored: 0 })
        );
        assert_eq!(
            sel("Here you go:\n```json\n{\"selected\": [\"2\", 2, 9, 4], \"stop\": \"yes\"}\n```\nThanks."),
            Ok(Selection { kept: vec![1, 3], stop: true, ignored: 2 })
        );
        // More than k: the first k, best first.
        assert_eq!(sel("{\"selected\": [4, 3, 2]}").map(|s| s.kept), Ok(vec![3, 2]));
        assert!(sel("{\"selected\": [0, 7]}").is_err());
        assert!(sel("{\"best\": 1}").is_err());
        assert!(sel("I like the second one.").is_err());
    }

    #[test]
    fn params_are_checked() {
        assert!(Select::from_params(&serde_json::json!({"k": 3, "stop": false, "judge": "p:m"})).is_ok());
        assert!(Select::from_params(&serde_json::json!({"k": 0})).is_err());
        assert!(Select::from_params(&serde_json::json!({"stop": "no"})).is_err());
        assert!(Select::from_params(&serde_json::json!({"window": 3})).is_err());
    }
}
