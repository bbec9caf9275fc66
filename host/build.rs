//! Builds the web page into the binary: every file of `www/` (and `www/pkg/`, the browser
//! module, when `scripts/build-wasm` has built it) becomes a static `(path, bytes)` entry
//! that `moa serve` serves at `/` from wherever it is started.

use std::path::{Path, PathBuf};

/// The page's files under `dir`, as paths relative to `root`; screenshots are the
/// README's, not the page's.
fn files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with('.') || name.starts_with("screenshot") {
            continue;
        }
        if path.is_dir() {
            files(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_path_buf());
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let www = manifest.parent().expect("the workspace").join("www");
    println!("cargo:rerun-if-changed={}", www.display());
    let mut found = Vec::new();
    files(&www, &www, &mut found);
    let mut table = String::from(
        "/// The web page's files, `(path under www/, bytes)`.\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for rel in &found {
        let web = rel.to_string_lossy().replace('\\', "/");
        let abs = www.join(rel);
        table.push_str(&format!("    ({web:?}, include_bytes!({:?})),\n", abs.display().to_string()));
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("www.rs");
    std::fs::write(&out, table).expect("writes the page's table");
}
