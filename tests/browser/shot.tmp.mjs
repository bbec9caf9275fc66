// One-off: the README's screenshot, the page's first-run recipe (`local`) answering
// against the real local servers on their default ports. Not a test; not committed.
import { join } from "node:path";
import { launch, serveRepo, repo } from "./harness.mjs";
const { server, base } = await serveRepo();
const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${base}/www/index.html`);
await page.waitForSelector("body[data-ready=true]");
console.log("preset", await page.inputValue("#preset"));
await page.fill("#prompt", process.argv[2] ?? "What are 3 fun things to do in SF?");
const t0 = Date.now();
await page.click("#send");
await page.waitForFunction(() => /Done|Failed|Not sent|Stopped/.test(document.querySelector("#status").textContent), null, { timeout: 900_000 });
console.log("status", await page.textContent("#status"), (Date.now() - t0) / 1000, "s");
console.log("answer", (await page.textContent("#answer")).slice(0, 400));
await page.evaluate(() => document.querySelectorAll("details").forEach((d) => (d.open = true)));
await page.screenshot({ path: process.argv[3] ?? "/tmp/shot/desktop.png", fullPage: true });
await browser.close();
server.close();
