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
}

/// The files of a new plugin in `lang`, as (path in its folder, contents).
fn files(name: &str, lang: Lang) -> Vec<(&'static str, String)> {
    let fill = |t: &str| t.replace("{name}", name);
    let mut out = vec![("wit/strategy.wit", WIT.to_owned())];
    match lang {
        Lang::Rust => {
            out.push(("Cargo.toml", fill(include_str!("templates/rust/Cargo.toml"))));
            out.push(("src/lib.rs", fill(include_str!("templates/rust/lib.rs"))));
            out.push(("README.md", readme(name, &build(name, lang))));
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
    }
}

fn readme(name: &str, build: &str) -> String {
    format!(
        "# {name}\n\nA moa strategy plugin (contract `moa:strategy@0.2.0`, in `wit/strategy.wit`).\n\nBuild and check it:\n\n```sh\n{build}\n```\n\nUse it in a recipe:\n\n```toml\n[aggregator]\nmodel = \"provider:model\"\nstrategy = {{ plugin = \"path/to/{name}.wasm\", params = {{ k = 2 }}, on_error = \"synthesize\" }}\n```\n"
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
    if root.exists() {
        return bad(&format!("{} already exists; moa plugin new writes only a new folder", root.display()));
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
    fn the_template_is_filled_and_carries_the_contract() {
        let files = files("shortest", Lang::Rust);
        let get = |p: &str| files.iter().find(|(f, _)| *f == p).map(|(_, c)| c.clone()).expect(p);
        assert!(get("Cargo.toml").contains("name = \"shortest\""));
        assert!(get("src/lib.rs").contains("name: \"shortest\".into()"));
        assert!(get("wit/strategy.wit").contains("package moa:strategy@0.2.0;"));
        assert!(get("README.md").contains("target/wasm32-wasip2/release/shortest.wasm"));
        assert!(files.iter().all(|(_, c)| !c.contains("{name}")));
    }
}
