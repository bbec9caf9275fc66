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
