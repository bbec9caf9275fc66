//! `moa local`: the local models' servers (provision, start, stop, status).

use super::common::{BAD_INPUT, FAILED};
use clap::Subcommand;
use moa_host::local::{self, Cache, Health};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum LocalCommand {
    /// Install the llama.cpp server and fetch the weights (default: every model).
    Provision {
        /// smollm, qwen-0.5b, qwen-1.5b.
        models: Vec<String>,
    },
    /// Start the models' servers on 127.0.0.1 unless they run (default: every model).
    Start {
        /// smollm, qwen-0.5b, qwen-1.5b.
        models: Vec<String>,
    },
    /// Stop the servers `moa local start` started (default: every model).
    Stop {
        /// smollm, qwen-0.5b, qwen-1.5b.
        models: Vec<String>,
    },
    /// What is provisioned and running.
    Status,
    /// Exit 0 if the model's server answers on its port, else 1.
    Running {
        /// smollm, qwen-0.5b, qwen-1.5b.
        model: String,
    },
}

fn say(line: &str) {
    eprintln!("moa local: {line}");
}

pub(crate) fn local(cmd: LocalCommand) -> ExitCode {
    let cache = Cache::from_env();
    let result = match cmd {
        LocalCommand::Provision { models } => {
            local::select(&models).and_then(|ms| local::provision(&cache, &ms, &say)).map(|_| say("provisioned"))
        }
        LocalCommand::Start { models } => {
            local::select(&models).and_then(|ms| local::start(&cache, &ms, &say)).map(|_| ())
        }
        LocalCommand::Stop { models } => {
            local::select(&models).and_then(|ms| local::stop(&cache, &ms)).map(|stopped| {
                for m in stopped {
                    say(&format!("stopped {}", m.name));
                }
            })
        }
        LocalCommand::Status => local::status(&cache).map(|lines| {
            for l in lines {
                println!("{l}");
            }
        }),
        LocalCommand::Running { model } => {
            return match local::select(&[model]).and_then(|m| m[0].port()) {
                Ok(port) if local::healthy(port) == Health::Ok => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(FAILED),
                Err(e) => {
                    say(&e.to_string());
                    ExitCode::from(BAD_INPUT)
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ local::LocalError::UnknownModel(_)) | Err(e @ local::LocalError::BadPort { .. }) => {
            say(&e.to_string());
            ExitCode::from(BAD_INPUT)
        }
        Err(e) => {
            say(&e.to_string());
            ExitCode::from(FAILED)
        }
    }
}
