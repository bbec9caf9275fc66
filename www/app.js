import init, { Moa, presets, strategies, validateRecipe } from "./pkg/moa_wasm.js";
import { loadPlugin } from "./pkg/plugins.js";
import { markdownStream, renderMarkdown } from "./markdown.js";
import { SHOWN, addPluginStrategy, drawBuilder, markErrors, setStrategies, syncValues, wireBuilder } from "./builder.js";

await init();

const $ = (id) => document.getElementById(id);
let controller = null; // aborts the run under way
let running = false; // a run (or its provider check) is under way
let recipeOk = false; // the recipe in the text box was checked and is valid
const updateSend = () => ($("send").disabled = !recipeOk || running);
let lastRun = null; // the run on screen, for "Export run"
const phone = matchMedia("(max-width: 800px)").matches;
// On a phone the message box comes first and the recipe waits, folded, below it.
$("setup").open = !phone;
$("details").open = !phone;

// A key belongs to its provider's name *and* the origin of its base_url: a recipe that
// keeps the name but points it elsewhere does not get the key. A Map, never a plain
// object, so names like `constructor` or `__proto__` are only names.
const KEY_STORE = "moa.keys.v2";
localStorage.removeItem("moa.keys"); // keys saved before they were bound to an origin
const all = presets();
setStrategies(strategies());
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

// ---- The recipe: presets, the JSON text, the form ----

/** JSON with sorted keys: two recipes are the same when these are equal. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
const presetKeys = new Map(all.map((p) => [canonical(p.recipe), p.name]));
$("preset").append(new Option("custom — not a preset any more", "custom"));
$("preset").options[0].disabled = true;
for (const p of all) $("preset").append(new Option(`${p.name} — ${p.description}`, p.name));

function loadPreset(name) {
  showBig = false; // a new recipe starts folded if big, whatever the last one was
  setRecipeText(JSON.stringify(all.find((p) => p.name === name).recipe, null, 2));
  onRecipeEdited();
}

function currentRecipe() {
  try {
    const r = JSON.parse(recipeText());
    return r && typeof r === "object" && !Array.isArray(r) ? r : null;
  } catch {
    return null;
  }
}

/** A form edit: `change` gets a fresh parse of the JSON (never a copy kept from an earlier
 * draw), and its result is written back; `false` means nothing changed. */
function edit(change) {
  const recipe = currentRecipe();
  if (!recipe) {
    $("status").textContent = "The recipe's JSON does not parse: fix it in the text box before using the form.";
    return;
  }
  if (change(recipe) === false) return;
  setRecipeText(JSON.stringify(recipe, null, 2));
  onRecipeEdited(recipe);
}

/** Texts longer than this are big recipes: checked once typing pauses, never compared
 * with the presets. */
const BIG = 100_000;
let pendingCheck = null;

/** The JSON changed (`parsed` is it, parsed, when the caller has it): redraw the form now,
 * and check the recipe — at once, or for a big one when typing pauses (Send is off until
 * then: an unchecked recipe never runs). */
function onRecipeEdited(parsed = currentRecipe()) {
  if (parsed) drawBuilder(parsed, edit);
  const text = recipeText();
  foldBigText(text);
  $("preset").value = (parsed && text.length < BIG && presetKeys.get(canonical(parsed))) || "custom";
  clearTimeout(pendingCheck);
  if (text.length < BIG) return checkRecipe(parsed);
  recipeOk = false;
  updateSend();
  pendingCheck = setTimeout(() => checkRecipe(currentRecipe()), 300);
}

/** Whether the user asked to see a big recipe's text. */
let showBig = false;

/** A folded recipe's text, kept here instead of in its box: writing megabytes into a
 * text box took 150–260 ms even with the box hidden, a keystroke in the form. It reaches
 * the box when the box unfolds. */
let heldText = null;
const recipeText = () => heldText ?? $("recipe").value;
/** Whether a recipe of this text is folded: big, not asked for, not being typed in. */
const folds = (text) => text.length >= BIG && !showBig && document.activeElement !== $("recipe");
function setRecipeText(text) {
  if (folds(text)) {
    heldText = text;
  } else {
    heldText = null;
    $("recipe").value = text;
  }
}

/** Folds a big recipe's text box while the user is not typing in it: the browser lays
 * out megabytes of text again after every change to it, which took seconds a keystroke
 * in the form. The form, the errors and Export work the same folded. */
function foldBigText(text) {
  if (text.length < BIG) showBig = false;
  const fold = folds(text);
  if (!fold && heldText !== null) {
    $("recipe").value = heldText;
    heldText = null;
  }
  $("recipe").hidden = fold;
  $("recipe-folded").hidden = !fold;
  if (fold) $("recipe-folded-why").textContent = `This recipe's text (${(text.length / 1e6).toFixed(1)} MB) is folded to keep the form quick.`;
}
$("recipe-unfold").addEventListener("click", () => {
  showBig = true;
  foldBigText(recipeText());
  $("recipe").focus();
});

function checkRecipe(parsed) {
  const list = $("recipe-errors");
  list.replaceChildren();
  let check;
  try {
    check = validateRecipe(recipeText());
  } catch (e) {
    check = { ok: false, errors: [{ path: ".", message: e.message }] };
  }
  for (const e of check.errors.slice(0, 100)) {
    const li = document.createElement("li");
    li.textContent = `${e.path}: ${e.message}`;
    list.append(li);
  }
  if (check.errors.length > 100) list.append(Object.assign(document.createElement("li"), { textContent: `…and ${check.errors.length - 100} more` }));
  $("recipe").setAttribute("aria-invalid", String(!check.ok));
  markErrors(check.errors, parsed);
  recipeOk = check.ok;
  updateSend();
  drawKeyInputs(parsed);
}

function drawKeyInputs(recipe) {
  const box = $("keys");
  box.replaceChildren();
  const needing = Object.entries(recipe?.providers ?? {}).filter(([, p]) => p?.api_key_env && originOf(p.base_url));
  if (!needing.length) box.textContent = "This recipe's providers need no key.";
  needing.slice(0, SHOWN.providers).forEach(([name, p], i) => {
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
  if (needing.length > SHOWN.providers) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = `Showing keys for ${SHOWN.providers} of ${needing.length.toLocaleString("en")} providers.`;
    box.append(note);
  }
}

function saveKeys() {
  if ($("remember").checked) localStorage.setItem(KEY_STORE, JSON.stringify([...keys].filter(([, v]) => v)));
  else localStorage.removeItem(KEY_STORE);
}

$("preset").addEventListener("change", () => $("preset").value !== "custom" && loadPreset($("preset").value));
// A big recipe is parsed and drawn once typing pauses, not at every keystroke.
let pendingText = null;
$("recipe").addEventListener("input", () => {
  clearTimeout(pendingText);
  if (recipeText().length < BIG) onRecipeEdited();
  else {
    recipeOk = false;
    updateSend();
    pendingText = setTimeout(() => onRecipeEdited(), 300);
  }
});
wireBuilder(edit, () => {
  const r = currentRecipe();
  if (r) syncValues(r);
});
$("remember").addEventListener("change", saveKeys);
$("forget").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORE);
  $("remember").checked = false;
  keys.clear();
  drawKeyInputs(currentRecipe());
  $("status").textContent = "Saved keys forgotten.";
});
$("import").addEventListener("change", async () => {
  const file = $("import").files[0];
  if (file) {
    showBig = false;
    setRecipeText(await file.text());
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
$("export-recipe").addEventListener("click", () => download("recipe.json", recipeText()));

// ---- Providers: can this page reach them? ----

/** The providers a recipe's agents and aggregator use. */
function usedProviders(recipe) {
  const models = (recipe.layers ?? []).flatMap((l) => (l?.agents ?? []).map((a) => (typeof a === "string" ? a : a?.model)));
  const agg = recipe.aggregator;
  models.push(typeof agg === "string" ? agg : agg?.model);
  const used = new Set(models.filter((m) => typeof m === "string").map((m) => m.split(":")[0]));
  return Object.entries(recipe.providers ?? {}).filter(([name]) => used.has(name));
}

const reachable = new Map(); // base URL → time it was last seen reachable
const isLoopback = (url) => /^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/i.test(url);

/** One provider, probed with a cheap `GET {base_url}/models` (no key is sent): reachable,
 * blocked by CORS (it answers, but not to web pages), or down. A CORS refusal and a dead
 * server look the same to `fetch`; a second, opaque (`no-cors`) request tells them apart. */
async function probe(name, p) {
  const base = String(p.base_url ?? "").replace(/\/+$/, "");
  const origin = originOf(base) ?? base;
  const seen = reachable.get(base);
  if (seen && performance.now() - seen < 60_000) return { name, origin, state: "ok" };
  const url = `${base}/models`;
  const headers = p.kind === "anthropic" ? { "anthropic-version": "2023-06-01", "anthropic-dangerous-direct-browser-access": "true" } : {};
  try {
    const res = await fetch(url, { headers, credentials: "omit", cache: "no-store", signal: AbortSignal.timeout(4000) });
    reachable.set(base, performance.now());
    return { name, origin, state: "ok", status: res.status };
  } catch (e) {
    if (e.name !== "TimeoutError") {
      try {
        await fetch(url, { mode: "no-cors", credentials: "omit", cache: "no-store", signal: AbortSignal.timeout(4000) });
        return { name, origin, state: "cors" };
      } catch {
        // down, below
      }
    }
    return { name, origin, state: "down", local: isLoopback(base) };
  }
}

/** Probes the recipe's providers and lists them with what to do; true when all answer. */
async function checkProviders(recipe) {
  const results = await Promise.all(usedProviders(recipe).map(([name, p]) => probe(name, p)));
  const list = $("probes");
  list.replaceChildren(
    ...results.map((r) => {
      const li = document.createElement("li");
      li.dataset.state = r.state;
      li.dataset.provider = r.name;
      const say = (...parts) => li.append(...parts.map((t) => (t.code ? Object.assign(document.createElement("code"), { textContent: t.code }) : t)));
      if (r.state === "ok") say(`${r.name} (${r.origin}): reachable${r.status === 401 || r.status === 403 ? "; it wants a key" : ""}.`);
      else if (r.state === "cors") say(`${r.name} (${r.origin}): answers, but does not allow web pages to call it (CORS). This provider does not allow browsers: run the recipe with `, { code: "moa serve" }, " on your machine instead.");
      else if (r.local) say(`${r.name} (${r.origin}): down — nothing answers there. If it is this project's local models, start them: `, { code: "moa local start" }, ".");
      else say(`${r.name} (${r.origin}): down — nothing answers there. Check the address and your connection.`);
      return li;
    }),
  );
  list.hidden = results.length === 0;
  return results.every((r) => r.state === "ok");
}

$("check").addEventListener("click", async () => {
  const recipe = currentRecipe();
  if (!recipe) return;
  $("status").textContent = "Checking providers…";
  const ok = await checkProviders(recipe);
  $("status").textContent = ok ? "Every provider answers." : "Some providers cannot be reached from this page:";
});

// ---- The conversation ----

/** Every turn, as shown: a user turn whose run stopped or failed stays, marked, and is
 * sent again only if the user ticks it; a stopped answer is never sent. */
const turns = [];

function addTurn(turn) {
  const li = document.createElement("li");
  li.className = `turn ${turn.role}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = turn.role === "user" ? "You" : "moa";
  li.append(who);
  if (turn.role === "user") li.append(turn.content);
  else {
    const article = document.createElement("article");
    article.className = "answer";
    li.append(article);
  }
  $("history").append(li);
  turn.el = li;
  setTurnState(turn, turn.state);
  return turn;
}

function setTurnState(turn, state) {
  turn.state = state;
  turn.el.dataset.state = state;
  turn.el.querySelector(".turn-note")?.remove();
  if (state !== "stopped" && state !== "failed") return;
  const note = document.createElement("span");
  note.className = "turn-note";
  if (turn.role === "assistant") {
    note.textContent = `${state === "stopped" ? "Stopped" : "Failed"}: this partial answer is not sent with the next message.`;
  } else {
    note.append(state === "stopped" ? "Stopped before an answer. " : "No answer: the run failed. ");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "include";
    box.checked = turn.include;
    box.addEventListener("change", () => (turn.include = box.checked));
    label.append(box, " Send this message again with the next one");
    note.append(label);
  }
  turn.el.append(note);
}

/** What the next run sends: answered turns, and unanswered ones the user ticked. */
const conversation = () =>
  turns.filter((t) => t.state === "ok" || t.state === "running" || (t.role === "user" && t.include)).map((t) => ({ role: t.role, content: t.content }));

$("export-run").addEventListener("click", () => lastRun && download("moa-run.json", JSON.stringify(lastRun, null, 2)));
$("stop").addEventListener("click", () => controller?.abort());
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (!$("send").disabled) $("ask").requestSubmit();
  }
});

/** An error's text, once: without the "Error: " a wrapped JavaScript error repeats. */
const readable = (message) => String(message).replace(/\b((?:[A-Z]\w*)?Error: )(?:(?:[A-Z]\w*)?Error: )+/g, "$1");

/** How much of a streaming card's text is drawn: its last characters. */
const TAIL = 2000;
/** How often a streaming card is drawn, in ms: ten cards redrawn every frame kept the
 * browser laying out and painting text most of the time. */
const CARD_EVERY = 100;

/** The live view of one run: a card per agent, the answer, the timeline, the totals.
 * Text comes a token at a time, thousands a second over all the cards: tokens are kept
 * here and drawn: the answer once a frame, a streaming card every CARD_EVERY ms, all of
 * it by `flush` at the end. */
function view(recipeLayers, answerEl) {
  const cards = new Map();
  const calls = new Map();
  const failed = new Map(); // agent → its last error, for the list under the status
  let answer = "";
  const markdown = markdownStream(answerEl);
  const dirty = new Set(); // cards to draw at the next frame
  let answerDirty = false;
  let frame = 0;
  const later = (c) => {
    if (c) dirty.add(c);
    frame ||= requestAnimationFrame((now) => draw(now, false));
  };
  /** Draws what changed: the answer and a card whose state changed at once, a streaming
   * card's text and count at most every CARD_EVERY ms; `all`: everything now. */
  function draw(now, all) {
    cancelAnimationFrame(frame);
    frame = 0;
    for (const c of dirty) {
      if (!all && c.state === "streaming" && c.drawnState === "streaming" && now - c.drawnAt < CARD_EVERY) continue;
      dirty.delete(c);
      c.drawnAt = now;
      c.drawnState = c.state;
      c.full += c.pending;
      c.pending = "";
      if (c.layer !== recipeLayers) {
        // While it streams, a card shows its newest text: laying all of it out again at
        // every frame was most of the page's work with ten fast agents. All of it once
        // the call ends.
        const tail = c.state === "streaming" && c.full.length > TAIL;
        // Not from the middle of a character made of two UTF-16 units.
        const text = tail ? `…${c.full.slice(-TAIL).replace(/^[\uDC00-\uDFFF]/, "")}` : c.full;
        if (c.node.data !== text) c.node.data = text;
      }
      c.el.dataset.state = c.state;
      c.meta.textContent = `${c.state} · ${c.tokens} tok${c.extra}`;
    }
    if (dirty.size) later();
    if (answerDirty) markdown.update(answer);
    answerDirty = false;
  }
  const flush = () => draw(performance.now(), true);
  $("layers").replaceChildren();
  $("timeline").replaceChildren();
  $("notes").replaceChildren();
  $("totals").textContent = "";
  const note = (text) => $("notes").append(Object.assign(document.createElement("li"), { textContent: text }));
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
      el.setAttribute("aria-label", `${agent}, ${layer === recipeLayers ? "aggregator" : `layer ${layer + 1}`}`);
      const h = document.createElement("h4");
      h.textContent = agent;
      const meta = document.createElement("div");
      meta.className = "meta";
      const text = document.createElement("div");
      text.className = "text";
      const node = document.createTextNode("");
      text.append(node);
      el.append(h, meta, text);
      box.querySelector(".cards").append(el);
      cards.set(key, { el, meta, node, full: "", pending: "", tokens: 0, agent, layer, state: "", extra: "", drawnAt: 0, drawnState: "" });
    }
    return cards.get(key);
  };
  const set = (c, state, extra = "") => {
    c.state = state;
    c.extra = extra;
    later(c);
  };
  const clear = (c) => {
    c.node.data = "";
    c.full = "";
    c.pending = "";
    c.tokens = 0;
  };
  return {
    get answer() {
      return answer;
    },
    failures: () => [...failed.values()],
    flush,
    onEvent(e) {
      if (e.type === "call_started") {
        const c = card(e.layer, e.slot, e.agent);
        clear(c);
        set(c, e.attempt > 1 ? "retrying" : "waiting");
        calls.set(e.call, { label: e.agent, layer: e.layer, start: e.t_ms, first: null, end: null });
      } else if (e.type === "text_delta") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        c.tokens++;
        // The aggregator's text is the answer, shown once: in the conversation.
        if (e.layer !== recipeLayers) c.pending += e.text;
        else if (!c.node.data) c.node.data = "Writes the answer, in the conversation above.";
        set(c, "streaming");
        if (e.layer === recipeLayers) {
          answer += e.text;
          answerDirty = true;
        }
      } else if (e.type === "call_finished") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        c.tokens = e.usage?.output_tokens ?? c.tokens;
        set(c, "done", ` · ${(e.latency_ms / 1000).toFixed(1)} s`);
        failed.delete(`${e.layer}/${e.slot}`);
        Object.assign(calls.get(e.call), { end: e.t_ms, ttft: e.ttft_ms });
        drawTimeline();
      } else if (e.type === "call_failed") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        // A failed attempt's text is void: take it back, so a retry never appends.
        if (e.discarded_chars > 0) {
          clear(c);
          if (e.layer === recipeLayers) {
            answer = "";
            answerDirty = true;
            if (e.will_retry) $("status").textContent = `The answer broke off (${readable(e.error)}); retrying…`;
          }
        }
        // Cut: a quorum or an agreement went on without it. Not a failure.
        const cut = !e.will_retry && e.kind === "cut";
        set(c, e.will_retry ? "retrying" : cut ? "cut" : "failed", ` · ${readable(e.error)}`);
        if (!e.will_retry && !cut) {
          const where = e.layer === recipeLayers ? "aggregator" : `layer ${e.layer + 1}`;
          failed.set(`${e.layer}/${e.slot}`, `${c.agent} (${where}): ${readable(e.error)}`);
        }
        Object.assign(calls.get(e.call), { end: e.t_ms, failed: !cut, cut });
        drawTimeline();
      } else if (e.type === "strategy_note") {
        note(`${e.strategy}, before ${e.layer === recipeLayers ? "the aggregator" : `layer ${e.layer + 1}`}: ${e.note}`);
      } else if (e.type === "references_trimmed") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        note(`${c?.agent ?? "A call"}: ${e.references} references shortened to ${Math.round(100 * e.kept)}% each to fit its ${e.window}-token window (about ${e.before} → ${e.after} tokens of prompt)`);
      } else if (e.type === "strategy_failed") {
        note(`${e.strategy}, before ${e.layer === recipeLayers ? "the aggregator" : `layer ${e.layer + 1}`}, failed${e.fallback ? " (synthesize decided instead)" : ""}: ${readable(e.error)}`);
      } else if (e.type === "agent_stopped") {
        const c = cards.get(`${e.layer}/${e.slot}`);
        if (c) set(c, "stopped", ` · ${e.reason}`);
      } else if (e.type === "final") {
        const cost = e.cost == null ? "" : ` · $${e.cost.toFixed(4)}`;
        const est = e.usage.estimated ? " (some estimated)" : "";
        const wasted = e.wasted.input_tokens + e.wasted.output_tokens;
        const waste = wasted ? ` · ${wasted} of them on failed or cancelled attempts` : "";
        const first = e.ttft_ms == null || e.ttft_ms >= e.wall_ms ? "" : ` (first token ${(e.ttft_ms / 1000).toFixed(1)} s)`;
        $("totals").textContent = `${e.usage.input_tokens} tokens in, ${e.usage.output_tokens} out${est}${cost}${waste} · ${(e.wall_ms / 1000).toFixed(1)} s wall${first}`;
        // An answer that calls tools (a run given tools): each call, as text.
        for (const c of e.tool_calls ?? []) note(`tool call ${c.id}: ${c.function.name}(${c.function.arguments})`);
      }
    },
  };
  function drawTimeline() {
    const done = [...calls.values()].filter((c) => c.end !== null);
    const span = Math.max(1, ...done.map((c) => c.end));
    $("timeline").replaceChildren(
      ...done.map((c) => {
        const li = document.createElement("li");
        const label = document.createElement("span");
        label.className = "label";
        label.textContent = `${c.label}: first token ${c.ttft == null ? "–" : (c.ttft / 1000).toFixed(2) + " s"}, ${c.cut ? "cut" : "done"} ${(c.end / 1000).toFixed(2)} s${c.failed ? " (failed)" : ""}`;
        const bar = document.createElement("div");
        bar.className = "bar";
        bar.setAttribute("aria-hidden", "true");
        const first = c.ttft == null ? c.end : c.start + c.ttft;
        const wait = document.createElement("span");
        wait.className = "wait";
        wait.style.left = `${(100 * c.start) / span}%`;
        wait.style.width = `${(100 * (first - c.start)) / span}%`;
        const stream = document.createElement("span");
        stream.className = "stream";
        stream.style.left = `${(100 * first) / span}%`;
        stream.style.width = `${(100 * (c.end - first)) / span}%`;
        bar.append(wait, stream);
        if (c.cut) li.className = "cut";
        li.append(label, bar);
        return li;
      }),
    );
  }
}

// ---- Strategy plugins: loaded here, run in Workers, named in recipes as { plugin } ----

/** Loaded plugins by the name recipes give them (a null-prototype object: any name is only a name). */
const plugins = Object.create(null);

async function addPlugin(source) {
  const item = document.createElement("li");
  item.textContent = "Loading…";
  $("plugin-list").append(item);
  try {
    const plugin = await loadPlugin(source);
    plugins[plugin.name]?.close();
    plugins[plugin.name] = plugin;
    const { name, version, description } = plugin.info;
    item.textContent = `${plugin.name}: ${name} ${version}, ${description} (contract ${plugin.contract}, ${Math.ceil(plugin.size / 1024)} KB)`;
    item.dataset.plugin = plugin.name;
    for (const old of $("plugin-list").querySelectorAll("li")) if (old !== item && old.dataset.plugin === plugin.name) old.remove();
    addPluginStrategy(plugin.name, description);
    onRecipeEdited();
  } catch (e) {
    item.className = "error";
    item.textContent = readable(e.message);
  }
}

$("plugin-file").addEventListener("change", (e) => {
  for (const file of e.target.files) addPlugin(file);
  e.target.value = "";
});
$("plugin-load").addEventListener("click", () => {
  const url = $("plugin-url").value.trim();
  if (url) addPlugin(url);
});

/** The plugins a recipe names that are not loaded. */
function missingPlugins(recipe) {
  const specs = [...(recipe.layers ?? []).map((l) => l?.strategy), recipe.aggregator?.strategy];
  return specs.map((s) => s?.plugin).filter((p) => typeof p === "string" && !(p in plugins));
}

function showFailures(lines) {
  const list = $("failures");
  list.replaceChildren(...lines.map((l) => Object.assign(document.createElement("li"), { textContent: l })));
  list.hidden = lines.length === 0;
}

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("prompt").value.trim();
  const recipe = currentRecipe();
  if (!text || !recipe || running) return;
  const missing = missingPlugins(recipe);
  if (missing.length) {
    $("status").textContent = `Not sent: the recipe's strategy plugin ${missing.join(", ")} is not loaded; load it under Strategy plugins (a file or a URL).`;
    return;
  }
  let moa;
  try {
    moa = new Moa(recipe);
  } catch (e) {
    $("status").textContent = readable(e.message);
    return;
  }
  running = true;
  updateSend();
  // The export is of the run on screen: none while the next one starts.
  lastRun = null;
  $("export-run").disabled = true;
  showFailures([]);
  $("status").textContent = "Checking providers…";
  try {
    if (!(await checkProviders(recipe))) {
      $("status").textContent = "Not sent: some providers cannot be reached from this page:";
      return;
    }
  } finally {
    running = false;
    updateSend();
  }
  $("probes").hidden = true;
  running = true;
  updateSend();
  const user = addTurn({ role: "user", content: text, state: "running", include: false });
  turns.push(user);
  $("answer")?.removeAttribute("id");
  const reply = addTurn({ role: "assistant", content: "", state: "running" });
  const answerEl = reply.el.querySelector(".answer");
  answerEl.id = "answer";
  $("prompt").value = "";
  controller = new AbortController();
  $("stop").disabled = false;
  $("status").textContent = "Running…";
  const events = [];
  const live = view(recipe.layers.length, answerEl);
  const messages = conversation();
  try {
    const outcome = await moa.run(messages, {
      signal: controller.signal,
      keys: keysFor(recipe),
      plugins,
      onEvent: (e) => {
        events.push(e);
        live.onEvent(e);
      },
    });
    live.flush();
    reply.content = outcome.answer;
    renderMarkdown(answerEl, outcome.answer);
    setTurnState(user, "ok");
    setTurnState(reply, "ok");
    turns.push(reply);
    $("status").textContent = "Done.";
    lastRun = { recipe, conversation: messages, events, outcome };
  } catch (e) {
    live.flush();
    const stopped = e.message === "the run was cancelled";
    const [head, ...rest] = readable(e.message).split("\n");
    $("status").textContent = stopped ? "Stopped." : `Failed: ${head}`;
    const fromEvents = live.failures();
    showFailures(stopped ? [] : fromEvents.length ? fromEvents : rest.map((l) => l.trim()).filter(Boolean));
    setTurnState(user, stopped ? "stopped" : "failed");
    if (live.answer) setTurnState(reply, stopped ? "stopped" : "failed");
    else reply.el.remove();
    lastRun = { recipe, conversation: messages, events, error: e.message };
  } finally {
    controller = null;
    running = false;
    updateSend();
    $("stop").disabled = true;
    $("export-run").disabled = false;
  }
});

loadPreset("local");
document.body.dataset.ready = "true";
