//! How far a batch has got, for a front end to show: the library reports, the command
//! line draws (its bars are `cli`'s, with indicatif).

use std::sync::Arc;

/// A batch's progress.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Items this run has to answer, those already answered included.
    pub total: usize,
    /// Items answered or failed so far, those already answered included.
    pub done: usize,
    /// Tokens this run.
    pub tokens: u64,
    /// Dollars this run, when priced.
    pub cost: Option<f64>,
    /// Items that failed this run.
    pub failed: usize,
}

/// Called with a batch's progress: once when it starts, then after each item.
pub type OnProgress = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Makes the progress callback of each of an evaluation's batches, by its label.
pub type ProgressFor = Arc<dyn Fn(&str) -> OnProgress + Send + Sync>;
