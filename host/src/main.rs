//! The `moa` command line: parses and dispatches; each command lives in `cli/`.

mod cli;

use clap::{Parser, Subcommand};
use cli::common::runtime;
use std::process::ExitCode;

/// Mixture-of-Agents: several LLMs answer, later layers refine, an aggregator writes one answer.
#[derive(Parser)]
#[command(name = "moa", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer one prompt; the final answer streams to stdout.
    Run(cli::run::RunArgs),
    /// Answer every prompt of a JSONL file into another, resumably.
    Batch(Box<cli::batch::BatchArgs>),
    /// Score recipes (and their single models) on a dataset: quality, cost and latency.
    Eval(cli::eval::EvalArgs),
    /// List the built-in recipes, or print one as TOML to start your own.
    Recipes {
        /// Print this preset as TOML.
        #[arg(long, value_name = "NAME")]
        show: Option<String>,
    },
    /// Search mixtures of a pool of models for the best recipe on a dataset, under budgets.
    Tune(Box<cli::tune::TuneArgs>),
    /// Validate a recipe (preset name or file) and summarize it.
    Check {
        /// Preset name or .toml/.json file.
        recipe: String,
    },
    /// Serve every recipe as a model behind an OpenAI-compatible API (and the web page at /).
    Serve(cli::serve::ServeArgs),
    /// Serve the recipes to agents as a Model Context Protocol server on stdio (tools `ask`
    /// and `list_recipes`).
    Mcp(cli::mcp::McpArgs),
    /// Work with strategy plugins (WebAssembly components).
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCommand),
    /// Run the local models (llama.cpp servers on 127.0.0.1): provision, start, stop, status.
    #[command(subcommand)]
    Local(cli::local::LocalCommand),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Recipes { show } => cli::recipes::recipes(show),
        Command::Check { recipe } => cli::recipes::check(&recipe),
        Command::Plugin(cli::plugin::PluginCommand::Check { file, params, reply, limits }) => {
            cli::plugin::plugin_check(&file, &params, &reply, &limits)
        }
        Command::Plugin(cli::plugin::PluginCommand::New { name, lang, dir }) => {
            cli::plugin_new::plugin_new(&name, lang, &dir)
        }
        Command::Plugin(cli::plugin::PluginCommand::Compile { file }) => cli::plugin::plugin_compile(&file),
        Command::Tune(args) => runtime().block_on(cli::tune::run_tune(*args)),
        Command::Local(cmd) => cli::local::local(cmd),
        Command::Run(args) => runtime().block_on(cli::run::run(args)),
        Command::Serve(args) => runtime().block_on(cli::serve::serve(args)),
        Command::Mcp(args) => runtime().block_on(cli::mcp::mcp(args)),
        Command::Batch(args) => runtime().block_on(cli::batch::run_batch(*args)),
        Command::Eval(args) => runtime().block_on(cli::eval::run_eval(args)),
    }
}
