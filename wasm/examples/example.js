// Two layers of a small local model, then an aggregator, all from the page: no server of
// ours. Start one with `scripts/local-llm start smollm`, serve this folder's parent, open
// examples/index.html. Another server: ?server=http://127.0.0.1:8081/v1
import init, { Moa } from "../pkg/moa_wasm.js";

await init();

const server = new URLSearchParams(location.search).get("server") ?? "http://127.0.0.1:8081/v1";
const moa = new Moa({
  providers: { local: { kind: "openai", base_url: server, max_concurrency: 4 } },
  max_tokens: 48,
  layers: [
    { agents: [{ model: "local:smollm", samples: 2 }] },
    { agents: [{ model: "local:smollm", samples: 2 }] },
  ],
  aggregator: "local:smollm",
});

const answer = document.querySelector("#answer");
const status = document.querySelector("#status");
const controller = new AbortController();
document.querySelector("#stop").onclick = () => controller.abort();

try {
  const outcome = await moa.run("Name three rivers.", {
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === "call_started") status.textContent = `layer ${event.layer}: ${event.agent}`;
      if (event.type === "text_delta" && event.layer === 2) answer.textContent += event.text;
      // A failed attempt's text is void; the aggregator's retry streams from the start.
      if (event.type === "call_failed" && event.layer === 2 && event.discarded_chars > 0) {
        answer.textContent = "";
        status.textContent = `retrying: ${event.error}`;
      }
    },
  });
  status.textContent = `done in ${(outcome.wall_ms / 1000).toFixed(1)} s, ${outcome.usage.output_tokens} tokens`;
  console.log("moa outcome", JSON.stringify(outcome));
} catch (error) {
  status.textContent = `failed: ${error.message}`;
  console.log("moa error", error.message);
}
