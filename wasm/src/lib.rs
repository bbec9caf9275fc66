//! # moa-wasm
//!
//! Mixture-of-Agents in a web page or any JavaScript app, with no server of ours: the
//! `moa-core` engine, driven by `fetch` with streaming bodies. Keys come from the caller
//! at run time and go only to their own provider.
//!
//! ```js
//! import init, { Moa, presets, validateRecipe } from "moa-wasm";
//! await init();
//! const moa = new Moa(recipe);
//! const outcome = await moa.run("Hello?", { onEvent: (e) => console.log(e), signal, keys: { together: "..." } });
//! ```

mod plugins;
mod transport;

pub use plugins::{check_plugin, plugin_rules};

use moa_core::input;
use moa_core::named::Named;
use moa_core::recipe::{self, PRESETS};
use moa_core::{Message, Recipe, RecipeError, ResponseFormat, Run, RunError, RunOptions, ToolChoice, Tools};
use serde::Serialize;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("types.d.ts");

#[wasm_bindgen]
extern "C" {
    /// `RunOptions` in the TypeScript declarations (an optional argument).
    #[wasm_bindgen(typescript_type = "RunOptions")]
    pub type JsRunOptions;
}

/// Hands a value to JavaScript as the plain object its JSON text makes, so events look
/// exactly like the CLI's JSON lines. Through `JSON.parse` rather than
/// `serde-wasm-bindgen`: the JSON writer is in the module anyway, and the second
/// serializer cost 5 KB of it gzipped.
fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsError> {
    let text = serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("the module wrote JSON its host could not read"))
}

/// Reads a JavaScript value through its JSON text with one of `moa_core::input`'s readers
/// (smaller here than serde's derived ones); `what` is the path its errors start from.
fn from_js<T>(
    value: &JsValue,
    what: &str,
    read: fn(&serde_json::Value, &str) -> Result<T, moa_core::recipe::FieldError>,
) -> Result<T, JsError> {
    let text = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| JsError::new(&format!("{what}: not representable as JSON")))?;
    let value = moa_core::json_text::parse(&text).map_err(|e| JsError::new(&format!("{what}: {e}")))?;
    read(&value, what).map_err(|e| JsError::new(&e.to_string()))
}

fn parse_recipe(value: &JsValue) -> Result<Recipe, RecipeError> {
    let text = match value.as_string() {
        Some(s) => s,
        None => js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_default(),
    };
    Recipe::from_json(&text)
}

/// A recipe ready to run.
#[wasm_bindgen]
pub struct Moa {
    recipe: Recipe,
}

#[wasm_bindgen]
impl Moa {
    /// Makes a runner from a recipe (an object or its JSON text). Throws an `Error` whose
    /// message lists every problem with its field path.
    #[wasm_bindgen(constructor)]
    pub fn new(#[wasm_bindgen(unchecked_param_type = "Recipe | string")] recipe: JsValue) -> Result<Moa, JsError> {
        parse_recipe(&recipe).map(|recipe| Moa { recipe }).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The recipe, as a plain object.
    #[wasm_bindgen(getter, unchecked_return_type = "Recipe")]
    pub fn recipe(&self) -> Result<JsValue, JsError> {
        to_js(&self.recipe)
    }

    /// Runs the recipe on a prompt (a string) or a conversation (an array of messages).
    /// Resolves to the outcome; rejects with an `Error` saying what went wrong. Aborting
    /// `options.signal` cancels every request in flight.
    #[wasm_bindgen(unchecked_return_type = "Promise<Answered>")]
    pub fn run(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Message[]")] input: JsValue,
        options: Option<JsRunOptions>,
    ) -> js_sys::Promise {
        let recipe = self.recipe.clone();
        let options: JsValue = options.map_or(JsValue::UNDEFINED, Into::into);
        wasm_bindgen_futures::future_to_promise(async move { run(recipe, input, options).await.map_err(JsValue::from) })
    }
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    if obj.is_object() {
        js_sys::Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

async fn run(recipe: Recipe, input: JsValue, options: JsValue) -> Result<JsValue, JsError> {
    let conversation: Vec<Message> = match input.as_string() {
        Some(prompt) => vec![Message::user(prompt)],
        None => from_js(&input, "messages", input::messages)?,
    };
    let keys_value = get(&options, "keys");
    let keys: Named<String> = if keys_value.is_undefined() || keys_value.is_null() {
        Named::new()
    } else {
        from_js(&keys_value, "keys", input::keys)?
    };
    let seed = get(&options, "seed").as_f64().unwrap_or(0.0) as u64;
    let (tools, response_format) = tools_and_format(&options)?;
    let plugins = std::rc::Rc::new(plugins::Loaded::from_options(&get(&options, "plugins"))?);
    let on_event = get(&options, "onEvent").dyn_into::<js_sys::Function>().ok();
    let signal = get(&options, "signal").dyn_into::<web_sys::AbortSignal>().ok();
    let mut run = Run::with_options(
        &recipe,
        conversation,
        transport::now(),
        RunOptions { seed, keys, tools, response_format, resolver: &*plugins, ..RunOptions::default() },
    )
    .map_err(|e| JsError::new(&e.to_string()))?;
    let outcome = transport::drive(&mut run, signal, plugins.clone(), |event| {
        if let (Some(f), Ok(v)) = (&on_event, to_js(event)) {
            // A throwing callback must not stop the run.
            let _ = f.call1(&JsValue::NULL, &v);
        }
    })
    .await;
    match &outcome.answer {
        Ok(_) => to_js(&outcome),
        Err(RunError::Cancelled) => Err(JsError::new("the run was cancelled")),
        Err(e) => Err(JsError::new(&e.to_string())),
    }
}

/// `options.tools`, `toolChoice`, `parallelToolCalls` and `responseFormat`.
fn tools_and_format(options: &JsValue) -> Result<(Option<Tools>, ResponseFormat), JsError> {
    let some = |v: &JsValue| !v.is_undefined() && !v.is_null();
    let list = get(options, "tools");
    let tools = if some(&list) {
        let tools = from_js(&list, "tools", input::tools)?;
        let choice = get(options, "toolChoice");
        let choice: ToolChoice =
            if some(&choice) { from_js(&choice, "toolChoice", input::tool_choice)? } else { ToolChoice::Auto };
        let parallel = get(options, "parallelToolCalls").as_bool().unwrap_or(true);
        Some(Tools { tools, choice, parallel })
    } else {
        None
    };
    let format = get(options, "responseFormat");
    let format =
        if some(&format) { from_js(&format, "responseFormat", input::response_format)? } else { ResponseFormat::Text };
    Ok((tools, format))
}

#[derive(Serialize)]
struct Preset {
    name: &'static str,
    description: &'static str,
    recipe: Recipe,
}

/// The built-in recipes: `[{ name, description, recipe }]`.
#[wasm_bindgen(unchecked_return_type = "Preset[]")]
pub fn presets() -> Result<JsValue, JsError> {
    let list: Vec<Preset> = PRESETS
        .iter()
        .filter_map(|(name, description)| recipe::preset(name).map(|recipe| Preset { name, description, recipe }))
        .collect();
    to_js(&list)
}

#[derive(Serialize)]
struct Builtin {
    name: &'static str,
    summary: &'static str,
    params: &'static [&'static str],
}

/// The built-in strategies, for menus: `[{ name, summary, params }]`.
#[wasm_bindgen(unchecked_return_type = "Builtin[]")]
pub fn strategies() -> Result<JsValue, JsError> {
    let list: Vec<Builtin> = moa_core::strategy::StrategyKind::ALL
        .into_iter()
        .map(|k| Builtin { name: k.name(), summary: k.summary(), params: k.params() })
        .collect();
    to_js(&list)
}

#[derive(Serialize)]
struct FieldProblem {
    path: String,
    message: String,
}

#[derive(Serialize)]
struct Validation {
    ok: bool,
    errors: Vec<FieldProblem>,
}

/// Checks a recipe without running it: `{ ok, errors: [{ path, message }] }`, with the
/// same field paths and reasons as the command line.
#[wasm_bindgen(js_name = validateRecipe, unchecked_return_type = "Validation")]
pub fn validate_recipe(
    #[wasm_bindgen(unchecked_param_type = "Recipe | string")] recipe: JsValue,
) -> Result<JsValue, JsError> {
    let errors = match parse_recipe(&recipe) {
        Ok(_) => vec![],
        Err(RecipeError::Parse { path, message, .. }) => vec![FieldProblem { path, message }],
        Err(RecipeError::Invalid(list)) => {
            list.into_iter().map(|e| FieldProblem { path: e.path, message: e.message }).collect()
        }
    };
    to_js(&Validation { ok: errors.is_empty(), errors })
}
