//! The paper's LLM-ranker baseline (Wang et al. 2024, §3.3): a judge picks the best
//! proposal, which becomes the answer (before the aggregator) or the next layer's only
//! reference. The paper finds MoA beats it at every layer; `rank` lets users check that on
//! their own tasks.

use super::judge::{Judge, index, json_object, seeded};
use super::{Ask, Decision, Strategy, StrategyError, StrategyInput, StrategyKind, check_params, inject_references};

/// The judge's instructions (ours): a JSON verdict, so the pick is read, never guessed.
pub const RANK_PROMPT: &str = "You are an impartial judge. You are given a question and several numbered responses to it. Pick the single best response: the one that is most correct, helpful and complete. Answer with a JSON object and nothing else, in the form {\"best\": N}, where N is the number of the best response.";

/// Picks the best proposal with one judge call.
#[derive(Clone, Debug, Default)]
pub struct Rank {
    judge: Judge,
    note: Option<String>,
}

impl Rank {
    /// Parameters: `judge` (`provider:model`; the aggregator when unset) and `max_tokens`
    /// (the verdict's cap, default 512).
    pub fn from_params(params: &serde_json::Value) -> Result<Rank, StrategyError> {
        check_params(StrategyKind::Rank, params)?;
        Ok(Rank { judge: Judge::from_params(StrategyKind::Rank, params)?, note: None })
    }
}

/// Instructions for a judge that names the worst answer (a DPO pair's rejected one,
/// `moa batch --format dpo --judge RECIPE`).
pub const WORST_PROMPT: &str = "You are an impartial judge. You are given a question and several numbered responses to it. Pick the single worst response: the one that is least correct, helpful and complete. Answer with a JSON object and nothing else, in the form {\"worst\": N}, where N is the number of the worst response.";

/// The judge's pick from its reply: `{"best": N}` anywhere in it (fenced or not), else
/// the one answer number the text mentions, if it mentions exactly one.
pub fn parse_rank(text: &str, n: usize) -> Option<usize> {
    parse_pick(text, n, "best")
}

/// A judge's pick under `key` (`{"best": N}`, `{"worst": N}`), read as [`parse_rank`]
/// reads it.
pub fn parse_pick(text: &str, n: usize, key: &str) -> Option<usize> {
    if let Some(best) = json_object(text).and_then(|m| m.get(key).and_then(|v| index(v, n))) {
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

impl Strategy for Rank {
    fn name(&self) -> &str {
        StrategyKind::Rank.name()
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        let n = input.proposals.len();
        let best = match input.reply {
            // One answer needs no judge.
            _ if n == 1 => 0,
            None => {
                return Ok(Decision::Ask(Ask {
                    model: self.judge.model.clone(),
                    label: "judge".into(),
                    messages: Judge::messages(RANK_PROMPT, input.conversation, input.proposals),
                    max_tokens: Some(self.judge.max_tokens),
                }));
            }
            Some(Ok(reply)) => match parse_rank(reply, n) {
                Some(best) => {
                    self.note = Some(format!("the judge picked response {} of {n}", best + 1));
                    best
                }
                None => {
                    let best = seeded(input.seed, n, 1)[0];
                    self.note = Some(format!(
                        "the judge's reply named no response (wanted {{\"best\": 1..={n}}}); response {} chosen at random (seeded): {}",
                        best + 1,
                        crate::quote::Quoted(&reply.chars().take(200).collect::<String>())
                    ));
                    best
                }
            },
            Some(Err(error)) => {
                let best = seeded(input.seed, n, 1)[0];
                self.note =
                    Some(format!("the judge's call failed ({error}); response {} chosen at random (seeded)", best + 1));
                best
            }
        };
        let text = &input.proposals[best].text;
        Ok(if input.is_final() {
            Decision::Final(text.clone())
        } else {
            Decision::Messages(inject_references(input.conversation, &[text]))
        })
    }

    fn planned_asks(&self, proposals: usize) -> usize {
        usize::from(proposals > 1)
    }

    fn note(&mut self) -> Option<String> {
        self.note.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_read_forgivingly_but_never_guessed() {
        assert_eq!(parse_rank("{\"best\": 2}", 3), Some(1));
        assert_eq!(parse_rank("```json\n{\"best\": \"3\"}\n```", 3), Some(2));
        assert_eq!(parse_rank("Response 2 is the best.", 3), Some(1));
        // Two numbers in range: ambiguous, not guessed.
        assert_eq!(parse_rank("Response 2 beats response 1.", 3), None);
        assert_eq!(parse_rank("{\"best\": 9}", 3), None);
        assert_eq!(parse_rank("I cannot decide.", 3), None);
    }

    #[test]
    fn params_are_checked() {
        assert!(Rank::from_params(&serde_json::json!({"judge": "p:m", "max_tokens": 64})).is_ok());
        assert!(Rank::from_params(&serde_json::json!({"judge": "no-colon"})).is_err());
        assert!(Rank::from_params(&serde_json::json!({"max_tokens": 0})).is_err());
        assert!(Rank::from_params(&serde_json::json!({"k": 2})).is_err());
    }
}
