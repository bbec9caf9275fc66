//! The browser transport: `fetch` with a streaming body, an `AbortController` per call,
//! timers for the engine's deadlines. No protocol logic: that is all in moa-core.

use crate::plugins::Loaded;
use futures_channel::mpsc;
use futures_util::future::{Either, select};
use futures_util::{FutureExt, StreamExt};
use moa_core::engine::NetError;
use moa_core::{Action, CallId, Event, HttpRequest, Input, Outcome, Run, Time};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`: in a window, a worker, or Node.
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_request(request: &web_sys::Request) -> js_sys::Promise;

    /// A `ReadableStreamDefaultReader`: `read()` resolves to `{ done, value }`.
    type Reader;
    #[wasm_bindgen(method)]
    fn read(this: &Reader) -> js_sys::Promise;
}

/// Now on the page's clock: `performance.timeOrigin + performance.now()`, in µs.
pub fn now() -> Time {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| p.dyn_into::<web_sys::Performance>().ok());
    let ms = match perf {
        Some(p) => p.time_origin() + p.now(),
        None => js_sys::Date::now(),
    };
    Time::from_micros((ms * 1000.0) as u64)
}

enum Msg {
    Decided { decision: u64, answer: Result<String, String> },
    Invalid { call: CallId, error: String },
    Head { call: CallId, status: u16, headers: Vec<(String, String)> },
    Body { call: CallId, bytes: Vec<u8> },
    End { call: CallId },
    Failed { call: CallId, kind: NetError, error: String },
    Abort,
}

fn js_error(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| format!("{v:?}"))
}

/// Drives `run` to its end, with `plugins` for the decisions it asks for; aborting
/// `signal` cancels it.
pub async fn drive(
    run: &mut Run,
    signal: Option<web_sys::AbortSignal>,
    plugins: Rc<Loaded>,
    mut on_event: impl FnMut(&Event),
) -> Outcome {
    let (tx, mut rx) = mpsc::unbounded::<Msg>();
    // A list, not a hash map: few calls are in flight, and a map type costs the module 4 KB.
    let mut controllers: Vec<(CallId, web_sys::AbortController)> = Vec::new();
    // Kept alive for the whole run; dropped (and so detached) at the end.
    let _on_abort = signal.as_ref().map(|s| {
        let tx = tx.clone();
        let cb = Closure::<dyn FnMut()>::new(move || {
            let _ = tx.unbounded_send(Msg::Abort);
        });
        let _ = s.add_event_listener_with_callback("abort", cb.as_ref().unchecked_ref());
        (s.clone(), cb)
    });
    if signal.as_ref().is_some_and(|s| s.aborted()) {
        run.cancel(now());
    }
    loop {
        match run.poll() {
            Action::Request { call, http } => match web_sys::AbortController::new() {
                Ok(controller) => {
                    wasm_bindgen_futures::spawn_local(send(call, http, controller.signal(), tx.clone()));
                    controllers.push((call, controller));
                }
                Err(e) => run.handle(Input::Invalid { call, error: js_error(&e), now: now() }),
            },
            Action::Cancel { call } => {
                if let Some(at) = controllers.iter().position(|(c, _)| *c == call) {
                    controllers.swap_remove(at).1.abort();
                }
            }
            Action::Event(e) => on_event(&e),
            Action::Decide { decision, request } => {
                let (plugins, tx) = (plugins.clone(), tx.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = plugins.decide(&request).await;
                    let _ = tx.unbounded_send(Msg::Decided { decision, answer });
                });
            }
            Action::Done(outcome) => {
                for (_, c) in &controllers {
                    c.abort();
                }
                if let Some((s, cb)) = &_on_abort {
                    let _ = s.remove_event_listener_with_callback("abort", cb.as_ref().unchecked_ref());
                }
                return outcome;
            }
            Action::Wait(deadline) => {
                let timer = match deadline {
                    Some(t) => {
                        // setTimeout takes a signed 32-bit delay; a longer one fires at
                        // once. Recipes bound durations to a week, but clamp anyway:
                        // waking early only means waiting again.
                        let ms = t.since(now()).as_millis().min(i32::MAX as u128) as u32;
                        Either::Left(gloo_timers::future::TimeoutFuture::new(ms))
                    }
                    None => Either::Right(futures_util::future::pending::<()>()),
                };
                match select(rx.next(), timer.fuse()).await {
                    Either::Left((Some(msg), _)) => {
                        feed(run, msg, &mut controllers);
                        while let Ok(msg) = rx.try_recv() {
                            feed(run, msg, &mut controllers);
                        }
                    }
                    Either::Left((None, _)) => {}
                    Either::Right(_) => run.handle(Input::Tick { now: now() }),
                }
            }
        }
    }
}

fn feed(run: &mut Run, msg: Msg, controllers: &mut Vec<(CallId, web_sys::AbortController)>) {
    let now = now();
    match msg {
        Msg::Head { call, status, headers } => run.handle(Input::Head { call, status, headers, now }),
        Msg::Body { call, bytes } => run.handle(Input::Body { call, bytes: &bytes, now }),
        Msg::End { call } => {
            controllers.retain(|(c, _)| *c != call);
            run.handle(Input::End { call, now })
        }
        Msg::Failed { call, kind, error } => {
            controllers.retain(|(c, _)| *c != call);
            run.handle(Input::Failed { call, kind, error, now })
        }
        Msg::Invalid { call, error } => {
            controllers.retain(|(c, _)| *c != call);
            run.handle(Input::Invalid { call, error, now })
        }
        Msg::Decided { decision, answer } => {
            run.handle(Input::Decided { decision, answer: answer.as_deref().map_err(String::as_str), now })
        }
        Msg::Abort => run.cancel(now),
    }
}

async fn send(call: CallId, http: HttpRequest, signal: web_sys::AbortSignal, tx: mpsc::UnboundedSender<Msg>) {
    // A request the browser will not even construct (a bad URL, a header value it
    // rejects) cannot succeed on a retry.
    let request = match build(&http, &signal) {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.unbounded_send(Msg::Invalid { call, error: js_error(&e) });
            return;
        }
    };
    let msg = match request_stream(call, request, &tx).await {
        Ok(()) => Msg::End { call },
        Err((kind, e)) => Msg::Failed { call, kind, error: js_error(&e) },
    };
    let _ = tx.unbounded_send(msg);
}

fn build(http: &HttpRequest, signal: &web_sys::AbortSignal) -> Result<web_sys::Request, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (k, v) in &http.headers {
        headers.set(k, v)?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(http.method);
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&http.body));
    init.set_signal(Some(signal));
    // A key never follows a redirect: the browser fails the request instead.
    init.set_redirect(web_sys::RequestRedirect::Error);
    web_sys::Request::new_with_str_and_init(&http.url, &init)
}

async fn request_stream(
    call: CallId,
    request: web_sys::Request,
    tx: &mpsc::UnboundedSender<Msg>,
) -> Result<(), (NetError, JsValue)> {
    // Before a response the browser's TypeError cannot tell a refused connection, a name
    // that did not resolve and CORS apart; after one, a failed read is a broken connection.
    let before = |e: JsValue| (NetError::Other, e);
    let response = JsFuture::from(fetch_request(&request)).await.map_err(before)?;
    let response: web_sys::Response = response.dyn_into().map_err(before)?;
    // The engine reads only these; a browser hides most others from cross-origin pages.
    let got = response.headers();
    let headers = ["content-type", "retry-after", "date"]
        .iter()
        .filter_map(|name| got.get(name).ok().flatten().map(|v| (name.to_string(), v)))
        .collect();
    let _ = tx.unbounded_send(Msg::Head { call, status: response.status(), headers });
    let Some(body) = response.body() else { return Ok(()) };
    // The body's reader by hand: `wasm-streams` exported its JS stream adapters (about
    // 9 KB of the module) though only this loop was used.
    let reader: Reader = body.get_reader().unchecked_into();
    loop {
        let read = JsFuture::from(reader.read()).await.map_err(|e| (NetError::Reset, e))?;
        if crate::get(&read, "done").is_truthy() {
            return Ok(());
        }
        let bytes = js_sys::Uint8Array::new(&crate::get(&read, "value")).to_vec();
        let _ = tx.unbounded_send(Msg::Body { call, bytes });
    }
}
