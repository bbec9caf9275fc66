//! What a plugin's store may use and see: one memory cap over all its memories and
//! tables, an empty WASI context with a stopped clock and zero randomness, a bounded
//! stderr, a deadline in epoch ticks and a cap on what the host copies out of it; and the
//! gate that bounds how many decisions run at once.

use super::{MAX_DESCRIBE, MAX_TABLE_ELEMENTS, TICK};
use moa_core::strategy::plugin;
use std::sync::Mutex;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

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
        Limits {
            timeout: Duration::from_millis(plugin::DEFAULT_TIMEOUT_MS),
            memory: (plugin::DEFAULT_MEMORY_MIB as usize) << 20,
            output: (plugin::DEFAULT_OUTPUT_KIB as usize) << 10,
        }
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

/// What the host may copy out of a plugin for one decision whose output cap is `output`:
/// wasmtime counts every string's bytes and every list element at its size in the host
/// (a message is 32 bytes there, 16 in the output cap) as it lifts the result, and stops
/// before allocating past this. So a list of millions of messages aliasing one byte,
/// small in the plugin's memory, is refused before it costs the host anything; and any
/// result within the output cap fits. The extra 64 KiB is room for the error string.
pub fn copy_budget(output: usize) -> usize {
    output.saturating_mul(2).saturating_add(64 << 10)
}

pub use moa_core::strategy::plugin::inert;

/// A plugin tried to hold more memory or table elements than its cap: the error the
/// limiter traps with, found again by its type.
#[derive(Debug)]
pub struct OverCap(String);

impl std::fmt::Display for OverCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "memory limit: {}", self.0)
    }
}

impl std::error::Error for OverCap {}

/// Per-store state: an empty WASI context and the store's limits.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: PluginLimiter,
}

/// Core instances one plugin may create: a Python plugin, libpython, libc and their shims
/// linked as separate modules, needs more than 32 (a Rust one, a handful).
pub(crate) const MAX_INSTANCES: usize = 64;

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
            // An error (not `false`) traps at once; its type tells `classify` what it was.
            return Err(wasmtime::Error::new(OverCap(format!("{total} bytes over all memories"))));
        }
        self.memory = total;
        Ok(true)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.table_elements - current + desired;
        if total > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::Error::new(OverCap(format!("{total} table elements over all tables"))));
        }
        self.table_elements = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
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
pub(crate) struct Gate {
    free: Mutex<usize>,
    freed: std::sync::Condvar,
}

impl Gate {
    pub(crate) fn new(n: usize) -> Gate {
        Gate { free: Mutex::new(n.max(1)), freed: std::sync::Condvar::new() }
    }

    pub(crate) fn enter(&self) -> impl Drop + '_ {
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

/// Which call a plugin's result comes from, for what the host copies out of it. (Not
/// named `Copy`, which would shadow the trait.)
#[derive(Clone, Copy, Debug)]
pub(crate) enum Call {
    Describe,
    Decision,
}

impl Call {
    pub(crate) fn budget(self, limits: Limits) -> usize {
        match self {
            Call::Describe => MAX_DESCRIBE,
            Call::Decision => copy_budget(limits.output),
        }
    }
}

/// A fresh store for one call under `limits`, and the pipe that keeps its stderr
/// (bounded), which only explains a crash: a panic message says why.
pub(crate) fn store(engine: &Engine, limits: Limits, copy: Call) -> (Store<PluginState>, MemoryOutputPipe) {
    let stderr = MemoryOutputPipe::new(16 << 10);
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
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    // What the host may copy out of the plugin in one go (a result, or one call into
    // the host): wasmtime counts it as it lifts, before it allocates.
    store.set_hostcall_fuel(copy.budget(limits));
    // The deadline is counted in ticks from now; one more tick covers the partial tick
    // already under way.
    let ticks = (limits.timeout.as_nanos() / TICK.as_nanos()) as u64 + 1;
    store.set_epoch_deadline(ticks);
    (store, stderr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, Linker};

    /// A component of `n` core instances, each with a linear memory of `mib` MiB.
    fn memories(n: usize, mib: usize) -> String {
        let pages = mib * 16; // 64 KiB pages
        let instances: String = (0..n).map(|i| format!("(core instance $i{i} (instantiate $m))")).collect();
        format!("(component (core module $m (memory {pages})) {instances})")
    }

    fn instantiate(engine: &Engine, wat: &str, cap: usize) -> wasmtime::Result<()> {
        let component = Component::new(engine, wat::parse_str(wat)?)?;
        let limits = Limits { memory: cap, ..Limits::default() };
        let (mut store, _) = store(engine, limits, Call::Decision);
        Linker::<PluginState>::new(engine).instantiate(&mut store, &component).map(|_| ())
    }

    #[test]
    fn one_memory_cap_holds_over_all_of_a_plugins_memories() {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).expect("engine");
        // Each memory alone is under the 64 MiB cap; together they are not.
        assert!(instantiate(&engine, &memories(1, 40), 64 << 20).is_ok());
        let err = instantiate(&engine, &memories(3, 40), 64 << 20).expect_err("120 MiB over three memories");
        assert!(err.downcast_ref::<OverCap>().is_some(), "{err:#}");
        assert!(instantiate(&engine, &memories(3, 20), 64 << 20).is_ok(), "60 MiB in all is within the cap");
    }

    #[test]
    fn plugin_text_is_inert_and_bounded() {
        assert_eq!(inert("ok\u{1b}[2J\nforged"), "ok\\u{1b}[2J\\nforged");
        assert!(inert(&"x".repeat(1 << 20)).len() <= moa_core::strategy::plugin::MAX_TEXT + 4);
    }
}
