//! The plugin runtime: one wasmtime engine per process with its epoch ticker, plugins
//! loaded once (checked, compiled, pre-instantiated under their contract version) and
//! run one decision per fresh store.

use super::compile::{self, Compiler, read_capped};
use super::contract::{Asked, Contract, Decided, Info};
use super::error::{PluginError, classify};
use super::sandbox::{self, Call, Gate, Limits, PluginState, inert};
use super::{MAX_MEMORY, TICK};
use moa_core::strategy::StrategyInput;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

/// Bytes of each memory and table a freed pool slot keeps resident, zeroed, where the
/// kernel cannot say which pages a decision wrote: the first 64 KiB, zeroed whole.
const KEEP_RESIDENT: usize = 64 << 10;

/// Bytes a freed slot keeps resident where the kernel can say which pages were written
/// (Linux 6.7's `PAGEMAP_SCAN`): only those are zeroed, wherever they are, up to this
/// much; the rest is given back. A Rust plugin's stack top sits near its first MiB, past
/// [`KEEP_RESIDENT`], so without the scan every decision faults its stack in again.
const KEEP_RESIDENT_SCANNED: usize = 256 << 10;

/// Freed slots whose pages are given back to the kernel in one batch: one `madvise` and
/// TLB flush for several decisions rather than one each. Until then up to this many
/// finished decisions' memory stays resident (never reused before it is given back).
const DECOMMIT_BATCH: usize = 4;

/// A loaded plugin, ready to instantiate.
pub struct Plugin {
    /// The path it was loaded from, as given.
    pub name: String,
    /// What `describe` said (inert: control characters escaped, fields bounded).
    pub info: Info,
    pre: Contract,
}

impl Plugin {
    /// The contract version it implements.
    pub fn contract(&self) -> &'static str {
        self.pre.version()
    }
}

/// Loads and runs plugins. One per process ([`Runtime::shared`]): it owns the engine and
/// the epoch ticker, and its gate bounds the decisions running at once.
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
            // Room for every decision the gate lets run at once at the per-plugin limits.
            let at_once = gate_size();
            pool.total_component_instances(256)
                .total_core_instances((at_once * sandbox::MAX_INSTANCES).max(1024) as u32)
                .total_memories(512)
                .total_tables(1024);
            pool.max_memory_size(MAX_MEMORY);
            // A freed slot's pages are zeroed in place rather than given back to the
            // kernel, so the next decision does not fault them in again: the bulk of a
            // bare decision's cost. With the scan, only the pages written are zeroed.
            let keep = if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
                pool.pagemap_scan(wasmtime::Enabled::Yes);
                KEEP_RESIDENT_SCANNED
            } else {
                KEEP_RESIDENT
            };
            pool.linear_memory_keep_resident(keep).table_keep_resident(KEEP_RESIDENT);
            pool.decommit_batch_size(DECOMMIT_BATCH);
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
        let compiler = compiler.filter(|_| cache_dir.is_some());
        let runtime = Arc::new(Runtime {
            engine,
            linker,
            loaded: Mutex::new(HashMap::new()),
            gate: Gate::new(gate_size()),
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
    /// under [`super::COMPILE_SECS`] and [`super::COMPILE_MIB`].
    pub fn default_isolated(exe: PathBuf) -> wasmtime::Result<Arc<Runtime>> {
        Runtime::with_compiler(default_cache_dir().as_deref(), Some(Compiler::new(exe)))
    }

    /// The process's runtime ([`Runtime::default_isolated`]), made on first use and shared
    /// after: every recipe of a process (an evaluation's, a server's) shares its engine, its
    /// loaded plugins and its one gate on decisions at once. `exe` is used by the first
    /// call only (it is the same `moa` binary for every caller). A failure to make it is
    /// not kept: the next call tries again.
    pub fn shared(exe: PathBuf) -> wasmtime::Result<Arc<Runtime>> {
        static SHARED: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = slot.as_ref() {
            return Ok(rt.clone());
        }
        let rt = Runtime::default_isolated(exe)?;
        *slot = Some(rt.clone());
        Ok(rt)
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
        // Validate before compiling, so a broken file gets the validator's precise error.
        compile::check_bytes(&bytes).map_err(&invalid)?;
        if let Some(compiler) = &self.compiler {
            compiler.compile(path).map_err(&invalid)?;
        }
        let component = Component::new(&self.engine, &bytes).map_err(|e| invalid(format!("{e:#}")))?;
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let version = Contract::find(&exports).map_err(&contract)?;
        compile::check_imports(ty.imports(&self.engine).map(|(n, _)| n.to_owned())).map_err(&contract)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| contract(format!("{e:#}")))?;
        let pre = Contract::new(version, pre).map_err(|e| contract(format!("{e:#}")))?;
        let mut plugin = Plugin { name, info: Info::default(), pre };
        let info = self.call(&plugin, limits, Call::Describe, |pre, store| pre.describe(store))?;
        plugin.info = Info {
            name: inert(&info.name),
            version: inert(&info.version),
            description: inert(&info.description),
            params: inert(&info.params),
        };
        Ok(plugin)
    }

    /// One decision (or one step of a decision that asks) by `plugin` on `input` with
    /// `params` (JSON text) and the decision's asks so far, under `limits`, in a fresh
    /// store. The output cap counts the reply and its note.
    pub fn decide(
        &self,
        plugin: &Plugin,
        limits: Limits,
        input: &StrategyInput<'_>,
        params: &str,
        asked: &[Asked],
    ) -> Result<Decided, PluginError> {
        let result = self.call(plugin, limits, Call::Decision, |pre, store| pre.decide(store, input, params, asked))?;
        let decided = result.map_err(|reason| PluginError::Decision {
            plugin: plugin.name.clone(),
            reason: format!("declined to decide: {}", inert(&reason)),
        })?;
        let bytes = decided.reply.size() + decided.note.as_ref().map_or(0, String::len);
        if bytes > limits.output {
            return Err(PluginError::Output { plugin: plugin.name.clone(), bytes, cap: limits.output });
        }
        Ok(decided)
    }

    fn call<R: Send>(
        &self,
        plugin: &Plugin,
        limits: Limits,
        copy: Call,
        f: impl FnOnce(&Contract, &mut Store<PluginState>) -> wasmtime::Result<R> + Send,
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
        f: impl FnOnce(&Contract, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let (mut store, stderr) = sandbox::store(&self.engine, limits, copy);
        f(&plugin.pre, &mut store).map_err(|e| {
            let said = String::from_utf8_lossy(&stderr.contents()).split_whitespace().collect::<Vec<_>>().join(" ");
            classify(&plugin.name, &e, limits, copy, &said)
        })
    }
}

/// Decisions that may run at once: two per core.
fn gate_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/moa/wasmtime"))
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
