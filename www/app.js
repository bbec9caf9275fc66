import init, { Moa, presets, validateRecipe } from "./pkg/moa_wasm.js";
import { renderMarkdown } from "./markdown.js";
import { drawBuilder, markErrors, wireBuilder } from "./builder.js";

await init();

const $ = (id) => document.getElementById(id);
// A key belongs to its provider's name *and* the origin of its base_url: a recipe that
// keeps the name but points it elsewhere does not get the key. A Map, never a plain
// object, so names like `constructor` or `__proto__` are only names.
const KEY_STORE = "moa.keys.v2";
localStorage.removeItem("moa.keys"); // keys saved before they were bound to an origin
const all = presets();
const keys = new Map(JSON.parse(localStorage.getItem(KEY_STORE) ?? "[]")); // only there if opted in
$("remember").checked = localStorage.getItem(KEY_STORE) !== null;

function originOf(url) {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.origin : null;
  } catch {
    return null;
  }
}
const keySlot = (name, provider) => JSON.stringify([name, originOf(provider.base_url)]);

/** The keys this recipe's providers get: only those that declare one, at their origin. */
function keysFor(recipe) {
  const out = {};
  for (const [name, p] of Object.entries(recipe?.providers ?? {})) {
    const key = p.api_key_env && originOf(p.base_url) ? keys.get(keySlot(name, p)) : undefined;
    if (key) Object.defineProperty(out, name, { value: key, enumerable: true });
  }
  return out;
}
let history = [];
let controller = null;
let lastRun = null;

for (const p of all) $("preset").append(new Option(`${p.name} — ${p.description}`, p.name));
$("preset").value = "local";

function loadPreset(name) {
  $("recipe").value = JSON.stringify(all.find((p) => p.name === name).recipe, null, 2);
  onRecipeEdited();
}

function currentRecipe() {
  try {
    return JSON.parse($("recipe").value);
  } catch {
    return null;
  }
}

/** A form edit: rewrite the JSON; redraw the form only when its shape changed. */
function commitFromForm(recipe, redraw = false) {
  $("recipe").value = JSON.stringify(recipe, null, 2);
  onRecipeEdited({ redraw });
}

function onRecipeEdited({ redraw = true } = {}) {
  const parsed = currentRecipe();
  if (parsed && redraw) drawBuilder(parsed, commitFromForm);
  const list = $("recipe-errors");
  list.replaceChildren();
  let check;
  try {
    check = validateRecipe($("recipe").value);
  } catch (e) {
    check = { ok: false, errors: [{ path: ".", message: e.message }] };
  }
  for (const e of check.errors) {
    const li = document.createElement("li");
    li.textContent = `${e.path}: ${e.message}`;
    list.append(li);
  }
  $("recipe").setAttribute("aria-invalid", String(!check.ok));
  markErrors(check.errors);
  $("send").disabled = !check.ok;
  drawKeyInputs();
}

function drawKeyInputs() {
  const recipe = currentRecipe();
  const box = $("keys");
  box.replaceChildren();
  const needing = Object.entries(recipe?.providers ?? {}).filter(([, p]) => p.api_key_env && originOf(p.base_url));
  if (!needing.length) box.textContent = "This recipe's providers need no key.";
  needing.forEach(([name, p], i) => {
    const label = document.createElement("label");
    label.textContent = `${name} key (${p.api_key_env}), sent only to ${originOf(p.base_url)}`;
    const input = document.createElement("input");
    input.type = "password";
    input.autocomplete = "off";
    input.value = keys.get(keySlot(name, p)) ?? "";
    input.id = `key-${i}`;
    input.dataset.provider = name;
    label.htmlFor = input.id;
    input.addEventListener("input", () => {
      keys.set(keySlot(name, p), input.value);
      saveKeys();
    });
    box.append(label, input);
  });
}

function saveKeys() {
  if ($("remember").checked) localStorage.setItem(KEY_STORE, JSON.stringify([...keys].filter(([, v]) => v)));
  else localStorage.removeItem(KEY_STORE);
}

$("preset").addEventListener("change", () => loadPreset($("preset").value));
$("recipe").addEventListener("input", () => onRecipeEdited());
wireBuilder(() => currentRecipe() ?? { providers: {}, layers: [{ agents: [] }], aggregator: "" }, commitFromForm);
$("remember").addEventListener("change", saveKeys);
$("forget").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORE);
  $("remember").checked = false;
  keys.clear();
  drawKeyInputs();
  $("status").textContent = "Saved keys forgotten.";
});
$("import").addEventListener("change", async () => {
  const file = $("import").files[0];
  if (file) {
    $("recipe").value = await file.text();
    onRecipeEdited();
  }
});

function download(name, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  a.download = name;
  a.click();
  URL.revokeObjectURL(a.href);
}
$("export-recipe").addEventListener("click", () => download("recipe.json", $("recipe").value));
$("export-run").addEventListener("click", () => lastRun && download("moa-run.json", JSON.stringify(lastRun, null, 2)));
$("stop").addEventListener("click", () => controller?.abort());

function addHistory(role, text) {
  const li = document.createElement("li");
  li.textContent = `${role === "user" ? "You" : "moa"}: ${text}`;
  $("history").append(li);
}

/** The live view of one run: a card per agent, the answer, the timeline, the totals. */
function view(recipeLayers) {
  const cards = new Map();
  const calls = new Map();
  let answer = "";
  $("layers").replaceChildren();
  $("timeline").replaceChildren();
  $("answer").replaceChildren();
  $("totals").textContent = "";
  const card = (layer, slot, agent) => {
    const key = `${layer}/${slot}`;
    if (!cards.has(key)) {
      let box = document.getElementById(`layer-${layer}`);
      if (!box) {
        box = document.createElement("div");
        box.className = "layer";
        box.id = `layer-${layer}`;
        const h = document.createElement("h4");
        h.textContent = layer === recipeLayers ? "Aggregator" : `Layer ${layer + 1}`;
        const grid = document.createElement("div");
        grid.className = "cards";
        box.append(h, grid);
        $("layers").append(box);
      }
      const el = document.createElement("section");
      el.className = "card";
      el.setAttribute("aria-label", `${agent}, layer ${layer + 1}`);
      const h = document.createElement("h4");
      h.textContent = agent;
      const meta = document.createElement("div");
      meta.className = "meta";
      const text = document.createElement("div");
      text.className = "text";
      el.append(h, meta, text);
      box.querySelector(".cards").append(el);
      cards.set(key, { el, meta, text, tokens: 0, started: 0 });
    }
    return cards.get(key);
  };
  const set = (c, state, extra = "") => {
    c.el.dataset.state = state;
    c.meta.textContent = `${state} · ${c.tokens} tok${extra}`;
  };
  return {
    onEvent(e) {
      if (e.type === "call_started") {
        const c = card(e.layer, e.slot, e.agent);
        c.text.textContent = "";
        c.tokens = 0;
        set(c, e.attempt > 1 ? "retrying" : "waiting");
        calls.set(e.call, { label: e.agent, layer: e.layer, start: e.t_ms, first: null, end: null });
      } else if (e.type === "text_delta") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        c.tokens++;
        c.text.textContent += e.text;
        set(c, "streaming");
        const call = calls.get(e.call);
        if (call.first === null) call.first = performance.now();
        if (e.layer === recipeLayers) {
          answer += e.text;
          renderMarkdown($("answer"), answer);
        }
      } else if (e.type === "call_finished") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        c.tokens = e.usage?.output_tokens ?? c.tokens;
        set(c, "done", ` · ${(e.latency_ms / 1000).toFixed(1)} s`);
        Object.assign(calls.get(e.call), { end: e.t_ms, ttft: e.ttft_ms });
        drawTimeline();
      } else if (e.type === "call_failed") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        // A failed attempt's text is void: take it back, so a retry never appends.
        if (e.discarded_chars > 0) {
          c.text.textContent = "";
          c.tokens = 0;
          if (e.layer === recipeLayers) {
            answer = "";
            $("answer").replaceChildren();
            if (e.will_retry) $("status").textContent = `The answer broke off (${e.error}); retrying…`;
          }
        }
        set(c, e.will_retry ? "retrying" : "failed", ` · ${e.error}`);
        Object.assign(calls.get(e.call), { end: e.t_ms, failed: true });
        drawTimeline();
      } else if (e.type === "agent_stopped") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        if (c) set(c, "stopped", ` · ${e.reason}`);
      } else if (e.type === "final") {
        if (!answer) renderMarkdown($("answer"), e.text);
        const cost = e.cost == null ? "" : ` · $${e.cost.toFixed(4)}`;
        const est = e.usage.estimated ? " (some estimated)" : "";
        const wasted = e.wasted.input_tokens + e.wasted.output_tokens;
        const waste = wasted ? ` · ${wasted} of them on failed or cancelled attempts` : "";
        $("totals").textContent = `${e.usage.input_tokens} tokens in, ${e.usage.output_tokens} out${est}${cost}${waste} · ${(e.wall_ms / 1000).toFixed(1)} s wall`;
      }
    },
  };
  function drawTimeline() {
    const done = [...calls.values()].filter((c) => c.end !== null);
    const span = Math.max(1, ...done.map((c) => c.end));
    $("timeline").replaceChildren(
      ...done.map((c) => {
        const bar = document.createElement("div");
        bar.className = "bar";
        const first = c.ttft == null ? c.end : c.start + c.ttft;
        const wait = document.createElement("span");
        wait.className = "wait";
        wait.style.left = `${(100 * c.start) / span}%`;
        wait.style.width = `${(100 * (first - c.start)) / span}%`;
        const stream = document.createElement("span");
        stream.className = "stream";
        stream.style.left = `${(100 * first) / span}%`;
        stream.style.width = `${(100 * (c.end - first)) / span}%`;
        const label = document.createElement("span");
        label.className = "label";
        label.textContent = `${c.label}: first token ${c.ttft == null ? "–" : (c.ttft / 1000).toFixed(2) + " s"}, done ${(c.end / 1000).toFixed(2)} s${c.failed ? " (failed)" : ""}`;
        bar.append(wait, stream, label);
        return bar;
      }),
    );
  }
}

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("prompt").value.trim();
  const recipe = currentRecipe();
  if (!text || !recipe) return;
  let moa;
  try {
    moa = new Moa(recipe);
  } catch (e) {
    $("status").textContent = e.message;
    return;
  }
  history.push({ role: "user", content: text });
  addHistory("user", text);
  $("prompt").value = "";
  controller = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  $("status").textContent = "Running…";
  const events = [];
  const live = view(recipe.layers.length);
  const activeKeys = keysFor(recipe);
  try {
    const outcome = await moa.run(history, {
      signal: controller.signal,
      keys: activeKeys,
      onEvent: (e) => {
        events.push(e);
        live.onEvent(e);
      },
    });
    history.push({ role: "assistant", content: outcome.answer });
    addHistory("assistant", outcome.answer);
    $("status").textContent = "Done.";
    lastRun = { recipe, conversation: history, events, outcome };
  } catch (e) {
    history.pop();
    $("status").textContent = e.message === "the run was cancelled" ? "Stopped." : `Failed: ${e.message}`;
    lastRun = { recipe, events, error: e.message };
  } finally {
    controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    $("export-run").disabled = false;
  }
});

loadPreset("local");
document.body.dataset.ready = "true";
