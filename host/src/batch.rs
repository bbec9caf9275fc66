//! `moa batch`: many prompts through one recipe, for evaluations and synthetic data.
//!
//! It loses nothing: each finished item is appended to OUT as one whole line the moment
//! it finishes; a rerun skips ids already answered in OUT, retries the ones written with
//! an error, and first repairs OUT (dropping a line cut short by `kill -9` and the error
//! lines it will redo) by writing a new file and renaming it over the old one.

use crate::clock::Clock;
use crate::transport::Transport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use moa_core::{Event, Message, Outcome, Recipe, Run, RunOptions, Usage};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// A batch cannot start.
#[derive(Debug, Error)]
pub enum BatchError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the input is not an item.
    #[error("{path}:{line}: {reason}")]
    Input {
        /// The input file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A line of the existing output is not a result line.
    #[error("{path}:{line}: not a result line ({reason}); remove or fix it, then run again")]
    Output {
        /// The output file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One prompt to answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    /// The id from the input, or the 1-based line number.
    pub id: Value,
    /// The conversation.
    pub messages: Vec<Message>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io { path: path.display().to_string(), source }
}

/// Reads the input: each non-blank line is a JSON string (the prompt),
/// `{"instruction": ...}` (the AlpacaEval shape) or `{"messages": [...]}`, each object
/// with an optional `id`.
pub fn read_input(path: &Path) -> Result<Vec<Item>, BatchError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut items = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| BatchError::Input { path: path.display().to_string(), line: n, reason };
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let (id, messages) = match &v {
            Value::String(prompt) => (None, vec![Message::user(prompt.clone())]),
            Value::Object(o) => {
                let messages = match (o.get("instruction"), o.get("messages")) {
                    (Some(Value::String(s)), None) => vec![Message::user(s.clone())],
                    (None, Some(m)) => serde_json::from_value(m.clone()).map_err(|e| bad(format!("messages: {e}")))?,
                    _ => return Err(bad("expected \"instruction\": \"...\" or \"messages\": [...]".into())),
                };
                (o.get("id").cloned(), messages)
            }
            _ => return Err(bad("expected a prompt string or an object".into())),
        };
        moa_core::message::validate_conversation(&messages).map_err(bad)?;
        let id = id.unwrap_or_else(|| json!(n));
        if !(id.is_string() || id.is_number()) {
            return Err(bad("id must be a string or a number".into()));
        }
        if let Some(first) = seen.insert(id.to_string(), n) {
            return Err(bad(format!("id {id} already used on line {first}")));
        }
        items.push(Item { id, messages });
    }
    Ok(items)
}

/// Repairs OUT and returns the ids it already answers.
pub fn prepare_output(path: &Path) -> Result<HashSet<String>, BatchError> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut done = HashSet::new();
    let mut kept = Vec::with_capacity(text.len());
    // Only lines ending in '\n' are whole; anything after the last one was cut short.
    let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut changed = whole != text.len();
    for (n, line) in text[..whole].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |reason: String| BatchError::Output { path: path.display().to_string(), line: n + 1, reason };
        let v: Value = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
        let id = v.get("id").ok_or_else(|| bad("no id".into()))?.to_string();
        if v.get("answer").is_some_and(Value::is_string) {
            if done.insert(id) {
                kept.extend_from_slice(line);
                kept.push(b'\n');
            } else {
                changed = true;
            }
        } else {
            changed = true; // an error line: the item is redone
        }
    }
    if changed {
        let tmp = path.with_extension("jsonl.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&kept).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
    }
    Ok(done)
}

/// Settings for one batch.
pub struct Batch {
    /// The recipe every item runs.
    pub recipe: Recipe,
    /// Resolves plugin strategies; built-ins only when `None`.
    pub resolver: Option<Arc<crate::plugin::HostResolver>>,
    /// API keys by provider.
    pub keys: BTreeMap<String, String>,
    /// Input JSONL.
    pub input: PathBuf,
    /// Output JSONL, appended to.
    pub output: PathBuf,
    /// Items in flight at once.
    pub concurrency: usize,
    /// Write every layer's proposals too.
    pub proposals: bool,
    /// Seed for retry jitter (each item gets its own, derived from this).
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// What a batch did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Items in the input.
    pub total: usize,
    /// Already answered in OUT before this run.
    pub skipped: usize,
    /// Answered now.
    pub answered: usize,
    /// Failed now (written with their error; retried next time).
    pub failed: usize,
    /// Tokens this run.
    pub usage: Usage,
    /// Dollars this run, when priced.
    pub cost: Option<f64>,
}

/// The line written for one finished item.
pub fn result_line(id: &Value, outcome: &Outcome, proposals: bool) -> Value {
    let layer_ms: Vec<f64> =
        outcome.layers.iter().map(|l| l.calls.iter().filter_map(|c| c.latency_ms).fold(0.0, f64::max)).collect();
    let mut line = json!({
        "id": id,
        "usage": outcome.usage,
        "cost": outcome.cost,
        "timings": { "wall_ms": outcome.wall_ms, "layer_ms": layer_ms },
    });
    match outcome.result() {
        Ok(answer) => {
            line["answer"] = json!(answer);
            line["decided_by"] = json!(outcome.decided_by);
        }
        Err(e) => line["error"] = json!(e.to_string()),
    }
    if proposals {
        line["layers"] = json!(outcome.layers);
    }
    line
}

/// Runs the batch until every item is answered, failed, or `cancel` fires. Items
/// cancelled mid-run are not written, so the next run does them.
pub async fn run(batch: Batch, transport: &Transport, cancel: CancellationToken) -> Result<Summary, BatchError> {
    let items = read_input(&batch.input)?;
    let done = prepare_output(&batch.output)?;
    let todo: Vec<Item> = items.iter().filter(|i| !done.contains(&i.id.to_string())).cloned().collect();
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&batch.output).map_err(io(&batch.output))?;
    let summary =
        Arc::new(Mutex::new(Summary { total: items.len(), skipped: items.len() - todo.len(), ..Summary::default() }));
    let bar = progress_bar(&batch, items.len(), items.len() - todo.len());
    let out = Arc::new(Mutex::new(out));
    let slots = Arc::new(Semaphore::new(batch.concurrency.max(1)));
    let transport = transport.clone().with_provider_limits(&batch.recipe);
    let batch = Arc::new(batch);
    let mut tasks = tokio::task::JoinSet::new();
    for (n, item) in todo.into_iter().enumerate() {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(|_| ()),
            _ = cancel.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let (batch, transport, cancel) = (batch.clone(), transport.clone(), cancel.clone());
        let (out, summary, bar) = (out.clone(), summary.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let clock = Clock::new();
            let options = RunOptions {
                seed: batch.seed.wrapping_add(n as u64),
                keys: batch.keys.clone(),
                ..RunOptions::default()
            };
            let outcome = match Run::with_options(&batch.recipe, item.messages, clock.now(), options) {
                Ok(mut run) => transport.drive(&mut run, &clock, &cancel, |_: &Event| {}).await,
                Err(e) => Outcome {
                    answer: None,
                    error: Some(e),
                    decided_by: None,
                    layers: vec![],
                    usage: Usage::default(),
                    cost: None,
                    wall_ms: 0.0,
                },
            };
            if matches!(outcome.error, Some(moa_core::RunError::Cancelled)) {
                return Ok(());
            }
            let mut line = serde_json::to_vec(&result_line(&item.id, &outcome, batch.proposals)).unwrap_or_default();
            line.push(b'\n');
            // One write of the whole line: a kill leaves it whole or absent, and a cut
            // tail is dropped by the next run's repair.
            out.lock().map_err(|_| std::io::Error::other("poisoned"))?.write_all(&line)?;
            let mut s = summary.lock().map_err(|_| std::io::Error::other("poisoned"))?;
            if outcome.answer.is_some() {
                s.answered += 1
            } else {
                s.failed += 1
            }
            s.usage += outcome.usage;
            moa_core::usage::add_cost(&mut s.cost, outcome.cost);
            bar.inc(1);
            let cost = s.cost.map(|c| format!(" ${c:.4}")).unwrap_or_default();
            bar.set_message(format!("{} tok{cost} {} failed", s.usage.total(), s.failed));
            Ok::<(), std::io::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.map_err(|e| io(&batch.output)(std::io::Error::other(e)))?.map_err(io(&batch.output))?;
    }
    bar.finish();
    let s = summary.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(s)
}

fn progress_bar(batch: &Batch, total: usize, done: usize) -> ProgressBar {
    if !batch.progress {
        return ProgressBar::hidden();
    }
    let target =
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total as u64), target);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} items  {per_sec}  eta {eta}  {msg}") {
        bar.set_style(style);
    }
    bar.set_position(done as u64);
    bar
}
