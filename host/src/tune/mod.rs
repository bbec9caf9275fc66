//! `moa tune`: which mixture of a pool of models is best on a dataset, under budgets.
//!
//! Plan → run → report. [`plan`] lists the candidates (each model alone, Self-MoA, the
//! pool as a mixture under each aggregator, one and two layers) and the successive-halving
//! schedule; each round is one `moa eval` over the first items (the single models run in
//! every round, so every candidate is compared item by item with its best member); the
//! better half within budget goes on to twice the items; the last round runs them all.
//! The evaluations live in `DIR/eval/` as resumable batches, so a rerun of the same
//! command goes on where it stopped and decides the same way. `DIR/pareto.json` holds
//! every candidate's last measurement and `DIR/best.toml` the best recipe within budget.

pub mod plan;

use crate::eval::{self, Entrant, Eval, EvalError, Scoring};
use crate::transport::Transport;
use moa_core::Recipe;
use moa_core::eval::{RecipeSummary, Scorer};
use plan::{Budgets, Candidate, Measured, Space};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// Why a search cannot run or ended without a recipe.
#[derive(Debug, Error)]
pub enum TuneError {
    /// A pool model the base recipe cannot reach, or another bad argument.
    #[error("{0}")]
    Usage(String),
    /// An evaluation round failed.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// Runs failed in a round: deciding on them would drop candidates for a fault, not
    /// their answers.
    #[error(
        "{0} runs failed in round {1} (scored as wrong, they would decide the search); rerun the same command to retry them"
    )]
    Failed(usize, usize),
    /// No candidate meets the budgets.
    #[error("no candidate meets the budgets; the cheapest were:\n{0}")]
    OverBudget(String),
    /// A file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Told after each round: its number (1-based), its items, and the contenders kept.
pub type OnRound = Box<dyn Fn(usize, usize, &[String]) + Send + Sync>;

/// One search.
pub struct Tune {
    /// The dataset (JSONL, with answers).
    pub dataset: PathBuf,
    /// Providers, defaults and policy for every candidate.
    pub base: Recipe,
    /// What to try.
    pub space: Space,
    /// How answers are scored.
    pub scorer: Scorer,
    /// What the chosen recipe must meet.
    pub budgets: Budgets,
    /// Fewest items in a round.
    pub min_items: usize,
    /// Only the first N items.
    pub limit: Option<usize>,
    /// Where everything goes.
    pub out: PathBuf,
    /// Items in flight per candidate.
    pub concurrency: usize,
    /// API keys by provider.
    pub keys: BTreeMap<String, String>,
    /// Makes each evaluation batch's progress callback, by its label.
    pub progress: Option<crate::progress::ProgressFor>,
    /// Told after each round: its number, items, and the contenders kept.
    pub on_round: OnRound,
}

/// One candidate in `pareto.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// One model alone (a member).
    pub alone: bool,
    /// Items it was last measured on.
    pub items: usize,
    /// The last round it ran in (1-based).
    pub round: usize,
    /// Mean score with its 95% interval.
    pub score: Option<moa_core::eval::Estimate>,
    /// Its paired comparison with the best single model on the same items.
    pub vs_best_member: Option<(String, moa_core::eval::Paired)>,
    /// Mean tokens per item.
    pub tokens_per_item: f64,
    /// Dollars per item, when priced.
    pub cost_per_item: Option<f64>,
    /// Median and p95 time to first token.
    pub ttft_ms: Option<(f64, f64)>,
    /// Mean calls per item.
    pub calls_per_item: f64,
    /// The budgets it breaks.
    pub over_budget: Vec<String>,
    /// On the Pareto front of score against tokens per item (among the final round's).
    pub pareto: bool,
}

/// What a search found.
pub struct Found {
    /// Every candidate's last measurement.
    pub entries: Vec<Entry>,
    /// The chosen candidate's name.
    pub best: String,
    /// Its recipe.
    pub recipe: Recipe,
    /// Items run per round.
    pub schedule: Vec<usize>,
}

fn measured(s: &RecipeSummary) -> Measured {
    Measured {
        name: s.recipe.clone(),
        score: s.score.as_ref().map_or(0.0, |e| e.mean),
        tokens: s.tokens_mean,
        ttft_ms: s.ttft_ms.map(|(median, _)| median),
        cost: s.cost.map(|c| c / s.items.max(1) as f64),
    }
}

/// Checks the pool against the base recipe: every model's provider must be one of its.
pub fn check_pool(base: &Recipe, pool: &[String]) -> Result<(), TuneError> {
    if pool.is_empty() {
        return Err(TuneError::Usage("give at least one --pool PROVIDER:MODEL".into()));
    }
    for (i, m) in pool.iter().enumerate() {
        let Some((provider, _)) = m.split_once(':').filter(|(p, m)| !p.is_empty() && !m.is_empty()) else {
            return Err(TuneError::Usage(format!("--pool {m}: expected PROVIDER:MODEL")));
        };
        if !base.providers.contains_key(provider) {
            let known: Vec<&str> = base.providers.keys().map(String::as_str).collect();
            return Err(TuneError::Usage(format!(
                "--pool {m}: the base recipe {:?} has no provider {provider:?} (it has: {}); add it to the base recipe",
                base.name,
                known.join(", ")
            )));
        }
        if pool[..i].contains(m) {
            return Err(TuneError::Usage(format!("--pool {m} is given twice")));
        }
    }
    Ok(())
}

/// Runs the search: rounds of evaluation, then `pareto.json` and `best.toml` in `out`.
pub async fn run(t: Tune, transport: &Transport, cancel: CancellationToken) -> Result<Found, TuneError> {
    check_pool(&t.base, &t.space.pool)?;
    let items = eval::read_dataset(&t.dataset, t.limit)?.len();
    let all = plan::candidates(&t.space);
    let recipes: BTreeMap<String, Recipe> = all.iter().map(|c| (c.name.clone(), plan::recipe(c, &t.base))).collect();
    let members: Vec<&Candidate> = all.iter().filter(|c| c.alone()).collect();
    let mut contenders: Vec<String> = all.iter().filter(|c| !c.alone()).map(|c| c.name.clone()).collect();
    let schedule = plan::schedule(items, contenders.len(), t.min_items);
    // A best.toml from an earlier search must not outlive this one's verdict.
    let best_path = t.out.join("best.toml");
    if best_path.exists() {
        std::fs::remove_file(&best_path)
            .map_err(|source| TuneError::Io { path: best_path.display().to_string(), source })?;
    }
    let mut last: BTreeMap<String, (usize, RecipeSummary)> = BTreeMap::new();
    for (round, &n) in schedule.iter().enumerate() {
        let report = evaluate(&t, &members, &contenders, &recipes, n, transport, &cancel).await?;
        if report.failed_runs > 0 {
            return Err(TuneError::Failed(report.failed_runs, round + 1));
        }
        for s in &report.summary {
            last.insert(s.recipe.clone(), (round + 1, s.clone()));
        }
        let ms: Vec<Measured> =
            report.summary.iter().filter(|s| contenders.contains(&s.recipe)).map(measured).collect();
        if round + 1 < schedule.len() {
            // Time to first token is measured with the round's candidates running together:
            // an early, crowded round would drop candidates for the crowd, so only the last
            // round's TTFT counts against the budget.
            let early = Budgets { ttft_ms: None, ..t.budgets };
            contenders = plan::survivors(&ms, &early);
        }
        (t.on_round)(round + 1, n, &contenders);
    }
    let finals = schedule.len();
    let final_ms: Vec<Measured> = last.values().filter(|(r, _)| *r == finals).map(|(_, s)| measured(s)).collect();
    let entries = entries(&all, &last, &final_ms, &t.budgets);
    write(&t.out.join("pareto.json"), &serde_json::to_string_pretty(&entries).unwrap_or_default())?;
    let Some(best) = plan::best(&final_ms, &t.budgets) else {
        let every: Vec<Measured> = last.values().map(|(_, s)| measured(s)).collect();
        let lines: Vec<String> = plan::cheapest(&every, 5)
            .iter()
            .map(|m| {
                format!(
                    "  {}: {:.0} tokens per item, score {:.3} ({})",
                    m.name,
                    m.tokens,
                    m.score,
                    t.budgets.broken(m).join("; ")
                )
            })
            .collect();
        return Err(TuneError::OverBudget(lines.join("\n")));
    };
    let recipe = recipes[&best.name].clone();
    write(&best_path, &recipe.to_toml())?;
    Ok(Found { entries, best: best.name.clone(), recipe, schedule })
}

/// One round: the members (baselines) and the contenders on the first `n` items.
async fn evaluate(
    t: &Tune,
    members: &[&Candidate],
    contenders: &[String],
    recipes: &BTreeMap<String, Recipe>,
    n: usize,
    transport: &Transport,
    cancel: &CancellationToken,
) -> Result<eval::Report, TuneError> {
    let entrant = |name: &str, baseline: bool| Entrant {
        name: name.to_owned(),
        recipe: recipes[name].clone(),
        baseline,
        resolver: None,
    };
    let mut entrants: Vec<Entrant> = members.iter().map(|c| entrant(&c.name, true)).collect();
    entrants.extend(contenders.iter().map(|name| entrant(name, false)));
    let eval = Eval {
        dataset: t.dataset.clone(),
        entrants,
        scoring: Scoring::Rule(t.scorer),
        out: t.out.join("eval"),
        concurrency: t.concurrency,
        limit: Some(n),
        keys: t.keys.clone(),
        seed: 0,
        progress: t.progress.clone(),
        sequential: false,
    };
    Ok(eval::run(eval, transport, cancel.clone()).await?)
}

fn entries(
    all: &[Candidate],
    last: &BTreeMap<String, (usize, RecipeSummary)>,
    finals: &[Measured],
    budgets: &Budgets,
) -> Vec<Entry> {
    let points: Vec<(f64, f64)> = finals.iter().map(|m| (m.score, m.tokens)).collect();
    let front = moa_core::eval::pareto(&points);
    all.iter()
        .filter_map(|c| {
            let (round, s) = last.get(&c.name)?;
            let m = measured(s);
            Some(Entry {
                name: c.name.clone(),
                alone: c.alone(),
                items: s.items,
                round: *round,
                score: s.score.clone(),
                vs_best_member: s.vs_best_baseline.clone(),
                tokens_per_item: s.tokens_mean,
                cost_per_item: m.cost,
                ttft_ms: s.ttft_ms,
                calls_per_item: s.calls_mean,
                over_budget: budgets.broken(&m),
                pareto: finals.iter().position(|f| f.name == c.name).is_some_and(|i| front[i]),
            })
        })
        .collect()
}

fn write(path: &std::path::Path, text: &str) -> Result<(), TuneError> {
    std::fs::write(path, text).map_err(|source| TuneError::Io { path: path.display().to_string(), source })
}
