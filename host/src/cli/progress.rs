//! The command line's progress bars (indicatif), drawn from the library's progress
//! reports, on stderr when it is a terminal.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use moa_host::progress::{OnProgress, Progress, ProgressFor};
use std::io::IsTerminal;
use std::sync::Arc;

fn target(shown: bool) -> ProgressDrawTarget {
    if shown && std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() }
}

/// Shows `p` on `bar`.
fn draw(bar: &ProgressBar, p: &Progress) {
    bar.set_length(p.total as u64);
    bar.set_position(p.done as u64);
    let cost = p.cost.map(|c| format!(" ${c:.4}")).unwrap_or_default();
    bar.set_message(format!("{} tok{cost} {} failed", p.tokens, p.failed));
    if p.done >= p.total {
        bar.finish();
    }
}

/// One batch's bar (`moa batch`); hidden unless `shown` and stderr is a terminal.
pub(crate) fn batch_bar(shown: bool) -> OnProgress {
    let bar = ProgressBar::with_draw_target(Some(0), target(shown));
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} items  {per_sec}  eta {eta}  {msg}") {
        bar.set_style(style);
    }
    Arc::new(move |p: &Progress| draw(&bar, p))
}

/// A bar per batch of an evaluation, each under its label, stacked.
pub(crate) fn eval_bars(shown: bool) -> ProgressFor {
    let bars = MultiProgress::with_draw_target(target(shown));
    Arc::new(move |label: &str| {
        let bar = bars.add(ProgressBar::new(0));
        if let Ok(style) = ProgressStyle::with_template("{prefix:30!} {bar:25} {pos}/{len}  eta {eta}  {msg}") {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        Arc::new(move |p: &Progress| draw(&bar, p)) as OnProgress
    })
}
