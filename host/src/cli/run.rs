//! `moa run`: one prompt, the answer streamed to stdout.

use super::common::{FAILED, INTERRUPTED, RecipeArgs, bad, interrupt_token, transport};
use super::display::{Display, Mode};
use super::tools::ToolArgs;
use clap::Args;
use moa_core::{Message, Run, RunError, RunOptions};
use moa_host::{Clock, keys};
use std::io::Read;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// The prompt; `-` or nothing reads it from stdin.
    prompt: Option<String>,
    /// Print every event as one JSON line on stdout instead.
    #[arg(long)]
    json: bool,
    /// Print every layer's answers before the final one.
    #[arg(long)]
    show_proposals: bool,
    #[command(flatten)]
    tools: ToolArgs,
}

pub(crate) async fn run(args: RunArgs) -> ExitCode {
    let recipe = match args.recipe.load() {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let prompt = match args.prompt.as_deref() {
        Some(p) if p != "-" => p.to_owned(),
        _ => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                return bad(&format!("cannot read the prompt from stdin: {e}"));
            }
            s
        }
    };
    if prompt.trim().is_empty() {
        return bad("the prompt is empty");
    }
    let _local = match super::common::local_models_or_exit(&[&recipe], args.recipe.start_local) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let resolver = match args.recipe.resolver(&recipe) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let (tools, response_format) = match (args.tools.tools(), args.tools.response_format()) {
        (Ok(t), Ok(f)) => (t, f),
        (Err(e), _) | (_, Err(e)) => return bad(&e),
    };
    let clock = Clock::new();
    let mode = if args.json { Mode::Json } else { Mode::Human { show_proposals: args.show_proposals } };
    let mut display = Display::new(mode, recipe.layers.len());
    let mut options = RunOptions {
        seed: args.recipe.seed,
        keys: keys::from_env(&recipe).into_iter().collect(),
        reports_sent: true,
        irrevocable_answer: display.answer_is_irrevocable(),
        tools,
        response_format,
        ..RunOptions::default()
    };
    if let Some(r) = &resolver {
        options.resolver = r.as_ref();
    }
    let mut run = match Run::with_options(&recipe, vec![Message::user(prompt)], clock.now(), options) {
        Ok(r) => r,
        Err(e) => return bad(&e.to_string()),
    };
    let transport = match transport() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let cancel = interrupt_token();
    let outcome = transport.drive(&mut run, &clock, &cancel, |e| display.on_event(e)).await;
    match &outcome.answer {
        Ok(_) => ExitCode::SUCCESS,
        Err(RunError::Cancelled) => ExitCode::from(INTERRUPTED),
        Err(e) => {
            if !args.json {
                eprintln!("moa: the run failed: {e}");
            }
            ExitCode::from(FAILED)
        }
    }
}
