// Strategy plugins in real headless Chromium: the same components the native host loads
// (Rust, Python and JavaScript), transpiled in the page by jco and run in a Worker with
// the recipe's deadline, memory and output caps; the hostile plugins contained as they
// are natively. The provider is a fake (CORS, scripted answers): the plugins are real.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdir, readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { extname, join, normalize } from "node:path";
import { launch, listen, repo } from "./harness.mjs";

const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/moa/target");
const rustDir = join(target, "plugins/wasm32-wasip2/release");
const langDir = join(target, "plugins-browser");
let server, fake, browser, page, base, fakeUrl;
const calls = new Map(); // model -> requests the fake provider saw

/** Builds the example and hostile plugins (Rust), and longest in Python and JavaScript. */
function buildPlugins() {
  execFileSync("cargo", ["build", "--quiet", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path", "host/plugins/Cargo.toml"], {
    cwd: repo, stdio: "inherit", env: { ...process.env, CARGO_TARGET_DIR: join(target, "plugins") },
  });
  const wit = join(repo, "host/wit/v0.2.0");
  execFileSync(join(homedir(), ".cache/moa/venv/bin/componentize-py"), ["-d", wit, "-w", "plugin", "componentize", "--stub-wasi", "app", "-o", join(langDir, "longest-python.wasm")], {
    cwd: join(repo, "host/plugins/python/longest"), stdio: "inherit",
  });
  execFileSync(join(repo, "tests/browser/node_modules/.bin/componentize-qjs"), ["--wit", wit, "--js", "strategy.js", "-n", "plugin", "--sync", "--stub-wasi", "-o", join(langDir, "longest-js.wasm")], {
    cwd: join(repo, "host/plugins/js/longest"), stdio: "inherit",
  });
}

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

before(async () => {
  await mkdir(langDir, { recursive: true });
  buildPlugins();
  // The repository, and the built plugins under /built/.
  server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = path.startsWith("/built/") ? join(path.includes("-") ? langDir : rustDir, path.slice(7)) : join(repo, path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  base = await listen(server);
  // A fake OpenAI-compatible provider: a, b, c answer with texts of different lengths;
  // agg answers with the system prompt it got (so a test sees what was kept); verdict-N
  // is a judge that picks N.
  fake = createServer((req, res) => {
    const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "POST, GET" };
    if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
    if (req.method === "GET") return res.writeHead(200, { ...cors, "content-type": "application/json" }).end('{"object":"list","data":[]}');
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const { model, messages } = JSON.parse(body);
      calls.set(model, (calls.get(model) ?? 0) + 1);
      const texts = { a: "Paris.", b: "Lyon is the longest answer of the three.", c: "Nice, I think." };
      const verdict = model.match(/^verdict-(\d+)$/);
      const text = verdict ? `{"best": ${verdict[1]}, "selected": [${verdict[1]}]}` : model === "agg" ? `AGG ${messages.find((m) => m.role === "system")?.content ?? ""}` : (texts[model] ?? "ok");
      const chunk = JSON.stringify({ choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
      res.writeHead(200, { ...cors, "content-type": "text/event-stream" });
      res.end(`data: ${chunk}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`);
    });
  });
  fakeUrl = await listen(fake);
  browser = await launch();
  page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${base}/tests/browser/plugins.html`);
  await page.waitForFunction(() => window.ready === true);
});

after(async () => {
  await browser?.close();
  server?.close();
  fake?.close();
});

/** Loads `file` from /built/ under `name` and runs a three-proposer mixture whose
 * aggregator's strategy is `strategy` (the plugin is `name`); the outcome or the error,
 * and every event. */
function run(file, name, strategy) {
  return page.evaluate(
    async ({ file, name, strategy, fakeUrl }) => {
      const events = [];
      const recipe = {
        providers: { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } },
        layers: [{ agents: ["fake:a", "fake:b", "fake:c"] }],
        aggregator: { model: "fake:agg", strategy },
        policy: { retries: 0 },
      };
      const loaded = {};
      try {
        if (file) loaded[name] = window.loaded?.[file] ?? (await window.plugins.loadPlugin(`/built/${file}`, { name }));
        window.loaded = { ...window.loaded, [file]: loaded[name] };
        const outcome = await new window.moa.Moa(recipe).run("Which city?", { plugins: loaded, onEvent: (e) => events.push(e) });
        return { answer: outcome.answer, decidedBy: outcome.decided_by, events };
      } catch (e) {
        return { error: String(e.message), events };
      }
    },
    { file, name, strategy, fakeUrl },
  );
}

const failed = (r) => r.events.filter((e) => e.type === "strategy_failed");
const notes = (r) => r.events.filter((e) => e.type === "strategy_note").map((e) => e.note);

for (const [lang, file] of [["Rust", "longest.wasm"], ["Python", "longest-python.wasm"], ["JavaScript", "longest-js.wasm"]]) {
  test(`longest written in ${lang} runs in the browser as natively: it keeps the longest proposal`, async () => {
    const r = await run(file, "longest.wasm", { plugin: "longest.wasm", params: { k: 1 } });
    assert.equal(r.error, undefined, r.error);
    assert.match(r.answer, /^AGG /);
    assert.ok(r.answer.includes("Lyon is the longest") && !r.answer.includes("Paris."), r.answer);
    assert.deepEqual(notes(r), ["kept the 1 longest of 3"]);
    assert.deepEqual(failed(r), []);
  });
}

test("rank as a 0.2 plugin asks the judge through the engine and decides as the built-in does", async () => {
  const params = { judge: "fake:verdict-3" };
  const before = calls.get("verdict-3") ?? 0;
  const plugin = await run("rank.wasm", "rank.wasm", { plugin: "rank.wasm", params });
  const builtin = await run(null, null, { name: "rank", params });
  assert.equal(plugin.error, undefined, plugin.error);
  assert.equal(plugin.answer, "Nice, I think.");
  assert.equal(plugin.answer, builtin.answer);
  assert.deepEqual(notes(plugin), notes(builtin));
  assert.equal(plugin.decidedBy, "rank.wasm");
  assert.equal((calls.get("verdict-3") ?? 0) - before, 2, "one judge call each");
});

test("a plugin that spins is stopped at its deadline and the recipe's fallback decides; the next decision runs", async () => {
  const spin = await run("misbehave.wasm", "misbehave.wasm", { plugin: "misbehave.wasm", params: { mode: "loop" }, timeout_ms: 200, on_error: "synthesize" });
  assert.match(spin.answer, /^AGG /, spin.error);
  assert.equal(failed(spin).length, 1);
  assert.match(failed(spin)[0].error, /misbehave\.wasm.*ran past its deadline of 200 ms/);
  assert.equal(failed(spin)[0].fallback, true);
  const ok = await run("misbehave.wasm", "misbehave.wasm", { plugin: "misbehave.wasm", params: { mode: "ok" } });
  assert.equal(ok.answer, "ok: 3 proposals");
});

test("memory, output, panics, bad replies and a failing plugin are contained as natively", async () => {
  const cases = [
    [{ mode: "bomb" }, { memory_mib: 16, timeout_ms: 5000 }, /more than its 16 MiB memory cap/],
    [{ mode: "huge" }, { timeout_ms: 5000 }, /over its cap of 1048576 bytes|output cap of 1024 KiB/],
    [{ mode: "panic" }, {}, /crashed: it panicked: .*this plugin panics on purpose/],
    [{ mode: "nonsense" }, {}, /kept proposal 99, but there are only 3/],
    [{ mode: "dupkeep" }, { timeout_ms: 5000 }, /kept proposal 0 twice/],
    [{ mode: "fail" }, {}, /declined to decide: declined to decide/],
    [{ mode: "control" }, {}, /declined to decide: \\u\{1b\}\]0;pwned\\u\{7\}/],
    [{ mode: "alias", n: 4000000 }, { timeout_ms: 1000 }, /ran past its deadline|over its cap|memory cap/],
  ];
  for (const [params, caps, expected] of cases) {
    const r = await run("misbehave.wasm", "misbehave.wasm", { plugin: "misbehave.wasm", params, on_error: "synthesize", ...caps });
    assert.match(r.answer ?? "", /^AGG /, `${params.mode}: ${r.error}`);
    assert.equal(failed(r).length, 1, params.mode);
    assert.match(failed(r)[0].error, expected, params.mode);
  }
  // Without a fallback the run fails with the plugin's error, naming it.
  const r = await run("misbehave.wasm", "misbehave.wasm", { plugin: "misbehave.wasm", params: { mode: "panic" } });
  assert.match(r.error, /strategy "misbehave\.wasm": crashed: it panicked/);
});

test("a plugin that keeps asking is stopped after 8 paid asks", async () => {
  const before = calls.get("agg") ?? 0;
  const r = await run("greedy_asker.wasm", "greedy.wasm", { plugin: "greedy.wasm", params: { mode: "forever" }, on_error: "synthesize" });
  assert.match(failed(r)[0]?.error ?? "", /asked for more than 8 calls in one decision/);
  // Its 8 asks went to the aggregator's model, then the fallback's aggregator call.
  assert.equal((calls.get("agg") ?? 0) - before, 9);
});

test("components that import what the contract does not grant, or are not components, are refused at load", async () => {
  const load = (url, name) => page.evaluate(async ({ url, name }) => window.plugins.loadPlugin(url, { name }).then(() => "loaded", (e) => e.message), { url, name });
  assert.match(await load("/built/reads_files.wasm", "reads.wasm"), /^plugin reads\.wasm: imports wasi:filesystem\/[a-z-]+.*which the moa:strategy contract does not grant/);
  assert.match(await load("/built/opens_sockets.wasm", "sockets.wasm"), /^plugin sockets\.wasm: imports .*wasi:sockets\/tcp, .*does not grant/);
  assert.match(await load("/wasm/pkg/moa_wasm_bg.wasm", "core.wasm"), /^plugin core\.wasm: not a valid WebAssembly component/);
  assert.match(await load("/built/missing.wasm", "missing.wasm"), /^plugin missing\.wasm: fetching it failed with HTTP 404/);
  const big = await load("/built/big_describe.wasm", "big.wasm");
  assert.equal(big, "loaded", "a huge describe is cut, not fatal");
});

test("bad input: an unsupported contract, a plugin over the size cap, a browser without Worker", async () => {
  const out = await page.evaluate(async () => {
    const said = (f) => { try { return f(); } catch (e) { return e.message; } };
    const contract = said(() => window.plugins && window.moa.checkPlugin([], ["moa:strategy/strategy@9.0.0"]));
    const big = await window.plugins.loadPlugin(new Blob([new Uint8Array(33 << 20)]), { name: "big.wasm" }).catch((e) => e.message);
    const Worker = window.Worker;
    delete window.Worker;
    const noWorker = await window.plugins.loadPlugin(new Uint8Array(8), { name: "w.wasm" }).catch((e) => e.message);
    window.Worker = Worker;
    const unloaded = await new window.moa.Moa({ providers: { p: { kind: "openai", base_url: "http://127.0.0.1:9/v1" } }, layers: [{ agents: ["p:a"] }], aggregator: { model: "p:b", strategy: { plugin: "x.wasm" } } })
      .run("hi", {}).catch((e) => e.message);
    return { contract, big, noWorker, unloaded };
  });
  assert.match(out.contract, /implements moa:strategy\/strategy@9\.0\.0, but this host supports moa:strategy@0\.2\.0, @0\.1\.0/);
  assert.match(out.big, /^plugin big\.wasm: 34603008 bytes, over the 32 MiB a plugin may be; build it smaller/);
  assert.match(out.noWorker, /^plugin w\.wasm: this browser has no Worker support/);
  assert.match(out.unloaded, /strategy "x\.wasm": is not loaded: pass it in options\.plugins/);
});

test("the page loads a plugin from a file, offers it in the strategy menus, and shows its decisions like a built-in's", async () => {
  const p = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  p.on("pageerror", (e) => errors.push(e.message));
  await p.goto(`${base}/www/index.html`);
  await p.waitForSelector("body[data-ready=true]");
  await p.evaluate(() => (document.getElementById("setup").open = true));
  // A recipe naming a plugin that is not loaded is not sent, and says what to do.
  const recipe = {
    providers: { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } },
    layers: [{ agents: ["fake:a", "fake:b", "fake:c"] }],
    aggregator: { model: "fake:agg", strategy: { plugin: "longest.wasm", params: { k: 1 } } },
  };
  await p.fill("#recipe", JSON.stringify(recipe, null, 2));
  await p.fill("#prompt", "Which city?");
  await p.click("#send");
  assert.match(await p.textContent("#status"), /strategy plugin longest\.wasm is not loaded; load it under Strategy plugins/);
  // A hostile one that imports files is refused, with why, and stays out of the menus.
  await p.setInputFiles("#plugin-file", join(rustDir, "reads_files.wasm"));
  await p.waitForSelector("#plugin-list li.error");
  assert.match(await p.textContent("#plugin-list li.error"), /plugin reads_files\.wasm: imports wasi:filesystem/);
  await p.setInputFiles("#plugin-file", join(rustDir, "longest.wasm"));
  await p.waitForSelector("#plugin-list li[data-plugin='longest.wasm']");
  assert.match(await p.textContent("#plugin-list li[data-plugin='longest.wasm']"), /^longest\.wasm: longest \d+\.\d+\.\d+, Keeps the k longest proposals\. \(contract 0\.2\.0, \d+ KB\)$/);
  const options = await p.locator("#b-aggregator-strategy option").evaluateAll((os) => os.map((o) => o.value));
  assert.ok(options.includes("plugin:longest.wasm") && !options.includes("plugin:reads_files.wasm"), options.join(", "));
  assert.equal(await p.inputValue("#b-aggregator-strategy"), "plugin:longest.wasm", "the menu shows the recipe's plugin");
  await p.click("#send");
  await p.waitForFunction(() => /^(Done|Failed|Not sent)/.test(document.querySelector("#status").textContent), null, { timeout: 30_000 });
  assert.equal(await p.textContent("#status"), "Done.", (await p.textContent("#failures")) + (await p.textContent("#notes")));
  const notes = await p.locator("#notes li").allTextContents();
  assert.ok(notes.includes("longest.wasm, before the aggregator: kept the 1 longest of 3"), notes.join("\n"));
  assert.match(await p.textContent("#answer"), /Lyon is the longest/);
  // Choosing a built-in in the menu writes it over the plugin, and back.
  await p.selectOption("#b-aggregator-strategy", "vote");
  assert.equal(JSON.parse(await p.inputValue("#recipe")).aggregator.strategy, "vote");
  await p.selectOption("#b-aggregator-strategy", "plugin:longest.wasm");
  assert.deepEqual(JSON.parse(await p.inputValue("#recipe")).aggregator.strategy, { plugin: "longest.wasm" });
  assert.deepEqual(errors, []);
  await p.close();
});
