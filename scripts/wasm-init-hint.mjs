// Wraps wasm-bindgen's default export (init) in the generated moa_wasm.js: in Node,
// init() without arguments fails with a bare "fetch failed"; the wrapper says to use
// initSync with the module's bytes. Fails loudly if wasm-bindgen's output changed shape.
import { readFileSync, writeFileSync } from "node:fs";

const file = process.argv[2];
const source = readFileSync(file, "utf8");
const exported = "export { initSync, __wbg_init as default };";
if (!source.includes(exported)) {
  console.error(`wasm-init-hint: ${file} does not end with \`${exported}\`; wasm-bindgen changed its output`);
  process.exit(1);
}
const hint = `
// Added by scripts/build-wasm: Node's fetch cannot read the module from a file.
async function init(module_or_path) {
    try {
        return await __wbg_init(module_or_path);
    } catch (e) {
        const node = typeof process === 'object' && process.versions != null && process.versions.node != null;
        if (module_or_path === undefined && node) {
            throw new Error('moa-wasm: init() fetches moa_wasm_bg.wasm, which Node cannot do from a file; in Node call ' +
                'initSync({ module: readFileSync(new URL(import.meta.resolve("moa-wasm/moa_wasm_bg.wasm"))) }) instead', { cause: e });
        }
        throw e;
    }
}

export { initSync, init as default };`;
writeFileSync(file, source.replace(exported, hint.trimStart()));
