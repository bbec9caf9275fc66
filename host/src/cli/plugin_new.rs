//! `moa plugin new NAME --lang rust|python|js`: a working starting point for a strategy
//! plugin, with the contract's WIT beside it and its build command in a README.

use super::common::bad;
use std::path::Path;
use std::process::ExitCode;

/// The contract new plugins implement, as the host reads it.
const WIT: &str = include_str!("../../wit/v0.2.0/strategy.wit");

/// The language a new plugin is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust, built with cargo for wasm32-wasip2.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-qjs (QuickJS).
    Js,
}

/// Pinned builders the commands below install.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
const COMPONENTIZE_QJS: &str = "componentize-qjs@0.4.5";

/// The `longest` example in each language (host/plugins), which a test holds equal across
/// the three: a new plugin starts as a copy with its own name.
const RUST: &str = include_str!("../../plugins/examples/longest/src/lib.rs");
const PYTHON: &str = include_str!("../../plugins/python/longest/app.py");
const JS: &str = include_str!("../../plugins/js/longest/strategy.js");

/// The example's body without its header comment, named `name`.
fn body(example: &str, lang: Lang, name: &str) -> String {
    let lines: Vec<&str> = example.lines().collect();
    let header = match lang {
        Lang::Rust => lines.iter().take_while(|l| l.starts_with("//!")).count(),
        Lang::Js => lines.iter().take_while(|l| l.starts_with("//")).count(),
        // A module docstring of several lines: through the line that closes it.
        Lang::Python if lines.first().is_some_and(|l| l.starts_with("\"\"\"") && !l.ends_with("\"\"\"")) => {
            lines.iter().skip(1).position(|l| l.ends_with("\"\"\"")).map_or(0, |i| i + 2)
        }
        Lang::Python => 0,
    };
    let body = lines[header..].join("\n") + "\n";
    body.replace("name: \"longest\"", &format!("name: \"{name}\""))
        .replace("name=\"longest\"", &format!("name=\"{name}\""))
        .replace("\"../../../wit/v0.2.0\"", "\"wit\"")
}

/// The files of a new plugin in `lang`, as (path in its folder, contents).
fn files(name: &str, lang: Lang) -> Vec<(&'static str, String)> {
    let about = "a moa strategy plugin (contract moa:strategy@0.2.0, in wit/strategy.wit). It starts as the\nexample `longest`: it keeps the k longest proposals (params: {\"k\": 2}).";
    let wasm = match lang {
        Lang::Rust => format!("{}.wasm", name.replace('-', "_")),
        Lang::Python | Lang::Js => format!("{name}.wasm"),
    };
    let mut out = vec![("wit/strategy.wit", WIT.to_owned()), ("README.md", readme(name, &wasm, &build(name, lang)))];
    match lang {
        Lang::Rust => {
            out.push(("Cargo.toml", include_str!("templates/Cargo.toml").replace("{name}", name)));
            let header = format!("//! {name}: {}\n", about.replace('\n', "\n//! "));
            out.push(("src/lib.rs", header + &body(RUST, lang, name)));
        }
        Lang::Python => {
            let header = format!("\"\"\"{name}: {}\n\"\"\"\n", about);
            out.push(("app.py", header + &body(PYTHON, lang, name)));
        }
        Lang::Js => {
            let header = format!("// {name}: {}\n", about.replace('\n', "\n// "));
            out.push(("strategy.js", header + &body(JS, lang, name)));
        }
    }
    out
}

/// The commands that build the plugin in its folder and check it.
pub(crate) fn build(name: &str, lang: Lang) -> String {
    match lang {
        Lang::Rust => format!(
            "rustup target add wasm32-wasip2\ncargo build --release --target wasm32-wasip2\nmoa plugin check target/wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ),
        Lang::Python => format!(
            "python3 -m venv .venv && .venv/bin/pip install {COMPONENTIZE_PY}\n.venv/bin/componentize-py -d wit -w plugin componentize --stub-wasi app -o {name}.wasm\nmoa plugin check {name}.wasm"
        ),
        Lang::Js => format!(
            "npx --yes {COMPONENTIZE_QJS} --wit wit --js strategy.js -n plugin --sync --stub-wasi -o {name}.wasm\nmoa plugin check {name}.wasm"
        ),
    }
}

fn readme(name: &str, wasm: &str, build: &str) -> String {
    format!(
        "# {name}\n\nA moa strategy plugin (contract `moa:strategy@0.2.0`, in `wit/strategy.wit`).\n\nBuild and check it:\n\n```sh\n{build}\n```\n\nUse it in a recipe:\n\n```toml\n[aggregator]\nmodel = \"provider:model\"\nstrategy = {{ plugin = \"path/to/{wasm}\", params = {{ k = 2 }}, on_error = \"synthesize\" }}\n```\n"
    )
}

/// A plugin name: a lowercase letter, then lowercase letters, digits and single hyphens;
/// at most 64 bytes. It names a folder, a crate and a package, so nothing else.
fn valid(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.len() <= 64
}

/// Writes the plugin `name` in `lang` into `dir/name`, which must not exist yet.
pub(crate) fn plugin_new(name: &str, lang: Lang, dir: &Path) -> ExitCode {
    if !valid(name) {
        return bad(&format!(
            "plugin name {name:?}: use a lowercase letter, then lowercase letters, digits and single hyphens (at most 64)"
        ));
    }
    let root = dir.join(name);
    // Created here, not found: a folder that exists (or appears meanwhile) is never written into.
    match std::fs::create_dir(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return bad(&format!("{} already exists; moa plugin new writes only a new folder", root.display()));
        }
        Err(e) => return bad(&format!("creating {}: {e}", root.display())),
    }
    if let Err(e) = write_all(&root, &files(name, lang)) {
        return bad(&format!("writing {}: {e}", root.display()));
    }
    println!("wrote {} ({lang:?}); build and check it there with:\n\n{}", root.display(), build(name, lang));
    ExitCode::SUCCESS
}

fn write_all(root: &Path, files: &[(&str, String)]) -> std::io::Result<()> {
    for (path, contents) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain() {
        for ok in ["shortest", "top-k2", "a"] {
            assert!(valid(ok), "{ok}");
        }
        for bad in ["", "../x", "Top", "2k", "a--b", "a-", "a_b", "a b", &"x".repeat(65)] {
            assert!(!valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn each_template_is_the_example_renamed_with_the_contract_beside_it() {
        for (lang, source, named) in [
            (Lang::Rust, "src/lib.rs", "name: \"shortest\".into()"),
            (Lang::Python, "app.py", "name=\"shortest\""),
            (Lang::Js, "strategy.js", "name: \"shortest\""),
        ] {
            let files = files("shortest", lang);
            let get = |p: &str| files.iter().find(|(f, _)| *f == p).map(|(_, c)| c.clone()).expect(p);
            let code = get(source);
            assert!(
                code.starts_with("//! shortest: ")
                    || code.starts_with("\"\"\"shortest: ")
                    || code.starts_with("// shortest: "),
                "{lang:?}: {code}"
            );
            assert!(code.contains(named), "{lang:?}: {code}");
            assert!(code.contains("kept the"), "{lang:?}: the body is kept: {code}");
            assert!(!code.contains("a test holds"), "{lang:?}: the example's header is replaced: {code}");
            assert!(get("wit/strategy.wit").contains("package moa:strategy@0.2.0;"));
            assert!(get("README.md").contains("moa plugin check"), "{lang:?}");
            assert!(files.iter().all(|(_, c)| !c.contains("{name}")), "{lang:?}");
        }
        assert!(files("x", Lang::Rust).iter().any(|(f, c)| *f == "src/lib.rs" && c.contains("path: \"wit\"")));
        // The recipe line names the file each builder writes.
        let readme = |lang| files("my-pick", lang).into_iter().find(|(f, _)| *f == "README.md").map(|(_, c)| c);
        assert!(readme(Lang::Rust).is_some_and(|r| r.contains("path/to/my_pick.wasm")));
        assert!(readme(Lang::Js).is_some_and(|r| r.contains("path/to/my-pick.wasm")));
    }
}
