//! A plugin file checked before anything runs it (a component, valid, no function too
//! big to compile, only the imports the contract grants), and compiled in a child process
//! with its own limits.

use super::{COMPILE_MIB, COMPILE_SECS, MAX_FILE, MAX_FUNCTION, SMALLER};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Compiles plugins in a child process with its own limits, so a crafted plugin that
/// makes the compiler take seconds and gigabytes costs a child, not the host. The child
/// is the `moa` binary itself (`moa plugin compile FILE`, hidden); it writes wasmtime's
/// on-disk cache, which the host then reads instead of compiling.
#[derive(Clone, Debug)]
pub struct Compiler {
    /// The `moa` executable.
    pub exe: PathBuf,
    /// Wall time allowed.
    pub timeout: Duration,
    /// Memory allowed (the child's data limit, `ulimit -d`), in MiB.
    pub memory_mib: u64,
}

impl Compiler {
    /// Compiling with this executable under the default limits; `MOA_PLUGIN_COMPILE_SECS`
    /// and `MOA_PLUGIN_COMPILE_MIB` override them (the tests use tiny ones).
    pub fn new(exe: PathBuf) -> Compiler {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0);
        Compiler {
            exe,
            timeout: Duration::from_secs_f64(env("MOA_PLUGIN_COMPILE_SECS").unwrap_or(COMPILE_SECS).min(3600.0)),
            memory_mib: env("MOA_PLUGIN_COMPILE_MIB").map_or(COMPILE_MIB, |m| m as u64),
        }
    }

    /// Compiles `path` in the child; `Err` says why it did not.
    pub(crate) fn compile(&self, path: &Path) -> Result<(), String> {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -d {} && exec \"$0\" plugin compile \"$1\"", self.memory_mib * 1024))
            .arg(&self.exe)
            .arg(path)
            // A child that runs out of its memory limit while printing a backtrace can
            // hang instead of exiting; it reports nothing anyway.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the compiler process: {e}"))?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(_)) => {
                    return Err(format!(
                        "compiling it failed within the host's compile limits ({} MiB, {} s)",
                        self.memory_mib,
                        self.timeout.as_secs_f64()
                    ));
                }
                Ok(None) if started.elapsed() > self.timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("compiling it took more than the host's {} s", self.timeout.as_secs_f64()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("cannot wait for the compiler process: {e}")),
            }
        }
    }
}

/// Reads a plugin file: a regular file (not `/dev/zero` or a pipe), at most `MAX_FILE`.
pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(format!("over {} MiB, the largest plugin this host reads; {SMALLER}", MAX_FILE >> 20));
    }
    Ok(bytes)
}

/// Checks a plugin file's bytes before compiling: a component (not a core module), valid
/// (the validator's precise error), and no function over [`MAX_FUNCTION`].
pub(crate) fn check_bytes(bytes: &[u8]) -> Result<(), String> {
    if !wasmparser::Parser::is_component(bytes) {
        return Err(if wasmparser::Parser::is_core_wasm(bytes) {
            "a core WebAssembly module, not a component (build for wasm32-wasip2, or wrap it with `wasm-tools component new`)"
        } else {
            "not WebAssembly at all"
        }
        .into());
    }
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    validator.validate_all(bytes).map_err(|e| e.to_string())?;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CodeSectionEntry(body)) = payload
            && body.range().len() > MAX_FUNCTION
        {
            return Err(format!(
                "a function of {} bytes, over the {} KiB this host compiles; {SMALLER}",
                body.range().len(),
                MAX_FUNCTION >> 10
            ));
        }
    }
    Ok(())
}

pub(crate) use moa_core::strategy::plugin::check_imports;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_imports_pass() {
        let granted = ["moa:strategy/types@0.1.0".to_owned(), "wasi:io/streams@0.2.0".to_owned()];
        assert_eq!(check_imports(granted.into_iter()), Ok(()));
        let err = check_imports(["wasi:sockets/tcp@0.2.0".to_owned()].into_iter()).expect_err("an error");
        assert!(err.contains("imports wasi:sockets/tcp@0.2.0, which"), "{err}");
    }

    #[test]
    fn a_core_module_or_garbage_is_named_for_what_it_is() {
        assert!(check_bytes(b"\0asm\x01\0\0\0").expect_err("an error").contains("a core WebAssembly module"));
        assert_eq!(check_bytes(b"hello").expect_err("an error"), "not WebAssembly at all");
    }
}
