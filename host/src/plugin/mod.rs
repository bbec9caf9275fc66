//! Users' own strategies as sandboxed WebAssembly components, run with wasmtime.
//!
//! A plugin is validated, compiled once (and cached on disk between runs by wasmtime's
//! cache), checked against the contract versions this host supports and the imports the
//! contract grants, and pre-instantiated (`InstancePre`). Every decision gets a fresh
//! `Store` — a trap poisons an instance, so none is ever reused — with an empty WASI
//! context (no files, sockets, environment or stdio but a capped stderr; a clock stopped
//! at the epoch and randomness that is all zeros, so even a plugin that found a way to
//! call them would learn nothing), one memory cap over all its linear memories and tables
//! together, a deadline by epoch interruption (wall time), and a cap on what it may
//! return. Loading is bounded too: the file's size and each function's size (compiling a
//! crafted huge function costs seconds and gigabytes).

mod strategy;
pub mod v0_1_0;

pub use strategy::{HostResolver, PluginStrategy};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use thiserror::Error;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch advances: the granularity of plugin deadlines (wall time).
pub const TICK: Duration = Duration::from_millis(10);

/// The largest memory cap a recipe may give a plugin (`memory_mib`).
pub const MAX_MEMORY: usize = 1 << 30;

/// The largest plugin file read: example plugins are about 64 KB.
pub const MAX_FILE: u64 = 16 << 20;

/// The largest function body compiled: the compiler's time and memory grow faster than
/// a function's size (a crafted 1 MB function took 6.5 s and 950 MiB).
pub const MAX_FUNCTION: usize = 256 << 10;

/// How long compiling one plugin may take, in a child process (wall time).
pub const COMPILE_SECS: f64 = 20.0;

/// How much memory compiling one plugin may take, in a child process (its data limit).
pub const COMPILE_MIB: u64 = 1024;

/// Compiles plugins in a child process with its own limits, so a crafted plugin that
/// makes the compiler take seconds and gigabytes costs a child, not the host. The child
/// is the `moa` binary itself (`moa plugin compile FILE`, hidden); it writes wasmtime's
/// on-disk cache, which the host then reads instead of compiling.
#[derive(Clone, Debug)]
pub struct Compiler {
    /// The `moa` executable.
    pub exe: PathBuf,
    /// Wall time allowed.
    pub timeout: Duration,
    /// Memory allowed (the child's data limit, `ulimit -d`), in MiB.
    pub memory_mib: u64,
}

impl Compiler {
    /// Compiling with this executable under the default limits; `MOA_PLUGIN_COMPILE_SECS`
    /// and `MOA_PLUGIN_COMPILE_MIB` override them (the tests use tiny ones).
    pub fn new(exe: PathBuf) -> Compiler {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0);
        Compiler {
            exe,
            timeout: Duration::from_secs_f64(env("MOA_PLUGIN_COMPILE_SECS").unwrap_or(COMPILE_SECS).min(3600.0)),
            memory_mib: env("MOA_PLUGIN_COMPILE_MIB").map_or(COMPILE_MIB, |m| m as u64),
        }
    }

    /// Compiles `path` in the child; `Err` says why it did not.
    fn compile(&self, path: &Path) -> Result<(), String> {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -d {} && exec \"$0\" plugin compile \"$1\"", self.memory_mib * 1024))
            .arg(&self.exe)
            .arg(path)
            // A child that runs out of its memory limit while printing a backtrace can
            // hang instead of exiting; it reports nothing anyway.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the compiler process: {e}"))?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(_)) => {
                    return Err(format!(
                        "compiling it failed within the host's compile limits ({} MiB, {} s)",
                        self.memory_mib,
                        self.timeout.as_secs_f64()
                    ));
                }
                Ok(None) if started.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("compiling it took more than the host's {} s", self.timeout.as_secs_f64()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("cannot wait for the compiler process: {e}")),
            }
        }
    }
}

/// Table elements a plugin may hold over all its tables.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Longest text kept from a plugin for a human to read (an error, a description field).
const MAX_TEXT: usize = 2 << 10;

/// The most `describe` may return, all fields together: what the host copies out of the
/// plugin before it cuts each field to [`MAX_TEXT`].
pub const MAX_DESCRIBE: usize = 64 << 10;

/// What the host may copy out of a plugin for one decision whose output cap is `output`:
/// wasmtime counts every string's bytes and every list element at its size in the host
/// (a message is 32 bytes there, 16 in the output cap) as it lifts the result, and stops
/// before allocating past this. So a list of millions of messages aliasing one byte,
/// small in the plugin's memory, is refused before it costs the host anything; and any
/// result within the output cap fits. The extra 64 KiB is room for the error string.
pub fn copy_budget(output: usize) -> usize {
    output.saturating_mul(2).saturating_add(64 << 10)
}

/// Text from a plugin, made inert for a terminal or a log: control characters (escape
/// sequences that set a title or clear a screen, or newlines that forge a log line) are
/// shown escaped, and it is cut to a bounded length.
pub fn inert(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() >= MAX_TEXT {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Contract versions this host accepts, newest first.
pub const SUPPORTED: [&str; 1] = ["0.1.0"];

/// Import namespaces the contract grants: its own type definitions, and what Rust's std
/// needs to start, all of it inert with the empty WASI context. Files, sockets, clocks
/// and randomness are not here.
const GRANTED_IMPORTS: [&str; 3] = ["moa:strategy/types@", "wasi:io/", "wasi:cli/"];

/// Limits for one plugin; the recipe may set each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall time per decision (a loaded machine gives a plugin less work in it).
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
    /// The plugin ran past its deadline (wall time).
    #[error("plugin {plugin}: ran past its deadline of {ms} ms (timeout_ms, wall time) and was stopped")]
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
    /// The plugin returned more than the host copies out of it: refused while lifting,
    /// before the host held any of it.
    #[error(
        "plugin {plugin}: {what} returned more than the {cap} bytes the host copies out of a plugin{why}; refused before the host held it"
    )]
    TooLarge {
        /// The plugin's path.
        plugin: String,
        /// `describe` or `a decision`.
        what: &'static str,
        /// The most the host copies.
        cap: usize,
        /// Which setting sets the cap, when the recipe does.
        why: &'static str,
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
    limits: PluginLimiter,
}

/// One memory cap for a whole plugin: a component may hold several core instances, each
/// with its own linear memory, so the cap counts them all together (and tables too).
struct PluginLimiter {
    memory_cap: usize,
    memory: usize,
    table_elements: usize,
}

impl wasmtime::ResourceLimiter for PluginLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory - current + desired;
        if total > self.memory_cap {
            // An error (not `false`) traps at once, with a message `classify` recognizes.
            return Err(wasmtime::format_err!("memory limit: {total} bytes over all memories"));
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements - current + desired;
        if total > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::format_err!("memory limit: {total} table elements over all tables"));
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// The only clock a plugin could see: stopped at the Unix epoch.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The only randomness a plugin could see: zeros.
struct Zeros;

impl rand_core::TryRng for Zeros {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0);
        Ok(())
    }
}

/// Bounds how many plugin decisions run at once: each holds a thread.
struct Gate {
    free: Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate { free: Mutex::new(n.max(1)), freed: std::sync::Condvar::new() }
    }

    fn enter(&self) -> impl Drop + '_ {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        struct Leave<'a>(&'a Gate);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
                self.0.freed.notify_one();
            }
        }
        Leave(self)
    }
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
    gate: Gate,
    /// Compiles in a child process, when the runtime has an on-disk cache to share.
    compiler: Option<Compiler>,
}

impl Runtime {
    /// An engine with epoch interruption and wasmtime's on-disk compilation cache under
    /// `cache_dir` (none when `None`).
    pub fn new(cache_dir: Option<&Path>) -> wasmtime::Result<Arc<Runtime>> {
        Runtime::with_compiler(cache_dir, None)
    }

    /// Like [`Runtime::new`], compiling new plugins with `compiler` when `cache_dir` is
    /// given (the child writes the cache the host then reads).
    pub fn with_compiler(cache_dir: Option<&Path>, compiler: Option<Compiler>) -> wasmtime::Result<Arc<Runtime>> {
        Runtime::build(cache_dir, compiler, true)
    }

    fn build(cache_dir: Option<&Path>, compiler: Option<Compiler>, pooling: bool) -> wasmtime::Result<Arc<Runtime>> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Pooling keeps instance slots and memories mapped between decisions, so a fresh
        // instance per decision costs microseconds. Slots are virtual reservations. (A
        // compiler child runs nothing, and its data limit leaves no room for the pool.)
        if pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(256).total_core_instances(1024).total_memories(512).total_tables(1024);
            pool.max_memory_size(MAX_MEMORY);
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
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
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let compiler = compiler.filter(|_| cache_dir.is_some());
        let runtime = Arc::new(Runtime {
            engine,
            linker,
            loaded: Mutex::new(HashMap::new()),
            gate: Gate::new(parallel * 2),
            compiler,
        });
        spawn_ticker(Arc::downgrade(&runtime));
        Ok(runtime)
    }

    /// The default: compiled code cached under `~/.cache/moa/wasmtime`.
    pub fn default_cached() -> wasmtime::Result<Arc<Runtime>> {
        Runtime::with_compiler(default_cache_dir().as_deref(), None)
    }

    /// The default, compiling new plugins in a child process of `exe` (the `moa` binary)
    /// under [`COMPILE_SECS`] and [`COMPILE_MIB`].
    pub fn default_isolated(exe: PathBuf) -> wasmtime::Result<Arc<Runtime>> {
        Runtime::with_compiler(default_cache_dir().as_deref(), Some(Compiler::new(exe)))
    }

    /// A runtime that only compiles into the default cache: the child process of
    /// [`Compiler`] (`moa plugin compile`).
    pub fn compiler_child() -> wasmtime::Result<Arc<Runtime>> {
        Runtime::build(default_cache_dir().as_deref(), None, false)
    }

    /// Compiles `path` into the on-disk cache and nothing else: what the child process
    /// of [`Compiler`] runs.
    pub fn compile_only(&self, path: &Path) -> Result<(), PluginError> {
        let name = path.display().to_string();
        let bytes = read_capped(path).map_err(|reason| PluginError::Read { plugin: name.clone(), reason })?;
        Component::new(&self.engine, &bytes)
            .map(|_| ())
            .map_err(|e| PluginError::Invalid { plugin: name, reason: inert(&format!("{e:#}")) })
    }

    /// Loads `path` (once per process; later calls return the same plugin), asking it to
    /// describe itself under the default limits.
    pub fn load(&self, path: &Path) -> Result<Arc<Plugin>, PluginError> {
        self.load_with(path, Limits::default())
    }

    /// Loads `path`; its `describe` runs under `limits` (the recipe's), like a decision.
    pub fn load_with(&self, path: &Path, limits: Limits) -> Result<Arc<Plugin>, PluginError> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(p) = self.loaded.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let plugin = Arc::new(self.load_uncached(path, limits)?);
        if let Ok(mut m) = self.loaded.lock() {
            m.insert(key, plugin.clone());
        }
        Ok(plugin)
    }

    fn load_uncached(&self, path: &Path, limits: Limits) -> Result<Plugin, PluginError> {
        let name = path.display().to_string();
        let bytes = read_capped(path).map_err(|reason| PluginError::Read { plugin: name.clone(), reason })?;
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
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload
                && body.range().len() > MAX_FUNCTION
            {
                return Err(invalid(format!(
                    "a function of {} bytes, over the {} KiB this host compiles",
                    body.range().len(),
                    MAX_FUNCTION >> 10
                )));
            }
        }
        if let Some(compiler) = &self.compiler {
            compiler.compile(path).map_err(&invalid)?;
        }
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
        let info =
            self.call(&plugin, limits, Call::Describe, |p, store| p.moa_strategy_strategy().call_describe(store))?;
        plugin.info = v0_1_0::Info {
            name: inert(&info.name),
            version: inert(&info.version),
            description: inert(&info.description),
            params: inert(&info.params),
        };
        Ok(plugin)
    }

    /// One decision by `plugin` under `limits`, in a fresh store.
    pub fn decide(
        &self,
        plugin: &Plugin,
        limits: Limits,
        ctx: &v0_1_0::Context,
    ) -> Result<v0_1_0::Decision, PluginError> {
        let result =
            self.call(plugin, limits, Call::Decision, |p, store| p.moa_strategy_strategy().call_decide(store, ctx))?;
        let decision = result.map_err(|reason| PluginError::Decision {
            plugin: plugin.name.clone(),
            reason: format!("declined to decide: {}", inert(&reason)),
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
        copy: Call,
        f: impl FnOnce(&v0_1_0::Plugin, &mut Store<PluginState>) -> wasmtime::Result<R> + Send,
    ) -> Result<R, PluginError> {
        // wasmtime-wasi's synchronous host calls block on a tokio runtime of their own,
        // which tokio forbids on a thread that is already driving one (a plugin writing a
        // panic message would bring the host down). So inside tokio, a plugin runs on a
        // plain thread of its own; and the tokio worker that waits for it is handed over
        // (`block_in_place`), so a plugin spinning to its deadline never stalls the
        // server's other requests. At most `gate` decisions run at once.
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            let _slot = self.gate.enter();
            return self.call_here(plugin, limits, copy, f);
        };
        let run = || {
            let _slot = self.gate.enter();
            std::thread::scope(|s| {
                s.spawn(|| self.call_here(plugin, limits, copy, f)).join().unwrap_or_else(|_| {
                    Err(PluginError::Trap {
                        plugin: plugin.name.clone(),
                        reason: "the host thread running it panicked".into(),
                    })
                })
            })
        };
        match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(run),
            _ => run(),
        }
    }

    fn call_here<R>(
        &self,
        plugin: &Plugin,
        limits: Limits,
        copy: Call,
        f: impl FnOnce(&v0_1_0::Plugin, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        // Its stderr is kept (bounded) only to explain a crash: a panic message says why.
        let stderr = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(16 << 10);
        let state = PluginState {
            wasi: WasiCtx::builder()
                .stderr(stderr.clone())
                .wall_clock(StoppedClock)
                .monotonic_clock(StoppedClock)
                .secure_random(Zeros)
                .insecure_random(Zeros)
                .insecure_random_seed(0)
                .build(),
            table: ResourceTable::new(),
            limits: PluginLimiter { memory_cap: limits.memory, memory: 0, table_elements: 0 },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // What the host may copy out of the plugin in one go (a result, or one call into
        // the host): wasmtime counts it as it lifts, before it allocates.
        store.set_hostcall_fuel(copy.budget(limits));
        // The deadline is counted in ticks from now; one more tick covers the partial
        // tick already under way.
        let ticks = (limits.timeout.as_nanos() / TICK.as_nanos()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        let out = plugin.pre.instantiate(&mut store).and_then(|instance| f(&instance, &mut store));
        out.map_err(|e| {
            let said = String::from_utf8_lossy(&stderr.contents()).split_whitespace().collect::<Vec<_>>().join(" ");
            classify(&plugin.name, &e, limits, copy, &said)
        })
    }
}

/// Which call a plugin's result comes from, for what the host copies out of it. (Not
/// named `Copy`, which would shadow the trait.)
#[derive(Clone, Copy, Debug)]
enum Call {
    Describe,
    Decision,
}

impl Call {
    fn budget(self, limits: Limits) -> usize {
        match self {
            Call::Describe => MAX_DESCRIBE,
            Call::Decision => copy_budget(limits.output),
        }
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/moa/wasmtime"))
}

/// Reads a plugin file: a regular file (not `/dev/zero` or a pipe), at most `MAX_FILE`.
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("over {} MiB, the largest plugin this host reads", MAX_FILE >> 20));
    }
    Ok(bytes)
}

/// Turns a wasmtime error into what the user needs to know.
fn classify(plugin: &str, e: &wasmtime::Error, limits: Limits, copy: Call, stderr: &str) -> PluginError {
    let plugin = plugin.to_owned();
    let text = inert(&format!("{e:#}"));
    let said: String = inert(&stderr.chars().take(300).collect::<String>());
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginError::Timeout { plugin, ms: limits.timeout.as_millis() },
        // wasmtime's words when a lift runs out of hostcall fuel.
        _ if text.contains("fuel allocated for hostcalls has been exhausted") => match copy {
            Call::Describe => PluginError::TooLarge { plugin, what: "describe", cap: MAX_DESCRIBE, why: "" },
            Call::Decision => PluginError::TooLarge {
                plugin,
                what: "a decision",
                cap: copy_budget(limits.output),
                why: " (twice max_output_kib, and 64 KiB)",
            },
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of `n` core instances, each with a linear memory of `mib` MiB.
    fn memories(n: usize, mib: usize) -> String {
        let pages = mib * 16; // 64 KiB pages
        let instances: String = (0..n).map(|i| format!("(core instance $i{i} (instantiate $m))")).collect();
        format!("(component (core module $m (memory {pages})) {instances})")
    }

    fn instantiate(rt: &Runtime, wat: &str, cap: usize) -> wasmtime::Result<()> {
        let component = Component::new(&rt.engine, wat)?;
        let state = PluginState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: PluginLimiter { memory_cap: cap, memory: 0, table_elements: 0 },
        };
        let mut store = Store::new(&rt.engine, state);
        store.limiter(|s| &mut s.limits);
        Linker::<PluginState>::new(&rt.engine).instantiate(&mut store, &component).map(|_| ())
    }

    #[test]
    fn one_memory_cap_holds_over_all_of_a_plugins_memories() {
        let rt = Runtime::new(None).expect("runtime");
        // Each memory alone is under the 64 MiB cap; together they are not.
        assert!(instantiate(&rt, &memories(1, 40), 64 << 20).is_ok());
        let err = instantiate(&rt, &memories(3, 40), 64 << 20).expect_err("120 MiB over three memories");
        assert!(format!("{err:#}").contains("memory limit"), "{err:#}");
        assert!(instantiate(&rt, &memories(3, 20), 64 << 20).is_ok(), "60 MiB in all is within the cap");
    }

    #[test]
    fn plugin_text_is_inert_and_bounded() {
        assert_eq!(inert("ok\u{1b}[2J\nforged"), "ok\\u{1b}[2J\\nforged");
        assert!(inert(&"x".repeat(1 << 20)).len() <= MAX_TEXT + 4);
    }
}
