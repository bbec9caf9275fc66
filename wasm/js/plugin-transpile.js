// The transpiler's Worker: turns a strategy component into jco's JavaScript bindings
// and its core modules, with jco's own transpiler (WebAssembly, loaded only here and
// only when a plugin is loaded). It reads untrusted bytes, so it runs apart from the
// page; what it makes is checked by plugins.js before anything runs.
import { $init, generate } from "./jco/js-component-bindgen-component.js";

onmessage = async ({ data }) => {
  try {
    await $init;
    const out = generate(data.bytes, {
      name: "plugin",
      instantiation: { tag: "async" },
      noTypescript: true,
      noNodejsCompat: true,
      // Every core module as a file, so each passes through the memory cap.
      base64Cutoff: 0,
    });
    const files = out.files.filter(([name]) => !name.endsWith(".d.ts"));
    postMessage(
      { files, imports: out.imports, exports: out.exports.map(([name]) => name) },
      files.map(([, bytes]) => bytes.buffer),
    );
  } catch (e) {
    postMessage({ error: String(e?.message ?? e) });
  }
};
