//! `moa tune`: search mixtures of a pool of models for the best recipe on a dataset.

use super::common::{FAILED, INTERRUPTED, bad, interrupt_token, local_models_or_exit, transport};
use super::eval::ScorerArg;
use clap::Args;
use moa_host::eval::EvalError;
use moa_host::keys;
use moa_host::tune::plan::{Budgets, Space};
use moa_host::tune::{self, Tune, TuneError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct TuneArgs {
    /// Dataset JSONL with an "answer" per item.
    dataset: PathBuf,
    /// The recipe whose providers, defaults (max_tokens) and policy every candidate takes.
    #[arg(long)]
    base: String,
    /// A model to mix, as PROVIDER:MODEL of the base recipe (repeat for each).
    #[arg(long, required = true)]
    pool: Vec<String>,
    /// Output folder: eval/ (resumable), pareto.json, best.toml.
    #[arg(long, short)]
    output: PathBuf,
    /// How answers are scored (a rule: tune does not take a judge).
    #[arg(long, value_enum, default_value = "exact")]
    scorer: ScorerArg,
    /// Self-MoA sample counts to try.
    #[arg(long, value_delimiter = ',', default_values_t = [3, 5])]
    samples: Vec<u32>,
    /// Do not try two-layer mixtures.
    #[arg(long)]
    one_layer: bool,
    /// Budget: mean tokens (in and out) per item.
    #[arg(long)]
    max_tokens_per_item: Option<f64>,
    /// Budget: median time to the answer's first token, in milliseconds.
    #[arg(long)]
    max_ttft_ms: Option<f64>,
    /// Budget: dollars per item (needs prices in the base recipe).
    #[arg(long)]
    max_cost: Option<f64>,
    /// Fewest items in a round of the search.
    #[arg(long, default_value_t = 8)]
    min_items: usize,
    /// Only the first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Items in flight at once, per candidate (each provider's max_concurrency holds across all).
    #[arg(long, short = 'j', default_value_t = 4)]
    concurrency: usize,
    /// Start the local models the pool names if they are not running, and stop them after.
    #[arg(long, env = "MOA_START_LOCAL")]
    start_local: bool,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn run_tune(args: TuneArgs) -> ExitCode {
    let base = match moa_host::recipes::load(&args.base) {
        Ok(r) => r,
        Err(e) => return bad(&format!("--base {}: {e}", args.base)),
    };
    if let Err(e) = tune::check_pool(&base, &args.pool) {
        return bad(&e.to_string());
    }
    if args.samples.iter().any(|n| *n < 2) {
        return bad("--samples: each count must be 2 or more");
    }
    let space = Space { pool: args.pool.clone(), samples: args.samples.clone(), two_layers: !args.one_layer };
    // The local servers the candidates need: every pool model, as the base reaches it.
    let mut needs_recipe = base.clone();
    needs_recipe.aggregator = moa_core::recipe::Aggregator::new(&args.pool[0]);
    needs_recipe.layers =
        vec![moa_core::recipe::Layer::new(args.pool.iter().map(|m| moa_core::recipe::Agent::new(m)).collect())];
    let _local = match local_models_or_exit(&[&needs_recipe], args.start_local) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let in_pool = |name: &str| args.pool.iter().any(|m| m.split_once(':').is_some_and(|(p, _)| p == name));
    let keys = match keys::require(&base, in_pool) {
        Ok(k) => k,
        Err(e) => return bad(&e.to_string()),
    };
    let transport = match transport() {
        Ok(t) => t.with_provider_limits([&base]),
        Err(code) => return code,
    };
    let Some(scorer) = args.scorer.rule() else {
        return bad("moa tune scores with a rule (exact, choice, contains, regex), not a judge");
    };
    let job = Tune {
        dataset: args.dataset.clone(),
        base,
        space,
        scorer,
        budgets: Budgets {
            tokens_per_item: args.max_tokens_per_item,
            ttft_ms: args.max_ttft_ms,
            cost_per_item: args.max_cost,
        },
        min_items: args.min_items,
        limit: args.limit,
        out: args.output.clone(),
        concurrency: args.concurrency,
        keys,
        progress: (!args.quiet).then(|| super::progress::eval_bars(true)),
        on_round: Box::new(|round, items, kept| {
            eprintln!("moa tune: round {round} on {items} items; going on: {}", kept.join(", "));
        }),
    };
    let cancel = interrupt_token();
    match tune::run(job, &transport, cancel.clone()).await {
        Err(_) if cancel.is_cancelled() => {
            eprintln!("moa: interrupted; run the same command again to go on where it stopped");
            ExitCode::from(INTERRUPTED)
        }
        // Bad input (exit 2) is what the user can fix in the command or the files.
        Err(e @ (TuneError::Usage(_) | TuneError::Eval(EvalError::Usage(_) | EvalError::Dataset { .. }))) => {
            bad(&e.to_string())
        }
        Err(e) => {
            eprintln!("moa: {e}");
            ExitCode::from(FAILED)
        }
        Ok(found) => {
            print_found(&found, &args.output);
            ExitCode::SUCCESS
        }
    }
}

/// What the search found: each candidate a line on stdout, the best, and where the files are.
fn print_found(found: &tune::Found, output: &std::path::Path) {
    for e in &found.entries {
        let score = e.score.as_ref().map_or("-".into(), |s| format!("{:.3} [{:.3}, {:.3}]", s.mean, s.lo, s.hi));
        let vs = match (&e.vs_best_member, e.alone) {
            (Some((m, p)), false) => {
                let d = p.diff.as_ref().map_or("-".into(), |d| format!("{:+.3} [{:+.3}, {:+.3}]", d.mean, d.lo, d.hi));
                format!("  vs {m}: {d}, {}-{} sign p={:.3}", p.wins, p.losses, p.p_value)
            }
            _ => String::new(),
        };
        println!("{:32} {:>3} items  {score}  {:>6.0} tok/item{vs}", e.name, e.items, e.tokens_per_item);
    }
    println!("best: {}", found.best);
    eprintln!(
        "moa tune: rounds of {:?} items; {}/pareto.json, {}/best.toml",
        found.schedule,
        output.display(),
        output.display()
    );
}
