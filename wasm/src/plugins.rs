//! Strategy plugins in the browser: `options.plugins` maps a recipe's `plugin` names to
//! plugins loaded by `loadPlugin` (`plugins.js`, which runs each in a Worker). The
//! engine asks for each decision ([`Action::Decide`](moa_core::Action::Decide)); this
//! module hands it to the plugin's `decide` and feeds the answer back. What a reply may
//! be is checked in the core, as natively.

use moa_core::quote::Quoted;
use moa_core::recipe::StrategySpec;
use moa_core::strategy::plugin::{self, Contract, External, PluginRequest};
use moa_core::strategy::{Builtins, Resolver, Strategy, StrategyError};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The loaded plugins a run may use, by the name recipes give them.
pub struct Loaded {
    plugins: Vec<(String, JsValue, Result<Contract, String>)>,
}

impl Loaded {
    /// `options.plugins`: an object of loaded plugins, or nothing.
    pub fn from_options(value: &JsValue) -> Result<Loaded, JsError> {
        let mut plugins = Vec::new();
        if value.is_undefined() || value.is_null() {
            return Ok(Loaded { plugins });
        }
        // Any object, a null-prototype one too (which `instanceof Object` would refuse).
        if !value.is_object() {
            return Err(JsError::new("options.plugins: an object of loaded plugins by name"));
        }
        let object: &js_sys::Object = value.unchecked_ref();
        for entry in js_sys::Object::entries(object).iter() {
            let entry: js_sys::Array = entry.unchecked_into();
            let name = entry.get(0).as_string().unwrap_or_default();
            let plugin = entry.get(1);
            let contract = js_sys::Reflect::get(&plugin, &"contract".into()).ok().and_then(|v| v.as_string());
            let contract = match contract {
                Some(v) => Contract::from_version(&v).ok_or_else(|| {
                    let supported: Vec<&str> = Contract::ALL.iter().map(|c| c.version()).collect();
                    format!(
                        "implements moa:strategy@{v}, but this module supports moa:strategy@{}",
                        supported.join(", @")
                    )
                }),
                None => {
                    return Err(JsError::new(&format!(
                        "options.plugins[{}]: not a loaded plugin; load it with loadPlugin(url or file) from moa-wasm/plugins.js",
                        Quoted(&name)
                    )));
                }
            };
            plugins.push((name, plugin, contract));
        }
        Ok(Loaded { plugins })
    }

    fn find(&self, name: &str) -> Option<&(String, JsValue, Result<Contract, String>)> {
        self.plugins.iter().find(|(n, ..)| n == name)
    }

    /// Runs one decision: the plugin's answer, or why it has none.
    pub async fn decide(&self, request: &PluginRequest) -> Result<String, String> {
        let Some((_, plugin, _)) = self.find(&request.plugin) else {
            return Err("is not loaded".into());
        };
        let args = js_sys::Object::new();
        let set = |k: &str, v: JsValue| js_sys::Reflect::set(&args, &k.into(), &v);
        let _ = set("contract", request.contract.version().into());
        let _ = set("context", request.context.as_str().into());
        let _ = set("timeoutMs", (request.timeout_ms as f64).into());
        let _ = set("memoryMib", request.memory_mib.into());
        let _ = set("maxOutputKib", request.max_output_kib.into());
        let decide = js_sys::Reflect::get(plugin, &"decide".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or("has no decide function: load it with loadPlugin")?;
        let promise = decide.call1(plugin, &args).map_err(|e| message(&e))?;
        let answer = JsFuture::from(js_sys::Promise::resolve(&promise)).await.map_err(|e| message(&e))?;
        answer.as_string().ok_or_else(|| "answered with something other than text".into())
    }
}

fn message(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "failed".into())
}

impl Resolver for Loaded {
    fn resolve(&self, spec: &StrategySpec) -> Result<Box<dyn Strategy>, StrategyError> {
        let Some(name) = &spec.plugin else { return Builtins.resolve(spec) };
        let error = |message: String| StrategyError { strategy: name.clone(), message };
        match self.find(name) {
            None => Err(error(format!(
                "is not loaded: pass it in options.plugins, as {{ {}: await loadPlugin(url or file) }}",
                Quoted(name)
            ))),
            Some((_, _, Err(why))) => Err(error(why.clone())),
            Some((_, _, Ok(contract))) => Ok(Box::new(External::new(spec, *contract))),
        }
    }
}

/// Checks a component from the names jco found in it: it imports only what the contract
/// grants, and implements a contract version this module runs. The version, or an
/// `Error` saying what is wrong. `plugins.js` asks before anything of it runs.
#[wasm_bindgen(js_name = checkPlugin)]
pub fn check_plugin(imports: Vec<String>, exports: Vec<String>) -> Result<String, JsError> {
    plugin::check_imports(imports.into_iter()).map_err(|e| JsError::new(&e))?;
    Contract::find(&exports, &Contract::ALL).map(|c| c.version().to_owned()).map_err(|e| JsError::new(&e))
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Rules {
    max_bytes: u64,
    smaller: &'static str,
}

/// The limits `plugins.js` holds before a plugin runs: `{ maxBytes, smaller }` (the
/// largest component read, and what to do about a larger one), the native host's.
#[wasm_bindgen(js_name = pluginRules, unchecked_return_type = "{ maxBytes: number; smaller: string }")]
pub fn plugin_rules() -> Result<JsValue, JsError> {
    crate::to_js(&Rules { max_bytes: plugin::MAX_FILE, smaller: plugin::SMALLER })
}
