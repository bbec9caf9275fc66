//! `moa batch`: a JSONL file of prompts through one recipe, resumably; training files
//! from its output (`--format`, `moa batch export`); shards and their merge.

use super::common::{FAILED, INTERRUPTED, RecipeArgs, bad, interrupt_token, transport};
use clap::{Args, Subcommand};
use moa_core::eval::score::Scorer;
use moa_host::batch::export::{self, Export, Format};
use moa_host::batch::{self, Select, Shard, merge};
use moa_host::keys;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct BatchArgs {
    #[command(subcommand)]
    command: Option<BatchCommand>,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Input JSONL: a prompt string, {"instruction": ...} or {"messages": [...]} per line,
    /// optional "id" (and "answer" or "reference", for DPO pairs).
    #[arg(required = true)]
    input: Option<PathBuf>,
    /// Output JSONL (every result, failures too); rerunning skips ids already answered there.
    #[arg(long, short, required = true)]
    output: Option<PathBuf>,
    /// Items in flight at once (each provider's max_concurrency also holds, across items).
    #[arg(long, short = 'j', default_value_t = 16)]
    concurrency: usize,
    /// Write every layer's proposals in each output line (`--format dpo` implies it).
    #[arg(long)]
    proposals: bool,
    /// Only this shard of the input: I/N (0-based), by a hash of each item's id (of its
    /// prompt when it has none), so the split survives reordering and appending; or
    /// `auto`: from a Slurm job array or a Kubernetes Indexed Job (MOA_SHARD_COUNT).
    #[arg(long, value_name = "I/N|auto")]
    shard: Option<String>,
    /// Skip items whose prompt (case and spacing aside) repeats an earlier item's.
    #[arg(long)]
    dedup: bool,
    /// How calls reach the providers: http (each call as it comes) or batch-api (layer by
    /// layer across all items, one job per provider through OpenAI-compatible /files +
    /// /batches or Anthropic's Message Batches; resumable; costs at the batch price).
    #[arg(long, default_value = "http", value_parser = ["http", "batch-api"])]
    via: String,
    /// batch-api: the first wait between polls of a job, in seconds (it doubles, up to 120).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    poll_secs: f64,
    #[command(flatten)]
    export: ExportArgs,
    /// Also write AlpacaEval's model_outputs.json here (the same as --format alpaca-eval
    /// --export FILE).
    #[arg(long, value_name = "FILE")]
    alpaca_eval: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct ExportArgs {
    /// Also write a training file from the output: sft (OpenAI chat fine-tuning lines),
    /// dpo (TRL preference pairs: prompt, chosen, rejected), alpaca-eval, or raw (only the
    /// output).
    #[arg(long, default_value = "raw", value_parser = ["raw", "sft", "dpo", "alpaca-eval"])]
    format: String,
    /// Where (default: OUTPUT with .sft.jsonl, .dpo.jsonl or .alpaca_eval.json).
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// Leave answers shorter than this many characters out of the training file.
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_answer_chars: usize,
    /// DPO, for items with an "answer"/"reference": the proposal scoring lowest by this
    /// scorer is rejected (exact, choice, contains, regex).
    #[arg(long, default_value = "exact")]
    scorer: String,
    /// No "moa" provenance object in training records (for APIs that refuse unknown keys).
    #[arg(long)]
    bare: bool,
    /// DPO: a judge recipe (preset or file) that names the worst proposal of each item,
    /// which is rejected (its answers are a resumable batch of their own, OUT.dpo-judge.jsonl).
    #[arg(long, value_name = "RECIPE")]
    judge: Option<String>,
}

#[derive(Subcommand)]
enum BatchCommand {
    /// Merge the outputs of a batch's shards into one, in input order, checking that every
    /// input item is answered exactly once (and listing those that are not).
    Merge {
        /// The batch's input.
        #[arg(long)]
        input: PathBuf,
        /// The shards' outputs.
        #[arg(required = true)]
        outputs: Vec<PathBuf>,
        /// The merged output.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Write a training file from a batch's output (or a merge of shards).
    Export {
        /// The batch's input.
        #[arg(long)]
        input: PathBuf,
        /// The batch's output.
        raw: PathBuf,
        /// The training file.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        export: ExportArgs,
    },
}

impl ExportArgs {
    fn plan(&self, input: &Path, raw: &Path, to: Option<PathBuf>, generator: &str) -> Result<Option<Export>, String> {
        let Some(format) = Format::from_name(&self.format) else { return Ok(None) };
        let scorer = Scorer::from_name(&self.scorer).ok_or(format!("unknown scorer {:?}", self.scorer))?;
        let output = to.or_else(|| self.export.clone()).unwrap_or_else(|| {
            let ext = match format {
                Format::Sft => "sft.jsonl",
                Format::Dpo => "dpo.jsonl",
                Format::AlpacaEval => "alpaca_eval.json",
            };
            raw.with_extension(ext)
        });
        Ok(Some(Export {
            format,
            input: input.to_owned(),
            raw: raw.to_owned(),
            output,
            min_answer_chars: self.min_answer_chars,
            scorer,
            bare: self.bare,
            generator: generator.to_owned(),
            verdicts: None,
        }))
    }
}

/// Runs the judge recipe `spec` over each item's proposals (a batch of its own, beside
/// RAW, resumable); returns where its verdicts are.
async fn judge(
    spec: &str,
    input: &Path,
    raw: &Path,
    allowed: &[String],
    cancel: &CancellationToken,
) -> Result<PathBuf, String> {
    let recipe = moa_host::recipes::load(spec).map_err(|e| format!("--judge: {e}"))?;
    keys::check_env(&recipe, allowed)?;
    let keys = keys::require(&recipe, |_| true).map_err(|e| format!("--judge: {e}"))?;
    let prompts = raw.with_extension("dpo-judge.in.jsonl");
    let verdicts = raw.with_extension("dpo-judge.jsonl");
    let n = export::judge_input(input, raw, &prompts).map_err(|e| e.to_string())?;
    eprintln!("moa: judging {n} items' proposals with {}", recipe.name);
    let transport = moa_host::Transport::new().map_err(|e| e.to_string())?.with_provider_limits([&recipe]);
    let job = batch::Batch {
        recipe,
        resolver: None,
        keys,
        input: prompts,
        output: verdicts.clone(),
        concurrency: 16,
        proposals: false,
        seed: 0,
        on_progress: None,
        select: Select::default(),
    };
    batch::run(job, &transport, cancel.clone()).await.map_err(|e| e.to_string())?;
    Ok(verdicts)
}

/// Writes a training file (judging first when a judge recipe is given); says what it
/// wrote and left out.
async fn write_export(
    e: &mut Export,
    args: &ExportArgs,
    allowed: &[String],
    cancel: &CancellationToken,
) -> Result<(), String> {
    if let (Format::Dpo, Some(spec)) = (e.format, &args.judge) {
        e.verdicts = Some(judge(spec, &e.input, &e.raw, allowed, cancel).await?);
    }
    let r = export::export(e).map_err(|err| err.to_string())?;
    let mut left = vec![];
    for (n, why) in [
        (r.unanswered, "unanswered (failed or not run)"),
        (r.short, "with an empty or short answer"),
        (r.no_pair, "without a proposal that differs from the answer"),
        (r.answer_worse, "whose answer scored below its proposals"),
        (r.unreadable_verdicts, "judged, but the verdict named no response (the rule without a judge chose)"),
    ] {
        if n > 0 {
            left.push(format!("{n} {why}"));
        }
    }
    let left = if left.is_empty() { String::new() } else { format!("; left out: {}", left.join(", ")) };
    let records = if r.written == 1 { "record" } else { "records" };
    eprintln!("moa: {}: {} {records}{left}", e.output.display(), r.written);
    Ok(())
}

pub(crate) async fn run_batch(args: BatchArgs) -> ExitCode {
    match args.command {
        Some(BatchCommand::Merge { input, outputs, output }) => return run_merge(&input, &outputs, &output),
        Some(BatchCommand::Export { input, raw, output, export }) => {
            return match export.plan(&input, &raw, Some(output), "moa") {
                Ok(Some(mut e)) => {
                    let cancel = interrupt_token();
                    write_export(&mut e, &export, &[], &cancel).await.map_or_else(|e| bad(&e), |()| ExitCode::SUCCESS)
                }
                Ok(None) => bad("moa batch export needs --format sft, dpo or alpaca-eval"),
                Err(e) => bad(&e),
            };
        }
        None => {}
    }
    let (Some(input), Some(output)) = (args.input.clone(), args.output.clone()) else {
        return bad("moa batch needs an input file and --output");
    };
    let recipe = match args.recipe.load() {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let _local = match super::common::local_models_or_exit(&[&recipe], args.recipe.start_local) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let mut exports = match plan_exports(&args, &input, &output, &recipe.name) {
        Ok(e) => e,
        Err(e) => return bad(&e),
    };
    let (job, transport) = match prepare(&args, recipe, input, output, &exports) {
        Ok(j) => j,
        Err(Ok(code)) => return code,
        Err(Err(e)) => return bad(&e),
    };
    let cancel = interrupt_token();
    let result = if args.via == "batch-api" {
        if !(args.poll_secs.is_finite() && args.poll_secs > 0.0 && args.poll_secs <= 3600.0) {
            return bad("--poll-secs must be a number of seconds in 0..=3600");
        }
        let min = std::time::Duration::from_secs_f64(args.poll_secs);
        let polling = batch::api::Polling { min, max: min.max(std::time::Duration::from_secs(120)) };
        batch::api::run(job, &transport, polling, cancel.clone()).await
    } else {
        batch::run(job, &transport, cancel.clone()).await
    };
    let s = match result {
        Ok(s) => s,
        Err(e) => return bad(&e.to_string()),
    };
    report(&s);
    for e in &mut exports {
        if let Err(e) = write_export(e, &args.export, &args.recipe.allow_key_env, &cancel).await {
            return bad(&e);
        }
    }
    summarize(&s);
    if cancel.is_cancelled() {
        ExitCode::from(INTERRUPTED)
    } else if s.failed > 0 {
        ExitCode::from(FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// The training files to write after the batch: `--format`'s, and `--alpaca-eval`'s.
fn plan_exports(args: &BatchArgs, input: &Path, output: &Path, generator: &str) -> Result<Vec<Export>, String> {
    let mut exports: Vec<Export> = args.export.plan(input, output, None, generator)?.into_iter().collect();
    if let Some(path) = &args.alpaca_eval {
        let mut e = ExportArgs { format: "alpaca-eval".into(), ..args.export.clone() };
        e.export = Some(path.clone());
        exports.extend(e.plan(input, output, None, generator)?);
    }
    Ok(exports)
}

/// The batch to run and its transport; `Err(Ok(code))` when the transport cannot start
/// (it said why), `Err(Err(message))` for bad input.
fn prepare(
    args: &BatchArgs,
    recipe: moa_core::Recipe,
    input: PathBuf,
    output: PathBuf,
    exports: &[Export],
) -> Result<(batch::Batch, moa_host::Transport), Result<ExitCode, String>> {
    let shard = args.shard.as_deref().map(|s| Shard::parse(s, |k| std::env::var(k).ok())).transpose().map_err(Err)?;
    let keys = keys::require(&recipe, |_| true).map_err(|e| Err(e.to_string()))?;
    let transport = transport().map_err(Ok)?.with_provider_limits([&recipe]);
    let resolver = args.recipe.resolver(&recipe).map_err(Err)?;
    let job = batch::Batch {
        recipe,
        resolver,
        keys,
        input,
        output,
        concurrency: args.concurrency,
        proposals: args.proposals || exports.iter().any(|e| e.format == Format::Dpo),
        seed: args.recipe.seed,
        on_progress: (!args.quiet).then(|| super::progress::batch_bar(true)),
        select: Select { shard, dedup: args.dedup },
    };
    Ok((job, transport))
}

/// What the batch skipped, before the exports run.
fn report(s: &batch::Summary) {
    if s.repeated > 0 {
        let examples: Vec<String> = s.repeats.iter().take(5).map(|(id, first)| format!("{id} (as {first})")).collect();
        eprintln!("moa: skipped {} items whose prompt repeats an earlier one's: {}", s.repeated, examples.join(", "));
    }
    if s.other_shards > 0 {
        eprintln!("moa: {} items belong to other shards", s.other_shards);
    }
}

/// The batch's closing line.
fn summarize(s: &batch::Summary) {
    let cost = s.cost.map(|c| format!(", ${c:.4}")).unwrap_or_default();
    eprintln!(
        "moa: {} items: {} answered now, {} already done, {} failed (rerun to retry them); {} tokens{cost}",
        s.total,
        s.answered,
        s.skipped,
        s.failed,
        s.usage.total()
    );
}

fn run_merge(input: &Path, outputs: &[PathBuf], to: &Path) -> ExitCode {
    let m = match merge::merge(input, outputs, to) {
        Ok(m) => m,
        Err(e) => return bad(&e.to_string()),
    };
    eprintln!("moa: {}: {} of {} items", to.display(), m.written, m.total);
    for (id, files) in &m.duplicates {
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        eprintln!("moa: id {id} is answered in more than one output: {}", files.join(", "));
    }
    if !m.missing.is_empty() {
        let shown: Vec<&str> = m.missing.iter().take(20).map(String::as_str).collect();
        let more = if m.missing.len() > 20 { format!(" and {} more", m.missing.len() - 20) } else { String::new() };
        eprintln!("moa: {} items have no answer in any output: {}{more}", m.missing.len(), shown.join(", "));
    }
    if m.missing.is_empty() && m.duplicates.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(FAILED) }
}
