// Proves the TypeScript declarations: `tsc --noEmit` must accept this file.
import init, { Moa, presets, strategies, validateRecipe } from "../pkg/moa_wasm.js";
import type { Answered, ErrorKind, MoaEvent, Recipe, Validation } from "../pkg/moa_wasm.js";
import { loadPlugin } from "../pkg/plugins.js";

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
console.log(names, strategies().map((s) => `${s.name}: ${s.params.join(", ")}`));

const cut: ErrorKind = "cut";

/** Every event, each handled: a new kind of event fails to compile here (no default). */
function show(event: MoaEvent): string {
  switch (event.type) {
    case "run_started":
      return `${event.recipe}: ${event.planned_calls} calls planned`;
    case "call_started":
      return `${event.agent} attempt ${event.attempt} at ${event.t_ms}`;
    case "text_delta":
      return `${event.layer}/${event.slot}: ${event.text}`;
    case "call_finished":
      return `${event.agent}: ${event.usage?.output_tokens} tokens, first at ${event.ttft_ms}, ${event.finish_reason ?? "?"}`;
    case "call_failed":
      return `${event.agent}: ${event.kind === cut ? "cut" : event.error} (${event.discarded_chars} void)`;
    case "agent_stopped":
      return `${event.agent} stopped: ${event.reason}`;
    case "strategy_failed":
      return `${event.strategy} failed: ${event.error}`;
    case "strategy_note":
      return `${event.strategy}: ${event.note}`;
    case "references_trimmed":
      return `trimmed to ${event.kept}`;
    case "layer_finished":
      return `layer ${event.layer}: ${event.wasted.output_tokens} tokens wasted`;
    case "final":
      return `${event.text} in ${event.wall_ms} ms, first token ${event.ttft_ms}`;
    case "run_failed":
      return event.error;
    default: {
      const unknown: never = event;
      return unknown;
    }
  }
}

const moa = new Moa(recipe);
const outcome: Answered = await moa.run("Hi!", {
  onEvent: (e) => console.log(show(e)),
  keys: { groq: "gsk-..." },
  signal: new AbortController().signal,
});
const tokens: number = outcome.usage.input_tokens + outcome.usage.output_tokens;
const first = outcome.layers[0].calls[0];
console.log(outcome.answer.length, tokens, first.latency_ms, first.started_ms, outcome.wasted, outcome.finish_reason, outcome.ttft_ms);
const quick: Answered = await moa.run([{ role: "user", content: "Options are optional." }]);
console.log(quick.answer);

// A strategy plugin, loaded and passed under the recipe's name for it.
const longest = await loadPlugin(new URL("https://example.org/longest.wasm"), { name: "longest.wasm" });
const contract: string = longest.contract;
const withPlugin: Recipe = { ...recipe, aggregator: { model: "groq:llama-3.3-70b-versatile", strategy: { plugin: "longest.wasm", on_error: "synthesize" } } };
void new Moa(withPlugin).run("Hi", { plugins: { "longest.wasm": longest } }).then((a: Answered) => console.log(contract, a.answer));
longest.close();
