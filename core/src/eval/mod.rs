//! Evaluation: does a mixture beat its best member? Dataset items, scorers, judge prompts
//! and parsers, and the per-recipe summary with intervals and a paired test. No I/O: the
//! host runs the items (`moa eval`) and hands the results here.

pub mod judge;
pub mod score;
pub mod stats;

pub use score::{ScoreError, Scorer, score};
pub use stats::{Estimate, Paired};

use crate::message::Message;
use serde::{Deserialize, Serialize};

/// One dataset item, as a JSONL line gives it: `prompt`, `messages`, or `turns` (MT-Bench
/// style: user turns asked one after another, each after the model's own answer to the
/// one before); `answer` (the short gold answer the scorers compare with) and/or
/// `reference` (a reference output a judge compares with); optional `id` and `choices`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// The item's id; the line number when absent.
    #[serde(default)]
    pub id: Option<serde_json::Value>,
    /// A one-turn question.
    #[serde(default)]
    pub prompt: Option<String>,
    /// A whole conversation, ending with a user turn.
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    /// User turns asked in order, each after the answer to the one before.
    #[serde(default)]
    pub turns: Option<Vec<String>>,
    /// The gold short answer.
    #[serde(default)]
    pub answer: Option<String>,
    /// A reference output.
    #[serde(default)]
    pub reference: Option<String>,
    /// Multiple-choice options, in letter order.
    #[serde(default)]
    pub choices: Vec<String>,
    /// What the item is about (kept in results, for slicing).
    #[serde(default)]
    pub category: Option<String>,
    /// Tools the answer may call, as OpenAI's request gives them (passed on to the run;
    /// the `tool` scorer compares the calls with `answer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<serde_json::Value>,
    /// OpenAI's `tool_choice`, passed on with the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
}

impl Item {
    /// Parses one line; the error says what is wrong with it.
    pub fn parse(line: &str) -> Result<Item, String> {
        let item: Item = serde_json::from_str(line).map_err(|e| e.to_string())?;
        match [item.prompt.is_some(), item.messages.is_some(), item.turns.is_some()].iter().filter(|b| **b).count() {
            0 => return Err("needs \"prompt\", \"messages\" or \"turns\"".into()),
            1 => {}
            _ => return Err("give one of \"prompt\", \"messages\" and \"turns\"".into()),
        }
        if item.turns.as_ref().is_some_and(|t| t.is_empty() || t.iter().any(|q| q.trim().is_empty())) {
            return Err("\"turns\" must be non-empty questions".into());
        }
        if let Some(id) = &item.id
            && !(id.is_string() || id.is_number())
        {
            return Err("\"id\" must be a string or a number".into());
        }
        crate::message::validate_conversation(&item.conversation())?;
        Ok(item)
    }

    /// The conversation to answer (for `turns`, the first turn).
    pub fn conversation(&self) -> Vec<Message> {
        match (&self.prompt, &self.messages, &self.turns) {
            (Some(p), _, _) => vec![Message::user(p.clone())],
            (None, Some(m), _) => m.clone(),
            (None, None, Some(t)) => t.first().map(|q| vec![Message::user(q.clone())]).unwrap_or_default(),
            (None, None, None) => vec![],
        }
    }

    /// How many turns are asked: the length of `turns`, else 1.
    pub fn turn_count(&self) -> usize {
        self.turns.as_ref().map_or(1, Vec::len)
    }

    /// The conversation for turn `t` (0-based), given the model's answers to the turns
    /// before it.
    pub fn conversation_at(&self, t: usize, answers: &[String]) -> Vec<Message> {
        let Some(turns) = &self.turns else { return self.conversation() };
        let mut out = Vec::new();
        for (i, q) in turns.iter().take(t + 1).enumerate() {
            out.push(Message::user(q.clone()));
            if i < t {
                out.push(Message::assistant(answers.get(i).cloned().unwrap_or_default()));
            }
        }
        out
    }
}

/// One recipe's result on one item, as `moa eval` writes it to `results.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The recipe's name in the evaluation.
    pub recipe: String,
    /// The item's id, as the dataset gives it (or its line number).
    pub id: serde_json::Value,
    /// The final answer; `None` when the run failed.
    pub answer: Option<String>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The score (0..=1 for the scorers and win rates, 1..=10 for grades, 1..=5 for the
    /// mean of a rubric); `None` when it could not be scored (an unreadable verdict).
    pub score: Option<f64>,
    /// A rubric's per-skill scores, in the rubric's order; for a graded multi-turn item,
    /// each turn's grade.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<Option<f64>>,
    /// Judge verdicts that could not be read for this item.
    #[serde(default)]
    pub unparseable: usize,
    /// For pairwise judging: this answer's length minus the reference's, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_delta: Option<f64>,
    /// Tokens, in and out, failed attempts included.
    pub tokens: u64,
    /// Dollars, when priced.
    pub cost: Option<f64>,
    /// Wall time of the run.
    pub wall_ms: f64,
    /// Time to the answer's first token.
    pub ttft_ms: Option<f64>,
    /// Calls made (attempts not counted).
    pub calls: usize,
}

/// One recipe over the whole dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecipeSummary {
    /// The recipe's name.
    pub recipe: String,
    /// Whether it is a single-model baseline.
    pub baseline: bool,
    /// Items run.
    pub items: usize,
    /// Items whose run failed (given the scale's lowest score: 0, or 1 for grades and
    /// rubrics).
    pub failed: usize,
    /// Judge verdicts that could not be read (those items are left out of the score).
    pub unparseable: usize,
    /// The score with its 95% interval.
    pub score: Option<Estimate>,
    /// A rubric's skills, each with its interval.
    pub skills: Vec<(String, Estimate)>,
    /// Pairwise only: the length-controlled win rate (see [`judge::length_controlled`]).
    pub length_controlled: Option<f64>,
    /// The best baseline (by mean score) and this recipe's paired comparison with it.
    pub vs_best_baseline: Option<(String, Paired)>,
    /// Mean tokens per item.
    pub tokens_mean: f64,
    /// Dollars over all items, when priced.
    pub cost: Option<f64>,
    /// Mean calls per item.
    pub calls_mean: f64,
    /// Wall time per item: median and 95th percentile.
    pub wall_ms: (f64, f64),
    /// Time to first token per item: median and 95th percentile.
    pub ttft_ms: Option<(f64, f64)>,
}

/// Summarizes `results` per recipe, in the order recipes first appear. `baselines` names
/// the single-model recipes; `skills` names a rubric's skills; `binary` says the scores
/// are right-or-wrong (0 or 1), which chooses Wilson's interval.
pub fn summarize(results: &[ItemResult], baselines: &[String], skills: &[String], binary: bool) -> Vec<RecipeSummary> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.recipe.as_str()) {
            names.push(&r.recipe);
        }
    }
    let of = |name: &str| results.iter().filter(|r| r.recipe == name).collect::<Vec<_>>();
    let scores = |rs: &[&ItemResult]| rs.iter().filter_map(|r| r.score).collect::<Vec<f64>>();
    let best = baselines
        .iter()
        .filter_map(|b| stats::estimate(&scores(&of(b)), binary).map(|e| (b.clone(), e.mean)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(b, _)| b);
    names
        .iter()
        .map(|name| {
            let rs = of(name);
            let n = rs.len().max(1) as f64;
            let mut wall: Vec<f64> = rs.iter().map(|r| r.wall_ms).collect();
            wall.sort_by(f64::total_cmp);
            let mut ttft: Vec<f64> = rs.iter().filter_map(|r| r.ttft_ms).collect();
            ttft.sort_by(f64::total_cmp);
            let vs_best_baseline = best.as_ref().filter(|b| b.as_str() != *name).map(|b| {
                let theirs = of(b);
                let (mut a, mut z) = (Vec::new(), Vec::new());
                for r in &rs {
                    if let (Some(x), Some(y)) = (r.score, theirs.iter().find(|t| t.id == r.id).and_then(|t| t.score)) {
                        a.push(x);
                        z.push(y);
                    }
                }
                (b.clone(), stats::paired(&a, &z))
            });
            let prefs: Vec<(f64, f64)> = rs.iter().filter_map(|r| Some((r.score?, r.length_delta?))).collect();
            RecipeSummary {
                recipe: name.to_string(),
                baseline: baselines.iter().any(|b| b == name),
                items: rs.len(),
                failed: rs.iter().filter(|r| r.answer.is_none()).count(),
                unparseable: rs.iter().map(|r| r.unparseable).sum(),
                score: stats::estimate(&scores(&rs), binary),
                skills: skills
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        let v: Vec<f64> = rs.iter().filter_map(|r| r.skills.get(i).copied().flatten()).collect();
                        stats::estimate(&v, false).map(|e| (s.clone(), e))
                    })
                    .collect(),
                length_controlled: if prefs.len() == rs.len() { judge::length_controlled(&prefs) } else { None },
                vs_best_baseline,
                tokens_mean: rs.iter().map(|r| r.tokens as f64).sum::<f64>() / n,
                cost: rs.iter().try_fold(0.0, |acc, r| r.cost.map(|c| acc + c)),
                calls_mean: rs.iter().map(|r| r.calls as f64).sum::<f64>() / n,
                wall_ms: (stats::percentile(&wall, 50.0), stats::percentile(&wall, 95.0)),
                ttft_ms: (!ttft.is_empty()).then(|| (stats::percentile(&ttft, 50.0), stats::percentile(&ttft, 95.0))),
            }
        })
        .collect()
}

/// The recipes on the Pareto front of score (higher is better) against `cost` (lower is
/// better): none other is at least as good on both and better on one.
pub fn pareto(points: &[(f64, f64)]) -> Vec<bool> {
    points.iter().map(|(s, c)| !points.iter().any(|(s2, c2)| s2 >= s && c2 <= c && (s2 > s || c2 < c))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(recipe: &str, id: u32, score: f64) -> ItemResult {
        ItemResult {
            recipe: recipe.into(),
            id: id.into(),
            answer: Some("x".into()),
            score: Some(score),
            tokens: 10,
            wall_ms: 100.0 * f64::from(id),
            ttft_ms: Some(10.0),
            calls: 1,
            ..ItemResult::default()
        }
    }

    #[test]
    fn items_need_a_question_and_name_what_is_wrong() {
        assert!(Item::parse(r#"{"prompt": "2+2?", "answer": "4"}"#).is_ok());
        assert!(
            Item::parse(r#"{"answer": "4"}"#)
                .expect_err("no question")
                .contains("needs \"prompt\", \"messages\" or \"turns\"")
        );
        assert!(
            Item::parse(r#"{"prompt": "x", "anwser": "4"}"#).expect_err("a typo").contains("unknown field `anwser`")
        );
        assert!(Item::parse(r#"{"prompt": "x", "id": [1]}"#).expect_err("a list id").contains("string or a number"));
    }

    #[test]
    fn multi_turn_items_ask_each_turn_after_the_answer_to_the_one_before() {
        let item = Item::parse(r#"{"turns": ["Name a fruit.", "Now its colour?"]}"#).expect("parses");
        assert_eq!(item.turn_count(), 2);
        let second = item.conversation_at(1, &["Apple.".into()]);
        assert_eq!(
            second,
            vec![Message::user("Name a fruit."), Message::assistant("Apple."), Message::user("Now its colour?")]
        );
        assert!(Item::parse(r#"{"turns": []}"#).is_err());
        assert!(Item::parse(r#"{"turns": ["a"], "prompt": "b"}"#).is_err());
    }

    #[test]
    fn the_summary_compares_each_recipe_with_the_best_baseline() {
        let mut rs = vec![];
        for i in 0..10 {
            rs.push(result("solo-a", i, if i < 5 { 1.0 } else { 0.0 }));
            rs.push(result("solo-b", i, if i < 3 { 1.0 } else { 0.0 }));
            rs.push(result("moa", i, if i < 8 { 1.0 } else { 0.0 }));
        }
        let s = summarize(&rs, &["solo-a".into(), "solo-b".into()], &[], true);
        assert_eq!(s.iter().map(|r| r.recipe.as_str()).collect::<Vec<_>>(), ["solo-a", "solo-b", "moa"]);
        let moa = &s[2];
        assert_eq!(moa.score.as_ref().map(|e| (e.mean, e.method)), Some((0.8, "wilson")));
        let (best, p) = moa.vs_best_baseline.clone().expect("compared");
        assert_eq!(best, "solo-a");
        assert_eq!((p.wins, p.losses, p.ties), (3, 0, 7));
        assert!(s[0].vs_best_baseline.is_none(), "the best baseline is not compared with itself");
        assert_eq!(moa.wall_ms.0, 450.0);
    }

    #[test]
    fn the_pareto_front_keeps_what_nothing_beats() {
        // (score, cost): the second is dominated by the first; the third is dearer but better.
        assert_eq!(pareto(&[(0.8, 1.0), (0.7, 2.0), (0.9, 3.0)]), vec![true, false, true]);
    }
}
