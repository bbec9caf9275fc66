// moa-wasm end to end in real headless Chromium (Debian's, driven by playwright-core)
// against a real llama-server with real weights, both on 127.0.0.1 and started here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { launch, metric as llamaMetric, repo, serveRepo } from "./harness.mjs";

const LLM_PORT = "18381";
const llm = `http://127.0.0.1:${LLM_PORT}`;
const env = { ...process.env, MOA_SMOLLM_PORT: LLM_PORT };

let server, base, browser;

before(async () => {
  execFileSync(join(repo, "scripts/local-llm"), ["start", "smollm"], { env, stdio: "inherit" });
  ({ server, base } = await serveRepo());
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.close();
  execFileSync(join(repo, "scripts/local-llm"), ["stop", "smollm"], { env, stdio: "inherit" });
});

const metric = (name) => llamaMetric(LLM_PORT, name);

test("the README's example runs two layers in the page and streams the answer", async () => {
  const readme = await readFile(join(repo, "README.md"), "utf8");
  const example = await readFile(join(repo, "wasm/examples/example.js"), "utf8");
  assert.ok(readme.includes(example.trim()), "README's 'Use it from JavaScript' shows wasm/examples/example.js verbatim");

  const page = await browser.newPage();
  const logs = [];
  page.on("console", (m) => logs.push(m.text()));
  const requests = [];
  page.on("request", (r) => r.url().startsWith(llm) && requests.push(r.url()));
  await page.goto(`${base}/wasm/examples/index.html?server=${encodeURIComponent(`${llm}/v1`)}`);
  await page.waitForFunction(() => /^(done|failed)/.test(document.querySelector("#status").textContent), null, { timeout: 240_000 });
  const status = await page.textContent("#status");
  assert.match(status, /^done in /, status);
  const answer = await page.textContent("#answer");
  const line = logs.find((l) => l.startsWith("moa outcome "));
  assert.ok(line, logs.join("\n"));
  const outcome = JSON.parse(line.slice("moa outcome ".length));
  assert.ok(answer.trim().length > 0, "the answer streamed into the page");
  assert.equal(outcome.answer, answer, "what streamed is the answer");
  assert.equal(outcome.layers.length, 3, "two proposer layers and the aggregator");
  assert.deepEqual(outcome.layers.map((l) => l.calls.length), [2, 2, 1]);
  assert.ok(outcome.layers.every((l) => l.calls.every((c) => c.ok && c.usage.output_tokens > 0)));
  assert.equal(requests.length, 5, "one request per call, straight to the model server");
  await page.close();
});

test("aborting mid-run stops every request: the server sees the connections close", async () => {
  const before = await metric("tokens_predicted_total");
  const page = await browser.newPage();
  await page.goto(`${base}/tests/browser/abort.html?server=${encodeURIComponent(`${llm}/v1`)}`);
  // The module sets it once its top-level `await init()` is done, after the load event.
  await page.waitForFunction(() => window.abortResult !== undefined, null, { timeout: 60_000 });
  const result = await page.evaluate(() => window.abortResult);
  assert.deepEqual({ ...result, deltas: undefined }, { resolved: false, message: "the run was cancelled", isError: true, deltas: undefined });
  // llama-server stops a request when its client goes away: nothing left processing,
  // and far fewer tokens generated than the three 512-token answers asked for.
  let processing = 1;
  for (let i = 0; i < 50 && processing > 0; i++) {
    processing = await metric("requests_processing");
    if (processing > 0) await new Promise((ok) => setTimeout(ok, 100));
  }
  assert.equal(processing, 0, "no request still processing after the abort");
  const afterAbort = await metric("tokens_predicted_total");
  await new Promise((ok) => setTimeout(ok, 1000));
  assert.equal(await metric("tokens_predicted_total"), afterAbort, "generation stopped");
  assert.ok(afterAbort - before < 3 * 512, `generated ${afterAbort - before} tokens, not all 1536`);
  await page.close();
});

test("the TypeScript declarations type-check an example program", () => {
  execFileSync(join(repo, "tests/browser/node_modules/.bin/tsc"), ["-p", join(repo, "tests/browser/tsconfig.json")], { stdio: "inherit" });
});
