//! The `moa` command line.

use clap::{Args, Parser, Subcommand};
use moa_core::recipe::PRESETS;
use moa_core::{Message, Recipe, Run, RunError, RunOptions};
use moa_host::display::{Display, Mode};
use moa_host::plugin::{self, HostResolver, Runtime};
use moa_host::recipes::{self, Knobs};
use moa_host::{Clock, Transport, batch, keys};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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
    Run(RunArgs),
    /// Answer every prompt of a JSONL file into another, resumably.
    Batch(BatchArgs),
    /// List the built-in recipes, or print one as TOML to start your own.
    Recipes {
        /// Print this preset as TOML.
        #[arg(long, value_name = "NAME")]
        show: Option<String>,
    },
    /// Validate a recipe (preset name or file) and summarize it.
    Check {
        /// Preset name or .toml/.json file.
        recipe: String,
    },
    /// Serve every recipe as a model behind an OpenAI-compatible API (and the web page at /).
    Serve(ServeArgs),
    /// Work with strategy plugins (WebAssembly components).
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a plugin, check its contract, run it on a sample context, and time it.
    Check {
        /// The plugin's .wasm file.
        file: PathBuf,
        /// Params as JSON, as a recipe would give them.
        #[arg(long, default_value = "{}")]
        params: String,
    },
}

#[derive(Args)]
struct RecipeArgs {
    /// Preset name or .toml/.json recipe file.
    #[arg(long, short, default_value = "local")]
    recipe: String,
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
    seed: u64,
    /// Let the recipe read this environment variable for a key although its name does not
    /// end in _API_KEY or _KEY (repeatable).
    #[arg(long = "allow-key-env", value_name = "NAME")]
    allow_key_env: Vec<String>,
}

impl RecipeArgs {
    /// Resolves the recipe's strategies; plugins load relative to the recipe's folder.
    fn resolver(&self, recipe: &Recipe) -> Result<Option<Arc<HostResolver>>, String> {
        if !uses_plugins(recipe) {
            return Ok(None);
        }
        let runtime = Runtime::default_cached().map_err(|e| format!("cannot start the plugin runtime: {e}"))?;
        let path = std::path::Path::new(&self.recipe);
        let base =
            if path.exists() { path.parent().map(PathBuf::from).unwrap_or_default() } else { PathBuf::from(".") };
        Ok(Some(Arc::new(HostResolver { runtime, base })))
    }

    fn load(&self) -> Result<Recipe, String> {
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

#[derive(Args)]
struct ServeArgs {
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
    /// The web page's folder (built by scripts/build-wasm).
    #[arg(long, default_value = "www")]
    www: PathBuf,
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
}

#[derive(Args)]
struct RunArgs {
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
}

#[derive(Args)]
struct BatchArgs {
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
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// Exit codes: 0 done, 1 the run failed, 2 bad input or recipe, 130 interrupted.
const FAILED: u8 = 1;
const BAD_INPUT: u8 = 2;
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Recipes { show: None } => {
            for (name, description) in PRESETS {
                println!("{name:10} {description}");
            }
            ExitCode::SUCCESS
        }
        Command::Recipes { show: Some(name) } => match moa_core::recipe::preset(&name) {
            Some(r) => {
                print!("{}", r.to_toml());
                ExitCode::SUCCESS
            }
            None => bad(&format!("no preset called {name:?}")),
        },
        Command::Check { recipe } => match recipes::load(&recipe) {
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
        },
        Command::Plugin(PluginCommand::Check { file, params }) => plugin_check(&file, &params),
        Command::Run(args) => runtime().block_on(run(args)),
        Command::Serve(args) => runtime().block_on(serve(args)),
        Command::Batch(args) => runtime().block_on(run_batch(args)),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("moa: cannot start the async runtime: {e}");
            std::process::exit(FAILED as i32);
        }
    }
}

/// The HTTP transport, or the exit code after saying why there is none.
fn transport() -> Result<Transport, ExitCode> {
    Transport::new().map_err(|e| {
        eprintln!("moa: cannot make an HTTP client: {e}");
        ExitCode::from(FAILED)
    })
}

/// Whether any strategy of `recipe` is a plugin (then the plugin runtime is started).
fn uses_plugins(recipe: &Recipe) -> bool {
    recipe
        .layers
        .iter()
        .filter_map(|l| l.strategy.as_ref())
        .chain(recipe.aggregator.strategy.as_ref())
        .any(|s| s.plugin.is_some())
}

fn bad(message: &str) -> ExitCode {
    eprintln!("moa: {message}");
    ExitCode::from(BAD_INPUT)
}

/// Cancels on the first Ctrl-C (or SIGTERM); a second one exits at once.
fn interrupt_token() -> CancellationToken {
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

async fn run(args: RunArgs) -> ExitCode {
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
    let resolver = match args.recipe.resolver(&recipe) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
    let clock = Clock::new();
    let mode = if args.json { Mode::Json } else { Mode::Human { show_proposals: args.show_proposals } };
    let mut display = Display::new(mode, recipe.layers.len());
    let mut options = RunOptions {
        seed: args.recipe.seed,
        keys: keys::from_env(&recipe),
        reports_sent: true,
        irrevocable_answer: display.answer_is_irrevocable(),
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
    match &outcome.error {
        None => ExitCode::SUCCESS,
        Some(RunError::Cancelled) => ExitCode::from(INTERRUPTED),
        Some(e) => {
            if !args.json {
                eprintln!("moa: the run failed: {e}");
            }
            ExitCode::from(FAILED)
        }
    }
}

async fn run_batch(args: BatchArgs) -> ExitCode {
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
        Ok(t) => t,
        Err(code) => return code,
    };
    let resolver = match args.recipe.resolver(&recipe) {
        Ok(r) => r,
        Err(e) => return bad(&e),
    };
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
    };
    let cancel = interrupt_token();
    match batch::run(job, &transport, cancel.clone()).await {
        Err(e) => bad(&e.to_string()),
        Ok(s) => {
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

fn plugin_check(file: &std::path::Path, params: &str) -> ExitCode {
    let params: serde_json::Value = match serde_json::from_str(params) {
        Ok(v) => v,
        Err(e) => return bad(&format!("--params is not JSON: {e}")),
    };
    let runtime = match Runtime::default_cached() {
        Ok(r) => r,
        Err(e) => return bad(&format!("cannot start the plugin runtime: {e}")),
    };
    let t = std::time::Instant::now();
    let spec =
        moa_core::recipe::StrategySpec { plugin: Some(file.display().to_string()), params, ..Default::default() };
    let mut strategy = match plugin::PluginStrategy::new(runtime.clone(), file, &spec) {
        Ok(s) => s,
        Err(e) => return bad(&e.to_string()),
    };
    let loaded = t.elapsed();
    let plugin = match runtime.load(file) {
        Ok(p) => p,
        Err(e) => return bad(&e.to_string()),
    };
    println!(
        "{}: contract moa:strategy@{}, loaded in {:.1} ms",
        file.display(),
        plugin.contract,
        loaded.as_secs_f64() * 1e3
    );
    println!("  {} {} — {}", plugin.info.name, plugin.info.version, plugin.info.description);
    println!("  params: {}", plugin.info.params);
    let conversation = [Message::user("What is the capital of France?")];
    let proposals: Vec<moa_core::strategy::Proposal> =
        ["Paris.", "The capital of France is Paris.", "Paris", "Lyon", "Paris.", "Marseille"]
            .iter()
            .enumerate()
            .map(|(i, t)| moa_core::strategy::Proposal {
                agent: format!("sample:agent-{i}"),
                model: format!("agent-{i}"),
                text: (*t).into(),
                usage: None,
                latency_ms: 100.0,
            })
            .collect();
    let input = moa_core::strategy::StrategyInput {
        conversation: &conversation,
        layer: 1,
        layer_count: 1,
        proposals: &proposals,
    };
    use moa_core::strategy::Strategy;
    let t = std::time::Instant::now();
    let decision = strategy.decide(&input);
    let took = t.elapsed();
    match decision {
        Ok(moa_core::strategy::Decision::Final(answer)) => {
            println!("  decided the final answer in {:.1} µs: {answer:?}", took.as_secs_f64() * 1e6)
        }
        Ok(moa_core::strategy::Decision::Messages(ms)) => {
            println!("  returned {} message(s) for the next agents in {:.1} µs:", ms.len(), took.as_secs_f64() * 1e6);
            for m in ms {
                println!("    [{:?}] {}", m.role, m.content.replace('\n', "\n      "));
            }
        }
        Err(e) => {
            eprintln!("moa: {e}");
            return ExitCode::from(FAILED);
        }
    }
    ExitCode::SUCCESS
}

async fn serve(args: ServeArgs) -> ExitCode {
    let mut recipes: std::collections::BTreeMap<String, Recipe> =
        PRESETS.iter().filter_map(|(n, _)| moa_core::recipe::preset(n).map(|r| (n.to_string(), r))).collect();
    if let Some(dir) = &args.recipes {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return bad(&format!("--recipes {}: {e}", dir.display())),
        };
        for path in entries.flatten().map(|e| e.path()) {
            if !path.extension().is_some_and(|x| x == "toml" || x == "json") {
                continue;
            }
            let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            match recipes::load(&path.display().to_string()) {
                Ok(r) => {
                    if let Err(e) = keys::check_env(&r, &args.allow_key_env) {
                        return bad(&format!("{}: {e}", path.display()));
                    }
                    recipes.insert(name, r);
                }
                Err(e) => return bad(&e.to_string()),
            }
        }
    }
    let transport = match transport() {
        Ok(t) => t,
        Err(code) => return code,
    };
    let www = args.www.join("index.html").exists().then_some(args.www.clone());
    let resolver = if recipes.values().any(uses_plugins) {
        match Runtime::default_cached() {
            // Plugin paths in served recipes are relative to the recipes folder.
            Ok(runtime) => Some(Arc::new(HostResolver { runtime, base: args.recipes.clone().unwrap_or_default() })),
            Err(e) => return bad(&format!("cannot start the plugin runtime: {e}")),
        }
    } else {
        None
    };
    // Plugins load (validate, compile, describe) now, not on a client's request: a bad
    // or costly plugin shows at startup, and no request waits for a compiler.
    if let Some(r) = &resolver {
        use moa_core::strategy::Resolver;
        for (model, recipe) in &recipes {
            let specs =
                recipe.layers.iter().filter_map(|l| l.strategy.as_ref()).chain(recipe.aggregator.strategy.as_ref());
            for spec in specs.filter(|s| s.plugin.is_some()) {
                if let Err(e) = r.resolve(spec) {
                    return bad(&format!("recipe {model}: {e}"));
                }
            }
        }
    }
    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => return bad(&format!("cannot listen on {}: {e}", args.listen)),
    };
    let listen = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => return bad(&format!("cannot listen on {}: {e}", args.listen)),
    };
    let secs = |name: &str, v: f64| {
        std::time::Duration::try_from_secs_f64(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("--{name} must be a positive number of seconds"))
    };
    let (header_timeout, drain, keep_alive) = match (
        secs("header-timeout-secs", args.header_timeout_secs),
        secs("drain-secs", args.drain_secs),
        secs("keep-alive-secs", args.keep_alive_secs),
    ) {
        (Ok(h), Ok(d), Ok(k)) => (h, d, k),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(&e),
    };
    let mut config = moa_host::serve::Config::new(recipes, listen);
    config.token = args.token;
    config.max_body = args.max_body;
    config.max_runs = args.max_runs;
    config.www = www;
    config.resolver = resolver;
    config.allow_origins = args.allow_origins;
    config.log_prompts = args.log_prompts;
    config.keep_alive = keep_alive;
    let limits = moa_host::serve::Limits { header_timeout, max_connections: args.max_connections, drain };
    eprintln!("moa: serving on http://{listen}/v1 (models: GET /v1/models)");
    init_log();
    let stop = interrupt_token();
    let app = moa_host::serve::router(config, transport);
    moa_host::serve::run(listener, app, limits, stop).await;
    eprintln!("moa: stopped");
    ExitCode::SUCCESS
}

/// The server's log on stderr: one access line per request, upstream failures in detail.
/// `MOA_LOG` filters it (`info` by default; `moa::access=info,moa::upstream=off`, ...).
fn init_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
