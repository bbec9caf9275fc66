//! The evaluation's batch outputs, read back as typed result lines: every entrant's
//! answers turn by turn, and the judge's verdicts by key.

use super::plan::JudgeKey;
use super::{EvalError, io};
use crate::batch::ResultLine;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// One batch's lines by item id (canonical JSON text); the last line for an id wins.
pub type Answers = HashMap<String, ResultLine>;

/// A line's id as canonical JSON text, the form the dataset's ids take.
fn canonical(line: &ResultLine) -> String {
    serde_json::from_str::<Value>(line.id.get()).map_or_else(|_| line.id.get().to_owned(), |v| v.to_string())
}

impl FromIterator<ResultLine> for Ledger {
    fn from_iter<I: IntoIterator<Item = ResultLine>>(lines: I) -> Ledger {
        Ledger(lines.into_iter().map(|l| (canonical(&l), l)).collect())
    }
}

/// One batch's output.
#[derive(Default)]
pub struct Ledger(pub Answers);

impl Ledger {
    /// Reads a batch's output; an absent file is an empty ledger. A line cut short by a
    /// kill is not there: the batch repaired its output before it ran.
    pub fn read(path: &Path) -> Result<Ledger, EvalError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::default()),
            Err(e) => return Err(io(path)(e)),
        };
        let mut lines = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let line: ResultLine = serde_json::from_str(line).map_err(|e| {
                EvalError::Batch(crate::batch::BatchError::Output {
                    path: path.display().to_string(),
                    line: n + 1,
                    reason: e.to_string(),
                })
            })?;
            lines.push(line);
        }
        Ok(lines.into_iter().collect())
    }

    /// The line of item `id`.
    pub fn get(&self, id: &str) -> Option<&ResultLine> {
        self.0.get(id)
    }
}

/// Every entrant's answers, turn by turn: `turns[t][entrant]`.
#[derive(Default)]
pub struct Ledgers {
    turns: Vec<Vec<Ledger>>,
}

impl Ledgers {
    /// Ledgers of the given turns.
    pub fn from_turns(turns: Vec<Vec<Ledger>>) -> Ledgers {
        Ledgers { turns }
    }

    /// Adds the next turn's ledgers, one per entrant.
    pub fn push(&mut self, turn: Vec<Ledger>) {
        self.turns.push(turn);
    }

    /// Entrant `ei`'s line for item `id` at turn `t` (0-based).
    pub fn line(&self, t: usize, ei: usize, id: &str) -> Option<&ResultLine> {
        self.turns.get(t)?.get(ei)?.get(id)
    }

    /// Entrant `ei`'s answer to item `id` at turn `t`, when it answered.
    pub fn answer(&self, t: usize, ei: usize, id: &str) -> Option<&str> {
        self.line(t, ei, id)?.answer.as_deref()
    }
}

/// A judge's verdicts for one entrant: what it answered, by key. Lines whose id this
/// evaluation did not write, and failed calls, are not verdicts.
#[derive(Default)]
pub struct Verdicts(HashMap<JudgeKey, String>);

impl Verdicts {
    /// The verdicts in a judge batch's output.
    pub fn of(ledger: Ledger) -> Verdicts {
        let said = ledger.0.into_values().filter_map(|line| {
            let key = JudgeKey::parse(&serde_json::from_str::<String>(line.id.get()).ok()?)?;
            Some((key, line.answer?))
        });
        Verdicts(said.collect())
    }

    /// What the judge said under `key`.
    pub fn said(&self, key: &JudgeKey) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl FromIterator<(JudgeKey, String)> for Verdicts {
    fn from_iter<I: IntoIterator<Item = (JudgeKey, String)>>(said: I) -> Verdicts {
        Verdicts(said.into_iter().collect())
    }
}
