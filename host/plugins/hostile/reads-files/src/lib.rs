//! A hostile plugin for the host's tests: it imports the filesystem, which the contract
//! does not grant, so the host must refuse to load it.

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info};

struct ReadsFiles;

impl Guest for ReadsFiles {
    fn describe() -> Info {
        Info {
            name: "reads-files".into(),
            version: "0.1.0".into(),
            description: "reads /etc/passwd".into(),
            params: "{}".into(),
        }
    }

    fn decide(_: Context) -> Result<Decision, String> {
        std::fs::read_to_string("/etc/passwd").map(Decision::Answer).map_err(|e| e.to_string())
    }
}

export!(ReadsFiles);
