//! Users' own strategies as sandboxed WebAssembly components, run with wasmtime.
//!
//! A plugin is validated, compiled once (and cached on disk between runs by wasmtime's
//! cache), checked against the contract versions this host supports and the imports the
//! contract grants, and pre-instantiated (`InstancePre`). Every decision gets a fresh
//! `Store` — a trap poisons an instance, so none is ever reused — with an empty WASI
//! context (no files, sockets, environment, clocks or randomness), a linear-memory cap,
//! a CPU deadline by epoch interruption, and a cap on what it may return.

mod strategy;
pub mod v0_1_0;

pub use strategy::{HostResolver, PluginStrategy};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use thiserror::Error;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances: the granularity of CPU deadlines.
pub const TICK: Duration = Duration::from_millis(10);

/// The largest memory cap a recipe may give a plugin (`memory_mib`).
pub const MAX_MEMORY: usize = 1 << 30;

/// Contract versions this host accepts, newest first.
pub const SUPPORTED: [&str; 1] = ["0.1.0"];

/// Import namespaces the contract grants: its own type definitions, and what Rust's std
/// needs to start, all of it inert with the empty WASI context. Files, sockets, clocks
/// and randomness are not here.
const GRANTED_IMPORTS: [&str; 3] = ["moa:strategy/types@", "wasi:io/", "wasi:cli/"];

/// Limits for one plugin; the recipe may set each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// CPU time per decision.
    pub timeout: Duration,
    /// Linear memory, in bytes.
    pub memory: usize,
    /// Size of what a decision may return, in bytes.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { timeout: Duration::from_millis(300), memory: 64 << 20, output: 1 << 20 }
    }
}

impl Limits {
    /// The defaults, overridden by a recipe's `timeout_ms`, `memory_mib`, `max_output_kib`.
    pub fn from_spec(spec: &moa_core::recipe::StrategySpec) -> Limits {
        let d = Limits::default();
        Limits {
            timeout: spec.timeout_ms.map_or(d.timeout, Duration::from_millis),
            memory: spec.memory_mib.map_or(d.memory, |m| (m as usize) << 20),
            output: spec.max_output_kib.map_or(d.output, |k| (k as usize) << 10),
        }
    }
}

/// Why a plugin could not be loaded or could not decide. Always names the plugin.
#[derive(Clone, Debug, PartialEq, Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("plugin {plugin}: cannot read it: {reason}")]
    Read {
        /// The plugin's path.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// Not a valid WebAssembly component.
    #[error("plugin {plugin}: not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The plugin's path.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// A valid component that does not implement a supported contract, or that imports
    /// what the contract does not grant.
    #[error("plugin {plugin}: {reason}")]
    Contract {
        /// The plugin's path.
        plugin: String,
        /// Why.
        reason: String,
    },
    /// The plugin ran past its CPU deadline.
    #[error("plugin {plugin}: ran past its CPU deadline of {ms} ms (timeout_ms) and was stopped")]
    Timeout {
        /// The plugin's path.
        plugin: String,
        /// The deadline.
        ms: u128,
    },
    /// The plugin tried to grow its memory past the cap.
    #[error("plugin {plugin}: tried to use more than its {mib} MiB memory cap (memory_mib) and was stopped")]
    Memory {
        /// The plugin's path.
        plugin: String,
        /// The cap.
        mib: usize,
    },
    /// The plugin trapped: a panic, a stack overflow, a bad memory access.
    #[error("plugin {plugin}: crashed: {reason}")]
    Trap {
        /// The plugin's path.
        plugin: String,
        /// The trap, in words.
        reason: String,
    },
    /// The plugin returned more than the cap.
    #[error("plugin {plugin}: returned {bytes} bytes, over its cap of {cap} bytes (max_output_kib)")]
    Output {
        /// The plugin's path.
        plugin: String,
        /// What it returned.
        bytes: usize,
        /// The cap.
        cap: usize,
    },
    /// The plugin returned something impossible, or reported an error itself.
    #[error("plugin {plugin}: {reason}")]
    Decision {
        /// The plugin's path.
        plugin: String,
        /// What was wrong.
        reason: String,
    },
}

/// Per-store state: an empty WASI context and the store's limits.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A loaded plugin, ready to instantiate.
pub struct Plugin {
    /// The path it was loaded from, as given.
    pub name: String,
    /// The contract version it implements.
    pub contract: &'static str,
    /// What `describe` said.
    pub info: v0_1_0::Info,
    pre: v0_1_0::PluginPre<PluginState>,
}

/// Loads and runs plugins. One per process: it owns the engine and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    loaded: Mutex<HashMap<PathBuf, Arc<Plugin>>>,
}

impl Runtime {
    /// An engine with epoch interruption and wasmtime's on-disk compilation cache under
    /// `cache_dir` (none when `None`).
    pub fn new(cache_dir: Option<&Path>) -> wasmtime::Result<Arc<Runtime>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Pooling keeps instance slots and memories mapped between decisions, so a fresh
        // instance per decision costs microseconds. Slots are virtual reservations.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(256).total_core_instances(1024).total_memories(512).total_tables(1024);
        pool.max_memory_size(MAX_MEMORY);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        if let Some(dir) = cache_dir {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(wasmtime::Cache::new(cache)?));
        }
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        // Everything is linked, but a plugin importing more than GRANTED_IMPORTS is
        // refused at load, and the WASI context grants nothing anyway.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let runtime = Arc::new(Runtime { engine, linker, loaded: Mutex::new(HashMap::new()) });
        spawn_ticker(Arc::downgrade(&runtime));
        Ok(runtime)
    }

    /// The default: compiled code cached under `~/.cache/moa/wasmtime`.
    pub fn default_cached() -> wasmtime::Result<Arc<Runtime>> {
        let dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/moa/wasmtime"));
        Runtime::new(dir.as_deref())
    }

    /// Loads `path` (once per process; later calls return the same plugin).
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(p) = self.loaded.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let plugin = Arc::new(self.load_uncached(path)?);
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(key, plugin.clone());
        }
        Ok(plugin)
    }

    fn load_uncached(&self, path: &Path) -> Result<Plugin, PluginError> {
        let name = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|e| PluginError::Read { plugin: name.clone(), reason: e.to_string() })?;
        let invalid = |reason: String| PluginError::Invalid { plugin: name.clone(), reason };
        let contract = |reason: String| PluginError::Contract { plugin: name.clone(), reason };
        if !wasmparser::Parser::is_component(&bytes) {
            let what = if wasmparser::Parser::is_core_wasm(&bytes) {
                "a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
            } else {
                "not WebAssembly at all"
            };
            return Err(invalid(what.into()));
        }
        // Validate before compiling, so a broken file gets the validator's precise error.
        let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
        validator.validate_all(&bytes).map_err(|e| invalid(e.to_string()))?;
        let component = Component::new(&self.engine, &bytes).map_err(|e| invalid(format!("{e:#}")))?;
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let version = SUPPORTED
            .iter()
            .find(|v| exports.iter().any(|e| *e == format!("moa:strategy/strategy@{v}")))
            .copied()
            .ok_or_else(|| {
                let found: Vec<&String> = exports.iter().filter(|e| e.starts_with("moa:strategy/")).collect();
                contract(match found.first() {
                    Some(other) => {
                        format!("implements {other}, but this host supports moa:strategy@{}", SUPPORTED.join(", @"))
                    }
                    None => format!("exports no moa:strategy contract (it exports: {})", exports.join(", ")),
                })
            })?;
        let denied: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .filter(|n| !GRANTED_IMPORTS.iter().any(|g| n.starts_with(g)))
            .collect();
        if !denied.is_empty() {
            return Err(contract(format!(
                "imports {}, which the moa:strategy contract does not grant (plugins get no files, sockets, clocks or randomness)",
                denied.join(", ")
            )));
        }
        let pre = self.linker.instantiate_pre(&component).map_err(|e| contract(format!("{e:#}")))?;
        let pre = v0_1_0::PluginPre::new(pre).map_err(|e| contract(format!("{e:#}")))?;
        let mut plugin = Plugin {
            name: name.clone(),
            contract: version,
            info: v0_1_0::Info {
                name: String::new(),
                version: String::new(),
                description: String::new(),
                params: String::new(),
            },
            pre,
        };
        plugin.info =
            self.call(&plugin, Limits::default(), |p, store| p.moa_strategy_strategy().call_describe(store))?;
        Ok(plugin)
    }

    /// One decision by `plugin` under `limits`, in a fresh store.
    pub fn decide(
        &self,
        plugin: &Plugin,
        limits: Limits,
        ctx: &v0_1_0::Context,
    ) -> Result<v0_1_0::Decision, PluginError> {
        let result = self.call(plugin, limits, |p, store| p.moa_strategy_strategy().call_decide(store, ctx))?;
        let decision = result.map_err(|reason| PluginError::Decision {
            plugin: plugin.name.clone(),
            reason: format!("declined to decide: {reason}"),
        })?;
        let bytes = v0_1_0::decision_size(&decision);
        if bytes > limits.output {
            return Err(PluginError::Output { plugin: plugin.name.clone(), bytes, cap: limits.output });
        }
        Ok(decision)
    }

    fn call<R: Send>(
        &self,
        plugin: &Plugin,
        limits: Limits,
        f: impl FnOnce(&v0_1_0::Plugin, &mut Store<PluginState>) -> wasmtime::Result<R> + Send,
    ) -> Result<R, PluginError> {
        // wasmtime-wasi's synchronous host calls block on a tokio runtime of their own,
        // which tokio forbids on a thread that is already driving one (a plugin writing a
        // panic message would bring the host down). So inside tokio, a plugin runs on a
        // plain thread of its own.
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|s| {
                s.spawn(|| self.call_here(plugin, limits, f)).join().unwrap_or_else(|_| {
                    Err(PluginError::Trap {
                        plugin: plugin.name.clone(),
                        reason: "the host thread running it panicked".into(),
                    })
                })
            });
        }
        self.call_here(plugin, limits, f)
    }

    fn call_here<R>(
        &self,
        plugin: &Plugin,
        limits: Limits,
        f: impl FnOnce(&v0_1_0::Plugin, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        // Its stderr is kept (bounded) only to explain a crash: a panic message says why.
        let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(16 << 10);
        let state = PluginState {
            wasi: WasiCtx::builder().stderr(stderr.clone()).build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory)
                .instances(16)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The deadline is counted in ticks from now; one more tick covers the partial
        // tick already under way.
        let ticks = (limits.timeout.as_nanos() / TICK.as_nanos()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        let out = plugin.pre.instantiate(&mut store).and_then(|instance| f(&instance, &mut store));
        out.map_err(|e| {
            let said = String::from_utf8_lossy(&stderr.contents()).split_whitespace().collect::<Vec<_>>().join(" ");
            classify(&plugin.name, &e, limits, &said)
        })
    }
}

/// Turns a wasmtime error into what the user needs to know.
fn classify(plugin: &str, e: &wasmtime::Error, limits: Limits, stderr: &str) -> PluginError {
    let plugin = plugin.to_owned();
    let text = format!("{e:#}");
    let said: String = stderr.chars().take(300).collect();
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout { plugin, ms: limits.timeout.as_millis() },
        _ if text.contains("forcing trap when growing memory") || text.contains("memory limit") => {
            PluginError::Memory { plugin, mib: limits.memory >> 20 }
        }
        Some(Trap::StackOverflow) => PluginError::Trap { plugin, reason: "stack overflow (runaway recursion?)".into() },
        Some(Trap::UnreachableCodeReached) if !said.is_empty() => {
            PluginError::Trap { plugin, reason: format!("it panicked: {said}") }
        }
        Some(Trap::UnreachableCodeReached) => {
            PluginError::Trap { plugin, reason: "it panicked or aborted (wasm `unreachable` executed)".into() }
        }
        Some(Trap::MemoryOutOfBounds) => PluginError::Trap {
            plugin,
            reason: "out-of-bounds memory access (a stack overflow in linear memory, or a bug)".into(),
        },
        Some(t) => PluginError::Trap { plugin, reason: t.to_string() },
        None => PluginError::Trap { plugin, reason: text },
    }
}

/// Advances every live engine's epoch each tick; ends when the runtime is dropped.
fn spawn_ticker(runtime: Weak<Runtime>) {
    let spawned = std::thread::Builder::new().name("moa-plugin-epoch".into()).spawn(move || {
        while let Some(rt) = runtime.upgrade() {
            rt.engine.increment_epoch();
            drop(rt);
            std::thread::sleep(TICK);
        }
    });
    // Without a ticker no deadline would fire; a host that cannot spawn a thread has
    // bigger trouble, so this is reported rather than hidden.
    if let Err(e) = spawned {
        eprintln!("moa: cannot start the plugin deadline ticker: {e}");
    }
}
