// Proves the TypeScript declarations: `tsc --noEmit` must accept this file.
import init, { Moa, presets, validateRecipe } from "../pkg/moa_wasm.js";
import type { MoaEvent, Outcome, Recipe, Validation } from "../pkg/moa_wasm.js";

await init();

const recipe: Recipe = {
  providers: { groq: { kind: "openai", base_url: "https://api.groq.com/openai/v1", api_key_env: "GROQ_API_KEY" } },
  layers: [{ agents: ["groq:llama-3.1-8b-instant", { model: "groq:gemma2-9b-it", temperature: 0.2 }] }],
  aggregator: { model: "groq:llama-3.3-70b-versatile", strategy: { name: "vote", params: { threshold: 0.6 } } },
  policy: { retries: 2, timeout_secs: 60 },
};

const check: Validation = validateRecipe(recipe);
if (!check.ok) for (const e of check.errors) console.error(`${e.path}: ${e.message}`);

const names: string[] = presets().map((p) => p.name);
console.log(names);

function show(event: MoaEvent): void {
  switch (event.type) {
    case "text_delta":
      console.log(event.layer, event.slot, event.text);
      break;
    case "call_finished":
      console.log(event.agent, event.usage?.output_tokens, event.ttft_ms);
      break;
    case "final":
      console.log(event.text, event.wall_ms);
      break;
  }
}

const moa = new Moa(recipe);
const outcome: Outcome = await moa.run("Hi!", { onEvent: show, keys: { groq: "gsk-..." }, signal: new AbortController().signal });
const tokens: number = outcome.usage.input_tokens + outcome.usage.output_tokens;
console.log(outcome.answer.length, tokens, outcome.layers[0].calls[0].latency_ms);
const quick: Outcome = await moa.run([{ role: "user", content: "Options are optional." }]);
console.log(quick.answer);
