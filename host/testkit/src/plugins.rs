//! Builds the example and hostile plugins (host/plugins, for wasm32-wasip2) once per
//! test binary and says where they are.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The folder holding `<name>.wasm` for every plugin crate, built on first use.
pub fn dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo.join("target")).join("plugins");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        install_target();
        let status = Command::new(cargo)
            .args(["build", "--release", "--locked", "--quiet", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(repo.join("host/plugins/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building host/plugins for wasm32-wasip2 failed (is the target installed? `rustup target add wasm32-wasip2`)");
        target.join("wasm32-wasip2/release")
    })
    .clone()
}

/// Adds the wasm32-wasip2 target with rustup when it is missing, so the plugin tests need
/// only Rust (installed with rustup) on the machine.
fn install_target() {
    let Ok(listed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return; // Not a rustup toolchain: the build below says what is missing.
    };
    if !String::from_utf8_lossy(&listed.stdout).lines().any(|t| t.trim() == "wasm32-wasip2") {
        let added = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
        assert!(added.is_ok_and(|s| s.success()), "`rustup target add wasm32-wasip2` failed");
    }
}

/// The path of plugin `name` (crate name with `_` for `-`).
pub fn path(name: &str) -> PathBuf {
    dir().join(format!("{}.wasm", name.replace('-', "_")))
}

/// The languages besides Rust that a plugin is built from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// `host/plugins/python/NAME/app.py`, built with componentize-py.
    Python,
    /// `host/plugins/js/NAME/strategy.js`, built with componentize-qjs (QuickJS).
    Js,
}

/// The plugin `name` written in `lang`, built (when missing or older than its source or
/// the contract) with the builder `scripts/test` installs, with the command the plugin
/// guide gives.
pub fn built(name: &str, lang: Lang) -> PathBuf {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wit = repo.join("host/wit/v0.2.0");
    let (folder, source) = match lang {
        Lang::Python => (repo.join("host/plugins/python").join(name), "app.py"),
        Lang::Js => (repo.join("host/plugins/js").join(name), "strategy.js"),
    };
    let out_dir = dir().join("../../../plugins-lang");
    std::fs::create_dir_all(&out_dir).expect("plugins-lang folder");
    let out = out_dir.join(format!("{name}-{lang:?}.wasm").to_lowercase());
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest_source = [folder.join(source), wit.join("strategy.wit")].iter().filter_map(|p| modified(p)).max();
    if modified(&out).is_some_and(|built| newest_source.is_some_and(|s| built >= s)) {
        return out;
    }
    let mut command = match lang {
        Lang::Python => {
            let python = crate::needs::python();
            let builder = PathBuf::from(python).with_file_name("componentize-py");
            let mut c = Command::new(builder);
            c.arg("-d").arg(&wit).args(["-w", "plugin", "componentize", "--stub-wasi", "app", "-o"]).arg(&out);
            c
        }
        Lang::Js => {
            let mut c = Command::new(repo.join("tests/browser/node_modules/.bin/componentize-qjs"));
            c.arg("--wit").arg(&wit).args(["--js", source, "-n", "plugin", "--sync", "--stub-wasi", "-o"]).arg(&out);
            c
        }
    };
    let o = command
        .current_dir(&folder)
        .output()
        .unwrap_or_else(|e| panic!("the {lang:?} plugin builder does not run ({e}); scripts/test installs it"));
    assert!(
        o.status.success(),
        "building {name} ({lang:?}) failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}
