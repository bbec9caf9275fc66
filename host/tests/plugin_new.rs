//! `moa plugin new`: what it writes builds as it says and passes `moa plugin check`; it
//! never writes over a folder or outside the one it is given.

use std::path::Path;
use std::process::{Command, Output};

fn moa(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(args)
        .current_dir(dir)
        // What is tested is the starting point, not how fast a debug build compiles an
        // 18 MB Python plugin on a busy 2-core machine (it took more than the default 20 s).
        .env("MOA_PLUGIN_COMPILE_SECS", "120")
        .output()
        .expect("moa runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_new_rust_plugin_builds_with_its_own_command_and_passes_the_check() {
    moa_testkit::plugins::dir(); // the wasm32-wasip2 target, installed if missing
    let tmp = tempfile::tempdir().expect("tmp");
    let o = moa(&["plugin", "new", "longest-two", "--lang", "rust"], tmp.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let root = tmp.path().join("longest-two");
    assert!(text(&o).contains("cargo build --release --target wasm32-wasip2"), "{}", text(&o));
    // Built as the README says, sharing the test plugins' target folder for its deps.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("plugins-new");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the template builds");
    let wasm = target.join("wasm32-wasip2/release/longest_two.wasm");
    let o = moa(&["plugin", "check", wasm.to_str().expect("utf-8"), "--params", r#"{"k": 3}"#], tmp.path());
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("contract moa:strategy@0.2.0") && out.contains("longest-two 0.1.0"), "{out}");
    assert!(out.contains("note: kept the 3 longest of 6"), "{out}");
    let o = moa(&["plugin", "check", wasm.to_str().expect("utf-8"), "--params", r#"{"kk": 3}"#], tmp.path());
    assert!(text(&o).contains("unknown parameter \"kk\" (it takes k)"), "{}", text(&o));
}

#[test]
fn plugin_new_refuses_a_folder_that_exists_and_a_name_that_is_a_path() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(tmp.path().join("mine")).expect("mkdir");
    std::fs::write(tmp.path().join("mine/keep.txt"), "mine").expect("write");
    let o = moa(&["plugin", "new", "mine"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already exists; moa plugin new writes only a new folder"), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(tmp.path().join("mine/keep.txt")).expect("kept"), "mine");
    for name in ["../escape", "Has Caps", "a/b"] {
        let o = moa(&["plugin", "new", name], tmp.path());
        assert_eq!(o.status.code(), Some(2), "{name}: {}", text(&o));
        assert!(text(&o).contains("use a lowercase letter"), "{name}: {}", text(&o));
    }
    assert!(!tmp.path().join("../escape").exists());
    let o = moa(&["plugin", "new", "x", "--lang", "cobol"], tmp.path());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("invalid value 'cobol'"), "{}", text(&o));
}

/// `moa plugin new --lang python|js` writes the example renamed; its README's build
/// command (with the builder `scripts/test` installed in place of a fresh install) builds
/// a plugin that passes the check under its new name.
#[test]
fn new_python_and_javascript_plugins_build_with_their_readmes_command() {
    if !moa_testkit::needs::wanted(moa_testkit::needs::Needs::Componentize) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv_bin = std::path::PathBuf::from(moa_testkit::needs::python()).with_file_name("");
    let qjs = repo.join("tests/browser/node_modules/.bin/componentize-qjs");
    for (lang, installed) in [("python", venv_bin.join("componentize-py")), ("js", qjs)] {
        let tmp = tempfile::tempdir().expect("tmp");
        let o = moa(&["plugin", "new", "my-pick", "--lang", lang], tmp.path());
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let root = tmp.path().join("my-pick");
        let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
        let commands: Vec<&str> =
            readme.split("```sh\n").nth(1).and_then(|s| s.split("```").next()).expect("a sh block").lines().collect();
        // The install line is skipped; the build line runs with the installed builder.
        let build = commands.iter().find(|l| l.contains("--stub-wasi")).expect("a build line");
        let build = build
            .replace(".venv/bin/componentize-py", installed.to_str().expect("utf-8"))
            .replace("npx --yes componentize-qjs@0.4.5", installed.to_str().expect("utf-8"));
        let built = Command::new("sh").arg("-c").arg(&build).current_dir(&root).output().expect("sh");
        assert!(built.status.success(), "{lang}: {build}\n{}", text(&built));
        let o = moa(&["plugin", "check", "my-pick.wasm", "--timeout-ms", "5000"], &root);
        assert_eq!(o.status.code(), Some(0), "{lang}: {}", text(&o));
        assert!(
            text(&o).contains("my-pick 0.1.0") && text(&o).contains("note: kept the 2 longest of 6"),
            "{lang}: {}",
            text(&o)
        );
    }
}
