//! `moa eval`: every dataset item through every recipe, scored, summarized with intervals
//! and a paired test against the best single model, and reported as a table, JSON and a
//! self-contained HTML page.
//!
//! Runs are `moa batch` jobs (one output file per recipe under `DIR/runs/`, and per judged
//! recipe under `DIR/judge/`), so an evaluation is resumable and concurrent exactly like a
//! batch: a rerun skips what is answered, redoes what failed, and shares every provider's
//! concurrency cap across all recipes and the judge.

use crate::batch::{self, Batch, BatchError};
use crate::transport::Transport;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use moa_core::eval::judge::{self, JudgeMode};
use moa_core::eval::{Item, ItemResult, RecipeSummary, Scorer};
use moa_core::{Message, Recipe};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
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
    /// Progress bars on stderr.
    pub progress: bool,
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

/// The single-model baselines of `recipes`: each distinct proposer model alone, as a
/// recipe of one call (no layers: the model answers the conversation itself), with its
/// recipe's providers, defaults and policy.
pub fn baselines(recipes: &[Entrant]) -> Vec<Entrant> {
    let mut out: Vec<Entrant> = Vec::new();
    for e in recipes {
        for agent in e.recipe.layers.iter().flat_map(|l| &l.agents) {
            let name = format!("{} alone", agent.model);
            if out.iter().any(|b| b.name == name) {
                continue;
            }
            let mut spec = json!({ "model": agent.model });
            if let Some(t) = agent.temperature {
                spec["temperature"] = json!(t);
            }
            if let Some(n) = agent.max_tokens {
                spec["max_tokens"] = json!(n);
            }
            if let Some(s) = &agent.system {
                spec["system"] = json!(s);
            }
            let Ok(aggregator) = serde_json::from_value(spec) else { continue };
            let mut recipe = e.recipe.clone();
            recipe.name = name.clone();
            recipe.description = format!("{} alone, one call", agent.model);
            recipe.layers = vec![];
            recipe.aggregator = aggregator;
            out.push(Entrant { name, recipe, baseline: true, resolver: None });
        }
    }
    out
}

/// A name as a file name: letters, digits, `.`, `_` and `-`.
fn slug(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect()
}

/// Reads the dataset: each non-blank line an item; ids are the item's own or the line
/// number, and must be unique.
pub fn read_dataset(path: &Path, limit: Option<usize>) -> Result<Vec<(String, Item)>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut items: Vec<(String, Item)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
        let bad = |reason: String| EvalError::Dataset { path: path.display().to_string(), line: n, reason };
        let item = Item::parse(line).map_err(bad)?;
        let id = item.id.as_ref().map_or_else(|| n.to_string(), Value::to_string);
        if let Some(first) = seen.insert(id.clone(), n) {
            return Err(bad(format!("id {id} already used on line {first}")));
        }
        items.push((id, item));
    }
    if items.is_empty() {
        return Err(EvalError::Usage(format!("{}: no items", path.display())));
    }
    Ok(items)
}

/// Writes `lines` to `path` unless it already holds exactly them (a rerun keeps the file
/// its batches have read).
fn write_if_changed(path: &Path, lines: &[String]) -> Result<(), EvalError> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(path, text).map_err(io(path))?;
    }
    Ok(())
}

/// A batch's finished lines by id (the last line for an id wins).
fn read_lines(path: &Path) -> Result<HashMap<String, Value>, EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| io(path)(std::io::Error::other(e)))?;
        if let Some(id) = v.get("id") {
            out.insert(id.to_string(), v);
        }
    }
    Ok(out)
}

/// One batch job of the evaluation.
struct Job {
    recipe: Recipe,
    resolver: Option<Arc<crate::plugin::HostResolver>>,
    input: PathBuf,
    output: PathBuf,
    label: String,
}

async fn run_jobs(
    eval: &Eval,
    jobs: Vec<Job>,
    transport: &Transport,
    cancel: &CancellationToken,
) -> Result<usize, EvalError> {
    let bars = MultiProgress::with_draw_target(if eval.progress && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut running = Vec::new();
    for job in jobs {
        let bar = bars.add(ProgressBar::new(0));
        if let Ok(style) = ProgressStyle::with_template("{prefix:30!} {bar:25} {pos}/{len}  eta {eta}  {msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(job.label.clone());
        let b = Batch {
            recipe: job.recipe,
            resolver: job.resolver,
            keys: eval.keys.clone(),
            input: job.input,
            output: job.output,
            concurrency: eval.concurrency,
            proposals: true,
            seed: eval.seed,
            progress: eval.progress,
            bar: Some(bar),
            select: Default::default(),
        };
        running.push(batch::run(b, transport, cancel.clone()));
    }
    let mut failed = 0;
    if eval.sequential {
        for job in running {
            failed += job.await?.failed;
        }
    } else {
        for r in futures_util::future::join_all(running).await {
            failed += r?.failed;
        }
    }
    Ok(failed)
}

/// Time to first token of a result line written before lines carried the run's own
/// (`timings.ttft_ms`, [`moa_core::Outcome::ttft_ms`]): estimated from its aggregator's calls.
fn legacy_ttft(line: &Value, layers: &[Value], wall: f64) -> Option<f64> {
    let agg_calls: Vec<Value> = layers
        .iter()
        .find(|l| l["aggregator"] == true)
        .and_then(|l| l["calls"].as_array().cloned())
        .unwrap_or_default();
    let first_token = agg_calls
        .iter()
        .filter_map(|c| Some(c["started_ms"].as_f64()? + c["ttft_ms"].as_f64()?))
        .min_by(f64::total_cmp);
    match agg_calls.first() {
        Some(_) if first_token.is_some() => first_token,
        Some(c) => match (c["latency_ms"].as_f64(), c["ttft_ms"].as_f64()) {
            (Some(lat), Some(ttft)) => Some((wall - lat + ttft).max(0.0)),
            _ => None,
        },
        None if line.get("answer").is_some_and(Value::is_string) => Some(wall),
        None => None,
    }
}

/// Accounts of one run's result line: tokens, cost, wall, time to first token, calls.
fn accounts(line: &Value) -> (u64, Option<f64>, f64, Option<f64>, usize) {
    let usage = &line["usage"];
    let tokens = usage["input_tokens"].as_u64().unwrap_or(0) + usage["output_tokens"].as_u64().unwrap_or(0);
    let wall = line["timings"]["wall_ms"].as_f64().unwrap_or(0.0);
    let layers = line["layers"].as_array().cloned().unwrap_or_default();
    let calls = layers.iter().map(|l| l["calls"].as_array().map_or(0, Vec::len)).sum();
    let ttft = line["timings"]["ttft_ms"].as_f64().or_else(|| legacy_ttft(line, &layers, wall));
    (tokens, line["cost"].as_f64(), wall, ttft, calls)
}

/// Runs the evaluation: every item through every entrant, then the judge if any, then the
/// summary, `results.jsonl`, `summary.json` and `report.html` in `eval.out`.
pub async fn run(eval: Eval, transport: &Transport, cancel: CancellationToken) -> Result<Report, EvalError> {
    let items = read_dataset(&eval.dataset, eval.limit)?;
    let rule = match &eval.scoring {
        Scoring::Rule(s) => Some(*s),
        Scoring::Judge { .. } => None,
    };
    let max_turns = items.iter().map(|(_, i)| i.turn_count()).max().unwrap_or(1);
    if max_turns > 1 && !matches!(&eval.scoring, Scoring::Judge { mode: JudgeMode::Grade, .. }) {
        return Err(EvalError::Usage(
            "items with \"turns\" are judged turn by turn, MT-Bench style: use --scorer judge --judge-mode grade"
                .into(),
        ));
    }
    for (id, item) in &items {
        let need_answer = rule.is_some();
        let need_reference = matches!(&eval.scoring, Scoring::Judge { mode: JudgeMode::Pairwise, against: None, .. });
        if need_answer && item.answer.is_none() {
            return Err(EvalError::Usage(format!("item {id} has no \"answer\" to score against")));
        }
        if need_reference && item.reference.is_none() {
            return Err(EvalError::Usage(format!(
                "item {id} has no \"reference\" to judge against (or pass --against RECIPE)"
            )));
        }
    }
    if let Scoring::Judge { against: Some(a), .. } = &eval.scoring
        && !eval.entrants.iter().any(|e| &e.name == a)
    {
        return Err(EvalError::Usage(format!("--against {a}: no such recipe in this evaluation")));
    }
    let runs = eval.out.join("runs");
    std::fs::create_dir_all(&runs).map_err(io(&runs))?;
    let input = eval.out.join("items.jsonl");
    let lines: Vec<String> = items
        .iter()
        .map(|(id, item)| {
            json!({ "id": serde_json::from_str::<Value>(id).unwrap_or(Value::Null), "messages": item.conversation() })
                .to_string()
        })
        .collect();
    write_if_changed(&input, &lines)?;
    let jobs = eval
        .entrants
        .iter()
        .map(|e| Job {
            recipe: e.recipe.clone(),
            resolver: e.resolver.clone(),
            input: input.clone(),
            output: runs.join(format!("{}.jsonl", slug(&e.name))),
            label: e.name.clone(),
        })
        .collect();
    let mut failed_runs = run_jobs(&eval, jobs, transport, &cancel).await?;
    if cancel.is_cancelled() {
        return Err(EvalError::Usage("interrupted; run the same command again to go on".into()));
    }
    let mut answers: Vec<HashMap<String, Value>> = Vec::new();
    for e in &eval.entrants {
        answers.push(read_lines(&runs.join(format!("{}.jsonl", slug(&e.name))))?);
    }
    // Later turns (MT-Bench style): each asked after the recipe's own earlier answers, so
    // every recipe has its own input per turn. `turns[t][entrant]` holds turn t's lines.
    let mut turns: Vec<Vec<HashMap<String, Value>>> = vec![answers.clone()];
    for t in 1..max_turns {
        let mut jobs = Vec::new();
        for (ei, e) in eval.entrants.iter().enumerate() {
            let mut lines = Vec::new();
            for (id, item) in items.iter().filter(|(_, i)| i.turn_count() > t) {
                let before: Option<Vec<String>> = (0..t)
                    .map(|k| turns[k][ei].get(id).and_then(|l| l["answer"].as_str()).map(str::to_owned))
                    .collect();
                // A turn whose earlier turn failed is not asked: it scores the lowest grade.
                let Some(before) = before else { continue };
                let id_value = serde_json::from_str::<Value>(id).unwrap_or(Value::Null);
                lines.push(json!({ "id": id_value, "messages": item.conversation_at(t, &before) }).to_string());
            }
            let input = runs.join(format!("{}.t{}.in.jsonl", slug(&e.name), t + 1));
            write_if_changed(&input, &lines)?;
            jobs.push(Job {
                recipe: e.recipe.clone(),
                resolver: e.resolver.clone(),
                input,
                output: runs.join(format!("{}.t{}.jsonl", slug(&e.name), t + 1)),
                label: format!("{} (turn {})", e.name, t + 1),
            });
        }
        failed_runs += run_jobs(&eval, jobs, transport, &cancel).await?;
        if cancel.is_cancelled() {
            return Err(EvalError::Usage("interrupted; run the same command again to go on".into()));
        }
        let mut this = Vec::new();
        for e in &eval.entrants {
            this.push(read_lines(&runs.join(format!("{}.t{}.jsonl", slug(&e.name), t + 1)))?);
        }
        turns.push(this);
    }
    let turn_answer =
        |t: usize, ei: usize, id: &str| turns[t][ei].get(id).and_then(|l| l["answer"].as_str()).map(str::to_owned);
    let answer_of = |ei: usize, id: &str| turn_answer(0, ei, id);

    // Judge, when asked: one batch per entrant, concurrently.
    let mut verdicts: Vec<HashMap<String, Value>> = vec![HashMap::new(); eval.entrants.len()];
    if let Scoring::Judge { recipe, mode, skills, against } = &eval.scoring {
        let dir = eval.out.join("judge");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let against_ix = against.as_ref().and_then(|a| eval.entrants.iter().position(|e| &e.name == a));
        let mut jobs = Vec::new();
        for (ei, e) in eval.entrants.iter().enumerate() {
            if Some(ei) == against_ix {
                continue;
            }
            let mut lines = Vec::new();
            for (id, item) in &items {
                let Some(answer) = answer_of(ei, id) else { continue };
                let conv = item.conversation();
                let reference = item.reference.as_deref().or(item.answer.as_deref());
                let mut push = |key: String, messages: Vec<Message>| {
                    lines.push(json!({ "id": key, "messages": messages }).to_string());
                };
                match mode {
                    JudgeMode::Pairwise => {
                        let other = match against_ix {
                            Some(ai) => answer_of(ai, id),
                            None => item.reference.clone(),
                        };
                        let Some(other) = other else { continue };
                        push(format!("{id}|ab"), judge::pairwise_prompt(&conv, &answer, &other));
                        push(format!("{id}|ba"), judge::pairwise_prompt(&conv, &other, &answer));
                    }
                    JudgeMode::Grade if item.turn_count() > 1 => {
                        // Each turn graded in its own conversation, as the model had it.
                        let mut before = Vec::new();
                        for t in 0..item.turn_count() {
                            let Some(a) = turn_answer(t, ei, id) else { break };
                            let conv = item.conversation_at(t, &before);
                            push(format!("{id}|t{}", t + 1), judge::grade_prompt(&conv, &a, None));
                            before.push(a);
                        }
                    }
                    JudgeMode::Grade => push(id.clone(), judge::grade_prompt(&conv, &answer, reference)),
                    JudgeMode::Rubric => push(id.clone(), judge::rubric_prompt(&conv, &answer, reference, skills)),
                }
            }
            let input = dir.join(format!("{}.in.jsonl", slug(&e.name)));
            write_if_changed(&input, &lines)?;
            jobs.push(Job {
                recipe: recipe.as_ref().clone(),
                resolver: None,
                input,
                output: dir.join(format!("{}.jsonl", slug(&e.name))),
                label: format!("judge: {}", e.name),
            });
        }
        failed_runs += run_jobs(&eval, jobs, transport, &cancel).await?;
        if cancel.is_cancelled() {
            return Err(EvalError::Usage("interrupted; run the same command again to go on".into()));
        }
        for (ei, e) in eval.entrants.iter().enumerate() {
            if Some(ei) != against_ix {
                verdicts[ei] = read_lines(&dir.join(format!("{}.jsonl", slug(&e.name))))?;
            }
        }
    }

    let mut results = Vec::new();
    for (ei, e) in eval.entrants.iter().enumerate() {
        if let Scoring::Judge { against: Some(a), .. } = &eval.scoring
            && a == &e.name
        {
            continue; // the yardstick is not scored against itself
        }
        for (id, item) in &items {
            let line = answers[ei].get(id).cloned().unwrap_or(Value::Null);
            let (mut tokens, mut cost, mut wall_ms, ttft_ms, mut calls) = accounts(&line);
            let mut answer = line["answer"].as_str().map(str::to_owned);
            for later in turns.iter().take(item.turn_count()).skip(1) {
                match later[ei].get(id) {
                    Some(l) => {
                        let (t, c, w, _, n) = accounts(l);
                        (tokens, wall_ms, calls) = (tokens + t, wall_ms + w, calls + n);
                        cost = cost.zip(c).map(|(a, b)| a + b);
                        answer = answer.and(l["answer"].as_str().map(str::to_owned));
                    }
                    None => answer = None,
                }
            }
            let mut r = ItemResult {
                recipe: e.name.clone(),
                id: serde_json::from_str(id).unwrap_or_else(|_| Value::String(id.clone())),
                answer: answer.clone(),
                error: line["error"].as_str().map(str::to_owned).or_else(|| line.is_null().then(|| "not run".into())),
                tokens,
                cost,
                wall_ms,
                ttft_ms,
                calls,
                ..ItemResult::default()
            };
            // What the judge said of key (`id`, `id|ab`, `id|t2`, ...).
            let said = |key: &str| {
                verdicts[ei]
                    .get(&Value::String(key.to_owned()).to_string())
                    .and_then(|l| l["answer"].as_str())
                    .map(str::to_owned)
            };
            match (&eval.scoring, &answer) {
                // A run that failed gets the lowest score: no answer is a wrong answer.
                (Scoring::Rule(_), None) => r.score = Some(0.0),
                (Scoring::Judge { mode: JudgeMode::Pairwise, .. }, None) => r.score = Some(0.0),
                (Scoring::Judge { mode: JudgeMode::Grade, .. }, _) if item.turn_count() > 1 => {
                    // Each turn by its own verdict; a turn that failed, and every turn after
                    // it (never asked), gets the lowest grade.
                    let mut answered = true;
                    for t in 0..item.turn_count() {
                        answered = answered && turn_answer(t, ei, id).is_some();
                        let grade = match said(&format!("{id}|t{}", t + 1)) {
                            _ if !answered => Some(1.0),
                            Some(text) => {
                                let g = judge::parse_grade(&text);
                                r.unparseable += usize::from(g.is_none());
                                g
                            }
                            None => None,
                        };
                        r.skills.push(grade);
                    }
                    let read: Vec<f64> = r.skills.iter().flatten().copied().collect();
                    r.score = mean(&read);
                }
                (Scoring::Judge { mode: JudgeMode::Grade, .. }, None) => r.score = Some(1.0),
                (Scoring::Judge { mode: JudgeMode::Rubric, skills, .. }, None) => {
                    r.skills = vec![Some(1.0); skills.len()];
                    r.score = Some(1.0);
                }
                (Scoring::Rule(scorer), Some(a)) => {
                    let reference = item.answer.as_deref().unwrap_or_default();
                    r.score = moa_core::eval::score(*scorer, a, reference, &item.choices)
                        .map_err(|err| EvalError::Usage(format!("item {id}: {err}")))
                        .map(Some)?;
                }
                (Scoring::Judge { mode, skills, .. }, Some(a)) => {
                    match mode {
                        JudgeMode::Pairwise => {
                            // "ab" shows this answer first; "ba" second, so its preference flips.
                            let ab = said(&format!("{id}|ab")).map(|t| judge::parse_pairwise(&t));
                            let ba = said(&format!("{id}|ba")).map(|t| judge::parse_pairwise(&t).map(|p| 1.0 - p));
                            let read: Vec<f64> = [ab, ba].into_iter().flatten().flatten().collect();
                            r.unparseable = [ab, ba].iter().filter(|v| matches!(v, Some(None))).count();
                            r.score = mean(&read);
                            let other = match &eval.scoring {
                                Scoring::Judge { against: Some(x), .. } => {
                                    eval.entrants.iter().position(|e| &e.name == x).and_then(|ai| answer_of(ai, id))
                                }
                                _ => item.reference.clone(),
                            };
                            r.length_delta = other.map(|o| a.chars().count() as f64 - o.chars().count() as f64);
                        }
                        JudgeMode::Grade => {
                            let g = said(id).map(|t| judge::parse_grade(&t));
                            r.unparseable = usize::from(matches!(g, Some(None)));
                            r.score = g.flatten();
                        }
                        JudgeMode::Rubric => {
                            if let Some(t) = said(id) {
                                r.skills = judge::parse_rubric(&t, skills);
                                r.unparseable = r.skills.iter().filter(|s| s.is_none()).count();
                                let read: Vec<f64> = r.skills.iter().flatten().copied().collect();
                                r.score = mean(&read);
                            }
                        }
                    }
                }
            }
            results.push(r);
        }
    }
    let baselines: Vec<String> = eval.entrants.iter().filter(|e| e.baseline).map(|e| e.name.clone()).collect();
    let skills = match &eval.scoring {
        Scoring::Judge { mode: JudgeMode::Rubric, skills, .. } => skills.clone(),
        // Multi-turn grades are reported per turn, in the per-skill slots.
        Scoring::Judge { mode: JudgeMode::Grade, .. } if max_turns > 1 => {
            (1..=max_turns).map(|t| format!("turn {t}")).collect()
        }
        _ => vec![],
    };
    let summary = moa_core::eval::summarize(&results, &baselines, &skills, rule.is_some());
    let results_path = eval.out.join("results.jsonl");
    let text: String = results.iter().filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect();
    std::fs::write(&results_path, text).map_err(io(&results_path))?;
    let scoring = scoring_words(&eval.scoring);
    let summary_path = eval.out.join("summary.json");
    let doc = json!({
        "dataset": eval.dataset.display().to_string(),
        "items": items.len(),
        "scoring": scoring,
        "intervals": "95%: Wilson's score interval when every score is 0 or 1, else a percentile bootstrap (2,000 resamples, fixed seed)",
        "paired_test": "exact two-sided sign test over items where the recipe and the best baseline differ",
        "recipes": summary,
    });
    std::fs::write(&summary_path, serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
        .map_err(io(&summary_path))?;
    let html = crate::eval_report::html(&eval.dataset.display().to_string(), &scoring, &summary);
    let html_path = eval.out.join("report.html");
    std::fs::write(&html_path, html).map_err(io(&html_path))?;
    Ok(Report { results, summary, failed_runs })
}

/// The mean of `values`; `None` for none.
fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The scoring, in words, for the report.
pub fn scoring_words(s: &Scoring) -> String {
    match s {
        Scoring::Rule(Scorer::Exact) => {
            "exact: normalized answer equals the reference (or its last number does)".into()
        }
        Scoring::Rule(Scorer::Choice) => "choice: the multiple-choice letter picked".into(),
        Scoring::Rule(Scorer::Contains) => "contains: the reference appears in the answer".into(),
        Scoring::Rule(Scorer::Regex) => "regex: the reference pattern matches the answer".into(),
        Scoring::Judge { recipe, mode: JudgeMode::Pairwise, against, .. } => format!(
            "pairwise win rate against {} judged by {} in both orders, ties half",
            against.as_deref().unwrap_or("the reference outputs"),
            recipe.name
        ),
        Scoring::Judge { recipe, mode: JudgeMode::Grade, .. } => format!("1-10 grade by {}", recipe.name),
        Scoring::Judge { recipe, mode: JudgeMode::Rubric, skills, .. } => {
            format!("1-5 rubric ({}) by {}, the score their mean", skills.join(", "), recipe.name)
        }
    }
}

/// The summary as a plain-text table.
pub fn table(summary: &[RecipeSummary]) -> String {
    let mut rows = vec![[
        "recipe".to_owned(),
        "items".into(),
        "score [95% CI]".into(),
        "vs best baseline W/L/T (p) diff [95% CI]".into(),
        "tokens/item".into(),
        "cost".into(),
        "wall p50/p95 s".into(),
        "TTFT p50/p95 s".into(),
        "calls/item".into(),
    ]];
    for s in summary {
        let score = s.score.as_ref().map_or("-".into(), |e| format!("{:.3} [{:.3}, {:.3}]", e.mean, e.lo, e.hi));
        let vs = s.vs_best_baseline.as_ref().map_or("-".into(), |(_, p)| {
            let diff =
                p.diff.as_ref().map_or(String::new(), |d| format!(" {:+.3} [{:+.3}, {:+.3}]", d.mean, d.lo, d.hi));
            format!("{}/{}/{} ({:.3}){diff}", p.wins, p.losses, p.ties, p.p_value)
        });
        rows.push([
            format!("{}{}", s.recipe, if s.baseline { " (baseline)" } else { "" }),
            format!("{}{}", s.items, if s.failed > 0 { format!(" ({} failed)", s.failed) } else { String::new() }),
            score,
            vs,
            format!("{:.0}", s.tokens_mean),
            s.cost.map_or("-".into(), |c| format!("${c:.4}")),
            format!("{:.2}/{:.2}", s.wall_ms.0 / 1e3, s.wall_ms.1 / 1e3),
            s.ttft_ms.map_or("-".into(), |(a, b)| format!("{:.2}/{:.2}", a / 1e3, b / 1e3)),
            format!("{:.1}", s.calls_mean),
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
