//! `moa eval`: does a mixture beat its best member? Every dataset item through every
//! recipe (and, with `--baselines`, every proposer model alone), scored and reported.

use super::common::{FAILED, INTERRUPTED, bad, interrupt_token, transport};
use clap::{Args, ValueEnum};
use moa_core::eval::Scorer;
use moa_core::eval::judge::{DEFAULT_SKILLS, JudgeMode};
use moa_host::eval::{self, Entrant, Eval, Scoring};
use moa_host::keys;
use moa_host::recipes::{self, Knobs};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `--scorer`, for `moa eval` and `moa tune`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ScorerArg {
    Exact,
    Choice,
    Contains,
    Regex,
    Tool,
    Judge,
}

impl ScorerArg {
    /// The rule it names; `None` for `judge`.
    pub(crate) fn rule(self) -> Option<Scorer> {
        match self {
            ScorerArg::Exact => Some(Scorer::Exact),
            ScorerArg::Choice => Some(Scorer::Choice),
            ScorerArg::Contains => Some(Scorer::Contains),
            ScorerArg::Regex => Some(Scorer::Regex),
            ScorerArg::Tool => Some(Scorer::Tool),
            ScorerArg::Judge => None,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Pairwise,
    Grade,
    Rubric,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// Dataset JSONL: "prompt" or "messages"; "answer" and/or "reference"; optional "id", "choices".
    dataset: PathBuf,
    /// A recipe to evaluate: preset name or .toml/.json file (repeat for each).
    #[arg(long, short, required = true)]
    recipe: Vec<String>,
    /// Also evaluate each distinct proposer model alone (one call per item).
    #[arg(long)]
    baselines: bool,
    /// Compare every recipe with this one (by its name in the report) as a baseline: the
    /// paired comparison and the difference with its interval (repeatable; the best
    /// baseline is compared with).
    #[arg(long = "baseline", value_name = "NAME")]
    baseline_names: Vec<String>,
    /// How answers are scored.
    #[arg(long, value_enum, default_value = "exact")]
    scorer: ScorerArg,
    /// The judge recipe (preset or file), for --scorer judge.
    #[arg(long)]
    judge: Option<String>,
    /// How the judge judges: pairwise (win rate, both orders), grade (1-10) or rubric (1-5 per skill).
    #[arg(long, value_enum, default_value = "pairwise")]
    judge_mode: ModeArg,
    /// Rubric skills, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SKILLS.map(String::from))]
    skills: Vec<String>,
    /// Pairwise: compare with this recipe's answers instead of the items' "reference".
    #[arg(long)]
    against: Option<String>,
    /// Output folder: runs/, judge/, results.jsonl, summary.json, report.html.
    #[arg(long, short)]
    output: PathBuf,
    /// Items in flight at once, per recipe (each provider's max_concurrency holds across all).
    #[arg(long, short = 'j', default_value_t = 8)]
    concurrency: usize,
    /// Only the first N items.
    #[arg(long)]
    limit: Option<usize>,
    /// Generated-token cap for every agent of every recipe (not the judge).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Seed for retry jitter.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Let recipes read this environment variable for a key although its name does not end
    /// in _API_KEY or _KEY (repeatable).
    #[arg(long = "allow-key-env", value_name = "NAME")]
    allow_key_env: Vec<String>,
    /// Run one recipe at a time (the judge too), so each one's wall time and time to
    /// first token are measured without the others competing for the same servers.
    #[arg(long)]
    sequential: bool,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
    /// Start the local models the recipes and the judge call if they are not running, and
    /// stop them after (`moa local`).
    #[arg(long, env = "MOA_START_LOCAL")]
    start_local: bool,
}

fn load(spec: &str, allowed: &[String], max_tokens: Option<u32>) -> Result<moa_core::Recipe, String> {
    let r = recipes::load(spec).map_err(|e| e.to_string())?;
    let r =
        Knobs { aggregator: None, temperature: None, max_tokens, layers: None }.apply(&r).map_err(|e| e.to_string())?;
    keys::check_env(&r, allowed)?;
    Ok(r)
}

/// A recipe's name in the report: its own, else its file's stem; unique.
fn name_for(spec: &str, recipe: &moa_core::Recipe, taken: &[Entrant]) -> String {
    let base = if !recipe.name.is_empty() {
        recipe.name.clone()
    } else {
        Path::new(spec).file_stem().map_or(spec.to_owned(), |s| s.to_string_lossy().into_owned())
    };
    let mut name = base.clone();
    let mut n = 2;
    while taken.iter().any(|e| e.name == name) {
        name = format!("{base} #{n}");
        n += 1;
    }
    name
}

pub(crate) async fn run_eval(args: EvalArgs) -> ExitCode {
    let entrants = match entrants(&args) {
        Ok(e) => e,
        Err(e) => return bad(&e),
    };
    let scoring = match scoring(&args) {
        Ok(s) => s,
        Err(e) => return bad(&e),
    };
    let mut all: Vec<&moa_core::Recipe> = entrants.iter().map(|e| &e.recipe).collect();
    if let Scoring::Judge { recipe, .. } = &scoring {
        all.push(recipe.as_ref());
    }
    let mut keys_by_provider = BTreeMap::new();
    for r in &all {
        match keys::require(r, |_| true) {
            Ok(found) => keys_by_provider.extend(found),
            Err(e) => return bad(&e.to_string()),
        }
    }
    let _local = match super::common::local_models_or_exit(&all, args.start_local) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let transport = match transport() {
        Ok(t) => t.with_provider_limits(all.iter().copied()),
        Err(code) => return code,
    };
    let job = Eval {
        dataset: args.dataset,
        entrants,
        scoring,
        out: args.output.clone(),
        concurrency: args.concurrency,
        limit: args.limit,
        keys: keys_by_provider,
        seed: args.seed,
        progress: (!args.quiet).then(|| super::progress::eval_bars(true)),
        sequential: args.sequential,
    };
    let cancel = interrupt_token();
    match eval::run(job, &transport, cancel.clone()).await {
        Err(_) if cancel.is_cancelled() => {
            eprintln!("moa: interrupted; run the same command again to go on where it stopped");
            ExitCode::from(INTERRUPTED)
        }
        Err(e) => bad(&e.to_string()),
        Ok(report) => {
            println!("{}", eval::table(&report.summary));
            eprintln!(
                "moa: {} results, {}/results.jsonl, summary.json, report.html{}",
                report.results.len(),
                args.output.display(),
                if report.failed_runs > 0 {
                    format!("; {} runs failed (scored as wrong; rerun to retry them)", report.failed_runs)
                } else {
                    String::new()
                }
            );
            if report.failed_runs > 0 { ExitCode::from(FAILED) } else { ExitCode::SUCCESS }
        }
    }
}

/// The recipes to evaluate, named, the baselines marked (and, with `--baselines`, each
/// proposer model alone added).
fn entrants(args: &EvalArgs) -> Result<Vec<Entrant>, String> {
    let mut entrants: Vec<Entrant> = Vec::new();
    for spec in &args.recipe {
        let recipe = load(spec, &args.allow_key_env, args.max_tokens).map_err(|e| format!("--recipe {spec}: {e}"))?;
        let resolver = super::common::resolver(&[&recipe], super::common::recipe_folder(spec))?;
        let name = name_for(spec, &recipe, &entrants);
        entrants.push(Entrant { name, recipe, baseline: false, resolver });
    }
    for name in &args.baseline_names {
        match entrants.iter_mut().find(|e| &e.name == name) {
            Some(e) => e.baseline = true,
            None => {
                let known: Vec<&str> = entrants.iter().map(|e| e.name.as_str()).collect();
                return Err(format!("--baseline {name}: no such recipe (these are: {})", known.join(", ")));
            }
        }
    }
    if args.baselines {
        let solo = eval::baselines(&entrants);
        entrants.extend(solo);
    }
    Ok(entrants)
}

/// How answers are scored: by rule, or by a judge recipe.
fn scoring(args: &EvalArgs) -> Result<Scoring, String> {
    match (args.scorer, &args.judge) {
        (ScorerArg::Judge, Some(spec)) => {
            let recipe = load(spec, &args.allow_key_env, None).map_err(|e| format!("--judge {spec}: {e}"))?;
            let mode = match args.judge_mode {
                ModeArg::Pairwise => JudgeMode::Pairwise,
                ModeArg::Grade => JudgeMode::Grade,
                ModeArg::Rubric => JudgeMode::Rubric,
            };
            Ok(Scoring::Judge {
                recipe: Box::new(recipe),
                mode,
                skills: args.skills.clone(),
                against: args.against.clone(),
            })
        }
        (_, Some(_)) => Err("--judge is for --scorer judge".into()),
        (s, None) => s.rule().map(Scoring::Rule).ok_or_else(|| "--scorer judge needs --judge RECIPE".into()),
    }
}
