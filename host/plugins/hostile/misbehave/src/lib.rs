//! A hostile plugin for the host's tests: `params.mode` picks the misbehaviour.
//! loop | bomb | recursion | huge | panic | nonsense | dupkeep | control | alias | bigerror |
//! remember | ok

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info, Message, Role};
use std::hint::black_box;

struct Misbehave;

/// What `remember` keeps for the next decision: in static memory and on the heap, where
/// it would survive if the host let an instance's memory outlive its decision.
static SEEN: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

fn recurse(n: u64) -> u64 {
    let pad = black_box([n; 64]);
    if black_box(n) == u64::MAX {
        return pad[0];
    }
    recurse(n + 1) + pad[1]
}

impl Guest for Misbehave {
    fn describe() -> Info {
        Info {
            name: "misbehave".into(),
            version: "0.1.0".into(),
            description: "hostile test plugin".into(),
            params: "{\"mode\": \"...\"}".into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decision, String> {
        let params: serde_json::Value = serde_json::from_str(&ctx.params).map_err(|e| e.to_string())?;
        match params.get("mode").and_then(|m| m.as_str()).unwrap_or("ok") {
            "loop" => {
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(black_box(vec![1u8; 1 << 20]));
                }
            }
            "recursion" => Ok(Decision::Answer(recurse(0).to_string())),
            "huge" => Ok(Decision::Answer("x".repeat(8 << 20))),
            "panic" => panic!("this plugin panics on purpose"),
            "nonsense" => Ok(Decision::Keep(vec![99, 0, 0])),
            "fail" => Err("declined to decide".into()),
            // One small answer, kept 262,144 times: output that multiplies in the host.
            "dupkeep" => Ok(Decision::Keep(vec![0; 262_144])),
            // Terminal control sequences and a forged log line in an error.
            "control" => Err("\u{1b}]0;pwned\u{7}\u{1b}[2J\nmoa: done in 0.1s (forged)".into()),
            // Messages for the next agents that carry control sequences (set the title, ring,
            // clear the screen, return to the line's start) for whoever prints them.
            "controlmsg" => Ok(Decision::Messages(vec![Message {
                role: Role::User,
                content: "\u{1b}]0;pwned\u{7}\u{1b}[2J\rforged\nsecond line".into(),
            }])),
            // `n` messages whose contents all alias one byte: small in the plugin's memory,
            // but a host that copies each into a string of its own pays many times that.
            "alias" => {
                let n = params.get("n").and_then(|n| n.as_u64()).unwrap_or(4_000_000) as usize;
                let byte: &'static mut str = String::from("x").leak();
                let ptr = byte.as_mut_ptr();
                // SAFETY: deliberately not safe — every String shares one allocation. The
                // host copies them before this instance is thrown away; what the guest's
                // own post-return then frees twice only hurts this (hostile) guest.
                let messages = (0..n)
                    .map(|_| Message { role: Role::User, content: unsafe { String::from_raw_parts(ptr, 1, 1) } })
                    .collect();
                Ok(Decision::Messages(messages))
            }
            // An error message of 48 MiB.
            "bigerror" => Err("e".repeat(48 << 20)),
            "remember" => {
                let mut seen = SEEN.lock().map_err(|_| "poisoned".to_string())?;
                let before = String::from_utf8_lossy(&seen).into_owned();
                let now: Vec<&str> = ctx.proposals.iter().map(|p| p.text.as_str()).collect();
                // Large enough to reach past the pages a freed slot zeroes first.
                *seen = now.join("|").repeat(4096).into_bytes();
                Ok(Decision::Answer(format!("remembered: {}", &before[..before.len().min(64)])))
            }
            _ => Ok(Decision::Answer(format!("ok: {} proposals", ctx.proposals.len()))),
        }
    }
}

export!(Misbehave);
