//! The browser module's TypeScript declarations (`wasm/src/types.d.ts`), generated from
//! the Rust types by ts-rs in this test: the checked-in file must be what they generate,
//! so it cannot drift from what the module sends. `MOA_BLESS=1 cargo test -p moa-core
//! ts::` rewrites it after a change.

use crate::engine::{CallReport, ErrorKind, LayerReport, Outcome};
use crate::event::{CallId, Event, Place};
use crate::recipe::{Agent, Aggregator, Layer, Policy, Provider, Quorum, Recipe, Staircase};
use crate::usage::{Price, Usage};
use crate::vocab::message::{Message, Role};
use crate::vocab::tools::{
    FunctionCall, JsonSchemaFormat, ResponseFormat, Tool, ToolCall, ToolChoice, ToolPolicy, Tools,
};
use crate::vocab::{OnError, ProviderKind, StrategySpec};
use ts_rs::{Config, TS};

/// How an outcome's answer is written: two fields, one of them null.
#[derive(ts_rs::TS)]
#[allow(dead_code)]
pub(crate) struct AnswerOrError {
    /// The answer, when the run produced one.
    answer: Option<String>,
    /// Why it did not.
    error: Option<String>,
}

/// What the module declares besides the Rust types: its JavaScript-side options and the
/// shapes of its own small functions.
const MODULE_ONLY: &str = r#"/** What `Moa.run` resolves to: it rejects when the run fails, so there is an answer. */
export type Answered = Outcome & { answer: string; error: null };

export interface RunOptions {
  /** Called with every event as it happens. */
  onEvent?: (event: MoaEvent) => void;
  /** Aborting it cancels the run and every request in flight. */
  signal?: AbortSignal;
  /** API keys by provider name; each is sent only to its own provider. */
  keys?: Record<string, string>;
  /** Seeds retry jitter. */
  seed?: number;
  /** Tools the answer may call (the recipe's `tool_policy` says how the mixture uses them). */
  tools?: Tool[];
  /** `"auto"` (default), `"none"`, `"required"`, or `{ function: "name" }`. */
  toolChoice?: ToolChoice;
  /** Whether several calls may come at once (default true). */
  parallelToolCalls?: boolean;
  /** The final answer's shape, checked before it resolves. */
  responseFormat?: ResponseFormat;
  /**
   * Strategy plugins the recipe names (`strategy: { plugin: "NAME" }`), by that name:
   * each loaded with `loadPlugin` from `moa-wasm/plugins.js`.
   */
  plugins?: Record<string, LoadedPlugin>;
}

/** A strategy plugin `loadPlugin` loaded (`moa-wasm/plugins.js`): it runs in a Worker. */
export interface LoadedPlugin {
  /** The name recipes give it. */
  readonly name: string;
  /** The contract version it implements: "0.2.0" or "0.1.0". */
  readonly contract: string;
  /** Its size in bytes. */
  readonly size: number;
  /** What it says of itself. */
  readonly info: { name: string; version: string; description: string; params: string } | null;
  /** Stops its Workers. */
  close(): void;
}

/** A built-in recipe. */
export interface Preset { name: string; description: string; recipe: Recipe; }

/** A built-in strategy: its name in recipes, a line on what it does, the params it takes. */
export interface Builtin { name: string; summary: string; params: string[]; }

/** What `validateRecipe` says. */
export interface Validation { ok: boolean; errors: { path: string; message: string }[]; }
"#;

fn decl<T: TS>(cfg: &Config) -> String {
    format!("export {}\n", T::decl(cfg))
}

/// The whole file.
fn generate() -> String {
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "// Generated from moa-core's Rust types by `MOA_BLESS=1 cargo test -p moa-core --lib the_checked_in_declarations`\n\
         // (core/src/ts.rs); a test fails when this file differs. Do not edit by hand.\n\n",
    );
    for d in [
        decl::<Role>(&cfg),
        decl::<FunctionCall>(&cfg),
        decl::<ToolCall>(&cfg),
        decl::<Message>(&cfg),
        decl::<Tool>(&cfg),
        decl::<ToolChoice>(&cfg),
        decl::<Tools>(&cfg),
        decl::<ToolPolicy>(&cfg),
        decl::<JsonSchemaFormat>(&cfg),
        decl::<ResponseFormat>(&cfg),
        decl::<Usage>(&cfg),
        decl::<Price>(&cfg),
        decl::<ProviderKind>(&cfg),
        decl::<Provider>(&cfg),
        decl::<OnError>(&cfg),
        decl::<StrategySpec>(&cfg),
        decl::<Agent>(&cfg),
        decl::<Quorum>(&cfg),
        decl::<Layer>(&cfg),
        decl::<Staircase>(&cfg),
        decl::<Aggregator>(&cfg),
        decl::<Policy>(&cfg),
        decl::<Recipe>(&cfg),
        decl::<CallId>(&cfg),
        decl::<Place>(&cfg),
        decl::<ErrorKind>(&cfg),
        decl::<Event>(&cfg),
        decl::<CallReport>(&cfg),
        decl::<LayerReport>(&cfg),
        decl::<AnswerOrError>(&cfg),
        decl::<Outcome>(&cfg).replacen("type Outcome = ", "type Outcome = AnswerOrError & ", 1),
    ] {
        out.push_str(&d);
        out.push('\n');
    }
    out.push_str(MODULE_ONLY);
    out
}

#[test]
// A test's own switch, read only here: the core itself never reads the environment.
#[allow(clippy::disallowed_methods)]
fn the_checked_in_declarations_are_what_the_rust_types_generate() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wasm/src/types.d.ts");
    let generated = generate();
    if std::env::var_os("MOA_BLESS").is_some() {
        std::fs::write(path, &generated).expect("write types.d.ts");
    }
    let checked_in = std::fs::read_to_string(path).expect("read types.d.ts");
    assert!(
        checked_in == generated,
        "wasm/src/types.d.ts differs from what the Rust types generate: run `MOA_BLESS=1 cargo test -p moa-core --lib the_checked_in_declarations` and commit it"
    );
}
