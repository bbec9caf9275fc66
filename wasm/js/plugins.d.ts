// Types of plugins.js (hand-written: it is JavaScript, not generated from Rust).
import type { LoadedPlugin } from "./moa_wasm.js";

/** A loaded strategy plugin: pass it in `RunOptions.plugins` under the recipe's name for it. */
export interface Plugin extends LoadedPlugin {
  /** What the plugin says of itself. */
  describe(options?: { timeoutMs?: number; memoryMib?: number }): Promise<{ name: string; version: string; description: string; params: string }>;
}

/**
 * Loads a strategy plugin (a WebAssembly component for moa:strategy@0.1.0 or @0.2.0)
 * from a URL, a File or Blob, or its bytes, and runs it in a Worker. Rejects with an
 * Error naming the plugin and what to do. Call after the module's `init()`.
 */
export function loadPlugin(source: string | URL | Blob | ArrayBuffer | ArrayBufferView, options?: { name?: string }): Promise<Plugin>;
