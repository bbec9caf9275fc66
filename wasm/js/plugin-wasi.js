// The only capabilities a strategy plugin gets in the browser: the interfaces the
// moa:strategy contract grants (wasi:cli, wasi:io, its own types), all of them inert, as
// in the native host's empty WASI context. No environment, no arguments, an empty stdin,
// stdout thrown away, stderr kept (bounded) only to explain a crash; no clock, no
// randomness, no files, no network. jco's bindings call these; nothing else reaches the
// plugin's code.

/** The most of a plugin's stderr kept, for an error message. */
const STDERR_KEEP = 4096;

/** Builds one decision's imports; `stderr()` then gives what the plugin wrote there. */
export function wasi() {
  let stderrText = "";
  class Error {}
  class Pollable {
    block() {}
    ready() {
      return true;
    }
  }
  class InputStream {
    read() {
      throw { tag: "closed" };
    }
    blockingRead() {
      throw { tag: "closed" };
    }
    subscribe() {
      return new Pollable();
    }
  }
  class OutputStream {
    constructor(keep) {
      this.keep = keep;
    }
    checkWrite() {
      return 1n << 20n;
    }
    write(bytes) {
      if (this.keep && stderrText.length < STDERR_KEEP) {
        stderrText += new TextDecoder().decode(bytes.slice(0, STDERR_KEEP));
      }
    }
    blockingWriteAndFlush(bytes) {
      this.write(bytes);
    }
    flush() {}
    blockingFlush() {}
    subscribe() {
      return new Pollable();
    }
  }
  class TerminalInput {}
  class TerminalOutput {}
  const imports = {
    "moa:strategy/types": {},
    "wasi:cli/environment": { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
    "wasi:cli/exit": {
      exit: (status) => {
        throw new globalThis.Error(`exited with status ${status?.tag === "ok" ? 0 : 1}`);
      },
    },
    "wasi:cli/stdin": { getStdin: () => new InputStream() },
    "wasi:cli/stdout": { getStdout: () => new OutputStream(false) },
    "wasi:cli/stderr": { getStderr: () => new OutputStream(true) },
    "wasi:cli/terminal-input": { TerminalInput },
    "wasi:cli/terminal-output": { TerminalOutput },
    "wasi:cli/terminal-stdin": { getTerminalStdin: () => undefined },
    "wasi:cli/terminal-stdout": { getTerminalStdout: () => undefined },
    "wasi:cli/terminal-stderr": { getTerminalStderr: () => undefined },
    "wasi:io/error": { Error },
    "wasi:io/poll": { Pollable, poll: (list) => new Uint32Array(list.map((_, i) => i)) },
    "wasi:io/streams": { InputStream, OutputStream },
  };
  return { imports, stderr: () => stderrText.slice(0, STDERR_KEEP) };
}
