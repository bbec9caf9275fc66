//! `moa eval`: every dataset item through every recipe, scored, summarized with intervals
//! and a paired test against the best single model, and reported as a table, JSON and a
//! self-contained HTML page.
//!
//! Runs are `moa batch` jobs (one output file per recipe under `DIR/runs/`, and per judged
//! recipe under `DIR/judge/`), so an evaluation is resumable and concurrent exactly like a
//! batch: a rerun skips what is answered, redoes what failed, and shares every provider's
//! concurrency cap across all recipes and the judge.

mod html;
mod jobs;
pub mod ledger;
pub mod plan;
mod report;
pub mod score;

pub use plan::{baselines, read_dataset};
pub use report::{scoring_words, table};

use crate::batch::BatchError;
use crate::transport::Transport;
use jobs::Job;
use ledger::{Ledger, Ledgers, Verdicts};
use moa_core::Recipe;
use moa_core::eval::judge::JudgeMode;
use moa_core::eval::{ItemResult, RecipeSummary, Scorer};
use plan::slug;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// An evaluation cannot run.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A dataset line is not an item.
    #[error("{path}:{line}: {reason}")]
    Dataset {
        /// The dataset.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A batch under the evaluation could not run.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The evaluation was asked for something it cannot do.
    #[error("{0}")]
    Usage(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io { path: path.display().to_string(), source }
}

/// A recipe under evaluation.
#[derive(Clone)]
pub struct Entrant {
    /// Its name in the report.
    pub name: String,
    /// The recipe.
    pub recipe: Recipe,
    /// Whether it is a single-model baseline.
    pub baseline: bool,
    /// Resolves its plugin strategies (relative to its recipe file's folder).
    pub resolver: Option<Arc<crate::plugin::HostResolver>>,
}

/// How answers are scored.
#[derive(Clone)]
pub enum Scoring {
    /// Against the item's `answer`, without an LLM.
    Rule(Scorer),
    /// By a judge recipe.
    Judge {
        /// The judge.
        recipe: Box<Recipe>,
        /// How it judges.
        mode: JudgeMode,
        /// A rubric's skills.
        skills: Vec<String>,
        /// Pairwise: the entrant compared with, or the item's `reference` when `None`.
        against: Option<String>,
    },
}

/// One evaluation.
pub struct Eval {
    /// The dataset (JSONL).
    pub dataset: PathBuf,
    /// The recipes, baselines included.
    pub entrants: Vec<Entrant>,
    /// How answers are scored.
    pub scoring: Scoring,
    /// Where everything goes.
    pub out: PathBuf,
    /// Items in flight at once, per recipe.
    pub concurrency: usize,
    /// Only the first N items.
    pub limit: Option<usize>,
    /// API keys by provider, for recipes and judge.
    pub keys: BTreeMap<String, String>,
    /// Seed for retry jitter.
    pub seed: u64,
    /// Makes each batch's progress callback, by its label (the command line's bars).
    pub progress: Option<crate::progress::ProgressFor>,
    /// Run one recipe at a time, so each one's wall time and time to first token are
    /// measured without the others competing for the same servers.
    pub sequential: bool,
}

/// What an evaluation found.
pub struct Report {
    /// Per item and recipe.
    pub results: Vec<ItemResult>,
    /// Per recipe.
    pub summary: Vec<RecipeSummary>,
    /// Runs that failed and will be redone by a rerun.
    pub failed_runs: usize,
}

/// Where an evaluation keeps its batches: `items.jsonl` (the first turn, every entrant's
/// input), `runs/` (each entrant's answers, turn by turn) and `judge/` (the judge's
/// verdicts on each entrant).
struct Folders {
    items: PathBuf,
    runs: PathBuf,
    judge: PathBuf,
}

impl Folders {
    fn new(out: &Path) -> Folders {
        Folders { items: out.join("items.jsonl"), runs: out.join("runs"), judge: out.join("judge") }
    }

    /// Entrant `name`'s input and output at turn `t` (0-based).
    fn turn(&self, name: &str, t: usize) -> (PathBuf, PathBuf) {
        let slug = slug(name);
        match t {
            0 => (self.items.clone(), self.runs.join(format!("{slug}.jsonl"))),
            t => (
                self.runs.join(format!("{slug}.t{}.in.jsonl", t + 1)),
                self.runs.join(format!("{slug}.t{}.jsonl", t + 1)),
            ),
        }
    }

    /// The judge's input and output for entrant `name`.
    fn judge(&self, name: &str) -> (PathBuf, PathBuf) {
        let slug = slug(name);
        (self.judge.join(format!("{slug}.in.jsonl")), self.judge.join(format!("{slug}.jsonl")))
    }
}

fn interrupted(cancel: &CancellationToken) -> Result<(), EvalError> {
    match cancel.is_cancelled() {
        true => Err(EvalError::Usage("interrupted; run the same command again to go on".into())),
        false => Ok(()),
    }
}

/// Runs the evaluation: every item through every entrant turn by turn, then the judge if
/// any (plan, then run), then the scores and the summary (score), then `results.jsonl`,
/// `summary.json` and `report.html` in `eval.out` (report).
pub async fn run(eval: Eval, transport: &Transport, cancel: CancellationToken) -> Result<Report, EvalError> {
    let items = read_dataset(&eval.dataset, eval.limit)?;
    plan::check(&items, &eval.scoring, &eval.entrants).map_err(EvalError::Usage)?;
    let dirs = Folders::new(&eval.out);
    std::fs::create_dir_all(&dirs.runs).map_err(io(&dirs.runs))?;
    let (answers, mut failed_runs) = answer(&eval, &items, &dirs, transport, &cancel).await?;
    let against = match &eval.scoring {
        Scoring::Judge { against: Some(a), .. } => eval.entrants.iter().position(|e| &e.name == a),
        _ => None,
    };
    let (verdicts, failed) = judge(&eval, &items, &answers, against, &dirs, transport, &cancel).await?;
    failed_runs += failed;

    let scorer = score::Scorer { scoring: &eval.scoring, items: &items, ledgers: &answers, against };
    let mut results = Vec::new();
    for (ei, e) in eval.entrants.iter().enumerate().filter(|(ei, _)| Some(*ei) != against) {
        // The yardstick of a pairwise comparison is not scored against itself.
        results.extend(scorer.entrant(ei, &e.name, &verdicts[ei]).map_err(EvalError::Usage)?);
    }
    let baselines: Vec<String> = eval.entrants.iter().filter(|e| e.baseline).map(|e| e.name.clone()).collect();
    let max_turns = plan::max_turns(&items);
    let skills = match &eval.scoring {
        Scoring::Judge { mode: JudgeMode::Rubric, skills, .. } => skills.clone(),
        // Multi-turn grades are reported per turn, in the per-skill slots.
        Scoring::Judge { mode: JudgeMode::Grade, .. } if max_turns > 1 => {
            (1..=max_turns).map(|t| format!("turn {t}")).collect()
        }
        _ => vec![],
    };
    let rule = matches!(eval.scoring, Scoring::Rule(_));
    let summary = moa_core::eval::summarize(&results, &baselines, &skills, rule);
    report::write(&eval.out, &eval.dataset, items.len(), &eval.scoring, &results, &summary)?;
    Ok(Report { results, summary, failed_runs })
}

/// Every entrant's answers, turn by turn: a later turn is asked after the entrant's own
/// earlier answers, so each entrant has its own input per turn. Returns them and how many
/// runs failed.
async fn answer(
    eval: &Eval,
    items: &[plan::Keyed],
    dirs: &Folders,
    transport: &Transport,
    cancel: &CancellationToken,
) -> Result<(Ledgers, usize), EvalError> {
    let mut ledgers = Ledgers::default();
    let mut failed = 0;
    for t in 0..plan::max_turns(items) {
        let mut jobs = Vec::new();
        for (ei, e) in eval.entrants.iter().enumerate() {
            let (input, output) = dirs.turn(&e.name, t);
            if t == 0 {
                if ei == 0 {
                    jobs::write_if_changed(&input, &plan::first_turn(items))?;
                }
            } else {
                jobs::write_if_changed(&input, &plan::later_turn(items, t, &ledgers, ei))?;
            }
            let label = if t == 0 { e.name.clone() } else { format!("{} (turn {})", e.name, t + 1) };
            jobs.push(Job { recipe: e.recipe.clone(), resolver: e.resolver.clone(), input, output, label });
        }
        failed += jobs::run_jobs(eval, jobs, transport, cancel).await?;
        interrupted(cancel)?;
        let turn = eval.entrants.iter().map(|e| Ledger::read(&dirs.turn(&e.name, t).1)).collect::<Result<_, _>>()?;
        ledgers.push(turn);
    }
    Ok((ledgers, failed))
}

/// The judge's verdicts on each entrant (none when scoring by rule), one batch per
/// entrant, concurrently; and how many of its calls failed.
async fn judge(
    eval: &Eval,
    items: &[plan::Keyed],
    answers: &Ledgers,
    against: Option<usize>,
    dirs: &Folders,
    transport: &Transport,
    cancel: &CancellationToken,
) -> Result<(Vec<Verdicts>, usize), EvalError> {
    let mut verdicts: Vec<Verdicts> = eval.entrants.iter().map(|_| Verdicts::default()).collect();
    let Scoring::Judge { recipe, .. } = &eval.scoring else { return Ok((verdicts, 0)) };
    std::fs::create_dir_all(&dirs.judge).map_err(io(&dirs.judge))?;
    let mut jobs = Vec::new();
    for (ei, e) in eval.entrants.iter().enumerate().filter(|(ei, _)| Some(*ei) != against) {
        let (input, output) = dirs.judge(&e.name);
        let requests = plan::judge_requests(items, &eval.scoring, answers, ei, against);
        jobs::write_if_changed(&input, &plan::judge_input(&requests))?;
        let label = format!("judge: {}", e.name);
        jobs.push(Job { recipe: recipe.as_ref().clone(), resolver: None, input, output, label });
    }
    let failed = jobs::run_jobs(eval, jobs, transport, cancel).await?;
    interrupted(cancel)?;
    for (ei, e) in eval.entrants.iter().enumerate().filter(|(ei, _)| Some(*ei) != against) {
        verdicts[ei] = Verdicts::of(Ledger::read(&dirs.judge(&e.name).1)?);
    }
    Ok((verdicts, failed))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A judged scoring (the judge recipe is never run by the pure parts).
    pub(crate) fn judge(mode: JudgeMode, against: Option<&str>) -> Scoring {
        let recipe = moa_core::recipe::preset("moa-lite").expect("a preset");
        Scoring::Judge { recipe: Box::new(recipe), mode, skills: vec![], against: against.map(str::to_owned) }
    }
}
