//! A hostile plugin for the host's tests: `describe` returns a 48 MiB description, which a
//! host that copies before it counts pays for in full.

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info};

struct BigDescribe;

impl Guest for BigDescribe {
    fn describe() -> Info {
        Info {
            name: "big-describe".into(),
            version: "0.1.0".into(),
            description: "d".repeat(48 << 20),
            params: "{}".into(),
        }
    }

    fn decide(_ctx: Context) -> Result<Decision, String> {
        Ok(Decision::Answer("unreachable: describe fails first".into()))
    }
}

export!(BigDescribe);
