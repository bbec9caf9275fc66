// A strategy plugin's Worker: runs jco's bindings for one plugin, a fresh instance per
// decision, with only the inert imports of plugin-wasi.js. The page holds the deadline
// (it terminates this Worker) and the memory cap (it capped the core modules before
// compiling them); this side holds the output cap before anything is sent back.
import { wasi } from "./plugin-wasi.js";

// The plugin's code reaches nothing but its imports; the bindings are jco's. Still, what
// a Worker offers and the contract does not grant is taken away before they load.
for (const name of [
  "fetch", "XMLHttpRequest", "WebSocket", "WebTransport", "EventSource", "BroadcastChannel",
  "indexedDB", "caches", "cookieStore", "storageFoundation", "importScripts", "Worker", "SharedWorker",
  "RTCPeerConnection", "navigator", "location",
]) {
  try {
    delete self[name];
    Object.defineProperty(self, name, { value: undefined, writable: false, configurable: false });
  } catch {
    // Not there in this browser.
  }
}

/** An error string's most kept, as the native host keeps at most 64 KiB of it. */
const ERROR_KEEP = 64 << 10;

let instantiate = null;
let modules = null;
let contract = null;

/** JSON from the wire format to jco's values: 64-bit integers as BigInt, none as absent. */
function revive(key, value) {
  if (value === null) return undefined;
  if ((key === "seed" || key === "inputTokens" || key === "outputTokens") && typeof value === "string") return BigInt(value);
  return value;
}

/** jco's values as the wire format's JSON: typed arrays as lists, BigInt as text. */
function replace(_, value) {
  if (typeof value === "bigint") return value.toString();
  if (ArrayBuffer.isView(value)) return Array.from(value);
  return value;
}

/** A fresh instance's exported strategy interface, and what it wrote to stderr. */
async function fresh() {
  const { imports, stderr } = wasi();
  const root = await instantiate((path) => modules.get(path), imports);
  return { api: root[`moa:strategy/strategy@${contract}`], stderr };
}

/** Why a call trapped, in the native host's words where it can tell. */
function crashed(e, stderr) {
  const said = stderr();
  if (/memory allocation of \d+ bytes failed/.test(said) || /out of memory/i.test(String(e?.message))) {
    return { kind: "memory", error: "tried to use more than its memory cap (memory_mib) and was stopped" };
  }
  const panic = said.match(/panicked at[^\n]*\n([^\n]*)/);
  if (panic) return { kind: "trap", error: `crashed: it panicked: ${panic[1]}` };
  const why = String(e?.message ?? e).slice(0, 512);
  return { kind: "trap", error: `crashed: ${why}${said ? `; stderr: ${said.slice(-512)}` : ""}` };
}

/** One call of the plugin's export, as the wire format's outcome (`{ok}` or `{err}`). */
function call(fn) {
  try {
    return { ok: fn() };
  } catch (e) {
    // jco throws a result's `err` as an Error carrying it in `payload`; a trap has none.
    if (e instanceof Error && Object.hasOwn(e, "payload")) return { err: String(e.payload).slice(0, ERROR_KEEP) };
    throw e;
  }
}

async function decide({ context, maxOutputKib }) {
  const { api, stderr } = await fresh();
  let outcome;
  try {
    const ctx = JSON.parse(context, revive);
    outcome = call(() => api.decide(ctx));
  } catch (e) {
    return crashed(e, stderr);
  }
  // A 0.1 plugin returns its decision bare, with no note.
  if (contract === "0.1.0" && outcome.ok) outcome = { ok: { decision: outcome.ok } };
  const json = JSON.stringify(outcome, replace);
  const cap = maxOutputKib * 1024;
  // The wire text holds the reply's text and some JSON around it: twice the cap and
  // 64 KiB is room for any reply within the cap, as the engine allows.
  if (json.length > cap * 2 + (64 << 10)) {
    return { kind: "output", error: `returned ${json.length} bytes, over its cap of ${cap} bytes (max_output_kib)` };
  }
  return { answer: json };
}

async function describe() {
  const { api, stderr } = await fresh();
  try {
    const info = api.describe();
    const text = (s) => String(s ?? "").slice(0, 2048);
    return { info: { name: text(info.name), version: text(info.version), description: text(info.description), params: text(info.params) } };
  } catch (e) {
    return crashed(e, stderr);
  }
}

onmessage = async ({ data }) => {
  let reply;
  try {
    if (data.type === "load") {
      const url = URL.createObjectURL(new Blob([data.glue], { type: "text/javascript" }));
      ({ instantiate } = await import(url));
      URL.revokeObjectURL(url);
      modules = new Map(data.modules);
      contract = data.contract;
      reply = { ready: true };
    } else if (data.type === "describe") {
      reply = await describe();
    } else {
      reply = await decide(data);
    }
  } catch (e) {
    reply = { kind: "trap", error: `crashed: ${String(e?.message ?? e).slice(0, 512)}` };
  }
  postMessage({ id: data.id, ...reply });
};
