//! Self-MoA-Seq (Li et al. 2025, arXiv 2502.00674): many proposals aggregated in a
//! sliding window, the running synthesis carried forward, so 20 or 50 samples fit an
//! aggregator with a small context window.
//!
//! With `n` proposals and a window of `w`: the aggregator first synthesizes proposals
//! 1..=w; each later step synthesizes the synthesis so far with the next `w - 1`
//! proposals; the last step is the next layer's (or the aggregator's) own call. Each
//! intermediate step is an aggregator call in the paper's prompt, booked in the layer it
//! aggregates, named `window i/m`.

use super::{Ask, Decision, Strategy, StrategyError, StrategyInput, StrategyKind, check_params, inject_references};

/// Aggregates in windows of `window` references.
#[derive(Clone, Debug)]
pub struct Sequential {
    window: usize,
    /// Proposals folded into `synthesis` so far, in this decision.
    done: usize,
    synthesis: Option<String>,
}

impl Sequential {
    /// Parameter: `window` (references per aggregation step, the synthesis so far
    /// counting as one; 2..=64, default 4).
    pub fn from_params(params: &serde_json::Value) -> Result<Sequential, StrategyError> {
        check_params(StrategyKind::Sequential, params)?;
        let window = match params.get("window") {
            None => 4,
            Some(v) => v
                .as_u64()
                .filter(|w| (2..=64).contains(w))
                .ok_or_else(|| StrategyKind::Sequential.error("window must be an integer in 2..=64"))?
                as usize,
        };
        Ok(Sequential { window, done: 0, synthesis: None })
    }

    /// How many aggregation steps `n` proposals take, the final call included.
    pub fn steps(&self, n: usize) -> usize {
        if n <= self.window { 1 } else { 1 + (n - self.window).div_ceil(self.window - 1) }
    }
}

impl Strategy for Sequential {
    fn name(&self) -> &str {
        StrategyKind::Sequential.name()
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        let texts: Vec<&str> = input.proposals.iter().map(|p| p.text.as_str()).collect();
        match input.reply {
            None => {
                self.done = 0;
                self.synthesis = None;
            }
            Some(Ok(text)) => self.synthesis = Some(text.trim().to_owned()),
            Some(Err(error)) => {
                let (step, steps) = (self.step(), self.steps(texts.len()));
                return Err(
                    StrategyKind::Sequential.error(format!("aggregation step {step} of {steps} failed: {error}"))
                );
            }
        }
        // This step's references: the synthesis so far (if any), then fresh proposals.
        let fresh = self.window - usize::from(self.synthesis.is_some());
        let end = (self.done + fresh).min(texts.len());
        let mut refs: Vec<&str> = self.synthesis.as_deref().into_iter().collect();
        refs.extend(&texts[self.done..end]);
        let messages = inject_references(input.conversation, &refs);
        let last = end == texts.len();
        let step = self.step() + 1;
        self.done = end;
        if last {
            return Ok(Decision::Messages(messages));
        }
        Ok(Decision::Ask(Ask {
            model: None,
            label: format!("window {step}/{}", self.steps(texts.len())),
            messages,
            max_tokens: None,
        }))
    }

    fn planned_asks(&self, proposals: usize) -> usize {
        self.steps(proposals) - 1
    }
}

impl Sequential {
    /// Steps made so far in this decision.
    fn step(&self) -> usize {
        if self.done == 0 { 0 } else { 1 + (self.done - self.window).div_ceil(self.window - 1) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::strategy::Proposal;

    fn proposals(n: usize) -> Vec<Proposal> {
        (1..=n)
            .map(|i| Proposal {
                agent: format!("a#{i}"),
                model: "m".into(),
                text: format!("p{i}"),
                usage: None,
                latency_ms: 0.0,
            })
            .collect()
    }

    /// The references of a decision's messages.
    fn refs(d: &Decision) -> Vec<String> {
        let messages = match d {
            Decision::Messages(m) => m,
            Decision::Ask(a) => &a.messages,
            other => panic!("unexpected {other:?}"),
        };
        let refs = messages[0].content.split_once("Responses from models:").map_or("", |x| x.1);
        refs.lines().filter_map(|l| l.split_once(". ").map(|(_, r)| r.to_owned())).collect()
    }

    #[test]
    fn windows_slide_and_carry_the_synthesis() {
        let conv = [Message::user("q")];
        let ps = proposals(9);
        let mut s = Sequential::from_params(&serde_json::json!({"window": 4})).expect("params");
        assert_eq!(s.steps(9), 3);
        let mut input = StrategyInput::new(&conv, 1, 1, &ps);
        let d1 = s.decide(&input).expect("step 1");
        assert!(matches!(&d1, Decision::Ask(a) if a.label == "window 1/3" && a.model.is_none()));
        assert_eq!(refs(&d1), ["p1", "p2", "p3", "p4"]);
        input.reply = Some(Ok("s1"));
        let d2 = s.decide(&input).expect("step 2");
        assert!(matches!(&d2, Decision::Ask(a) if a.label == "window 2/3"));
        assert_eq!(refs(&d2), ["s1", "p5", "p6", "p7"]);
        input.reply = Some(Ok("s2"));
        let d3 = s.decide(&input).expect("step 3");
        assert!(matches!(&d3, Decision::Messages(_)));
        assert_eq!(refs(&d3), ["s2", "p8", "p9"]);
        // A new decision starts over.
        input.reply = None;
        assert_eq!(refs(&s.decide(&input).expect("again")), ["p1", "p2", "p3", "p4"]);
        // A failed step fails the decision, saying which.
        input.reply = Some(Err("HTTP 500"));
        let e = s.decide(&input).expect_err("failed step");
        assert!(e.message.contains("step 1 of 3") && e.message.contains("HTTP 500"), "{e}");
    }

    #[test]
    fn few_proposals_need_one_step_and_params_are_checked() {
        let conv = [Message::user("q")];
        let ps = proposals(3);
        let mut s = Sequential::from_params(&serde_json::Value::Null).expect("defaults");
        assert!(matches!(s.decide(&StrategyInput::new(&conv, 1, 1, &ps)), Ok(Decision::Messages(_))));
        assert!(Sequential::from_params(&serde_json::json!({"window": 1})).is_err());
        assert!(Sequential::from_params(&serde_json::json!({"k": 2})).is_err());
    }
}
