//! What every command shares: recipe arguments, exit codes, the HTTP transport, the
//! async runtime and Ctrl-C handling.

use clap::Args;
use moa_core::Recipe;
use moa_host::plugin::{HostResolver, Runtime};
use moa_host::recipes::{self, Knobs};
use moa_host::{Transport, keys};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Exit codes: 0 done, 1 the run failed, 2 bad input or recipe, 130 interrupted.
pub(crate) const FAILED: u8 = 1;
pub(crate) const BAD_INPUT: u8 = 2;
pub(crate) const INTERRUPTED: u8 = 130;

#[derive(Args)]
pub(crate) struct RecipeArgs {
    /// Preset name or .toml/.json recipe file.
    #[arg(long, short, default_value = "local")]
    pub(crate) recipe: String,
    /// Override any recipe field: PATH=VALUE, e.g. layers[0].agents[1].temperature=0.2.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    sets: Vec<String>,
    /// Final aggregator, as provider:model.
    #[arg(long)]
    aggregator: Option<String>,
    /// Temperature for every agent.
    #[arg(long)]
    temperature: Option<f64>,
    /// Generated-token cap for every agent.
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Number of proposer layers (repeats or drops the last ones).
    #[arg(long)]
    layers: Option<usize>,
    /// Seed for retry jitter.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Let the recipe read this environment variable for a key although its name does not
    /// end in _API_KEY or _KEY (repeatable).
    #[arg(long = "allow-key-env", value_name = "NAME")]
    pub(crate) allow_key_env: Vec<String>,
    /// Start the local models the recipe calls if they are not running, and stop them
    /// after (`moa local`).
    #[arg(long, env = "MOA_START_LOCAL")]
    pub(crate) start_local: bool,
}

/// [`local_models`] for commands that cannot go on without them: the reason printed, and
/// the exit code to return.
pub(crate) fn local_models_or_exit(
    recipes: &[&Recipe],
    start: bool,
) -> Result<Option<moa_host::local::Started>, ExitCode> {
    local_models(recipes, start).map_err(|e| {
        eprintln!("moa: {e}");
        ExitCode::from(FAILED)
    })
}

/// The local models `recipes` call: started when `start` (the guard stops them when
/// dropped), else checked, so that a server that is not running is one clear line
/// instead of a failed run.
pub(crate) fn local_models(recipes: &[&Recipe], start: bool) -> Result<Option<moa_host::local::Started>, String> {
    let needs: Vec<moa_host::local::Need> = recipes.iter().flat_map(|r| moa_host::local::needs(r)).collect();
    if needs.is_empty() {
        return Ok(None);
    }
    if start {
        let say = |l: &str| eprintln!("moa local: {l}");
        return moa_host::local::start_needed(&needs, &say).map(Some).map_err(|e| e.to_string());
    }
    match moa_host::local::missing_hint(&needs) {
        Some(hint) => Err(hint),
        None => Ok(None),
    }
}

impl RecipeArgs {
    /// Resolves the recipe's strategies; plugins load relative to the recipe's folder.
    pub(crate) fn resolver(&self, recipe: &Recipe) -> Result<Option<Arc<HostResolver>>, String> {
        resolver(&[recipe], recipe_folder(&self.recipe))
    }

    pub(crate) fn load(&self) -> Result<Recipe, String> {
        let r = recipes::load(&self.recipe).map_err(|e| e.to_string())?;
        let knobs = Knobs {
            aggregator: self.aggregator.clone(),
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            layers: self.layers,
        };
        let r = knobs.apply(&r).map_err(|e| e.to_string())?;
        let r = recipes::apply_sets(&r, &self.sets).map_err(|e| e.to_string())?;
        keys::check_env(&r, &self.allow_key_env)?;
        Ok(r)
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moa: cannot start the async runtime: {e}");
            std::process::exit(FAILED as i32);
        }
    }
}

/// The HTTP transport, or the exit code after saying why there is none.
pub(crate) fn transport() -> Result<Transport, ExitCode> {
    Transport::new().map_err(|e| {
        eprintln!("moa: cannot make an HTTP client: {e}");
        ExitCode::from(FAILED)
    })
}

/// The resolver for `recipes`' plugin strategies, relative paths taken from `base`; `None`
/// when none uses a plugin. Every resolver of the process shares its one runtime.
pub(crate) fn resolver(recipes: &[&Recipe], base: PathBuf) -> Result<Option<Arc<HostResolver>>, String> {
    if !recipes.iter().any(|r| uses_plugins(r)) {
        return Ok(None);
    }
    let runtime = Runtime::shared(moa_exe()).map_err(|e| format!("cannot start the plugin runtime: {e}"))?;
    Ok(Some(Arc::new(HostResolver { runtime, base })))
}

/// The folder a recipe's relative plugin paths start from: a recipe file's own folder, or
/// the current one for a preset.
pub(crate) fn recipe_folder(spec: &str) -> PathBuf {
    let path = std::path::Path::new(spec);
    if path.exists() { path.parent().map(PathBuf::from).unwrap_or_default() } else { PathBuf::from(".") }
}

/// Whether any strategy of `recipe` is a plugin (then the plugin runtime is started).
pub(crate) fn uses_plugins(recipe: &Recipe) -> bool {
    plugin_specs(recipe).next().is_some()
}

/// The recipe's plugin strategies, layer by layer, the aggregator's last.
pub(crate) fn plugin_specs(recipe: &Recipe) -> impl Iterator<Item = &moa_core::recipe::StrategySpec> {
    recipe
        .layers
        .iter()
        .filter_map(|l| l.strategy.as_ref())
        .chain(recipe.aggregator.strategy.as_ref())
        .filter(|s| s.plugin.is_some())
}

pub(crate) fn bad(message: &str) -> ExitCode {
    eprintln!("moa: {message}");
    ExitCode::from(BAD_INPUT)
}

/// Cancels on the first Ctrl-C (or SIGTERM); a second one exits at once.
pub(crate) fn interrupt_token() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                s.recv().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term => {} }
        eprintln!("\nmoa: interrupted, cancelling (Ctrl-C again to quit at once)");
        t.cancel();
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(INTERRUPTED as i32);
    });
    token
}

/// This executable, to compile plugins in a child process of it.
pub(crate) fn moa_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("moa"))
}
