// Caps a core WebAssembly module's memories before it is compiled: each memory it
// defines gets a declared maximum of at most `pages` (64 KiB each), so memory.grow past
// the cap fails inside the plugin, as with the native host's limiter. Only the memory
// section changes; everything else is copied byte for byte.

function readU32(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= bytes.length) throw new Error("the module ends inside a number");
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, at];
    shift += 7;
    if (shift > 35) throw new Error("a number in the module is too long");
  }
}

function writeU32(value, out) {
  do {
    let b = value & 0x7f;
    value = Math.floor(value / 128);
    if (value !== 0) b |= 0x80;
    out.push(b);
  } while (value !== 0);
}

/** The memory section's body with every maximum capped at `pages`. */
function capSection(body, pages, capMib) {
  let [count, at] = readU32(body, 0);
  const out = [];
  writeU32(count, out);
  while (count-- > 0) {
    const flags = body[at++];
    if (flags & 0x04) throw new Error("uses a 64-bit memory, which this module does not run");
    let min;
    let max = Infinity;
    [min, at] = readU32(body, at);
    if (flags & 0x01) [max, at] = readU32(body, at);
    if (min > pages) {
      throw new Error(`needs ${Math.ceil(min / 16)} MiB of memory to start, over its ${capMib} MiB memory cap (memory_mib)`);
    }
    out.push((flags & 0x02) | 0x01); // keeps `shared`; always declares a maximum
    writeU32(min, out);
    writeU32(Math.min(max, pages), out);
  }
  if (at !== body.length) throw new Error("its memory section has bytes after its memories");
  return out;
}

/** `bytes` (a core module) with its memories capped at `capMib` MiB. */
export function capMemory(bytes, capMib) {
  const pages = Math.floor((capMib * 1024) / 64);
  if (bytes.length < 8) throw new Error("a core module is shorter than its header");
  const parts = [bytes.subarray(0, 8)];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at];
    const [size, bodyAt] = readU32(bytes, at + 1);
    const end = bodyAt + size;
    if (end > bytes.length) throw new Error("a section runs past the module's end");
    if (id === 5) {
      const body = capSection(bytes.subarray(bodyAt, end), pages, capMib);
      const head = [5];
      writeU32(body.length, head);
      parts.push(Uint8Array.from(head), Uint8Array.from(body));
    } else {
      parts.push(bytes.subarray(at, end));
    }
    at = end;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
