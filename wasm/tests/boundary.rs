//! The module's boundary, in real headless Chromium: recipes and errors cross as plain JS
//! values and real `Error`s, and a run drives real `fetch` calls.
#![cfg(target_arch = "wasm32")]

use moa_wasm::{Moa, presets, validate_recipe};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn js(text: &str) -> JsValue {
    js_sys::JSON::parse(text).expect("JSON")
}

fn get(v: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(v, &key.into()).expect("property")
}

const DOWN: &str = r#"{"providers": {"down": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
  "layers": [{"agents": ["down:a", "down:b"]}], "aggregator": "down:a", "policy": {"retries": 0}}"#;

#[wasm_bindgen_test]
fn presets_are_plain_objects() {
    let list: js_sys::Array = presets().expect("presets").dyn_into().expect("array");
    assert_eq!(list.length() as usize, moa_core::recipe::PRESETS.len());
    let first = list.get(0);
    assert_eq!(get(&first, "name").as_string().as_deref(), Some("moa"));
    let layers: js_sys::Array = get(&get(&first, "recipe"), "layers").dyn_into().expect("layers array");
    assert_eq!(layers.length(), 2);
}

#[wasm_bindgen_test]
fn validation_gives_the_clis_field_paths() {
    let bad = js(r#"{"providers": {"together": {"kind": "openai", "base_url": "https://x/v1"}},
        "layers": [{"agents": ["togther:m"]}], "aggregator": "together:m"}"#);
    let v = validate_recipe(bad.clone()).expect("validates");
    assert_eq!(get(&v, "ok").as_bool(), Some(false));
    let errors: js_sys::Array = get(&v, "errors").dyn_into().expect("array");
    let e = errors.get(0);
    assert_eq!(get(&e, "path").as_string().as_deref(), Some("layers[0].agents[0]"));
    assert_eq!(get(&e, "message").as_string().as_deref(), Some(r#"unknown provider "togther" (known: together)"#));
    assert_eq!(get(&validate_recipe(js(DOWN)).expect("validates"), "ok").as_bool(), Some(true));
    // A JSON string works too, and its parse errors carry the path.
    let v = validate_recipe(JsValue::from_str(r#"{"providers": {"x": {"kind": "opneai", "base_url": "http://x"}}}"#))
        .expect("ok");
    let e = js_sys::Array::from(&get(&v, "errors")).get(0);
    assert_eq!(get(&e, "path").as_string().as_deref(), Some("providers.x.kind"));
    // What would fail at run time fails here, at its path: the page's "Add provider"
    // URL, a misspelt built-in parameter, a timeout beyond any timer.
    let v = validate_recipe(js(r#"{"providers": {"p": {"kind": "openai", "base_url": "https://"}},
        "layers": [{"agents": ["p:m"]}, {"agents": ["p:m"], "strategy": {"name": "vote", "params": {"treshold": 0.5}}}],
        "aggregator": "p:m", "policy": {"timeout_secs": 1e20}}"#))
    .expect("validates");
    let paths: Vec<String> =
        js_sys::Array::from(&get(&v, "errors")).iter().map(|e| get(&e, "path").as_string().expect("path")).collect();
    assert_eq!(paths, ["providers.p.base_url", "layers[1].strategy.params", "policy.timeout_secs"]);
    // The constructor throws a real Error with the same words.
    let err = Moa::new(bad).err().expect("throws");
    let err: JsValue = err.into();
    let err: js_sys::Error = err.dyn_into().expect("an Error");
    assert!(String::from(err.message()).contains("layers[0].agents[0]: unknown provider"));
}

#[wasm_bindgen_test]
async fn a_run_against_a_provider_that_is_down_rejects_with_every_failure() {
    let moa = Moa::new(js(DOWN)).expect("valid");
    let events = js_sys::Array::new();
    let sink = events.clone();
    let on_event = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
        sink.push(&e);
    });
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"onEvent".into(), on_event.as_ref()).expect("set");
    let err = JsFuture::from(moa.run(JsValue::from_str("hi"), Some(JsValue::from(options).unchecked_into())))
        .await
        .expect_err("rejects");
    let err: js_sys::Error = err.dyn_into().expect("an Error");
    let message = String::from(err.message());
    assert!(message.starts_with("layer 0: 0 agent(s) succeeded, 1 needed"), "{message}");
    assert!(message.contains("down:a: transport: ") && message.contains("down:b: transport: "), "{message}");
    let types: Vec<String> = events.iter().map(|e| get(&e, "type").as_string().unwrap_or_default()).collect();
    assert_eq!(types.first().map(String::as_str), Some("run_started"));
    assert_eq!(types.iter().filter(|t| *t == "call_failed").count(), 2);
    assert_eq!(types.last().map(String::as_str), Some("run_failed"));
}

#[wasm_bindgen_test]
async fn an_aborted_signal_cancels_the_run() {
    let moa = Moa::new(js(DOWN)).expect("valid");
    let controller = web_sys::AbortController::new().expect("controller");
    controller.abort();
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"signal".into(), &controller.signal()).expect("set");
    let err = JsFuture::from(moa.run(JsValue::from_str("hi"), Some(JsValue::from(options).unchecked_into())))
        .await
        .expect_err("rejects");
    let err: js_sys::Error = err.dyn_into().expect("an Error");
    assert_eq!(String::from(err.message()), "the run was cancelled");
}

#[wasm_bindgen_test]
async fn a_missing_key_is_refused_before_any_request() {
    let recipe = r#"{"providers": {"together": {"kind": "openai", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY"}},
        "layers": [{"agents": ["together:m"]}], "aggregator": "together:m"}"#;
    let moa = Moa::new(js(recipe)).expect("valid");
    let err = JsFuture::from(moa.run(JsValue::from_str("hi"), None)).await.expect_err("rejects");
    let err: js_sys::Error = err.dyn_into().expect("an Error");
    assert!(String::from(err.message()).contains("provider \"together\" needs an API key"));
}

#[wasm_bindgen_test]
async fn malformed_run_input_is_refused_at_its_path() {
    let moa = Moa::new(js(DOWN)).expect("valid");
    let cases = [
        (
            r#"[{"role": "user", "content": "hi"}, {"role": "robot", "content": "x"}]"#,
            "{}",
            "messages[1].role: unknown variant `robot`",
        ),
        (r#""hi""#, r#"{"tools": [{"name": "f"}, {"description": "no name"}]}"#, "tools[1]: missing field `name`"),
        (r#""hi""#, r#"{"keys": {"down": 5}}"#, "keys.down: invalid type: integer `5`, expected a string"),
        (r#""hi""#, r#"{"responseFormat": {"type": "json_schema"}}"#, "responseFormat: missing field `json_schema`"),
    ];
    for (input, options, want) in cases {
        let input = match js(input).as_string() {
            Some(s) => JsValue::from_str(&s),
            None => js(input),
        };
        let options: moa_wasm::JsRunOptions = js(options).unchecked_into();
        let err = JsFuture::from(moa.run(input, Some(options))).await.expect_err("rejects");
        let err: js_sys::Error = err.dyn_into().expect("an Error");
        let message = String::from(err.message());
        assert!(message.starts_with(want), "{message}");
    }
}
