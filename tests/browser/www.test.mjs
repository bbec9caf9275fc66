// The web page (www/) in real headless Chromium against real llama-servers and a fake
// provider that answers with HTML/JS payloads. Screenshots go to tests/browser/artifacts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { launch, listen, metric, repo, serveRepo } from "./harness.mjs";

const artifacts = join(repo, "tests/browser/artifacts");
const PORTS = { smollm: "18391" };
const env = { ...process.env, MOA_SMOLLM_PORT: PORTS.smollm };
const PAYLOAD = 'Safe? <img src=x onerror="window.pwned=1;alert(1)"> <script>window.pwned=2</script> [click me](javascript:window.pwned=3) **bold** [docs](https://example.org/)';

let files, fake, noCors, browser, base, fakeUrl, noCorsUrl, deadUrl;
const auths = []; // every request's Host and Authorization, as the fake provider saw them
const posts = []; // every chat request's body, as the fake provider saw it
const LONG = "a-very-long-model-name-that-goes-on-and-on-without-a-single-space-0123456789";

before(async () => {
  execFileSync(join(repo, "scripts/local-llm"), ["start", "smollm"], { env, stdio: "inherit" });
  // A fake OpenAI-compatible provider (it allows browsers: CORS) whose every answer is a
  // hostile payload, but for some models: "breaks-once" streams a part, drops the
  // connection, and answers "Whole answer." from then on; "slow" streams a word every
  // 100 ms for 10 s; "fail500" always fails with a two-line error; "echo-N" answers
  // "Answer N."; "verdict-N" is a judge that picks N. GET /v1/models answers like a real
  // server (the page probes it).
  let broke = false;
  fake = createServer((req, res) => {
    const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "POST, GET" };
    if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
    auths.push({ host: req.headers.host, auth: req.headers.authorization ?? null });
    if (req.method === "GET") return res.writeHead(200, { ...cors, "content-type": "application/json" }).end('{"object":"list","data":[]}');
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      posts.push(body);
      const model = JSON.parse(body).model;
      const chunk = (content) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
      const done = 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
      if (model === "fail500") {
        return res.writeHead(500, { ...cors, "content-type": "application/json" }).end('{"error":{"message":"the model exploded\\nand said so on two lines"}}');
      }
      res.writeHead(200, { ...cors, "content-type": "text/event-stream" });
      if (model === "breaks-once" && !broke) {
        broke = true;
        res.write(chunk("Partial answ"));
        setTimeout(() => res.socket.destroy(), 200);
        return;
      }
      if (model === "slow" || model === "slowish") {
        const words = model === "slow" ? 100 : 10;
        let n = 0;
        const timer = setInterval(() => (++n > words ? (clearInterval(timer), res.end(done)) : res.write(chunk(`word${n} `))), 100);
        res.on("close", () => clearInterval(timer));
        return;
      }
      const verdict = model.match(/^verdict-(\d+)$/);
      if (verdict) return res.end(`${chunk(`{"best": ${verdict[1]}, "selected": [${verdict[1]}], "stop": false}`)}${done}`);
      const echo = model.match(/^echo-(\d+)$/);
      const text = echo ? `Answer ${echo[1]}.` : model === "breaks-once" ? "Whole answer." : PAYLOAD;
      res.end(`${chunk(text)}${done}`);
    });
  });
  // A server that answers but sends no CORS headers: browsers may not read it.
  noCors = createServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end("{}"));
  ({ server: files, base } = await serveRepo());
  fakeUrl = await listen(fake);
  noCorsUrl = await listen(noCors);
  // A loopback port nothing listens on: a local server that was never started.
  const dead = createServer();
  deadUrl = await listen(dead);
  await new Promise((ok) => dead.close(ok));
  await mkdir(artifacts, { recursive: true });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  files?.close();
  fake?.close();
  noCors?.close();
  execFileSync(join(repo, "scripts/local-llm"), ["stop", "smollm"], { env, stdio: "inherit" });
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

async function useRecipe(page, edit, preset) {
  // The recipe lives in a panel that starts folded on a phone.
  await page.evaluate(() => (document.getElementById("setup").open = true));
  if (preset) await page.selectOption("#preset", preset);
  const recipe = JSON.parse(await page.inputValue("#recipe"));
  edit(recipe);
  await page.fill("#recipe", JSON.stringify(recipe, null, 2));
  assert.equal(await page.locator("#recipe-errors li").count(), 0);
}

const local = (maxTokens) => (r) => {
  r.providers.smollm.base_url = `http://127.0.0.1:${PORTS.smollm}/v1`;
  r.max_tokens = maxTokens;
};

test("a local recipe streams every agent's card and the answer, over two turns", async () => {
  const { page, errors } = await open();
  await useRecipe(page, local(40), "local-smollm");
  const bodies = [];
  page.on("request", (r) => r.method() === "POST" && bodies.push(r.postData() ?? ""));
  await page.fill("#prompt", "Name a fruit.");
  await page.click("#send");
  // Cards stream while the run is going.
  await page.waitForSelector(".card[data-state=streaming]", { timeout: 120_000 });
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 240_000 });
  // Three proposers, and the aggregator unless `vote` found a majority among them.
  const cards = await page.locator(".card").count();
  assert.ok(cards === 3 || cards === 4, `${cards} cards`);
  assert.equal(await page.locator(".card[data-state=done]").count(), cards);
  const answer = (await page.textContent("#answer")).trim();
  assert.ok(answer.length > 0);
  // The answer is shown once: in the conversation. The aggregator's card points there.
  assert.equal(await page.locator("#history .answer").count(), 1);
  if (cards === 4) assert.ok(!(await page.textContent("[aria-label$=aggregator] .text")).includes(answer), "the answer is not repeated in its card");
  assert.equal(await page.locator("#timeline .bar").count(), cards);
  assert.match(await page.textContent("#totals"), /tokens in, \d+ out .* s wall/);
  await page.screenshot({ path: join(artifacts, "desktop.png"), fullPage: true });
  // A second turn carries the first.
  const firstTurn = bodies.length;
  await page.fill("#prompt", "And a vegetable?");
  await page.click("#send");
  await page.waitForFunction(() => /Done|Failed|Not sent/.test(document.querySelector("#status").textContent), null, { timeout: 240_000 });
  assert.equal(await page.textContent("#status"), "Done.", await page.textContent("#chat"));
  // Turns are the list's own items: an answer's Markdown may hold lists of its own.
  assert.equal(await page.locator("#history > li").count(), 4);
  assert.ok(bodies.slice(firstTurn).every((b) => b.includes("Name a fruit.") && b.includes("And a vegetable?")), "history reaches every agent");
  assert.deepEqual(errors, []);
  await page.close();
});

test("Stop aborts every call: the servers stop processing", async () => {
  const { page } = await open();
  await useRecipe(page, local(512), "local-smollm");
  await page.fill("#prompt", "Write a long story about a lighthouse keeper.");
  await page.click("#send");
  await page.waitForSelector(".card[data-state=streaming]", { timeout: 120_000 });
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Stopped.", null, { timeout: 10_000 });
  // The question stays in the conversation, marked, and not sent again unless ticked.
  assert.equal(await page.locator("#history li.user[data-state=stopped]").count(), 1);
  assert.equal(await page.isChecked("#history li.user .include"), false);
  let busy = 1;
  for (let i = 0; i < 50 && busy > 0; i++) {
    busy = await metric(PORTS.smollm, "requests_processing");
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
  assert.equal((await page.textContent("#history li.assistant:last-child .answer")).trim(), "Whole answer.");
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
  // The menus list the module's built-ins, in its order: the page keeps no copy.
  const offered = await page.$$eval("#b-aggregator-strategy option", (os) => os.map((o) => o.value));
  const builtins = await page.evaluate(async () => (await import("./pkg/moa_wasm.js")).strategies().map((s) => s.name));
  assert.deepEqual(offered, builtins);
  assert.deepEqual(builtins, ["synthesize", "vote", "diverse", "rank", "select", "sequential"]);
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

/** A recipe of the fake provider: `agents` in one layer, `aggregator` over them. */
const fakeRecipe = (agents, aggregator, extra = {}) => (r) => {
  r.providers = { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } };
  r.layers = [{ agents: agents.map((a) => `fake:${a}`) }];
  r.aggregator = `fake:${aggregator}`;
  delete r.max_tokens;
  Object.assign(r, extra);
};

test("before sending, the page probes every provider and says which answer, and how to fix the rest", async () => {
  const { page, errors } = await open();
  await useRecipe(page, (r) => {
    r.providers = {
      fake: { kind: "openai", base_url: `${fakeUrl}/v1` },
      nocors: { kind: "openai", base_url: `${noCorsUrl}/v1` },
      local: { kind: "openai", base_url: `${deadUrl}/v1` },
    };
    r.layers = [{ agents: ["fake:a", "nocors:b", "local:c"] }];
    r.aggregator = "fake:agg";
  });
  const before = posts.length;
  await page.fill("#prompt", "Hello?");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Not sent"), null, { timeout: 20_000 });
  const state = async (name) => page.getAttribute(`#probes li[data-provider=${name}]`, "data-state");
  assert.equal(await state("fake"), "ok");
  assert.equal(await state("nocors"), "cors");
  assert.equal(await state("local"), "down");
  assert.match(await page.textContent("#probes li[data-provider=nocors]"), /does not allow browsers: run the recipe with moa serve/);
  assert.match(await page.textContent("#probes li[data-provider=local]"), /down — nothing answers there.*moa local start/);
  assert.equal(posts.length, before, "nothing was sent");
  assert.equal(await page.inputValue("#prompt"), "Hello?", "the message is kept");
  assert.equal(await page.locator("#history > li").count(), 0);
  // "Check providers" asks the same without sending.
  await useRecipe(page, fakeRecipe(["a"], "agg"));
  await page.click("#check");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Every provider answers.");
  assert.deepEqual(errors, []);
  await page.close();
});

test("a failed run says which agents failed, one line each, line breaks kept, no doubled Error:", async () => {
  const { page } = await open();
  await useRecipe(page, fakeRecipe(["fail500", "fail500"], "agg", { policy: { retries: 0 } }));
  await page.fill("#prompt", "Fail, please.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Failed"), null, { timeout: 20_000 });
  const status = await page.textContent("#status");
  assert.ok(!status.includes("\n"), `the status is one line: ${status}`);
  const lines = await page.locator("#failures li").allTextContents();
  assert.equal(lines.length, 2, lines.join(" | "));
  for (const line of lines) {
    assert.match(line, /^fake:fail500.* \(layer 1\): /);
    assert.match(line, /the model exploded\nand said so on two lines/, "the provider's line break is kept");
    assert.ok(!/Error: \w*Error:/.test(line), line);
  }
  assert.equal(await page.locator("#history li.user[data-state=failed]").count(), 1);
  await page.close();
});

test("at phone width, the message box comes first and nothing scrolls sideways after a run with long names", async () => {
  const { page, errors } = await open({ width: 390, height: 844 });
  // The message box is on the first screen; the recipe is folded below it.
  const box = await page.locator("#prompt").boundingBox();
  assert.ok(box.y + box.height < 844, `the message box is at ${box.y}px`);
  assert.equal(await page.evaluate(() => document.getElementById("setup").open), false);
  await useRecipe(page, fakeRecipe([`${LONG}-1`, `${LONG}-2`], `${LONG}-agg`));
  await page.evaluate(() => {
    const provider = "fake-provider-with-a-long-name-and-no-spaces-at-all-anywhere";
    const r = JSON.parse(document.getElementById("recipe").value);
    r.providers[provider] = { kind: "openai", base_url: r.providers.fake.base_url, api_key_env: "A_VERY_LONG_PROVIDER_KEY_VARIABLE_NAME_API_KEY" };
    document.getElementById("recipe").value = JSON.stringify(r, null, 2);
    document.getElementById("recipe").dispatchEvent(new Event("input"));
  });
  await page.fill('input[data-provider="fake-provider-with-a-long-name-and-no-spaces-at-all-anywhere"]', "sk-long-key");
  await page.fill("#prompt", "Say something long: " + "x".repeat(300));
  await page.click("#send");
  await page.waitForFunction(() => /Done|Failed|Not sent/.test(document.querySelector("#status").textContent), null, { timeout: 30_000 });
  assert.equal(await page.textContent("#status"), "Done.", await page.textContent("#chat"));
  await page.click("#details > summary");
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page is ${width}px wide at 390`);
  await page.screenshot({ path: join(artifacts, "phone-run.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("the form and the JSON never disagree, whatever the edits (property test), and the run uses them", async () => {
  const { page, errors } = await open();
  await useRecipe(page, fakeRecipe(["a", "b"], "agg"));
  // A seeded generator, so a failure names a sequence that can be replayed.
  let seed = Number(process.env.MOA_PROPERTY_SEED ?? 20261129);
  const rand = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const pick = (xs) => xs[rand(xs.length)];
  const models = ["fake:a", "fake:b", "fake:agg", "fake:echo-1", "fake:echo-2"];
  const edits = [
    ["max tokens", () => page.fill("#b-max-tokens", String(1 + rand(4096)))],
    ["temperature", () => page.fill("#b-temperature", (rand(21) / 10).toString())],
    ["aggregator", () => page.fill("#b-aggregator", pick(models))],
    ["aggregator strategy", () => page.selectOption("#b-aggregator-strategy", pick(["synthesize", "vote"]))],
    ["layer 1 agents", () => page.fill("#b-layer-0", [pick(models), `${pick(models)} *${1 + rand(3)}`].join("\n"))],
    ["add layer", () => page.click("#b-add-layer")],
    ["remove layer", () => page.click("#b-remove-layer")],
    ["base URL", () => page.fill("#b-provider-0-base_url", `${fakeUrl}/v${1 + rand(2)}`)],
    ["key variable", () => page.fill("#b-provider-0-api_key_env", pick(["", "FAKE_API_KEY"]))],
    ["kind", () => page.selectOption("#b-provider-0-kind", pick(["openai", "anthropic"]))],
    ["JSON max_tokens", async () => {
      const r = JSON.parse(await page.inputValue("#recipe"));
      r.max_tokens = 1 + rand(4096);
      await page.fill("#recipe", JSON.stringify(r, null, 2));
    }],
    ["JSON aggregator", async () => {
      const r = JSON.parse(await page.inputValue("#recipe"));
      r.aggregator = pick(models);
      await page.fill("#recipe", JSON.stringify(r, null, 2));
    }],
  ];
  const done = [];
  for (let step = 0; step < 60; step++) {
    const [name, run] = pick(edits);
    await run();
    done.push(name);
    // Leaving the field (as a user does before reading the form) must not change anything.
    const json = await page.inputValue("#recipe");
    await page.focus("#prompt");
    assert.equal(await page.inputValue("#recipe"), json, `leaving the field changed the JSON after: ${done.join(", ")}`);
    const mismatches = await page.evaluate(async () => {
      const { formValues } = await import("./builder.js");
      const want = formValues(JSON.parse(document.getElementById("recipe").value));
      return Object.entries(want).filter(([id, v]) => document.getElementById(id)?.value !== v).map(([id, v]) => `${id}: form ${JSON.stringify(document.getElementById(id)?.value)}, JSON ${JSON.stringify(v)}`);
    });
    assert.deepEqual(mismatches, [], `after: ${done.join(", ")}`);
  }
  // And what runs is what both say: put the run on the fake, and read its requests.
  await page.selectOption("#b-provider-0-kind", "openai");
  await page.fill("#b-provider-0-base_url", `${fakeUrl}/v1`);
  await page.fill("#b-provider-0-api_key_env", "");
  await page.fill("#b-layer-0", "fake:echo-1\nfake:echo-2");
  while ((await page.locator("#b-layers textarea").count()) > 1) await page.click("#b-remove-layer");
  await page.selectOption("#b-aggregator-strategy", "synthesize");
  await page.fill("#b-aggregator", "fake:agg");
  await page.fill("#b-max-tokens", "77");
  await page.fill("#b-temperature", "0.3");
  const recipe = JSON.parse(await page.inputValue("#recipe"));
  assert.equal(await page.locator("#recipe-errors li").count(), 0, await page.textContent("#recipe-errors"));
  const before = posts.length;
  await page.fill("#prompt", "What runs?");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  const sent = posts.slice(before).map((b) => JSON.parse(b));
  assert.deepEqual(sent.map((b) => b.model).sort(), ["agg", "echo-1", "echo-2"]);
  for (const b of sent) {
    assert.equal(b.max_tokens, recipe.max_tokens);
    assert.equal(b.max_tokens, 77);
    assert.equal(b.temperature, 0.3);
  }
  assert.deepEqual(errors, []);
  await page.close();
});

test("errors mark their field for any provider name, and the preset reads custom once edited", async () => {
  const { page } = await open();
  assert.equal(await page.inputValue("#preset"), "local");
  await page.fill("#b-max-tokens", "100");
  assert.equal(await page.inputValue("#preset"), "custom");
  await page.selectOption("#preset", "moa");
  assert.equal(await page.inputValue("#preset"), "moa");
  await useRecipe(page, fakeRecipe(["a"], "agg"));
  const r = JSON.parse(await page.inputValue("#recipe"));
  r.providers = { "together.ai": { kind: "openai", base_url: "ftp://nowhere" } };
  r.layers = [{ agents: ["together.ai:a"] }];
  r.aggregator = "together.ai:agg";
  await page.fill("#recipe", JSON.stringify(r));
  assert.equal(await page.getAttribute("#b-provider-0-base_url", "aria-invalid"), "true");
  assert.match(await page.textContent("#b-provider-0-base_url-error"), /providers\.together\.ai\.base_url: /);
  await page.close();
});

test("the conversation tells the truth: a stopped turn is marked, sent again only if ticked; export is the run shown", async () => {
  const { page } = await open();
  await useRecipe(page, fakeRecipe(["slow"], "echo-1"));
  await page.fill("#prompt", "first question");
  await page.click("#send");
  await page.waitForSelector(".card[data-state=streaming]", { timeout: 20_000 });
  // While a run goes, there is no run to export: the last one is not this one.
  assert.ok(await page.isDisabled("#export-run"));
  await page.click("#stop");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Stopped.");
  const stopped = page.locator("#history li.user").first();
  assert.equal(await stopped.getAttribute("data-state"), "stopped");
  assert.match(await stopped.textContent(), /Stopped before an answer.*Send this message again with the next one/);
  // Not ticked: the next turn does not carry it.
  await useRecipe(page, fakeRecipe(["echo-1"], "echo-2"));
  let before = posts.length;
  await page.fill("#prompt", "second question");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.");
  assert.ok(posts.slice(before).every((b) => b.includes("second question") && !b.includes("first question")));
  // The export is the run on screen.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#export-run")]);
  const exported = JSON.parse(await readFile(await download.path(), "utf8"));
  assert.deepEqual(exported.conversation, [{ role: "user", content: "second question" }]);
  assert.equal(exported.outcome.answer, "Answer 2.");
  // Ticked: it is sent again, in its place.
  await stopped.locator(".include").check();
  before = posts.length;
  await page.fill("#prompt", "third question");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll("#history li.assistant[data-state=ok]").length === 2);
  const sent = posts.slice(before).map((b) => JSON.parse(b).messages.filter((m) => m.role === "user").map((m) => m.content));
  assert.ok(sent.every((users) => users[0] === "first question" && users.includes("second question") && users.at(-1) === "third question"), JSON.stringify(sent));
  await page.close();
});

/** WCAG's contrast ratio of two CSS colours `rgb(...)`. */
function contrast(a, b) {
  const lum = (c) => {
    const [r, g, bl] = c.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

test("legible and accessible: AA contrast, a whole run by keyboard alone, reduced motion respected", async () => {
  const { page } = await open();
  await useRecipe(page, fakeRecipe(["echo-1", "slow"], "echo-2"));
  // The one thing to do is filled; what stops or throws away is red; the rest outlined.
  const look = (sel) => page.evaluate((sel) => {
    const s = getComputedStyle(document.querySelector(sel));
    return `${s.backgroundColor} ${s.color}`;
  }, sel);
  const [send, stop, check, forget] = await Promise.all(["#send", "#stop", "#check", "#forget"].map(look));
  assert.equal(send, "rgb(36, 87, 197) rgb(255, 255, 255)");
  assert.equal(stop, "rgb(255, 255, 255) rgb(176, 0, 32)");
  assert.equal(forget, stop);
  assert.equal(check, "rgb(255, 255, 255) rgb(36, 87, 197)");
  // Keyboard only: Tab reaches the message box within a few presses; Enter sends.
  await page.evaluate(() => document.activeElement?.blur());
  let tabs = 0;
  while ((await page.evaluate(() => document.activeElement?.id)) !== "prompt" && tabs < 10) {
    await page.keyboard.press("Tab");
    tabs++;
  }
  assert.equal(await page.evaluate(() => document.activeElement?.id), "prompt", "Tab reaches the message box");
  await page.keyboard.type("Keyboard only.");
  await page.keyboard.press("Enter");
  await page.waitForSelector(".card[data-state=streaming]", { timeout: 20_000 });
  // Reduced motion: the streaming card does not pulse.
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector(".card[data-state=streaming]")).animationName), "pulse");
  await page.emulateMedia({ reducedMotion: "reduce" });
  assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector(".card[data-state=streaming]")).animationName), "none");
  // Stop by keyboard: Tab from the message box to Stop, then Enter.
  await page.focus("#prompt");
  while ((await page.evaluate(() => document.activeElement?.id)) !== "stop" && tabs < 30) {
    await page.keyboard.press("Tab");
    tabs++;
  }
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Stopped.");
  // A run to the end by keyboard, then its export.
  await useRecipe(page, fakeRecipe(["echo-1", "echo-2"], "echo-1"));
  await page.focus("#prompt");
  await page.keyboard.type("Again.");
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.");
  while ((await page.evaluate(() => document.activeElement?.id)) !== "export-run" && tabs < 60) {
    await page.keyboard.press("Tab");
    tabs++;
  }
  const [download] = await Promise.all([page.waitForEvent("download"), page.keyboard.press("Enter")]);
  assert.ok(download.suggestedFilename().endsWith(".json"));
  // Every visible text, timeline labels included, meets WCAG AA against what is behind it.
  const texts = await page.evaluate(() => {
    const out = [];
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const bg = getComputedStyle(e).backgroundColor;
        if (bg && !bg.startsWith("rgba(0, 0, 0, 0)") && bg !== "transparent") return bg;
      }
      return "rgb(255, 255, 255)";
    };
    for (const el of document.querySelectorAll("body *")) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      const style = getComputedStyle(el);
      if (!own || !el.getClientRects().length || style.visibility === "hidden" || el.closest("[disabled]")) continue;
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      out.push({ what: `${el.tagName.toLowerCase()}#${el.id}.${el.className}: ${el.textContent.trim().slice(0, 30)}`, fg: style.color, bg: background(el), min: large ? 3 : 4.5 });
    }
    return out;
  });
  assert.ok(texts.some((t) => t.what.startsWith("span#.label")), "timeline labels were checked");
  const poor = texts.map((t) => ({ ...t, ratio: contrast(t.fg, t.bg) })).filter((t) => t.ratio < t.min);
  assert.deepEqual(poor.map((t) => `${t.what} ${t.ratio.toFixed(2)}:1`), []);
  await page.close();
});

test("a recipe of 40,000 providers keeps the form bounded, and says so", async () => {
  const { page, errors } = await open();
  const n = 40_000;
  const base = Object.keys(JSON.parse(await page.inputValue("#recipe")).providers).length;
  await page.evaluate((n) => {
    const r = JSON.parse(document.getElementById("recipe").value);
    for (let i = 0; i < n; i++) r.providers[`p${i}`] = { kind: "openai", base_url: `https://p${i}.example/v1`, api_key_env: `P${i}_API_KEY` };
    document.getElementById("recipe").value = JSON.stringify(r, null, 2);
    document.getElementById("recipe").dispatchEvent(new Event("input"));
  }, n);
  await page.waitForFunction(() => !document.getElementById("b-bounded").hidden);
  assert.equal(await page.textContent("#b-bounded"), `The form shows 50 of ${(n + base).toLocaleString("en")} providers. Edit the rest in the JSON below.`);
  assert.equal(await page.locator("#b-providers .provider").count(), 50);
  await page.waitForFunction(() => /Showing keys for/.test(document.getElementById("keys").textContent));
  assert.match(await page.textContent("#keys"), /Showing keys for 50 of 40,000 providers/);
  // What one keystroke in the form costs at this size, for the README (not asserted: a
  // shared machine's timings are noise).
  const ms = await page.evaluate(async () => {
    const t = performance.now();
    const el = document.getElementById("b-max-tokens");
    el.value = "77";
    el.dispatchEvent(new Event("input"));
    return performance.now() - t;
  });
  console.log(`# a form keystroke with ${n} providers: ${ms.toFixed(0)} ms`);
  // The folded text box is filled when it unfolds, with the form's edit in it.
  await page.click("#recipe-unfold");
  assert.equal(JSON.parse(await page.inputValue("#recipe")).max_tokens, 77);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a quorum's cut call shows as cut, not failed, on its card and in the timeline", async () => {
  const { page, errors } = await open();
  await useRecipe(page, fakeRecipe(["echo-1", "slow"], "echo-2"));
  const r = JSON.parse(await page.inputValue("#recipe"));
  r.layers[0].quorum = { min: 1, grace_ms: 0 };
  await page.fill("#recipe", JSON.stringify(r, null, 2));
  assert.equal(await page.locator("#recipe-errors li").count(), 0, await page.textContent("#recipe-errors"));
  await page.fill("#prompt", "Quick, please.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  assert.equal(await page.locator(".card[data-state=cut]").count(), 1);
  assert.match(await page.textContent(".card[data-state=cut] .meta"), /cut: the layer had its quorum/);
  assert.equal(await page.locator("#timeline li.cut").count(), 1);
  assert.match(await page.textContent("#timeline li.cut"), /fake:slow: .* cut /);
  assert.equal(await page.locator("#failures li").count(), 0, "a cut call is not a failure");
  assert.equal((await page.textContent("#history li.assistant:last-child .answer")).trim(), "Answer 2.");
  assert.deepEqual(errors, []);
  await page.close();
});

test("a staircase aggregator's steps stream into one answer and show as steps in the timeline", async () => {
  const { page, errors } = await open();
  await useRecipe(page, fakeRecipe(["slowish", "echo-1"], "echo-2"));
  const r = JSON.parse(await page.inputValue("#recipe"));
  r.aggregator = { model: "fake:echo-2", staircase: { chunk_chars: 12, step_tokens: 8, growth: 1 } };
  await page.fill("#recipe", JSON.stringify(r, null, 2));
  assert.equal(await page.locator("#recipe-errors li").count(), 0, await page.textContent("#recipe-errors"));
  await page.fill("#prompt", "Step by step.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  // Every step and the last call wrote "Answer 2."; the answer is all of them, in order.
  const answer = (await page.textContent("#history li.assistant:last-child .answer")).trim();
  const steps = answer.split("Answer 2.").length - 1;
  assert.ok(steps >= 3 && answer === "Answer 2.".repeat(steps), answer);
  // The timeline draws one bar per aggregator call: the staircase.
  const bars = await page.locator("#timeline li .label").allTextContents();
  assert.equal(bars.filter((l) => l.startsWith("fake:echo-2:")).length, steps);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a judging strategy's call shows as one more card in the layer it judged, its choice in the notes; trimmed references are noted", async () => {
  const { page, errors } = await open();
  await useRecipe(page, fakeRecipe(["echo-1", "echo-2", "echo-3"], "echo-9"));
  // The menu offers every built-in; choosing one writes it into the JSON.
  await page.selectOption("#b-aggregator-strategy", "select");
  assert.equal(JSON.parse(await page.inputValue("#recipe")).aggregator.strategy, "select");
  const r = JSON.parse(await page.inputValue("#recipe"));
  r.aggregator = { model: "fake:echo-9", context_tokens: 200, max_tokens: 64, strategy: { name: "select", params: { judge: "fake:verdict-2", k: 1 } } };
  await page.fill("#recipe", JSON.stringify(r, null, 2));
  assert.equal(await page.locator("#recipe-errors li").count(), 0, await page.textContent("#recipe-errors"));
  posts.length = 0;
  await page.fill("#prompt", "Which answer is best? " + "Please think. ".repeat(40));
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "Done.", null, { timeout: 30_000 });
  const layer1 = await page.locator("#layer-0 .card h4").allTextContents();
  assert.deepEqual(layer1, ["fake:echo-1", "fake:echo-2", "fake:echo-3", "judge"]);
  const notes = await page.locator("#notes li").allTextContents();
  assert.ok(notes.some((n) => n === "select, before the aggregator: the judge kept 2 of 3"), notes.join("\n"));
  assert.ok(notes.some((n) => /^fake:echo-9: 1 references shortened to \d+% each to fit its 200-token window/.test(n)), notes.join("\n"));
  // The aggregator was sent the judge's one pick (shortened to fit), not the others.
  const agg = posts.map((p) => JSON.parse(p)).find((b) => b.model === "echo-9");
  assert.match(agg.messages[0].content, /\nResponses from models:\n1\. [^\n]*\[…\]$/);
  assert.doesNotMatch(agg.messages[0].content, /Answer 1\.|Answer 3\./);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a numbered list split by blank lines keeps counting", async () => {
  // Models often put a blank line between numbered items; each piece is its own <ol>,
  // which must start at its own number, not at 1 again ("1. 1. 1.").
  const { page } = await open();
  const numbers = await page.evaluate(async () => {
    const { renderMarkdown } = await import("./markdown.js");
    const div = document.createElement("div");
    renderMarkdown(div, "Three:\n\n1. one\n\n2. two\n\n3. three");
    return [...div.querySelectorAll("ol")].map((ol) => ol.start);
  });
  assert.deepEqual(numbers, [1, 2, 3]);
  await page.close();
});
