// Measures strategy plugins in headless Chromium: loading (fetch, transpile with jco,
// describe), the first decision (compile the capped core modules, start the Worker,
// instantiate), and a decision after that (a fresh instance in the warm Worker), for
// `longest` in each language. Run after the plugin tests have built the plugins:
//   node tests/browser/bench-plugins.mjs
// Prints a Markdown table; numbers belong in BENCHMARKS.md with their date and load.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { extname, join, normalize } from "node:path";
import { launch, listen, repo } from "./harness.mjs";

const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/moa/target");
const files = {
  Rust: join(target, "plugins/wasm32-wasip2/release/longest.wasm"),
  JavaScript: join(target, "plugins-browser/longest-js.wasm"),
  Python: join(target, "plugins-browser/longest-python.wasm"),
};
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const lang = path.match(/^\/built\/(\w+)$/)?.[1];
  try {
    const body = await readFile(lang ? files[lang] : join(repo, path));
    res.writeHead(200, { "content-type": lang ? "application/wasm" : types[extname(path)] ?? "application/octet-stream" }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
const base = await listen(server);
const browser = await launch();
const rows = [];
try {
  for (const lang of Object.keys(files)) {
    // A fresh page each: nothing of one language's load helps the next.
    const page = await browser.newPage();
    await page.goto(`${base}/tests/browser/plugins.html`);
    await page.waitForFunction(() => window.ready === true);
    rows.push(await page.evaluate(async (lang) => {
      const context = JSON.stringify({
        conversation: [{ role: "user", content: "Which city?" }], layer: 1, layerCount: 1, params: "{}", seed: "7", asked: [],
        proposals: ["Paris.", "Lyon is longer.", "Nice."].map((text, i) => ({ agent: `a${i}`, model: "p:m", text, latencyMs: 1 })),
      });
      const request = { context, contract: "0.2.0", timeoutMs: 30000, memoryMib: 64, maxOutputKib: 1024 };
      let t = performance.now();
      const plugin = await window.plugins.loadPlugin(`/built/${lang}`, { name: "longest.wasm" });
      const load = performance.now() - t;
      t = performance.now();
      await plugin.decide(request);
      const first = performance.now() - t;
      const times = [];
      for (let i = 0; i < 50; i++) {
        t = performance.now();
        await plugin.decide(request);
        times.push(performance.now() - t);
      }
      times.sort((a, b) => a - b);
      plugin.close();
      return { lang, size: plugin.size, load, first, median: times[25] };
    }, lang));
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
console.log("| written in | file | load (fetch, transpile, describe) | first decision (compile, Worker, instantiate) | per decision after |");
console.log("|---|---|---|---|---|");
for (const r of rows) {
  const mb = r.size > 1e6 ? `${(r.size / 1e6).toFixed(1)} MB` : `${Math.round(r.size / 1e3)} KB`;
  console.log(`| ${r.lang} | ${mb} | ${(r.load / 1000).toFixed(2)} s | ${Math.round(r.first)} ms | ${r.median.toFixed(2)} ms |`);
}
