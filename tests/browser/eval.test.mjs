// `moa eval`'s report.html in real headless Chromium: a self-contained page (no script,
// nothing fetched) whose two charts place every recipe with its interval and mark the
// Pareto front. The screenshot goes to tests/browser/artifacts/eval-report.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { launch, listen, repo } from "./harness.mjs";

const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/moa/target");
const moaBin = join(target, "debug/moa"); // built by scripts/test's `cargo test` step
let fake, fakeUrl, browser, dir;

before(async () => {
  // A fake provider: model "right" says 42, "wrong" says 8, "agg" says "The answer is 42."
  fake = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const model = JSON.parse(body).model;
      const text = { right: "42", wrong: "8", agg: "The answer is 42." }[model] ?? "?";
      const chunk = JSON.stringify({ choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`data: ${chunk}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":3}}\n\ndata: [DONE]\n\n`);
    });
  });
  fakeUrl = await listen(fake);
  dir = await mkdtemp(join(tmpdir(), "moa-eval-"));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  fake?.close();
  await rm(dir, { recursive: true, force: true });
});

test("the eval report draws every recipe with its interval and marks the Pareto front", async () => {
  const items = Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: `q${i}`, prompt: `Question ${i}?`, answer: i % 3 ? "42" : "8" }));
  await writeFile(join(dir, "data.jsonl"), items.join("\n") + "\n");
  const recipe = (name, agents, agg) =>
    `name = "${name}"\n[providers.fake]\nkind = "openai"\nbase_url = "${fakeUrl}/v1"\n[[layers]]\nagents = [${agents.map((a) => `"fake:${a}"`).join(", ")}]\n[aggregator]\nmodel = "fake:${agg}"\n`;
  await writeFile(join(dir, "mix.toml"), recipe("mix", ["right", "wrong"], "agg"));
  await writeFile(join(dir, "vote.toml"), recipe("vote", ["right", "right", "wrong"], "agg") + 'strategy = "vote"\n');
  const out = join(dir, "out");
  const { stdout } = await promisify(execFile)(moaBin, ["eval", join(dir, "data.jsonl"), "--recipe", join(dir, "mix.toml"), "--recipe", join(dir, "vote.toml"), "--baselines", "-o", out, "-q"]);
  assert.match(stdout, /score \[95% CI\]/);
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(`file://${join(out, "report.html")}`);
  assert.deepEqual(requests.filter((u) => !u.startsWith("file://")), [], "nothing is fetched");
  assert.equal(await page.locator("svg").count(), 2);
  // Four recipes (two mixtures, two single models) in each chart, each with its interval.
  for (const svg of await page.locator("svg").all()) {
    assert.equal(await svg.locator("g.point").count(), 4);
    assert.equal(await svg.locator("g.point line").count(), 4);
    assert.ok((await svg.locator("g.point.front").count()) >= 1, "the front has a point");
    assert.equal(await svg.locator("polyline.pareto").count(), 1);
  }
  assert.equal(await page.locator("tbody tr").count(), 4);
  assert.match(await page.textContent("body"), /Wilson/);
  await mkdir(join(repo, "tests/browser/artifacts"), { recursive: true });
  await page.screenshot({ path: join(repo, "tests/browser/artifacts/eval-report.png"), fullPage: true });
  await page.close();
});
