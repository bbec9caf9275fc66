// Strategy plugins in the browser and in JavaScript apps: the same WebAssembly component
// the native host loads, run in a Worker with the recipe's deadline, memory cap and
// output cap, and no capability beyond the moa:strategy contract.
//
//   import init, { Moa } from "moa-wasm";
//   import { loadPlugin } from "moa-wasm/plugins.js";
//   await init();
//   const longest = await loadPlugin("https://example.org/longest.wasm");
//   await new Moa(recipe).run("Hi", { plugins: { "longest.wasm": longest } });
//
// Loading transpiles the component with jco's transpiler (WebAssembly, about 1.2 MB
// gzipped, fetched only then) in a Worker of its own, and refuses one that imports
// what the contract does not grant or implements no contract this module runs.
import { checkPlugin, pluginRules } from "./moa_wasm.js";
import { capMemory } from "./plugin-memory.js";

/** How long loading one plugin's bindings in a Worker may take (not a decision's deadline). */
const LOAD_MS = 60_000;

function rules() {
  try {
    return pluginRules();
  } catch {
    throw new Error("moa-wasm is not initialized: await init() before loadPlugin");
  }
}

/** The component's bytes, from a URL, a File or Blob, or bytes. */
async function bytesOf(source, name, maxBytes) {
  let bytes;
  if (typeof source === "string" || source instanceof URL) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`plugin ${name}: fetching it failed with HTTP ${response.status}`);
    const length = Number(response.headers.get("content-length") ?? 0);
    if (length > maxBytes) throw new Error(`plugin ${name}: ${length} bytes, over the ${maxBytes >> 20} MiB a plugin may be; ${rules().smaller}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } else if (typeof Blob !== "undefined" && source instanceof Blob) {
    if (source.size > maxBytes) throw new Error(`plugin ${name}: ${source.size} bytes, over the ${maxBytes >> 20} MiB a plugin may be; ${rules().smaller}`);
    bytes = new Uint8Array(await source.arrayBuffer());
  } else if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
    bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    bytes = bytes.slice();
  } else {
    throw new Error(`plugin ${name}: load it from a URL, a File or Blob, or its bytes`);
  }
  if (bytes.length > maxBytes) throw new Error(`plugin ${name}: ${bytes.length} bytes, over the ${maxBytes >> 20} MiB a plugin may be; ${rules().smaller}`);
  return bytes;
}

/** The name a recipe gives a plugin loaded from `source`: its file name. */
function nameOf(source) {
  if (typeof source === "string" || source instanceof URL) {
    const path = new URL(source, globalThis.location?.href ?? "file:///").pathname;
    return decodeURIComponent(path.split("/").pop() || "plugin.wasm");
  }
  return typeof File !== "undefined" && source instanceof File ? source.name : "plugin.wasm";
}

/** Answers one request in a Worker: resolves with the Worker's reply. */
function ask(worker, message, transfer = []) {
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => resolve(data);
    worker.onerror = (e) => reject(new Error(`crashed: ${e.message ?? "the Worker failed"}`));
    worker.postMessage(message, transfer);
  });
}

function transpile(bytes, name) {
  const worker = new Worker(new URL("./plugin-transpile.js", import.meta.url), { type: "module" });
  return ask(worker, { bytes }, [bytes.buffer])
    .then((out) => {
      if (out.error) throw new Error(`plugin ${name}: not a valid WebAssembly component: ${out.error}`);
      return out;
    })
    .finally(() => worker.terminate());
}

/** A loaded strategy plugin: pass it in `RunOptions.plugins` under the recipe's name for it. */
export class Plugin {
  #glue;
  #modules;
  /** Compiled core modules and a ready Worker, by memory cap in MiB. */
  #workers = new Map();
  #queue = Promise.resolve();

  constructor(name, contract, glue, modules, size) {
    /** The name a recipe gives it (its file name, unless `loadPlugin` was told another). */
    this.name = name;
    /** The contract version it implements: "0.2.0" or "0.1.0". */
    this.contract = contract;
    /** Its size in bytes. */
    this.size = size;
    /** What it says of itself (`describe`), once loaded. */
    this.info = null;
    this.#glue = glue;
    this.#modules = modules;
  }

  /** A Worker holding the plugin's bindings, its memory capped at `mib` MiB. */
  async #worker(mib) {
    let slot = this.#workers.get(mib);
    if (!slot) {
      slot = (async () => {
        const modules = await Promise.all(
          [...this.#modules].map(async ([path, bytes]) => [path, await WebAssembly.compile(capMemory(bytes, mib))]),
        );
        const worker = new Worker(new URL("./plugin-worker.js", import.meta.url), { type: "module" });
        const timer = setTimeout(() => worker.terminate(), LOAD_MS);
        const ready = await ask(worker, { type: "load", glue: this.#glue, modules, contract: this.contract }).finally(() => clearTimeout(timer));
        if (!ready.ready) throw new Error(ready.error);
        return worker;
      })();
      this.#workers.set(mib, slot);
      slot.catch(() => this.#workers.delete(mib));
    }
    return slot;
  }

  /** Runs `message` in the Worker for `mib`, stopping it after `ms`. */
  async #run(message, mib, ms) {
    let worker;
    try {
      worker = await this.#worker(mib);
    } catch (e) {
      throw new Error(e.message.startsWith("needs ") ? e.message : `could not start: ${e.message}`);
    }
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => {
        worker.terminate();
        this.#workers.delete(mib);
        reject(new Error(`ran past its deadline of ${ms} ms (timeout_ms, wall time) and was stopped`));
      }, ms);
    });
    try {
      const reply = await Promise.race([ask(worker, message), deadline]);
      if (reply.kind === "memory") throw new Error(`tried to use more than its ${mib} MiB memory cap (memory_mib) and was stopped`);
      if (reply.error) throw new Error(reply.error);
      return reply;
    } catch (e) {
      // A Worker that trapped or was stopped is not used again.
      worker.terminate();
      this.#workers.delete(mib);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One decision, as the engine asks for it: resolves with the plugin's reply in the
   * wire format, or rejects with why it has none. Decisions run one at a time.
   */
  decide({ context, timeoutMs, memoryMib, maxOutputKib }) {
    const run = () => this.#run({ type: "decide", context, maxOutputKib }, memoryMib, timeoutMs).then((r) => r.answer);
    const next = this.#queue.then(run, run);
    this.#queue = next.catch(() => {});
    return next;
  }

  /** What the plugin says of itself. */
  async describe({ timeoutMs = 5000, memoryMib = 64 } = {}) {
    const reply = await this.#run({ type: "describe" }, memoryMib, timeoutMs);
    return reply.info;
  }

  /** Stops its Workers. */
  close() {
    for (const slot of this.#workers.values()) slot.then((w) => w.terminate(), () => {});
    this.#workers.clear();
  }
}

/**
 * Loads a strategy plugin (a WebAssembly component for moa:strategy@0.1.0 or @0.2.0)
 * from a URL, a File or Blob, or its bytes. `options.name` is the name recipes give it
 * (its file name by default). Rejects with an Error naming the plugin and what to do.
 */
export async function loadPlugin(source, options = {}) {
  const name = options.name ?? nameOf(source);
  if (typeof Worker !== "function" || typeof WebAssembly !== "object") {
    throw new Error(`plugin ${name}: this browser has no ${typeof Worker !== "function" ? "Worker" : "WebAssembly"} support, which strategy plugins need; use a current Chromium, Firefox or Safari, or the native moa`);
  }
  const { maxBytes } = rules();
  const bytes = await bytesOf(source, name, maxBytes);
  const size = bytes.length;
  const out = await transpile(bytes, name);
  let contract;
  try {
    contract = checkPlugin(out.imports, out.exports);
  } catch (e) {
    throw new Error(`plugin ${name}: ${e.message}`);
  }
  const files = new Map(out.files);
  const glue = new TextDecoder().decode(files.get("plugin.js"));
  const modules = new Map([...files].filter(([path]) => path.endsWith(".wasm")));
  const plugin = new Plugin(name, contract, glue, modules, size);
  try {
    plugin.info = await plugin.describe();
  } catch (e) {
    plugin.close();
    throw new Error(`plugin ${name}: ${e.message}`);
  }
  return plugin;
}
