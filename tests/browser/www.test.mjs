// The web page (www/) in real headless Chromium against real llama-servers and a fake
// provider that answers with HTML/JS payloads. Screenshots go to tests/browser/artifacts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { launch, listen, metric, repo, serveRepo } from "./harness.mjs";

const artifacts = join(repo, "tests/browser/artifacts");
const PORTS = { smollm: "18391", gemma: "18392" };
const env = { ...process.env, MOA_SMOLLM_PORT: PORTS.smollm, MOA_GEMMA_PORT: PORTS.gemma };
const PAYLOAD = 'Safe? <img src=x onerror="window.pwned=1;alert(1)"> <script>window.pwned=2</script> [click me](javascript:window.pwned=3) **bold** [docs](https://example.org/)';

let files, fake, browser, base, fakeUrl;
const auths = []; // every request's Host and Authorization, as the fake provider saw them

before(async () => {
  execFileSync(join(repo, "scripts/local-llm"), ["start"], { env, stdio: "inherit" });
  // A fake OpenAI-compatible provider whose every answer is a hostile payload, but for
  // model "breaks-once": its first answer streams a part and then the connection drops;
  // later ones answer "Whole answer."
  let broke = false;
  fake = createServer((req, res) => {
    const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "POST" };
    if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
    auths.push({ host: req.headers.host, auth: req.headers.authorization ?? null });
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const model = JSON.parse(body).model;
      const chunk = (content) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
      res.writeHead(200, { ...cors, "content-type": "text/event-stream" });
      if (model === "breaks-once" && !broke) {
        broke = true;
        res.write(chunk("Partial answ"));
        setTimeout(() => res.socket.destroy(), 200);
        return;
      }
      const text = model === "breaks-once" ? "Whole answer." : PAYLOAD;
      res.end(`${chunk(text)}data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`);
    });
  });
  ({ server: files, base } = await serveRepo());
  fakeUrl = await listen(fake);
  await mkdir(artifacts, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  files?.close();
  fake?.close();
  execFileSync(join(repo, "scripts/local-llm"), ["stop"], { env, stdio: "inherit" });
});

async function open(viewport = { width: 1280, height: 900 }) {
  const page = await browser.newPage({ viewport });
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/www/index.html`);
  await page.waitForSelector("body[data-ready=true]");
  return { page, dialogs, errors };
}

async function useRecipe(page, edit) {
  const recipe = JSON.parse(await page.inputValue("#recipe"));
  edit(recipe);
  await page.fill("#recipe", JSON.stringify(recipe, null, 2));
  assert.equal(await page.locator("#recipe-errors li").count(), 0);
}

const local = (maxTokens) => (r) => {
  r.providers.smollm.base_url = `http://127.0.0.1:${PORTS.smollm}/v1`;
  r.providers.gemma.base_url = `http://127.0.0.1:${PORTS.gemma}/v1`;
  r.max_tokens = maxTokens;
};

test("the local recipe streams every agent's card and the answer, over two turns", async () => {
  const { page, errors } = await open();
  await useRecipe(page, local(40));
  const bodies = [];
  page.on("request", (r) => r.method() === "POST" && bodies.push(r.postData() ?? ""));
  await page.fill("#prompt", "Name a fruit.");
  await page.click("#send");
  // Cards stream while the run is going.
  await page.waitForSelector(".card[data-state=streaming]", { timeout: 120_000 });
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 240_000 });
  assert.equal(await page.locator(".card").count(), 4, "three proposers and the aggregator");
  assert.equal(await page.locator(".card[data-state=done]").count(), 4);
  const answer = (await page.textContent("#answer")).trim();
  assert.ok(answer.length > 0);
  assert.equal(await page.locator("#timeline .bar").count(), 4);
  assert.match(await page.textContent("#totals"), /tokens in, \d+ out .* s wall/);
  await page.screenshot({ path: join(artifacts, "desktop.png"), fullPage: true });
  // A second turn carries the first.
  await page.fill("#prompt", "And a vegetable?");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll("#history li").length === 4, null, { timeout: 240_000 });
  assert.ok(bodies.slice(4).every((b) => b.includes("Name a fruit.") && b.includes("And a vegetable?")), "history reaches every agent");
  assert.deepEqual(errors, []);
  await page.close();
});

test("Stop aborts every call: the servers stop processing", async () => {
  const { page } = await open();
  await useRecipe(page, local(512));
  await page.fill("#prompt", "Write a long story about a lighthouse keeper.");
  await page.click("#send");
  await page.waitForSelector(".card[data-state=streaming]", { timeout: 120_000 });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Stopped.", null, { timeout: 10_000 });
  let busy = 1;
  for (let i = 0; i < 50 && busy > 0; i++) {
    busy = (await metric(PORTS.smollm, "requests_processing")) + (await metric(PORTS.gemma, "requests_processing"));
    if (busy) await new Promise((ok) => setTimeout(ok, 100));
  }
  assert.equal(busy, 0);
  await page.close();
});

test("HTML and JavaScript in model output execute nothing", async () => {
  const { page, dialogs } = await open({ width: 390, height: 844 });
  await useRecipe(page, (r) => {
    r.providers = { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } };
    r.layers = [{ agents: ["fake:a", "fake:b"] }];
    r.aggregator = "fake:agg";
  });
  await page.fill("#prompt", "Say something dangerous.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  await new Promise((ok) => setTimeout(ok, 300));
  assert.deepEqual(dialogs, [], "no alert ran");
  assert.equal(await page.evaluate(() => window.pwned), undefined, "no payload ran");
  assert.equal(await page.locator("#answer img, #answer script, .card img, .card script").count(), 0);
  const hrefs = await page.locator("#answer a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
  assert.deepEqual(hrefs, ["https://example.org/"], "only the http(s) link became a link");
  assert.ok((await page.textContent("#answer")).includes('<img src=x onerror="window.pwned=1;alert(1)">'), "shown as text");
  assert.equal(await page.locator("#answer strong").count(), 1, "Markdown still renders");
  await page.screenshot({ path: join(artifacts, "phone.png"), fullPage: true });
  await page.close();
});

test("an aggregator that breaks after some text and is retried shows the retry's answer alone", async () => {
  const { page } = await open();
  await useRecipe(page, (r) => {
    r.providers = { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } };
    r.layers = [{ agents: ["fake:a"] }];
    r.aggregator = "fake:breaks-once";
    r.policy = { backoff_secs: 1 };
  });
  await page.fill("#prompt", "Answer, eventually.");
  await page.click("#send");
  // While it retries, the page says so and the broken part is gone.
  await page.waitForFunction(() => document.querySelector("#status").textContent.includes("retrying"), null, { timeout: 30_000 });
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  assert.equal((await page.textContent("#answer")).trim(), "Whole answer.");
  const history = await page.locator("#history li").allTextContents();
  assert.equal(history.at(-1), "moa: Whole answer.");
  assert.ok(!(await page.textContent("body")).includes("Partial answ"), "the void text is nowhere on the page");
  assert.match(await page.textContent("#totals"), /on failed or cancelled attempts/);
  await page.close();
});

test("keys stay out of localStorage unless the user opts in, and can be forgotten", async () => {
  const { page } = await open();
  await page.selectOption("#preset", "moa");
  const field = 'input[data-provider="together"]';
  await page.fill(field, "sk-test-123");
  assert.equal(await page.evaluate(() => JSON.stringify(localStorage)), "{}");
  await page.check("#remember");
  assert.match(await page.evaluate(() => localStorage.getItem("moa.keys.v2")), /sk-test-123/);
  await page.click("#forget");
  assert.equal(await page.evaluate(() => localStorage.getItem("moa.keys.v2")), null);
  assert.equal(await page.inputValue(field), "");
  // Every control has a label.
  const unlabeled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea")].filter((el) => !el.labels?.length).map((el) => el.id));
  assert.deepEqual(unlabeled, []);
  await page.close();
});

test("a shared recipe cannot steal a key: keys belong to a provider's name and origin", async () => {
  const { page } = await open();
  const port = new URL(fakeUrl).port;
  const withProvider = (name, host, keyed = true) => (r) => {
    r.providers = { [name]: { kind: "openai", base_url: `http://${host}:${port}/v1`, ...(keyed ? { api_key_env: "P_API_KEY" } : {}) } };
    r.layers = [{ agents: [`${name}:a`] }];
    r.aggregator = `${name}:agg`;
  };
  // The user types a key for provider p at 127.0.0.1.
  await useRecipe(page, withProvider("p", "127.0.0.1"));
  assert.match(await page.textContent("#keys"), new RegExp(`sent only to http://127\\.0\\.0\\.1:${port}`));
  await page.fill('input[data-provider="p"]', "sk-page-SENTINEL-123456");
  // A pasted recipe keeps the name p but points it at another origin: the key field is
  // empty (the user is asked again, and sees the origin), and the run sends no key.
  await useRecipe(page, withProvider("p", "localhost"));
  assert.equal(await page.inputValue('input[data-provider="p"]'), "");
  assert.match(await page.textContent("#keys"), new RegExp(`sent only to http://localhost:${port}`));
  await page.fill("#prompt", "hi");
  await page.click("#send");
  await page.waitForFunction(() => /Failed|Done/.test(document.querySelector("#status").textContent), null, { timeout: 30_000 });
  assert.match(await page.textContent("#status"), /needs an API key/);
  // A recipe that drops api_key_env ("need no key") gets no key either.
  await useRecipe(page, withProvider("p", "127.0.0.1", false));
  assert.match(await page.textContent("#keys"), /need no key/);
  const before = auths.length;
  await page.fill("#prompt", "hi");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  assert.ok(auths.length > before);
  assert.deepEqual(auths.filter((a) => a.auth).map((a) => a.auth), [], "no request carried a key");
  // Back at the origin the key was given for, it is used.
  await useRecipe(page, withProvider("p", "127.0.0.1"));
  assert.equal(await page.inputValue('input[data-provider="p"]'), "sk-page-SENTINEL-123456");
  // Names that are JavaScript object properties are only names.
  for (const name of ["constructor", "__proto__", "toString"]) {
    await useRecipe(page, withProvider(name, "127.0.0.1"));
    assert.equal(await page.inputValue(`input[data-provider="${name}"]`), "", name);
  }
  await page.close();
});

test("the form builds a recipe, keeps the JSON in step, and shows errors next to the field", async () => {
  const { page, errors } = await open();
  await page.selectOption("#preset", "moa-lite");
  await page.fill("#b-layer-0", "together:Qwen/Qwen1.5-72B-Chat\ntogther:typo-model");
  assert.match(await page.textContent("#b-layer-0-error"), /layers\[0\]\.agents\[1\]: unknown provider "togther" \(known: together\)/);
  assert.equal(await page.getAttribute("#b-layer-0", "aria-invalid"), "true");
  assert.ok(await page.isDisabled("#send"), "an invalid recipe cannot run");
  await page.fill("#b-layer-0", "together:Qwen/Qwen1.5-72B-Chat\ntogether:databricks/dbrx-instruct *3");
  assert.equal(await page.textContent("#b-layer-0-error"), "");
  await page.fill("#b-max-tokens", "64");
  await page.click("#b-add-layer");
  await page.selectOption("#b-aggregator-strategy", "vote");
  const recipe = JSON.parse(await page.inputValue("#recipe"));
  assert.deepEqual(recipe.layers[0].agents, ["together:Qwen/Qwen1.5-72B-Chat", { model: "together:databricks/dbrx-instruct", samples: 3 }]);
  assert.equal(recipe.layers.length, 2);
  assert.equal(recipe.max_tokens, 64);
  assert.deepEqual(recipe.aggregator, { model: "together:Qwen/Qwen1.5-72B-Chat", strategy: "vote" });
  assert.equal(await page.locator("#recipe-errors li").count(), 0);
  // And the other way: text edits redraw the form.
  recipe.temperature = 0.3;
  await page.fill("#recipe", JSON.stringify(recipe));
  assert.equal(await page.inputValue("#b-temperature"), "0.3");
  assert.deepEqual(errors, []);
  await page.close();
});
