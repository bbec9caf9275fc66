// Measures whether the page keeps up, in headless Chromium:
// - a run of ten agents and an aggregator, each streaming from a fake provider at 1,000
//   tokens/s (a fake: it writes ten SSE chunks every 10 ms, some of them Markdown), at
//   500, 1,000 and 2,000 tokens per call: the event loop's worst lag (a 10 ms timer's
//   lateness) and the long tasks (over 50 ms) while it runs;
// - a keystroke in the form with a recipe of 39,000 providers: until the next frame, and
//   the check that follows when typing pauses.
// Run after `scripts/build-wasm`, on an idle machine:
//   node tests/browser/bench-page.mjs [TOKENS ...]
// MOA_BENCH_ROOT=DIR serves the page from DIR/www instead (another version of it, to
// compare: `git archive REV www | tar -x -C DIR`, then copy www/pkg in).
// Prints a Markdown table; numbers belong in BENCHMARKS.md with their date and load.
import { createServer } from "node:http";
import { launch, listen, serveRepo } from "./harness.mjs";

const RATE = 1000; // tokens per second, per call
const TICK = 10; // ms between writes
const sizes = process.argv.slice(2).map(Number).filter(Boolean);
const TOKENS = sizes.length ? sizes : [500, 1000, 2000];

/** The n-th token of an answer: words, with Markdown now and then. */
function token(n) {
  if (n % 97 === 96) return "\n\n";
  if (n % 41 === 40) return "\n- item ";
  if (n % 13 === 12) return "**bold** ";
  if (n % 29 === 28) return "`code` ";
  return `w${n} `;
}

const fake = createServer((req, res) => {
  const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "POST, GET" };
  if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
  if (req.method === "GET") return res.writeHead(200, { ...cors, "content-type": "application/json" }).end('{"object":"list","data":[]}');
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", () => {
    const total = Number(JSON.parse(body).model.split("-")[1]);
    res.writeHead(200, { ...cors, "content-type": "text/event-stream" });
    const chunk = (content) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
    const start = Date.now();
    let sent = 0;
    const timer = setInterval(() => {
      // As many tokens as the rate owes by now: a late timer catches up, as a server would.
      const due = Math.min(total, Math.floor(((Date.now() - start) * RATE) / 1000));
      let out = "";
      for (; sent < due; sent++) out += chunk(token(sent));
      if (sent >= total) {
        clearInterval(timer);
        out += `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 10, completion_tokens: total } })}\n\ndata: [DONE]\n\n`;
        return res.end(out);
      }
      if (out) res.write(out);
    }, TICK);
    res.on("close", () => clearInterval(timer));
  });
});

const { server: files, base } = await serveRepo(process.env.MOA_BENCH_ROOT);
const fakeUrl = await listen(fake);
const browser = await launch();

async function open() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/www/index.html`);
  await page.waitForSelector("body[data-ready=true]");
  return { page, errors };
}

async function setRecipe(page, recipe) {
  await page.evaluate(() => (document.getElementById("setup").open = true));
  await page.fill("#recipe", JSON.stringify(recipe, null, 2));
  await page.waitForFunction(() => !document.getElementById("send").disabled);
}

/** One run of ten agents and an aggregator, each writing `tokens` tokens. */
async function streaming(tokens) {
  const { page, errors } = await open();
  const model = `fake:t-${tokens}`;
  await setRecipe(page, {
    providers: { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } },
    layers: [{ agents: Array.from({ length: 10 }, () => model) }],
    aggregator: model,
  });
  await page.evaluate(() => {
    const m = (window.__lag = { max: 0, long: 0, longest: 0 });
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        m.long++;
        m.longest = Math.max(m.longest, e.duration);
      }
    }).observe({ type: "longtask" });
    let last = performance.now();
    m.timer = setInterval(() => {
      const now = performance.now();
      m.max = Math.max(m.max, now - last - 10);
      last = now;
    }, 10);
  });
  await page.fill("#prompt", "Go.");
  const t0 = Date.now();
  await page.click("#send");
  await page.waitForFunction(() => /^(Done|Failed)/.test(document.getElementById("status").textContent), null, { timeout: 120_000 });
  const wall = (Date.now() - t0) / 1000;
  const status = await page.textContent("#status");
  const m = await page.evaluate(() => (clearInterval(window.__lag.timer), window.__lag));
  const words = (await page.textContent("#answer")).match(/w\d+/g)?.length ?? 0;
  await page.close();
  if (status !== "Done." || errors.length) throw new Error(`run of ${tokens}: ${status} ${errors.join("; ")}`);
  const expected = Array.from({ length: tokens }, (_, n) => token(n)).join("").match(/w\d+/g).length;
  if (words !== expected) throw new Error(`run of ${tokens}: the answer shows ${words} words of ${expected}`);
  return { tokens, lag: m.max, long: m.long, longest: m.longest, wall, words };
}

/** A keystroke in the form with `n` providers: until the next frame, then the check. */
async function keystroke(n) {
  const { page, errors } = await open();
  await page.evaluate((n) => {
    const r = JSON.parse(document.getElementById("recipe").value);
    for (let i = 0; i < n; i++) r.providers[`p${i}`] = { kind: "openai", base_url: `https://p${i}.example/v1`, api_key_env: `P${i}_API_KEY` };
    document.getElementById("setup").open = true;
    document.getElementById("recipe").value = JSON.stringify(r, null, 2);
    document.getElementById("recipe").dispatchEvent(new Event("input"));
  }, n);
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 60_000 });
  const ms = await page.evaluate(async () => {
    const frame = () => new Promise((ok) => requestAnimationFrame(() => setTimeout(ok)));
    await frame();
    const el = document.getElementById("b-max-tokens");
    const t = performance.now();
    el.value = "77";
    el.dispatchEvent(new Event("input"));
    await frame();
    const painted = performance.now() - t;
    const t2 = performance.now();
    await new Promise((ok) => {
      const poll = () => (document.getElementById("send").disabled ? setTimeout(poll, 5) : ok());
      poll();
    });
    return { painted, checked: performance.now() - t2 };
  });
  await page.click("#recipe-unfold"); // the folded box is filled when it unfolds
  const maxTokens = JSON.parse(await page.inputValue("#recipe")).max_tokens;
  await page.close();
  if (maxTokens !== 77 || errors.length) throw new Error(`keystroke: max_tokens ${maxTokens} ${errors.join("; ")}`);
  return ms;
}

try {
  console.log("| tokens per call | worst event-loop lag | long tasks (longest) | wall |");
  console.log("|---|---|---|---|");
  for (const tokens of TOKENS) {
    const r = await streaming(tokens);
    console.log(`| ${r.tokens} | ${r.lag.toFixed(0)} ms | ${r.long} (${r.longest.toFixed(0)} ms) | ${r.wall.toFixed(1)} s |`);
  }
  const k = await keystroke(39_000);
  console.log(`\nA keystroke with 39,000 providers: ${k.painted.toFixed(0)} ms to the next frame, then ${k.checked.toFixed(0)} ms until checked (the check waits 300 ms for typing to pause).`);
} finally {
  await browser.close();
  files.close();
  fake.close();
}
