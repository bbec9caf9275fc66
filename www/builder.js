// A form for the common parts of a recipe, kept in step with the JSON text: editing one
// rewrites the other. Fields the form does not show (policy, prices, agents' own options)
// are kept as they are.

const $ = (id) => document.getElementById(id);

function field(labelText, id, value, onInput, attrs = {}) {
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = labelText;
  const input = attrs.tag === "select" ? document.createElement("select") : document.createElement(attrs.tag ?? "input");
  input.id = id;
  if (attrs.options) for (const [v, t] of attrs.options) input.append(new Option(t, v));
  if (attrs.rows) input.rows = attrs.rows;
  if (!attrs.tag) input.type = "text";
  input.spellcheck = false;
  input.value = value ?? "";
  for (const event of attrs.events ?? ["input"]) input.addEventListener(event, onInput);
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `${id}-error`;
  input.setAttribute("aria-describedby", error.id);
  return [label, input, error];
}

const modelOf = (a) => (typeof a === "string" ? a : a.model);
const lineOf = (a) => (typeof a === "object" && a.samples > 1 ? `${a.model} *${a.samples}` : modelOf(a));

/** Draws the form from `recipe`; `commit(recipe)` is called with every edit. */
export function drawBuilder(recipe, commit) {
  const providers = $("b-providers");
  providers.replaceChildren();
  for (const [name, p] of Object.entries(recipe.providers ?? {})) {
    const box = document.createElement("div");
    box.className = "provider";
    const rename = (e) => {
      const next = e.target.value.trim();
      if (!next || next === name || recipe.providers[next]) return;
      recipe.providers = Object.fromEntries(Object.entries(recipe.providers).map(([k, v]) => [k === name ? next : k, v]));
      commit(recipe, true);
    };
    const set = (key) => (e) => {
      if (e.target.value) p[key] = e.target.value;
      else delete p[key];
      commit(recipe);
    };
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = `Remove provider ${name}`;
    remove.onclick = () => {
      delete recipe.providers[name];
      commit(recipe, true);
    };
    box.append(
      ...field(`Provider name`, `b-provider-${name}-name`, name, rename, { events: ["change"] }),
      ...field(`${name}: kind`, `b-provider-${name}-kind`, p.kind, set("kind"), { tag: "select", events: ["change"], options: [["openai", "OpenAI-compatible"], ["anthropic", "Anthropic"]] }),
      ...field(`${name}: base URL`, `b-provider-${name}-base_url`, p.base_url, set("base_url")),
      ...field(`${name}: key variable (empty: no key)`, `b-provider-${name}-api_key_env`, p.api_key_env, set("api_key_env")),
      remove,
    );
    providers.append(box);
  }
  const layers = $("b-layers");
  layers.replaceChildren();
  (recipe.layers ?? []).forEach((layer, i) => {
    const onAgents = (e) => {
      const old = new Map((layer.agents ?? []).map((a) => [modelOf(a), a]));
      layer.agents = e.target.value.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
        const [, model, n] = line.match(/^(.*?)(?:\s*\*\s*(\d+))?$/);
        const kept = old.get(model);
        const base = typeof kept === "object" ? { ...kept } : { model };
        if (n && Number(n) > 1) base.samples = Number(n);
        else delete base.samples;
        return Object.keys(base).length === 1 ? model : base;
      });
      commit(recipe);
    };
    layers.append(...field(`Layer ${i + 1} agents (one provider:model per line; "*3" samples it 3 times)`, `b-layer-${i}`, (layer.agents ?? []).map(lineOf).join("\n"), onAgents, { tag: "textarea", rows: 3 }));
    if (i > 0) {
      const current = typeof layer.strategy === "string" ? layer.strategy : layer.strategy?.name ?? "synthesize";
      const onStrategy = (e) => {
        if (e.target.value === "synthesize") delete layer.strategy;
        else layer.strategy = e.target.value;
        commit(recipe);
      };
      layers.append(...field(`Layer ${i + 1} strategy`, `b-layer-${i}-strategy`, current, onStrategy, { tag: "select", events: ["change"], options: [["synthesize", "synthesize"], ["vote", "vote"]] }));
    }
  });
  const agg = recipe.aggregator ?? "";
  $("b-aggregator").value = modelOf(agg) ?? "";
  const aggStrategy = typeof agg === "object" ? (typeof agg.strategy === "string" ? agg.strategy : agg.strategy?.name) : undefined;
  $("b-aggregator-strategy").value = aggStrategy ?? "synthesize";
  $("b-temperature").value = recipe.temperature ?? "";
  $("b-max-tokens").value = recipe.max_tokens ?? "";
}

/** Wires the form's fixed controls; `current()` gives the recipe being edited. */
export function wireBuilder(current, commit) {
  const aggregator = () => {
    const r = current();
    const agg = typeof r.aggregator === "object" ? r.aggregator : { model: r.aggregator };
    agg.model = $("b-aggregator").value.trim();
    const s = $("b-aggregator-strategy").value;
    if (s === "synthesize") delete agg.strategy;
    else agg.strategy = s;
    r.aggregator = Object.keys(agg).length === 1 ? agg.model : agg;
    commit(r);
  };
  $("b-aggregator").addEventListener("input", aggregator);
  $("b-aggregator-strategy").addEventListener("change", aggregator);
  const number = (id, key) =>
    $(id).addEventListener("input", () => {
      const r = current();
      const v = $(id).value;
      if (v === "") delete r[key];
      else r[key] = Number(v);
      commit(r);
    });
  number("b-temperature", "temperature");
  number("b-max-tokens", "max_tokens");
  $("b-add-provider").addEventListener("click", () => {
    const r = current();
    let n = 1;
    while (r.providers[`provider${n}`]) n++;
    r.providers[`provider${n}`] = { kind: "openai", base_url: "https://" };
    commit(r, true);
  });
  $("b-add-layer").addEventListener("click", () => {
    const r = current();
    r.layers.push({ agents: [...(r.layers.at(-1)?.agents ?? [])] });
    commit(r, true);
  });
  $("b-remove-layer").addEventListener("click", () => {
    const r = current();
    if (r.layers.length > 1) r.layers.pop();
    commit(r, true);
  });
}

/** Puts each validation error next to the form field it names, as well as in the list. */
export function markErrors(errors) {
  for (const el of document.querySelectorAll("#builder [aria-invalid=true]")) el.removeAttribute("aria-invalid");
  for (const el of document.querySelectorAll("#builder .field-error")) el.textContent = "";
  for (const { path, message } of errors) {
    let id = null;
    let m;
    if ((m = path.match(/^providers\.([^.]+)\.(kind|base_url|api_key_env)/))) id = `b-provider-${m[1]}-${m[2]}`;
    else if ((m = path.match(/^layers\[(\d+)\]\.strategy/))) id = `b-layer-${m[1]}-strategy`;
    else if ((m = path.match(/^layers\[(\d+)\]/))) id = `b-layer-${m[1]}`;
    else if (path.startsWith("aggregator")) id = "b-aggregator";
    else if (path === "temperature" || path === "max_tokens") id = "b-knobs";
    const input = id && $(id);
    if (input && input.tagName !== "P") input.setAttribute("aria-invalid", "true");
    const slot = id && $(`${id}-error`);
    if (slot) slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : `${path}: ${message}`;
  }
}
