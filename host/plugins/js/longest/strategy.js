// longest: a moa strategy plugin (contract moa:strategy@0.2.0), in JavaScript.
//
// Keeps the k longest proposals (params: {"k": 2}), counted in characters, ties to the
// earlier proposal, in proposal order; on the final layer with one proposal left, that
// proposal is the answer. The same strategy as host/plugins/examples/longest (Rust) and
// host/plugins/python/longest; a test holds the three equal.
//
// Build (QuickJS, the engine jco's `componentize --backend qjs` uses; WASI stubbed out):
//   npx componentize-qjs --wit wit --js strategy.js -n plugin --sync --stub-wasi -o longest.wasm
//
// A returned value is `ok`; a thrown string is `err` with that string.

function chars(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

function parseK(params) {
  let obj;
  try {
    obj = JSON.parse(params);
  } catch (e) {
    throw `params: ${e.message}`;
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw "params: not a JSON object";
  for (const key of Object.keys(obj)) {
    if (key !== "k") throw `unknown parameter ${JSON.stringify(key)} (it takes k)`;
  }
  const k = "k" in obj ? obj.k : 2;
  if (!Number.isInteger(k) || k < 1) throw "k must be an integer >= 1";
  return k;
}

export const strategy = {
  describe() {
    return {
      name: "longest",
      version: "0.1.0",
      description: "Keeps the k longest proposals.",
      params: '{"k": "proposals kept (2)"}',
    };
  },

  decide(ctx) {
    const k = parseK(ctx.params);
    const props = ctx.proposals;
    const n = props.length;
    if (ctx.layer >= ctx.layerCount && n === 1) {
      return { decision: { tag: "answer", val: props[0].text }, note: "the only proposal is the answer" };
    }
    // Longest first; ties to the earlier proposal (the sort is stable).
    const lengths = props.map((p) => chars(p.text));
    const order = props.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a]);
    const kept = order.slice(0, k).sort((a, b) => a - b);
    return { decision: { tag: "keep", val: kept }, note: `kept the ${kept.length} longest of ${n}` };
  },
};
