// A form for the common parts of a recipe. The JSON text is the one source of truth: every
// form edit parses the text afresh, changes that, and writes it back, so an edit can never
// carry a stale copy of another field; and after every change the form is redrawn from
// the text (in place, leaving alone only the field being typed in). Fields the form does
// not show (policy, prices, agents' own options) are kept as they are.

const $ = (id) => document.getElementById(id);

/** The most providers, layers and agents per layer the form draws: a pasted recipe of
 * thousands would make every keystroke redraw thousands of fields. The rest are edited
 * in the JSON, and the form says so. */
export const SHOWN = { providers: 50, layers: 20, agents: 200 };

export const modelOf = (a) => (typeof a === "string" ? a : a?.model ?? "");
const lineOf = (a) => (typeof a === "object" && a !== null && a.samples > 1 ? `${a.model} *${a.samples}` : modelOf(a));

/** What each form field shows for `recipe`, by element id: the form's whole meaning. */
export function formValues(recipe) {
  const out = {};
  Object.keys(recipe.providers ?? {}).slice(0, SHOWN.providers).forEach((name, i) => {
    const p = recipe.providers[name] ?? {};
    out[`b-provider-${i}-name`] = name;
    out[`b-provider-${i}-kind`] = p.kind ?? "openai";
    out[`b-provider-${i}-base_url`] = p.base_url ?? "";
    out[`b-provider-${i}-api_key_env`] = p.api_key_env ?? "";
  });
  (recipe.layers ?? []).slice(0, SHOWN.layers).forEach((layer, i) => {
    const agents = layer?.agents ?? [];
    if (agents.length <= SHOWN.agents) out[`b-layer-${i}`] = agents.map(lineOf).join("\n");
    if (i > 0) out[`b-layer-${i}-strategy`] = strategyName(layer?.strategy);
  });
  const agg = recipe.aggregator ?? "";
  out["b-aggregator"] = modelOf(agg);
  out["b-aggregator-strategy"] = typeof agg === "object" && agg !== null ? strategyName(agg.strategy) : "synthesize";
  out["b-temperature"] = recipe.temperature === undefined ? "" : String(recipe.temperature);
  out["b-max-tokens"] = recipe.max_tokens === undefined ? "" : String(recipe.max_tokens);
  return out;
}

/** The built-in strategies, for the menus: [name, what it does], as the module lists
 * them (the page has no list of its own to drift). */
let STRATEGIES = [];
export function setStrategies(list) {
  STRATEGIES = list.map((s) => [s.name, s.summary]);
}

/** Adds a loaded strategy plugin to the menus, as `plugin:NAME`. */
export function addPluginStrategy(name, summary) {
  const value = `plugin:${name}`;
  STRATEGIES = STRATEGIES.filter(([n]) => n !== value).concat([[value, `${name} (plugin): ${summary}`]]);
  fillAggregatorMenu();
}

function strategyName(s) {
  const name = typeof s === "string" ? s : s?.name ?? (s?.plugin ? `plugin:${s.plugin}` : "synthesize");
  return STRATEGIES.some(([n]) => n === name) ? name : "synthesize";
}

/** What a menu's value writes into the recipe: a built-in's name, or `{ plugin }`. */
function strategyValue(value) {
  return value.startsWith("plugin:") ? { plugin: value.slice(7) } : value;
}

function fillAggregatorMenu() {
  const menu = $("b-aggregator-strategy");
  const chosen = menu.value;
  menu.replaceChildren(
    ...STRATEGIES.map(([value, text]) => Object.assign(document.createElement("option"), { value, textContent: text })),
  );
  if (STRATEGIES.some(([n]) => n === chosen)) menu.value = chosen;
}

/** Parses a layer's agents field: one `provider:model` a line, `*N` samples it N times;
 * an agent's other options (written in the JSON) are kept when its model stays. */
export function parseAgents(text, old = []) {
  const kept = new Map(old.map((a) => [modelOf(a), a]));
  return text.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
    const [, model, n] = line.match(/^(.*?)(?:\s*\*\s*(\d+))?$/);
    const prior = kept.get(model);
    const base = typeof prior === "object" && prior !== null ? { ...prior } : { model };
    if (n && Number(n) > 1) base.samples = Number(n);
    else delete base.samples;
    return Object.keys(base).length === 1 ? model : base;
  });
}

function field(labelText, id, onInput, attrs = {}) {
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = labelText;
  const input = document.createElement(attrs.tag ?? "input");
  input.id = id;
  if (attrs.options) for (const [v, t] of attrs.options) input.append(new Option(t, v));
  if (attrs.rows) input.rows = attrs.rows;
  if (!attrs.tag) input.type = "text";
  input.spellcheck = false;
  for (const event of attrs.events ?? ["input"]) input.addEventListener(event, onInput);
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `${id}-error`;
  input.setAttribute("aria-describedby", error.id);
  return [label, input, error];
}

let drawnShape = null;

/** Draws the form from `recipe`. `edit(change, structural)` applies `change` to a fresh
 * parse of the JSON; `structural` says the form's shape changes (a field added or gone). */
export function drawBuilder(recipe, edit) {
  const names = Object.keys(recipe.providers ?? {});
  const layers = recipe.layers ?? [];
  const shape = JSON.stringify([
    names.slice(0, SHOWN.providers),
    layers.slice(0, SHOWN.layers).map((l) => (l?.agents ?? []).length <= SHOWN.agents),
  ]);
  if (shape !== drawnShape) {
    drawnShape = shape;
    drawFields(names, layers, edit);
  }
  const bounded = [];
  if (names.length > SHOWN.providers) bounded.push(`${SHOWN.providers} of ${names.length.toLocaleString("en")} providers`);
  if (layers.length > SHOWN.layers) bounded.push(`${SHOWN.layers} of ${layers.length.toLocaleString("en")} layers`);
  const big = layers.slice(0, SHOWN.layers).filter((l) => (l?.agents ?? []).length > SHOWN.agents).length;
  $("b-bounded").hidden = !bounded.length && !big;
  $("b-bounded").textContent = [
    bounded.length ? `The form shows ${bounded.join(" and ")}.` : "",
    big ? `${big} layer(s) have more than ${SHOWN.agents} agents.` : "",
    "Edit the rest in the JSON below.",
  ].filter(Boolean).join(" ");
  syncValues(recipe);
}

/** Sets every field from `recipe`, but the one being typed in (its text may be on its
 * way to a value, like "0." or a half-written agent line). */
export function syncValues(recipe) {
  for (const [id, value] of Object.entries(formValues(recipe))) {
    const el = $(id);
    if (el && el !== document.activeElement && el.value !== value) el.value = value;
  }
}

function drawFields(names, layers, edit) {
  const providers = $("b-providers");
  providers.replaceChildren();
  names.slice(0, SHOWN.providers).forEach((name, i) => {
    const box = document.createElement("div");
    box.className = "provider";
    const rename = (e) => {
      const next = e.target.value.trim();
      edit((r) => {
        if (!next || next === name || Object.hasOwn(r.providers, next) || !Object.hasOwn(r.providers, name)) return false;
        r.providers = Object.fromEntries(Object.entries(r.providers).map(([k, v]) => [k === name ? next : k, v]));
      }, true);
    };
    const set = (key) => (e) =>
      edit((r) => {
        const p = Object.hasOwn(r.providers ?? {}, name) ? r.providers[name] : null;
        if (!p) return false;
        if (e.target.value) p[key] = e.target.value;
        else delete p[key];
      });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "danger";
    remove.textContent = `Remove provider ${name}`;
    remove.onclick = () =>
      edit((r) => {
        delete r.providers[name];
      }, true);
    box.append(
      ...field("Provider name", `b-provider-${i}-name`, rename, { events: ["change"] }),
      ...field(`${name}: kind`, `b-provider-${i}-kind`, set("kind"), { tag: "select", events: ["change"], options: [["openai", "OpenAI-compatible"], ["anthropic", "Anthropic"]] }),
      ...field(`${name}: base URL`, `b-provider-${i}-base_url`, set("base_url")),
      ...field(`${name}: key variable (empty: no key)`, `b-provider-${i}-api_key_env`, set("api_key_env")),
      remove,
    );
    providers.append(box);
  });
  const box = $("b-layers");
  box.replaceChildren();
  layers.slice(0, SHOWN.layers).forEach((layer, i) => {
    if ((layer?.agents ?? []).length <= SHOWN.agents) {
      const onAgents = (e) =>
        edit((r) => {
          if (!r.layers?.[i]) return false;
          r.layers[i].agents = parseAgents(e.target.value, r.layers[i].agents ?? []);
        });
      box.append(...field(`Layer ${i + 1} agents (one provider:model per line; "*3" samples it 3 times)`, `b-layer-${i}`, onAgents, { tag: "textarea", rows: 3 }));
    }
    if (i > 0) {
      const onStrategy = (e) =>
        edit((r) => {
          if (!r.layers?.[i]) return false;
          if (e.target.value === "synthesize") delete r.layers[i].strategy;
          else r.layers[i].strategy = strategyValue(e.target.value);
        });
      box.append(...field(`Layer ${i + 1} strategy`, `b-layer-${i}-strategy`, onStrategy, { tag: "select", events: ["change"], options: STRATEGIES }));
    }
  });
}

/** Wires the form's fixed controls to `edit` (see `drawBuilder`); `resync()` redraws the
 * form's values from the JSON when a field is left. */
export function wireBuilder(edit, resync) {
  fillAggregatorMenu();
  const aggregator = () =>
    edit((r) => {
      const agg = typeof r.aggregator === "object" && r.aggregator !== null ? r.aggregator : { model: r.aggregator };
      agg.model = $("b-aggregator").value.trim();
      const s = $("b-aggregator-strategy").value;
      if (s === "synthesize") delete agg.strategy;
      else agg.strategy = strategyValue(s);
      r.aggregator = Object.keys(agg).length === 1 ? agg.model : agg;
    });
  $("b-aggregator").addEventListener("input", aggregator);
  $("b-aggregator-strategy").addEventListener("change", aggregator);
  const number = (id, key) =>
    $(id).addEventListener("input", () =>
      edit((r) => {
        const v = $(id).value;
        if (v === "") delete r[key];
        else r[key] = Number(v);
      }),
    );
  number("b-temperature", "temperature");
  number("b-max-tokens", "max_tokens");
  $("b-add-provider").addEventListener("click", () =>
    edit((r) => {
      r.providers ??= {};
      let n = 1;
      while (Object.hasOwn(r.providers, `provider${n}`)) n++;
      r.providers[`provider${n}`] = { kind: "openai", base_url: "https://" };
    }, true),
  );
  $("b-add-layer").addEventListener("click", () =>
    edit((r) => {
      r.layers ??= [];
      r.layers.push({ agents: structuredClone(r.layers.at(-1)?.agents ?? []) });
    }, true),
  );
  $("b-remove-layer").addEventListener("click", () =>
    edit((r) => {
      if (!(r.layers?.length > 1)) return false;
      r.layers.pop();
    }, true),
  );
  $("builder").addEventListener("focusout", () => setTimeout(resync));
}

/** Puts each validation error next to the form field it names, as well as in the list.
 * Provider names may hold dots (`together.ai`), so a path is matched against the
 * recipe's own names, longest first, rather than split at dots. */
export function markErrors(errors, recipe) {
  for (const el of document.querySelectorAll("#builder [aria-invalid=true]")) el.removeAttribute("aria-invalid");
  for (const el of document.querySelectorAll("#builder .field-error")) el.textContent = "";
  const names = Object.keys(recipe?.providers ?? {})
    .slice(0, SHOWN.providers)
    .map((name, i) => [name, i])
    .sort((a, b) => b[0].length - a[0].length);
  for (const { path, message } of errors) {
    let id = null;
    let m;
    if (path.startsWith("providers.")) {
      const rest = path.slice("providers.".length);
      const hit = names.find(([name]) => rest === name || rest.startsWith(`${name}.`));
      if (hit) {
        const key = rest.slice(hit[0].length + 1).split(".")[0];
        id = ["kind", "base_url", "api_key_env"].includes(key) ? `b-provider-${hit[1]}-${key}` : `b-provider-${hit[1]}-name`;
      }
    } else if ((m = path.match(/^layers\[(\d+)\]\.strategy/))) id = `b-layer-${m[1]}-strategy`;
    else if ((m = path.match(/^layers\[(\d+)\]/))) id = `b-layer-${m[1]}`;
    else if (path.startsWith("aggregator")) id = "b-aggregator";
    else if (path === "temperature" || path === "max_tokens") id = "b-knobs";
    const input = id && $(id);
    if (input && input.tagName !== "P") input.setAttribute("aria-invalid", "true");
    const slot = id && $(`${id}-error`);
    if (slot) slot.textContent = slot.textContent ? `${slot.textContent}; ${path}: ${message}` : `${path}: ${message}`;
  }
}
