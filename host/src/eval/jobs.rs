//! The evaluation's I/O: its batch jobs run (one at a time or together), their inputs
//! written.

use super::{Eval, EvalError, io};
use crate::batch::{self, Batch};
use crate::transport::Transport;
use moa_core::Recipe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Writes `lines` to `path` unless it already holds exactly them (a rerun keeps the file
/// its batches have read).
pub fn write_if_changed(path: &Path, lines: &[String]) -> Result<(), EvalError> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(path, text).map_err(io(path))?;
    }
    Ok(())
}

/// One batch job of the evaluation.
pub struct Job {
    /// The recipe.
    pub recipe: Recipe,
    /// Resolves its plugin strategies.
    pub resolver: Option<Arc<crate::plugin::HostResolver>>,
    /// Its input.
    pub input: PathBuf,
    /// Its output.
    pub output: PathBuf,
    /// Its progress bar's label.
    pub label: String,
}

/// Runs `jobs`, one at a time or all at once (`eval.sequential`); how many items failed.
pub async fn run_jobs(
    eval: &Eval,
    jobs: Vec<Job>,
    transport: &Transport,
    cancel: &CancellationToken,
) -> Result<usize, EvalError> {
    let mut running = Vec::new();
    for job in jobs {
        let b = Batch {
            recipe: job.recipe,
            resolver: job.resolver,
            keys: eval.keys.clone(),
            input: job.input,
            output: job.output,
            concurrency: eval.concurrency,
            proposals: true,
            seed: eval.seed,
            on_progress: eval.progress.as_ref().map(|bar_for| bar_for(&job.label)),
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
