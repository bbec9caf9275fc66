//! `moa recipes` and `moa check`: the presets, and what a recipe would do.

use super::common::bad;
use moa_core::recipe::PRESETS;
use moa_host::{keys, recipes};
use std::process::ExitCode;

/// Lists the presets, or prints one as TOML.
pub(crate) fn recipes(show: Option<String>) -> ExitCode {
    let Some(name) = show else {
        for (name, description) in PRESETS {
            println!("{name:10} {description}");
        }
        return ExitCode::SUCCESS;
    };
    match moa_core::recipe::preset(&name) {
        Some(r) => {
            print!("{}", r.to_toml());
            ExitCode::SUCCESS
        }
        None => bad(&format!("no preset called {name:?}")),
    }
}

/// Validates a recipe and says what it does: its shape, its providers, and which
/// environment variable is sent to which host.
pub(crate) fn check(recipe: &str) -> ExitCode {
    match recipes::load(recipe) {
        Ok(r) => {
            println!(
                "{}: ok — {} layer(s), {} calls per run, aggregator {}",
                recipe,
                r.layers.len(),
                r.call_count(),
                r.aggregator.model
            );
            for (name, p) in &r.providers {
                println!("  provider {name}: {:?} at {}", p.kind, p.base_url);
            }
            for (var, provider, host) in keys::routes(&r) {
                let note = if keys::is_key_name(&var) { "" } else { " (needs --allow-key-env: not a *_KEY name)" };
                println!("  key: ${var} is sent to {host} (provider {provider}){note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => bad(&e.to_string()),
    }
}
