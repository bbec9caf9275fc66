// The page under load, in real headless Chromium: a provider that floods tokens (a fake:
// it writes many SSE chunks at once, some of them Markdown), a streamed answer drawn
// piece by piece, and a recipe too big to lay out at every keystroke. How fast is
// measured by `node tests/browser/bench-page.mjs`; these tests hold what it relies on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { launch, listen, serveRepo } from "./harness.mjs";

let files, fake, browser, base, fakeUrl;
const TOKENS = 400;

/** The n-th token of the flood: words, paragraphs, a list, a code block with a blank line. */
function token(n) {
  if (n === 200) return "\n\n```\ncode\n\n";
  if (n === 230) return "more code\n```\n\n";
  if (n % 57 === 56) return "\n\n";
  if (n % 31 === 30) return "\n1. item ";
  if (n % 11 === 10) return "**bold** ";
  return `w${n} `;
}
const FLOOD = Array.from({ length: TOKENS }, (_, n) => token(n)).join("");

before(async () => {
  fake = createServer((req, res) => {
    const cors = { "access-control-allow-origin": "*", "access-control-allow-headers": "*", "access-control-allow-methods": "POST, GET" };
    if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
    if (req.method === "GET") return res.writeHead(200, { ...cors, "content-type": "application/json" }).end('{"object":"list","data":[]}');
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { ...cors, "content-type": "text/event-stream" });
      const chunk = (content) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
      let n = 0;
      // Forty tokens every 5 ms: many tokens reach the page between two frames.
      const timer = setInterval(() => {
        let out = "";
        for (const end = Math.min(TOKENS, n + 40); n < end; n++) out += chunk(token(n));
        if (n < TOKENS) return res.write(out);
        clearInterval(timer);
        res.end(`${out}data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`);
      }, 5);
      res.on("close", () => clearInterval(timer));
    });
  });
  ({ server: files, base } = await serveRepo());
  fakeUrl = await listen(fake);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  files?.close();
  fake?.close();
});

async function open() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/www/index.html`);
  await page.waitForSelector("body[data-ready=true]");
  await page.evaluate(() => (document.getElementById("setup").open = true));
  return { page, errors };
}

test("a flood of tokens is drawn once a frame, and every token is shown", async () => {
  const { page, errors } = await open();
  const recipe = {
    providers: { fake: { kind: "openai", base_url: `${fakeUrl}/v1` } },
    layers: [{ agents: ["fake:a", "fake:b", "fake:c"] }],
    aggregator: "fake:agg",
  };
  await page.fill("#recipe", JSON.stringify(recipe, null, 2));
  await page.waitForFunction(() => !document.getElementById("send").disabled);
  // Every change to the cards, and every frame, while the run goes on.
  await page.evaluate(() => {
    const seen = (window.__seen = { records: 0, frames: 0 });
    new MutationObserver((r) => (seen.records += r.length)).observe(document.getElementById("layers"), {
      subtree: true, childList: true, characterData: true, attributes: true,
    });
    const tick = () => {
      seen.frames++;
      seen.raf = requestAnimationFrame(tick);
    };
    tick();
  });
  await page.fill("#prompt", "Go.");
  await page.click("#send");
  await page.waitForFunction(() => document.getElementById("status").textContent === "Done.", null, { timeout: 60_000 });
  const seen = await page.evaluate(() => (cancelAnimationFrame(window.__seen.raf), window.__seen));
  // Four cards: each is drawn at most once a frame (its text, its line, its state), and
  // a few times more as its call starts and ends. One draw per token would be 3,200.
  const bound = 4 * 3 * (seen.frames + 4);
  assert.ok(seen.records <= bound, `${seen.records} changes to the cards in ${seen.frames} frames (at most ${bound})`);
  const texts = await page.$$eval(".card .text", (els) => els.map((e) => e.textContent));
  assert.deepEqual(texts.slice(0, 3), [FLOOD, FLOOD, FLOOD]);
  assert.match(await page.textContent(".card:last-child .meta"), /^done · 400 tok/);
  // The answer, drawn as it came, is what the whole answer renders to.
  const same = await page.evaluate(async (source) => {
    const { renderMarkdown } = await import("./markdown.js");
    const div = document.createElement("div");
    renderMarkdown(div, source);
    return div.innerHTML === document.getElementById("answer").innerHTML;
  }, FLOOD);
  assert.ok(same, "the streamed answer renders as the whole answer does");
  assert.deepEqual(errors, []);
  await page.close();
});

test("an answer drawn as it streams is, at every point, what the whole text renders to", async () => {
  const { page } = await open();
  const sources = [
    FLOOD,
    "Intro\r\n\r\n# Title\r\nText **bold** and `code`.\r\n\r\n- a\n- b\n\n1. one\n\n2. two\n\n3. three\n",
    "```js\nlet a = 1;\n\nlet b = 2;\n```\nafter the fence\n\n```\nnever closed\n\nstill code",
    "  \n\nspaces only above\n \npara [link](https://example.org/) *em*\n\n\n\nend",
  ];
  const bad = await page.evaluate(async (sources) => {
    const { markdownStream, renderMarkdown } = await import("./markdown.js");
    const wrong = [];
    for (const [si, source] of sources.entries()) {
      const live = document.createElement("div");
      const stream = markdownStream(live);
      // Grown a few characters at a time, then cut back (a retried answer) and grown again.
      const steps = [];
      for (let i = 0; i <= source.length; i += 1 + (i % 4)) steps.push(source.slice(0, i));
      steps.push(source, "", source.slice(0, 9), "Different start\n\nthen\n\n", source);
      for (const text of steps) {
        stream.update(text);
        const whole = document.createElement("div");
        renderMarkdown(whole, text);
        if (whole.innerHTML !== live.innerHTML) wrong.push({ si, text, live: live.innerHTML, whole: whole.innerHTML });
      }
    }
    return wrong.slice(0, 3);
  }, sources);
  assert.deepEqual(bad, []);
  await page.close();
});

test("a big recipe's text is folded while the form is used, and shown on request", async () => {
  const { page, errors } = await open();
  const n = 20_000;
  await page.evaluate((n) => {
    const r = JSON.parse(document.getElementById("recipe").value);
    for (let i = 0; i < n; i++) r.providers[`p${i}`] = { kind: "openai", base_url: `https://p${i}.example/v1` };
    document.getElementById("recipe").value = JSON.stringify(r, null, 2);
    document.getElementById("recipe").dispatchEvent(new Event("input"));
  }, n);
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 60_000 });
  await page.fill("#b-max-tokens", "77");
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 60_000 });
  assert.equal(await page.isVisible("#recipe"), false, "the text box is folded");
  assert.match(await page.textContent("#recipe-folded"), /This recipe's text \(\d\.\d MB\) is folded to keep the form quick\. Show the text/);
  // Folded, the page keeps the text out of the box (writing megabytes into it was most
  // of a keystroke); unfolded, the box holds the recipe: the form's edit, every provider.
  await page.click("#recipe-unfold");
  assert.equal(await page.isVisible("#recipe"), true);
  assert.equal(await page.isVisible("#recipe-folded"), false);
  assert.equal(await page.evaluate(() => document.activeElement.id), "recipe");
  const r = JSON.parse(await page.inputValue("#recipe"));
  assert.equal(r.max_tokens, 77);
  assert.ok(Object.keys(r.providers).length > n);
  // Another big recipe, imported: folded again, whatever was asked for the last one.
  const big = await page.inputValue("#recipe");
  await page.focus("#import"); // as a click on it would
  await page.setInputFiles("#import", { name: "big.json", mimeType: "application/json", buffer: Buffer.from(big) });
  await page.waitForFunction(() => document.getElementById("recipe").hidden, null, { timeout: 60_000 });
  assert.equal(await page.isVisible("#recipe-folded"), true);
  // Typing in it does not fold it away; a small recipe is never folded.
  await page.selectOption("#preset", "local");
  assert.equal(await page.isVisible("#recipe"), true);
  assert.equal(await page.isVisible("#recipe-folded"), false);
  assert.deepEqual(errors, []);
  await page.close();
});
