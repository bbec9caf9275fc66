// The npm package (wasm/pkg) as a user gets it: its metadata and files, and a mixture run
// from Node out of the installed tarball, written exactly as the README shows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { listen, repo } from "./harness.mjs";

const pkg = join(repo, "wasm/pkg");

test("the npm package says what it is, where it comes from, and carries its licence", async () => {
  const meta = JSON.parse(await readFile(join(pkg, "package.json"), "utf8"));
  assert.equal(meta.type, "module");
  assert.equal(meta.module, "moa_wasm.js");
  assert.deepEqual(meta.exports["."], { types: "./moa_wasm.d.ts", default: "./moa_wasm.js" });
  assert.equal(meta.exports["./moa_wasm_bg.wasm"], "./moa_wasm_bg.wasm");
  assert.match(meta.repository.url, /github\.com\/moa-rs\/moa/);
  assert.equal(meta.license, "Apache-2.0");
  assert.equal(meta.sideEffects, false);
  const [packed] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: pkg, encoding: "utf8" }));
  const files = packed.files.map((f) => f.path);
  assert.deepEqual(meta.exports["./plugins.js"], { types: "./plugins.d.ts", default: "./plugins.js" });
  for (const f of ["LICENSE", "README.md", "package.json", "moa_wasm.js", "moa_wasm.d.ts", "moa_wasm_bg.wasm",
    "plugins.js", "plugins.d.ts", "plugin-worker.js", "plugin-wasi.js", "plugin-memory.js", "plugin-transpile.js",
    "jco/js-component-bindgen-component.js", "jco/js-component-bindgen-component.core.wasm", "jco/preview2-shim/cli.js", "jco/LICENSE"]) {
    assert.ok(files.includes(f), `${f} is in the package (${files.join(", ")})`);
  }
  assert.match(await readFile(join(pkg, "LICENSE"), "utf8"), /Apache License\s+Version 2\.0/);
});

test("installed from its tarball, it runs a mixture in Node with initSync, as the README shows", async () => {
  // A fake OpenAI-compatible provider: every call answers "Node says hi."
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      calls++;
      const chunk = JSON.stringify({ choices: [{ index: 0, delta: { content: "Node says hi." }, finish_reason: null }] });
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`data: ${chunk}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`);
    });
  });
  const url = await listen(server);
  const dir = await mkdtemp(join(tmpdir(), "moa-npm-"));
  try {
    execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: pkg });
    const tarball = (await readdir(dir)).find((f) => f.endsWith(".tgz"));
    await writeFile(join(dir, "package.json"), '{ "private": true, "type": "module" }');
    execFileSync("npm", ["install", "--offline", "--silent", "--no-audit", "--no-fund", `./${tarball}`], { cwd: dir });
    await writeFile(
      join(dir, "main.mjs"),
      `import { readFileSync } from "node:fs";
import { initSync, Moa } from "moa-wasm";

initSync({ module: readFileSync(new URL(import.meta.resolve("moa-wasm/moa_wasm_bg.wasm"))) });
const recipe = {
  providers: { fake: { kind: "openai", base_url: process.env.FAKE_URL + "/v1" } },
  layers: [{ agents: ["fake:a", "fake:b"] }],
  aggregator: "fake:agg",
};
const outcome = await new Moa(recipe).run("Hello from Node.");
console.log(outcome.answer);
`,
    );
    // Asynchronously: the fake provider answers from this process's event loop.
    const { stdout } = await promisify(execFile)(process.execPath, ["main.mjs"], { cwd: dir, env: { ...process.env, FAKE_URL: url } });
    assert.equal(stdout.trim(), "Node says hi.");
    assert.equal(calls, 3, "two proposers and the aggregator");
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test("in Node, init() without arguments says to use initSync with the module's bytes", async () => {
  // Node's fetch cannot read a file: URL; a bare "fetch failed" told users nothing.
  const mod = await import(join(pkg, "moa_wasm.js"));
  await assert.rejects(mod.default(), (e) => {
    assert.match(e.message, /initSync/);
    assert.match(e.message, /moa_wasm_bg\.wasm/);
    return true;
  });
  // The advice works: the same module then initializes from its bytes.
  const { readFileSync } = await import("node:fs");
  mod.initSync({ module: readFileSync(join(pkg, "moa_wasm_bg.wasm")) });
  assert.equal(typeof mod.Moa, "function");
});

test("in Node, a run given tools resolves to the aggregator's tool calls, and a schema is enforced", async () => {
  // A fake provider: with tools offered it calls get_weather; asked for JSON, it first
  // answers words (refused, then retried with the reason), then matching JSON.
  let jsonAsks = 0;
  const bodies = [];
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => (raw += d));
    req.on("end", () => {
      const body = JSON.parse(raw);
      bodies.push(body);
      res.writeHead(200, { "content-type": "text/event-stream" });
      let delta = { content: "Call get_weather for Oslo." };
      if (body.tools) {
        delta = { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }] };
      } else if (body.response_format) {
        delta = { content: ++jsonAsks === 1 ? "Twelve degrees." : '{"temp_c": 12}' };
      }
      const chunk = JSON.stringify({ choices: [{ index: 0, delta, finish_reason: null }] });
      res.end(`data: ${chunk}\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n`);
    });
  });
  const url = await listen(server);
  try {
    const mod = await import(join(pkg, "moa_wasm.js"));
    mod.initSync({ module: await readFile(join(pkg, "moa_wasm_bg.wasm")) });
    const recipe = {
      providers: { fake: { kind: "openai", base_url: url + "/v1" } },
      layers: [{ agents: ["fake:a", "fake:b"] }],
      aggregator: "fake:agg",
      policy: { retries: 1, backoff_secs: 0 },
    };
    const tools = [{ name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } }];
    const events = [];
    const called = await new mod.Moa(recipe).run("Weather in Oslo?", { tools, toolChoice: "required", onEvent: (e) => events.push(e) });
    assert.deepEqual(called.tool_calls, [{ id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } }]);
    assert.equal(called.finish_reason, "tool_calls");
    assert.deepEqual(events.find((e) => e.type === "final").tool_calls, called.tool_calls);
    assert.equal(bodies.filter((b) => b.tools).length, 1, "only the aggregator had the real tools");
    const responseFormat = { type: "json_schema", json_schema: { name: "w", schema: { type: "object", properties: { temp_c: { type: "number" } }, required: ["temp_c"] } } };
    const shaped = await new mod.Moa(recipe).run("Weather as JSON", { responseFormat });
    assert.equal(shaped.answer, '{"temp_c": 12}');
    await assert.rejects(
      new mod.Moa(recipe).run("x", { tools: [{ name: "f", parameters: { type: "objekt" } }] }),
      /tools\[0\]\.function\.parameters/,
    );
  } finally {
    server.close();
  }
});
