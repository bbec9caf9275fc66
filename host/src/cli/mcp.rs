//! `moa mcp`: the recipes as a Model Context Protocol server on stdio, for agents.

use super::common::{FAILED, bad, transport};
use super::serve::{load_plugins, served_recipes};
use clap::Args;
use moa_core::Recipe;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct McpArgs {
    /// A folder of .toml/.json recipes offered by file name (besides the presets).
    #[arg(long)]
    recipes: Option<PathBuf>,
    /// The recipe `ask` uses when a call names none.
    #[arg(long, default_value = "local")]
    default_recipe: String,
    /// Let a recipe read this environment variable for a key although its name does not
    /// end in _API_KEY or _KEY (repeatable).
    #[arg(long = "allow-key-env", value_name = "NAME")]
    allow_key_env: Vec<String>,
    /// Start the local models the default recipe calls if they are not running, and stop
    /// them when the client disconnects (`moa local`).
    #[arg(long, env = "MOA_START_LOCAL")]
    start_local: bool,
}

pub(crate) async fn mcp(args: McpArgs) -> ExitCode {
    let recipes = match served_recipes(args.recipes.as_deref(), &args.allow_key_env) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let Some(default) = recipes.get(&args.default_recipe) else {
        let known: Vec<&str> = recipes.keys().map(String::as_str).collect();
        return bad(&format!("--default-recipe {}: no such recipe ({})", args.default_recipe, known.join(", ")));
    };
    let resolver = match load_plugins(args.recipes.as_deref(), &recipes) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let transport = match transport() {
        Ok(t) => t,
        Err(code) => return code,
    };
    // Stdout is the protocol's: every word of ours goes to stderr.
    let started: [&Recipe; 1] = [default];
    let _local = match super::common::local_models(&started, args.start_local) {
        Ok(l) => l,
        Err(e) if args.start_local => {
            eprintln!("moa mcp: {e}");
            return ExitCode::from(FAILED);
        }
        Err(e) => {
            eprintln!("moa mcp: warning: {e}");
            None
        }
    };
    let server = moa_host::mcp::Mcp::new(recipes, args.default_recipe.clone(), transport, resolver);
    match moa_host::mcp::serve_stdio(server).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("moa mcp: {e}");
            ExitCode::from(FAILED)
        }
    }
}
