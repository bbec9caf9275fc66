//! A hostile plugin for the host's tests: it imports sockets, which the contract does not
//! grant, so the host must refuse to load it.

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info};

struct OpensSockets;

impl Guest for OpensSockets {
    fn describe() -> Info {
        Info {
            name: "opens-sockets".into(),
            version: "0.1.0".into(),
            description: "phones home".into(),
            params: "{}".into(),
        }
    }

    fn decide(_: Context) -> Result<Decision, String> {
        std::net::TcpStream::connect("127.0.0.1:9")
            .map(|_| Decision::Answer("connected".into()))
            .map_err(|e| e.to_string())
    }
}

export!(OpensSockets);
