//! `moa batch`: a JSONL file of prompts through one recipe, resumably.

use super::common::{FAILED, INTERRUPTED, RecipeArgs, bad, interrupt_token, transport};
use clap::Args;
use moa_host::{batch, keys};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct BatchArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Input JSONL: a prompt string, {"instruction": ...} or {"messages": [...]} per line, optional "id".
    input: PathBuf,
    /// Output JSONL; rerunning skips ids already answered there.
    #[arg(long, short)]
    output: PathBuf,
    /// Items in flight at once (each provider's max_concurrency also holds, across items).
    #[arg(long, short = 'j', default_value_t = 16)]
    concurrency: usize,
    /// Write every layer's proposals in each output line.
    #[arg(long)]
    proposals: bool,
    /// Also write AlpacaEval's model_outputs.json here (instruction, output, generator),
    /// from every answered item of OUT, for the `alpaca_eval` tool.
    #[arg(long, value_name = "FILE")]
    alpaca_eval: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

pub(crate) async fn run_batch(args: BatchArgs) -> ExitCode {
    let recipe = match args.recipe.load() {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let keys = keys::from_env(&recipe);
    for (name, p) in &recipe.providers {
        if let Some(var) = &p.api_key_env
            && !keys.contains_key(name)
        {
            return bad(&format!("provider {name:?} needs an API key: set {var}"));
        }
    }
    let transport = match transport() {
        Ok(t) => t.with_provider_limits([&recipe]),
        Err(code) => return code,
    };
    let resolver = match args.recipe.resolver(&recipe) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let generator = recipe.name.clone();
    let (input, output) = (args.input.clone(), args.output.clone());
    let job = batch::Batch {
        recipe,
        resolver,
        keys,
        input: args.input,
        output: args.output,
        concurrency: args.concurrency,
        proposals: args.proposals,
        seed: args.recipe.seed,
        progress: !args.quiet,
        bar: None,
    };
    let cancel = interrupt_token();
    match batch::run(job, &transport, cancel.clone()).await {
        Err(e) => bad(&e.to_string()),
        Ok(s) => {
            if let Some(path) = &args.alpaca_eval {
                match batch::write_alpaca_eval(&input, &output, path, &generator) {
                    Ok(n) => eprintln!("moa: {}: {n} outputs for alpaca_eval", path.display()),
                    Err(e) => return bad(&e.to_string()),
                }
            }
            let cost = s.cost.map(|c| format!(", ${c:.4}")).unwrap_or_default();
            eprintln!(
                "moa: {} items: {} answered now, {} already done, {} failed (rerun to retry them); {} tokens{cost}",
                s.total,
                s.answered,
                s.skipped,
                s.failed,
                s.usage.total()
            );
            if cancel.is_cancelled() {
                ExitCode::from(INTERRUPTED)
            } else if s.failed > 0 {
                ExitCode::from(FAILED)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
