//! Tests that need what `scripts/test` installs (llama.cpp's server with the local models'
//! weights; Python with the `openai` client, PyYAML and `alpaca_eval`) run when it asks for
//! them, so `cargo test --workspace` passes on a machine with only Rust. Asked, they run
//! and fail loudly if the thing is missing.

/// What a test needs beyond Rust.
#[derive(Clone, Copy, Debug)]
pub enum Needs {
    /// llama.cpp's server and the local models' weights (`moa local provision`).
    Llama,
    /// Python with the packages `scripts/test` installs in `~/.cache/moa`.
    Python,
    /// The plugin builders for Python and JavaScript: componentize-py in that Python, and
    /// componentize-qjs in `tests/browser/node_modules`.
    Componentize,
}

/// Whether the test that needs `needs` runs: when `scripts/test` (or a developer) set its
/// variable. When not, it says on stderr, uncaptured, which variable would run it.
pub fn wanted(needs: Needs) -> bool {
    let (var, what) = match needs {
        Needs::Llama => ("MOA_TEST_LLAMA", "llama.cpp's server and the local models (moa local provision)"),
        Needs::Python => ("MOA_TEST_PYTHON", "Python with the openai client, PyYAML and alpaca_eval"),
        Needs::Componentize => ("MOA_TEST_COMPONENTIZE", "componentize-py and componentize-qjs (the plugin builders)"),
    };
    if std::env::var_os(var).is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    // Straight to the process's stderr, past the test harness's capture: a test that did
    // not run must not pass unseen.
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "not run: this test needs {what}; scripts/test installs it and sets {var}=1");
    false
}

/// The Python that `scripts/test` installs the official clients into (`~/.cache/moa/venv`),
/// or `$MOA_PYTHON`.
pub fn python() -> String {
    std::env::var("MOA_PYTHON")
        .unwrap_or_else(|_| format!("{}/.cache/moa/venv/bin/python", std::env::var("HOME").unwrap_or_default()))
}
