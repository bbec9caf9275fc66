//! `moa serve`: every recipe as a model behind an OpenAI-compatible API.

use super::common::{FAILED, bad, interrupt_token, plugin_specs, transport};
use clap::Args;
use moa_core::Recipe;
use moa_core::recipe::PRESETS;
use moa_host::keys;
use moa_host::recipes;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// A folder of .toml/.json recipes, served as models by file name (besides the presets).
    #[arg(long)]
    recipes: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN`.
    #[arg(long, env = "MOA_SERVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Runs at once; more get 429 with Retry-After.
    #[arg(long, default_value_t = 16)]
    max_runs: usize,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Serve this folder at / instead of the page built into moa (a folder like the
    /// project's www/, with the browser module in pkg/).
    #[arg(long)]
    www: Option<PathBuf>,
    /// A web origin (like https://app.example) allowed to call the API from a browser,
    /// with CORS headers; repeat for more. Other origins are refused.
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// Put prompts in the access log (off: the log never holds a prompt or a key).
    #[arg(long)]
    log_prompts: bool,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 10.0)]
    header_timeout_secs: f64,
    /// Seconds a client has to send a request's body, once its headers are in: a body
    /// that arrives slower gets a 408 and its connection closed.
    #[arg(long, default_value_t = 30.0)]
    body_timeout_secs: f64,
    /// Connections at once (keep it below the file-descriptor limit).
    #[arg(long, default_value_t = 512)]
    max_connections: usize,
    /// Seconds a shutdown waits for requests in flight.
    #[arg(long, default_value_t = 10.0)]
    drain_secs: f64,
    /// Seconds between SSE keep-alive comments while a stream has nothing to send.
    #[arg(long, default_value_t = 15.0)]
    keep_alive_secs: f64,
    /// Let recipes read this environment variable for a key although its name does not
    /// end in _API_KEY or _KEY (repeatable).
    #[arg(long = "allow-key-env", value_name = "NAME")]
    allow_key_env: Vec<String>,
    /// Start the local models the served recipes call if they are not running, and stop
    /// them on shutdown (`moa local`).
    #[arg(long, env = "MOA_START_LOCAL")]
    start_local: bool,
}

pub(crate) async fn serve(args: ServeArgs) -> ExitCode {
    let recipes = match served_recipes(args.recipes.as_deref(), &args.allow_key_env) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let transport = match transport() {
        Ok(t) => t,
        Err(code) => return code,
    };
    if let Some(dir) = &args.www
        && !dir.join("index.html").is_file()
    {
        return bad(&format!("--www {}: no index.html there", dir.display()));
    }
    let resolver = match load_plugins(args.recipes.as_deref(), &recipes) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    // Local models: started when asked; else a missing one is a warning (it may be started
    // later), not a reason to refuse to serve the other recipes.
    let served: Vec<&Recipe> = recipes.values().collect();
    let (_local, warning) = match super::common::local_models(&served, args.start_local) {
        Ok(l) => (l, None),
        Err(e) if args.start_local => {
            eprintln!("moa: {e}");
            return ExitCode::from(FAILED);
        }
        // Said after the "serving on" line, which stays the first thing a caller reads.
        Err(e) => (None, Some(e)),
    };
    let bound = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l.local_addr().map(|a| (l, a)),
        Err(e) => Err(e),
    };
    let (listener, listen) = match bound {
        Ok(b) => b,
        Err(e) => return bad(&format!("cannot listen on {}: {e}", args.listen)),
    };
    let [header_timeout, body_timeout, drain, keep_alive] = match timeouts(&args) {
        Ok(t) => t,
        Err(e) => return bad(&e),
    };
    let mut config = moa_host::serve::Config::new(recipes, listen);
    config.token = args.token;
    config.max_body = args.max_body;
    config.max_runs = args.max_runs;
    config.www = args.www;
    config.resolver = resolver;
    config.allow_origins = args.allow_origins;
    config.log_prompts = args.log_prompts;
    config.keep_alive = keep_alive;
    config.body_timeout = body_timeout;
    let limits = moa_host::serve::Limits { header_timeout, max_connections: args.max_connections, drain };
    eprintln!("moa: serving on http://{listen}/v1 (models: GET /v1/models)");
    if let Some(w) = warning {
        eprintln!("moa serve: warning: {w}");
    }
    init_log();
    let stop = interrupt_token();
    let app = moa_host::serve::router(config, transport);
    moa_host::serve::run(listener, app, limits, stop).await;
    eprintln!("moa: stopped");
    ExitCode::SUCCESS
}

/// The presets, and each `.toml`/`.json` recipe of `--recipes` under its file's name
/// (`moa serve` and `moa mcp`).
pub(crate) fn served_recipes(
    dir: Option<&std::path::Path>,
    allow_key_env: &[String],
) -> Result<std::collections::BTreeMap<String, Recipe>, String> {
    let mut recipes: std::collections::BTreeMap<String, Recipe> =
        PRESETS.iter().filter_map(|(n, _)| moa_core::recipe::preset(n).map(|r| (n.to_string(), r))).collect();
    let Some(dir) = dir else { return Ok(recipes) };
    let entries = std::fs::read_dir(dir).map_err(|e| format!("--recipes {}: {e}", dir.display()))?;
    for path in entries.flatten().map(|e| e.path()) {
        if !path.extension().is_some_and(|x| x == "toml" || x == "json") {
            continue;
        }
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let r = recipes::load(&path.display().to_string()).map_err(|e| e.to_string())?;
        keys::check_env(&r, allow_key_env).map_err(|e| format!("{}: {e}", path.display()))?;
        recipes.insert(name, r);
    }
    Ok(recipes)
}

/// The served recipes' plugins, loaded (validated, compiled, described) now, not on a
/// client's request: a bad or costly plugin shows at startup, and no request waits for a
/// compiler. Plugin paths are relative to the recipes folder.
pub(crate) fn load_plugins(
    dir: Option<&std::path::Path>,
    recipes: &std::collections::BTreeMap<String, Recipe>,
) -> Result<Option<std::sync::Arc<moa_host::plugin::HostResolver>>, String> {
    let served: Vec<&Recipe> = recipes.values().collect();
    let resolver = super::common::resolver(&served, dir.map(|d| d.to_path_buf()).unwrap_or_default())?;
    if let Some(r) = &resolver {
        use moa_core::strategy::Resolver;
        for (model, recipe) in recipes {
            for spec in plugin_specs(recipe) {
                r.resolve(spec).map_err(|e| format!("recipe {model}: {e}"))?;
            }
        }
    }
    Ok(resolver)
}

/// The header, body, drain and keep-alive times, each a positive number of seconds.
fn timeouts(args: &ServeArgs) -> Result<[std::time::Duration; 4], String> {
    let secs = |name: &str, v: f64| {
        std::time::Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("--{name} must be a positive number of seconds"))
    };
    Ok([
        secs("header-timeout-secs", args.header_timeout_secs)?,
        secs("body-timeout-secs", args.body_timeout_secs)?,
        secs("drain-secs", args.drain_secs)?,
        secs("keep-alive-secs", args.keep_alive_secs)?,
    ])
}

/// The server's log on stderr: one access line per request, upstream failures in detail.
/// `MOA_LOG` filters it: a level, and targets at levels (`info` by default;
/// `moa::access=info,moa::upstream=off`, ...). One it cannot read is said, not ignored.
fn init_log() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let text = std::env::var("MOA_LOG").unwrap_or_default();
    let filter = log_filter(&text).unwrap_or_else(|e| {
        eprintln!("moa serve: warning: MOA_LOG={text:?} is not a filter ({e}); logging at info");
        log_filter("").unwrap_or_default()
    });
    let log = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish();
    let _ = log.with(filter).try_init();
}

/// `MOA_LOG`'s text as a filter: pieces trimmed, empty ones dropped (`Targets` would read
/// an empty piece as "everything at trace"); nothing at all means `info`.
fn log_filter(text: &str) -> Result<tracing_subscriber::filter::Targets, tracing_subscriber::filter::ParseError> {
    let pieces: Vec<&str> = text.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    match pieces.is_empty() {
        true => Ok(tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)),
        false => pieces.join(",").parse(),
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn a_log_filter_reads_levels_and_targets_and_shrugs_off_spaces_and_empty_pieces() {
        let on = |text: &str, target: &str, level: Level| log_filter(text).expect(text).would_enable(target, &level);
        for text in ["", " ", ",", "info", "info,"] {
            assert!(on(text, "moa::access", Level::INFO), "{text:?}");
            assert!(!on(text, "moa::access", Level::DEBUG), "{text:?}: not everything at trace");
        }
        for text in ["moa::access=info,moa::upstream=off", " moa::access=info , moa::upstream=off ,"] {
            assert!(on(text, "moa::access", Level::INFO), "{text:?}");
            assert!(!on(text, "moa::upstream", Level::ERROR), "{text:?}");
            assert!(!on(text, "hyper", Level::ERROR), "{text:?}: what is not named is off");
        }
        assert!(log_filter("moa::access=loud").is_err());
    }
}
