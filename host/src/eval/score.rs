//! Scoring, without I/O: each entrant's answers and the judge's verdicts in, one
//! [`ItemResult`] per item out.

use super::Scoring;
use super::ledger::{Ledgers, Verdicts};
use super::plan::{JudgeKey, Keyed, Part};
use crate::batch::ResultLine;
use moa_core::eval::judge::{self, JudgeMode};
use moa_core::eval::{Item, ItemResult};
use serde_json::Value;

/// What every entrant is scored against.
pub struct Scorer<'a> {
    /// How.
    pub scoring: &'a Scoring,
    /// The items, in dataset order.
    pub items: &'a [Keyed],
    /// Every entrant's answers.
    pub ledgers: &'a Ledgers,
    /// The entrant compared with pairwise (not scored itself), if any.
    pub against: Option<usize>,
}

/// A run's accounts, summed over an item's turns.
#[derive(Default)]
struct Accounts {
    tokens: u64,
    cost: Option<f64>,
    wall_ms: f64,
    calls: usize,
}

impl Accounts {
    fn add(&mut self, line: &ResultLine, first: bool) {
        self.tokens += line.tokens();
        self.wall_ms += line.timings.wall_ms;
        self.calls += line.calls();
        self.cost = if first { line.cost } else { self.cost.zip(line.cost).map(|(a, b)| a + b) };
    }
}

/// A line's answer as scored and shown: its calls, one `name(arguments)` per line, when
/// it calls tools; else its text.
fn answer_of(l: &ResultLine) -> Option<String> {
    if l.tool_calls.is_empty() {
        return l.answer.clone();
    }
    let calls: Vec<String> =
        l.tool_calls.iter().map(|c| format!("{}({})", c.function.name, c.function.arguments)).collect();
    Some(calls.join("\n"))
}

impl Scorer<'_> {
    /// Entrant `ei`'s results, one per item; an error when an item cannot be scored.
    pub fn entrant(&self, ei: usize, name: &str, verdicts: &Verdicts) -> Result<Vec<ItemResult>, String> {
        self.items.iter().map(|(id, item)| self.item(ei, name, id, item, verdicts)).collect()
    }

    /// The answer over every turn (none if any turn failed) and the accounts.
    fn answered(&self, ei: usize, id: &str, item: &Item) -> (Option<String>, Accounts) {
        let mut accounts = Accounts::default();
        let first = self.ledgers.line(0, ei, id);
        first.inspect(|l| accounts.add(l, true));
        let mut answer = first.and_then(answer_of);
        for t in 1..item.turn_count() {
            match self.ledgers.line(t, ei, id) {
                Some(l) => {
                    accounts.add(l, false);
                    answer = answer.and(answer_of(l));
                }
                None => answer = None,
            }
        }
        (answer, accounts)
    }

    fn item(&self, ei: usize, name: &str, id: &str, item: &Item, verdicts: &Verdicts) -> Result<ItemResult, String> {
        let first = self.ledgers.line(0, ei, id);
        let (answer, acc) = self.answered(ei, id, item);
        let mut r = ItemResult {
            recipe: name.to_owned(),
            id: serde_json::from_str(id).unwrap_or_else(|_| Value::String(id.to_owned())),
            answer: answer.clone(),
            error: match first {
                Some(l) => l.error.clone(),
                None => Some("not run".into()),
            },
            tokens: acc.tokens,
            cost: acc.cost,
            wall_ms: acc.wall_ms,
            ttft_ms: first.and_then(ResultLine::ttft_ms),
            calls: acc.calls,
            ..ItemResult::default()
        };
        let said = |part| verdicts.said(&JudgeKey::new(id, part));
        match (self.scoring, answer.as_deref()) {
            (Scoring::Rule(scorer), Some(a)) => {
                let reference = item.answer.as_deref().unwrap_or_default();
                let s = moa_core::eval::score(*scorer, a, reference, &item.choices);
                r.score = Some(s.map_err(|err| format!("item {id}: {err}"))?);
            }
            // A run that failed gets the lowest score: no answer is a wrong answer.
            (Scoring::Rule(_), None) | (Scoring::Judge { mode: JudgeMode::Pairwise, .. }, None) => r.score = Some(0.0),
            (Scoring::Judge { mode: JudgeMode::Pairwise, .. }, Some(a)) => {
                // "ab" shows this answer first; "ba" second, so its preference flips.
                let ab = said(Part::Ab).map(judge::parse_pairwise);
                let ba = said(Part::Ba).map(|t| judge::parse_pairwise(t).map(|p| 1.0 - p));
                r.unparseable = [ab, ba].iter().filter(|v| matches!(v, Some(None))).count();
                r.score = mean(&[ab, ba].into_iter().flatten().flatten().collect::<Vec<_>>());
                let other = match self.against {
                    Some(ai) => self.ledgers.answer(0, ai, id),
                    None => item.reference.as_deref(),
                };
                r.length_delta = other.map(|o| a.chars().count() as f64 - o.chars().count() as f64);
            }
            (Scoring::Judge { mode: JudgeMode::Grade, .. }, _) if item.turn_count() > 1 => {
                // Each turn by its own verdict; a turn that failed, and every turn after it
                // (never asked), gets the lowest grade.
                let mut answered = true;
                for t in 0..item.turn_count() {
                    answered = answered && self.ledgers.answer(t, ei, id).is_some();
                    let grade = match said(Part::Turn(t + 1)) {
                        _ if !answered => Some(1.0),
                        Some(text) => {
                            let g = judge::parse_grade(text);
                            r.unparseable += usize::from(g.is_none());
                            g
                        }
                        None => None,
                    };
                    r.skills.push(grade);
                }
                r.score = mean(&r.skills.iter().flatten().copied().collect::<Vec<_>>());
            }
            (Scoring::Judge { mode: JudgeMode::Grade, .. }, None) => r.score = Some(1.0),
            (Scoring::Judge { mode: JudgeMode::Grade, .. }, Some(_)) => {
                let g = said(Part::Whole).map(judge::parse_grade);
                r.unparseable = usize::from(matches!(g, Some(None)));
                r.score = g.flatten();
            }
            (Scoring::Judge { mode: JudgeMode::Rubric, skills, .. }, None) => {
                r.skills = vec![Some(1.0); skills.len()];
                r.score = Some(1.0);
            }
            (Scoring::Judge { mode: JudgeMode::Rubric, skills, .. }, Some(_)) => {
                if let Some(t) = said(Part::Whole) {
                    r.skills = judge::parse_rubric(t, skills);
                    r.unparseable = r.skills.iter().filter(|s| s.is_none()).count();
                    r.score = mean(&r.skills.iter().flatten().copied().collect::<Vec<_>>());
                }
            }
        }
        Ok(r)
    }
}

/// The mean of `values`; `None` for none.
fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::super::ledger::Ledger;
    use super::super::tests::judge as judged;
    use super::*;

    fn keyed(json: &str) -> Keyed {
        let item = Item::parse(json).expect("as written");
        (item.id.as_ref().expect("as written").to_string(), item)
    }

    fn line(id: &str, answer: Option<&str>, tokens: u64, cost: Option<f64>) -> ResultLine {
        let answer = answer.map_or(r#""error":"boom""#.to_owned(), |a| format!("\"answer\":{}", Value::from(a)));
        let cost = cost.map_or("null".to_owned(), |c| c.to_string());
        serde_json::from_str(&format!(
            r#"{{"id":{id},{answer},"usage":{{"input_tokens":{tokens},"output_tokens":0}},"cost":{cost},"timings":{{"wall_ms":100.0,"ttft_ms":10.0}}}}"#
        ))
        .expect("as written")
    }

    fn ledgers(turns: Vec<Vec<Vec<ResultLine>>>) -> Ledgers {
        Ledgers::from_turns(turns.into_iter().map(|t| t.into_iter().map(Ledger::from_iter).collect()).collect())
    }

    #[test]
    fn rule_scoring_scores_answers_and_a_failed_or_missing_run_is_wrong() {
        let items = vec![
            keyed(r#"{"id":"a","prompt":"2+2?","answer":"4"}"#),
            keyed(r#"{"id":"b","prompt":"3+3?","answer":"6"}"#),
            keyed(r#"{"id":"c","prompt":"1+1?","answer":"2"}"#),
        ];
        let l = ledgers(vec![vec![vec![line("\"a\"", Some("It is 4"), 5, Some(0.1)), line("\"b\"", None, 3, None)]]]);
        let scoring = Scoring::Rule(moa_core::eval::Scorer::Exact);
        let s = Scorer { scoring: &scoring, items: &items, ledgers: &l, against: None };
        let r = s.entrant(0, "r", &Verdicts::default()).expect("as written");
        assert_eq!(r.iter().map(|r| r.score).collect::<Vec<_>>(), [Some(1.0), Some(0.0), Some(0.0)]);
        assert_eq!((r[0].tokens, r[0].cost, r[0].ttft_ms, r[0].error.as_deref()), (5, Some(0.1), Some(10.0), None));
        assert_eq!(r[1].error.as_deref(), Some("boom"));
        assert_eq!(r[2].error.as_deref(), Some("not run"));
    }

    #[test]
    fn pairwise_flips_the_second_order_and_counts_unreadable_verdicts() {
        let items = vec![keyed(r#"{"id":"a","prompt":"p"}"#), keyed(r#"{"id":"b","prompt":"q"}"#)];
        let l = ledgers(vec![vec![
            vec![line("\"a\"", Some("longer answer"), 1, None), line("\"b\"", Some("x"), 1, None)],
            vec![line("\"a\"", Some("short"), 1, None), line("\"b\"", Some("y"), 1, None)],
        ]]);
        let scoring = judged(JudgeMode::Pairwise, Some("other"));
        let s = Scorer { scoring: &scoring, items: &items, ledgers: &l, against: Some(1) };
        // The judge preferred this answer shown first (A) and shown second (B): a win both
        // times. For b it preferred the other both times, but its second verdict is unreadable.
        let v: Verdicts = [
            (JudgeKey::new("\"a\"", Part::Ab), "[[A]]".to_owned()),
            (JudgeKey::new("\"a\"", Part::Ba), "[[B]]".to_owned()),
            (JudgeKey::new("\"b\"", Part::Ab), "[[B]]".to_owned()),
            (JudgeKey::new("\"b\"", Part::Ba), "no idea".to_owned()),
        ]
        .into_iter()
        .collect();
        let r = s.entrant(0, "r", &v).expect("as written");
        assert_eq!((r[0].score, r[0].unparseable, r[0].length_delta), (Some(1.0), 0, Some(8.0)));
        assert_eq!((r[1].score, r[1].unparseable), (Some(0.0), 1));
    }

    #[test]
    fn a_failed_turn_and_every_turn_after_it_get_the_lowest_grade() {
        let items = vec![keyed(r#"{"id":"a","turns":["one?","two?","three?"]}"#)];
        let l = ledgers(vec![
            vec![vec![line("\"a\"", Some("1"), 2, Some(0.5))]],
            vec![vec![line("\"a\"", None, 3, Some(0.25))]],
        ]);
        let scoring = judged(JudgeMode::Grade, None);
        let s = Scorer { scoring: &scoring, items: &items, ledgers: &l, against: None };
        let v: Verdicts = [(JudgeKey::new("\"a\"", Part::Turn(1)), "Rating: [[7]]".to_owned())].into_iter().collect();
        let r = s.entrant(0, "r", &v).expect("as written");
        assert_eq!(r[0].skills, [Some(7.0), Some(1.0), Some(1.0)]);
        assert_eq!(r[0].score, Some(3.0));
        assert_eq!((r[0].answer.as_deref(), r[0].tokens, r[0].cost), (None, 5, Some(0.75)));
    }
}
