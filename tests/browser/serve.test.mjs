// `moa serve` against web pages in real headless Chromium: a page on another origin can
// start no run however it posts (text/plain fetch in no-cors mode, a form), and a page on
// an origin allowed with --allow-origin uses the API on purpose, through CORS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import { launch, listen } from "./harness.mjs";

const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/moa/target");
const moaBin = join(target, "debug/moa"); // built by scripts/test's `cargo test` step

let upstream, upstreamUrl, calls = 0, pages, pageBase, browser;
const servers = [];

/** Starts `moa serve` with a recipe on the fake upstream; resolves to its base URL. */
async function startMoa(extra) {
  const dir = await mkdtemp(join(tmpdir(), "moa-serve-"));
  await writeFile(join(dir, "quick.toml"),
    `[providers.fake]\nkind = "openai"\nbase_url = "${upstreamUrl}/v1"\n[[layers]]\nagents = ["fake:a"]\n[aggregator]\nmodel = "fake:agg"\n`);
  const child = spawn(moaBin, ["serve", "--listen", "127.0.0.1:0", "--recipes", dir, ...extra], { stdio: ["ignore", "ignore", "pipe"] });
  servers.push(child);
  const lines = createInterface({ input: child.stderr });
  for await (const line of lines) {
    const m = line.match(/serving on (http:\/\/[^/]+)\/v1/);
    if (m) {
      lines.on("line", () => {}); // keep draining
      return m[1];
    }
  }
  throw new Error("moa serve did not start");
}

before(async () => {
  // A fake provider that counts the calls it gets: a run that started would call it.
  upstream = createServer((req, res) => {
    calls++;
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`data: {"choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`);
    });
  });
  upstreamUrl = await listen(upstream);
  // The "other origin": a page server on its own port.
  pages = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><title>elsewhere</title><p>a page on another origin</p>");
  });
  pageBase = await listen(pages);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  for (const s of servers) s.kill();
  upstream?.close();
  pages?.close();
});

test("a page on another origin starts no run, whatever way it posts", async () => {
  const moa = await startMoa([]);
  const page = await browser.newPage();
  await page.goto(`${pageBase}/`);
  const body = JSON.stringify({ model: "quick", messages: [{ role: "user", content: "hi" }] });
  // fetch in no-cors mode with a "simple" content type: no preflight, the request is sent.
  const status = await page.evaluate(async ({ url, body }) => {
    try {
      const r = await fetch(url, { method: "POST", mode: "no-cors", headers: { "content-type": "text/plain" }, body });
      return r.type; // opaque
    } catch (e) {
      return `error: ${e.message}`;
    }
  }, { url: `${moa}/v1/chat/completions`, body });
  assert.equal(status, "opaque");
  // Even with JSON-looking text, and as a form posted across origins.
  await page.evaluate(({ url, body }) => {
    const form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    form.enctype = "text/plain";
    const input = document.createElement("input");
    input.name = body.slice(0, -2);
    input.value = "\"}";
    form.append(input);
    document.body.append(form);
    form.submit();
  }, { url: `${moa}/v1/chat/completions`, body });
  await page.waitForLoadState("load");
  await new Promise((ok) => setTimeout(ok, 500));
  assert.equal(calls, 0, "no upstream call: no run started");
  await page.close();
});

test("a page on an allowed origin uses the API through CORS", async () => {
  const moa = await startMoa(["--allow-origin", pageBase]);
  const page = await browser.newPage();
  await page.goto(`${pageBase}/`);
  const before = calls;
  const answer = await page.evaluate(async (url) => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "quick", messages: [{ role: "user", content: "hi" }] }),
    });
    return (await r.json()).choices[0].message.content;
  }, `${moa}/v1/chat/completions`);
  assert.equal(answer, "hello");
  assert.equal(calls - before, 2, "the proposer and the aggregator ran");
  await page.close();
});
