//! A fake of the two batch APIs moa drives, on 127.0.0.1, faithful to their documented
//! shapes: OpenAI's (`POST /v1/files` multipart with `purpose=batch`, `POST /v1/batches`,
//! `GET /v1/batches/{id}` moving validating → in_progress → finalizing → completed,
//! `output_file_id` and `error_file_id`, `GET /v1/files/{id}/content`; a line with
//! `stream: true` fails the job's validation, as OpenAI refuses streaming in batches) and
//! Anthropic's Message Batches (`POST /v1/messages/batches`, `GET .../{id}` until
//! `processing_status: ended`, `results_url` lines of `succeeded` / `errored` / `expired`).
//!
//! Each request's answer comes from its `model`, as in the streaming fake: `text=...`, and
//! `fault=500;times=N` (its first N requests fail: OpenAI, a 500 in the error file;
//! Anthropic, an `errored` api_error). Job-wide behaviour is the server's: `polls` (how
//! many polls before a job ends), `expire_first` (the first job expires with half its
//! requests done: OpenAI's `batch_expired` errors, Anthropic's `expired` results), and
//! `results_elsewhere` (Anthropic's `results_url` on another origin: a hostile provider),
//! `echo_key_piece` (job creation refused with a piece of the key in the message).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the fake does to whole jobs.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Polls of a job before it ends (0: it has ended at the first poll).
    pub polls: u32,
    /// The first job expires with only half its requests done.
    pub expire_first: bool,
    /// Anthropic's results_url points to another origin.
    pub results_elsewhere: bool,
    /// Job creation is refused (401) with a message that echoes a middle piece of the
    /// credentials it was sent, as some providers' masks do (`sk-...abcd`): a hostile
    /// provider's words that must never reach a log whole or in part.
    pub echo_key_piece: bool,
}

#[derive(Default)]
struct Job {
    anthropic: bool,
    requests: Vec<Value>,
    polls: u32,
    ended: bool,
    expired: bool,
    /// Result lines, once the job ended.
    output: Option<String>,
    errors: Option<String>,
    /// OpenAI: the files holding them, once stored.
    files: Option<(Value, Value)>,
}

/// What the fake saw and holds.
#[derive(Default)]
pub struct BatchSeen {
    files: Mutex<HashMap<String, Vec<u8>>>,
    jobs: Mutex<HashMap<String, Job>>,
    counts: Mutex<HashMap<String, u32>>,
    /// Every job created: (API, number of requests), in order.
    pub created: Mutex<Vec<(&'static str, usize)>>,
    /// Every request's credentials header (Authorization or x-api-key), as sent.
    pub auth: Mutex<Vec<String>>,
    /// Polls answered.
    pub polls: Mutex<u32>,
    behaviour: Mutex<Behaviour>,
}

/// A running fake; stops when dropped.
pub struct FakeBatch {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    /// What it saw.
    pub seen: Arc<BatchSeen>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeBatch {
    /// Starts the fake with `behaviour`.
    pub fn start(behaviour: Behaviour) -> FakeBatch {
        let seen = Arc::new(BatchSeen::default());
        *seen.behaviour.lock().expect("lock") = behaviour;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let state = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                ready_tx.send(listener.local_addr().expect("addr")).expect("ready");
                let app = Router::new()
                    .route("/v1/files", post(upload))
                    .route("/v1/files/{id}/content", get(content))
                    .route("/v1/batches", post(create_openai))
                    .route("/v1/batches/{id}", get(poll_openai))
                    .route("/v1/messages/batches", post(create_anthropic))
                    .route("/v1/messages/batches/{id}", get(poll_anthropic))
                    .route("/v1/messages/batches/{id}/results", get(results_anthropic))
                    .with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let addr = ready_rx.recv().expect("started");
        FakeBatch { base_url: format!("http://{addr}/v1"), seen, _stop: stop }
    }
}

impl BatchSeen {
    /// Changes how many polls a job takes from now on.
    pub fn set_polls(&self, polls: u32) {
        self.behaviour.lock().expect("lock").polls = polls;
    }
}

type S = State<Arc<BatchSeen>>;

fn note_auth(seen: &BatchSeen, headers: &HeaderMap) {
    let auth = headers.get("authorization").or_else(|| headers.get("x-api-key"));
    seen.auth.lock().expect("lock").push(auth.and_then(|v| v.to_str().ok()).unwrap_or("").to_owned());
}

fn new_id(prefix: &str, seen: &BatchSeen) -> String {
    let n = seen.files.lock().expect("lock").len() + seen.jobs.lock().expect("lock").len();
    format!("{prefix}_{n:04}")
}

/// The 401 of `echo_key_piece`: the middle of the credentials sent, in the error message.
fn echo_piece(seen: &BatchSeen, headers: &HeaderMap) -> Option<Response> {
    if !seen.behaviour.lock().expect("lock").echo_key_piece {
        return None;
    }
    let auth = headers.get("authorization").or_else(|| headers.get("x-api-key"))?.to_str().ok()?;
    let key = auth.trim_start_matches("Bearer ");
    let piece: String = key.chars().skip(3).take(12).collect();
    let body = json!({ "error": { "message": format!("invalid key ...{piece}... for this project"), "type": "invalid_request_error" } });
    Some((StatusCode::UNAUTHORIZED, body.to_string()).into_response())
}

/// `POST /v1/files`: multipart/form-data with `purpose` = `batch` and a `file`.
async fn upload(State(seen): S, headers: HeaderMap, body: Bytes) -> Response {
    note_auth(&seen, &headers);
    if let Some(refused) = echo_piece(&seen, &headers) {
        return refused;
    }
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(boundary) = ct.split("boundary=").nth(1) else {
        return (StatusCode::BAD_REQUEST, r#"{"error":{"message":"expected multipart/form-data"}}"#).into_response();
    };
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut purpose = None;
    let mut file = None;
    for part in text.split(&delimiter).skip(1) {
        let Some((head, data)) = part.split_once("\r\n\r\n") else { continue };
        let data = data.strip_suffix("\r\n").unwrap_or(data);
        if head.contains("name=\"purpose\"") {
            purpose = Some(data.to_owned());
        } else if head.contains("name=\"file\"") {
            file = Some(data.to_owned());
        }
    }
    if purpose.as_deref() != Some("batch") || file.is_none() {
        return (StatusCode::BAD_REQUEST, r#"{"error":{"message":"purpose must be batch, and a file is required"}}"#)
            .into_response();
    }
    let id = new_id("file", &seen);
    let bytes = file.unwrap_or_default().into_bytes();
    let n = bytes.len();
    seen.files.lock().expect("lock").insert(id.clone(), bytes);
    axum::Json(json!({"id": id, "object": "file", "bytes": n, "purpose": "batch", "filename": "input.jsonl"}))
        .into_response()
}

async fn content(State(seen): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    note_auth(&seen, &headers);
    match seen.files.lock().expect("lock").get(&id) {
        Some(b) => b.clone().into_response(),
        None => (StatusCode::NOT_FOUND, r#"{"error":{"message":"no such file"}}"#).into_response(),
    }
}

/// The answer to one request, by its `model`: `(status, body)` in the API's own shape.
fn answer(seen: &BatchSeen, body: &Value, anthropic: bool) -> (u16, Value) {
    let model = body["model"].as_str().unwrap_or("").to_owned();
    let params: HashMap<&str, &str> = model.split(';').filter_map(|kv| kv.split_once('=')).collect();
    let n = {
        let mut counts = seen.counts.lock().expect("lock");
        let c = counts.entry(model.clone()).or_default();
        *c += 1;
        *c
    };
    let times: u32 = params.get("times").and_then(|t| t.parse().ok()).unwrap_or(1);
    if params.get("fault") == Some(&"500") && n <= times {
        return (500, json!({"error": {"message": "internal error", "type": "server_error"}}));
    }
    let text = params.get("text").copied().unwrap_or("hello from the batch fake");
    let prompt =
        body["messages"].as_array().map_or(0, |m| m.iter().map(|x| x["content"].to_string().len() / 4).sum::<usize>());
    let words = text.split(' ').count();
    if anthropic {
        (
            200,
            json!({"id": format!("msg_{n}"), "type": "message", "role": "assistant", "model": model,
                     "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                     "usage": {"input_tokens": prompt, "output_tokens": words}}),
        )
    } else {
        (
            200,
            json!({"id": format!("chatcmpl-{n}"), "object": "chat.completion", "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": prompt, "completion_tokens": words, "total_tokens": prompt + words}}),
        )
    }
}

/// `POST /v1/batches`.
async fn create_openai(State(seen): S, headers: HeaderMap, axum::Json(req): axum::Json<Value>) -> Response {
    note_auth(&seen, &headers);
    let Some(file) = req["input_file_id"].as_str().and_then(|f| seen.files.lock().expect("lock").get(f).cloned())
    else {
        return (StatusCode::BAD_REQUEST, r#"{"error":{"message":"input_file_id: no such file"}}"#).into_response();
    };
    if req["endpoint"] != "/v1/chat/completions" || req["completion_window"] != "24h" {
        return (StatusCode::BAD_REQUEST, r#"{"error":{"message":"unsupported endpoint or completion_window"}}"#)
            .into_response();
    }
    let lines: Vec<Value> = String::from_utf8_lossy(&file)
        .lines()
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let id = new_id("batch", &seen);
    seen.created.lock().expect("lock").push(("openai", lines.len()));
    let mut job = Job { requests: lines, ..Job::default() };
    // Validation, as OpenAI's: each line a POST to the endpoint, custom_ids unique, no streaming.
    let mut ids = std::collections::HashSet::new();
    let invalid = job.requests.iter().position(|l| {
        l["method"] != "POST"
            || l["url"] != "/v1/chat/completions"
            || !ids.insert(l["custom_id"].to_string())
            || l["body"]["stream"] == true
    });
    if let Some(line) = invalid {
        job.ended = true;
        seen.jobs.lock().expect("lock").insert(id.clone(), job);
        return axum::Json(json!({"id": id, "object": "batch", "status": "failed",
            "errors": {"object": "list", "data": [{"code": "invalid_request", "line": line + 1, "message": "invalid batch line (streaming, method, url or duplicate custom_id)"}]}}))
        .into_response();
    }
    let n = job.requests.len();
    seen.jobs.lock().expect("lock").insert(id.clone(), job);
    axum::Json(json!({"id": id, "object": "batch", "endpoint": "/v1/chat/completions", "status": "validating",
                      "input_file_id": req["input_file_id"], "completion_window": "24h",
                      "request_counts": {"total": n, "completed": 0, "failed": 0}}))
    .into_response()
}

/// Advances job `id` by one poll; ends it (computing its results) when its time has come.
fn advance(seen: &BatchSeen, id: &str) -> Option<(bool, bool)> {
    *seen.polls.lock().expect("lock") += 1;
    let behaviour = seen.behaviour.lock().expect("lock").clone();
    let first = seen.jobs.lock().expect("lock").keys().min().cloned();
    let mut jobs = seen.jobs.lock().expect("lock");
    let job = jobs.get_mut(id)?;
    if !job.ended {
        job.polls += 1;
        if job.polls > behaviour.polls {
            job.ended = true;
            job.expired = behaviour.expire_first && first.as_deref() == Some(id);
            let done = if job.expired { job.requests.len() / 2 } else { job.requests.len() };
            let (mut out, mut err) = (String::new(), String::new());
            for (i, r) in job.requests.clone().iter().enumerate() {
                let custom_id = &r["custom_id"];
                if job.anthropic {
                    let result = if i >= done {
                        json!({"type": "expired"})
                    } else {
                        match answer(seen, &r["params"], true) {
                            (200, message) => json!({"type": "succeeded", "message": message}),
                            (_, _) => {
                                json!({"type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "internal error"}}})
                            }
                        }
                    };
                    out.push_str(&format!("{}\n", json!({"custom_id": custom_id, "result": result})));
                } else if i >= done {
                    err.push_str(&format!("{}\n", json!({"id": format!("batch_req_{i}"), "custom_id": custom_id, "response": null,
                        "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})));
                } else {
                    let (status, body) = answer(seen, &r["body"], false);
                    let line = json!({"id": format!("batch_req_{i}"), "custom_id": custom_id,
                                      "response": {"status_code": status, "request_id": format!("req_{i}"), "body": body}, "error": null});
                    if status == 200 { out.push_str(&format!("{line}\n")) } else { err.push_str(&format!("{line}\n")) }
                }
            }
            job.output = Some(out);
            job.errors = Some(err);
        }
    }
    Some((job.ended, job.expired))
}

fn store(seen: &BatchSeen, prefix: &str, text: Option<String>) -> Value {
    match text.filter(|t| !t.is_empty()) {
        Some(t) => {
            let id = new_id(prefix, seen);
            seen.files.lock().expect("lock").insert(id.clone(), t.into_bytes());
            json!(id)
        }
        None => Value::Null,
    }
}

/// `GET /v1/batches/{id}`.
async fn poll_openai(State(seen): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    note_auth(&seen, &headers);
    let Some((ended, expired)) = advance(&seen, &id) else {
        return (StatusCode::NOT_FOUND, r#"{"error":{"message":"no such batch"}}"#).into_response();
    };
    let polls = seen.jobs.lock().expect("lock").get(&id).map_or(0, |j| j.polls);
    if !ended {
        let status = if polls <= 1 { "validating" } else { "in_progress" };
        return axum::Json(json!({"id": id, "object": "batch", "status": status})).into_response();
    }
    let stored = seen.jobs.lock().expect("lock").get(&id).and_then(|j| j.files.clone());
    let (output_file_id, error_file_id) = match stored {
        Some(files) => files,
        None => {
            let (out, err) = {
                let jobs = seen.jobs.lock().expect("lock");
                let job = jobs.get(&id).expect("job");
                (job.output.clone(), job.errors.clone())
            };
            let files = (store(&seen, "file", out), store(&seen, "file", err));
            seen.jobs.lock().expect("lock").get_mut(&id).expect("job").files = Some(files.clone());
            files
        }
    };
    let status = if expired { "expired" } else { "completed" };
    axum::Json(json!({"id": id, "object": "batch", "status": status, "output_file_id": output_file_id, "error_file_id": error_file_id}))
        .into_response()
}

/// `POST /v1/messages/batches`.
async fn create_anthropic(State(seen): S, headers: HeaderMap, axum::Json(req): axum::Json<Value>) -> Response {
    note_auth(&seen, &headers);
    if let Some(refused) = echo_piece(&seen, &headers) {
        return refused;
    }
    if headers.get("anthropic-version").is_none() {
        return (StatusCode::BAD_REQUEST, r#"{"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version header is required"}}"#).into_response();
    }
    let Some(requests) = req["requests"].as_array().cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"requests: required"}}"#,
        )
            .into_response();
    };
    if requests.iter().any(|r| r["params"]["stream"] == true || r["custom_id"].as_str().is_none_or(|c| c.len() > 64)) {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"invalid request in batch"}}"#,
        )
            .into_response();
    }
    let id = new_id("msgbatch", &seen);
    seen.created.lock().expect("lock").push(("anthropic", requests.len()));
    let n = requests.len();
    seen.jobs.lock().expect("lock").insert(id.clone(), Job { anthropic: true, requests, ..Job::default() });
    axum::Json(json!({"id": id, "type": "message_batch", "processing_status": "in_progress",
                      "request_counts": {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                      "results_url": null}))
    .into_response()
}

/// `GET /v1/messages/batches/{id}`.
async fn poll_anthropic(State(seen): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    note_auth(&seen, &headers);
    let Some((ended, _)) = advance(&seen, &id) else {
        return (
            StatusCode::NOT_FOUND,
            r#"{"type":"error","error":{"type":"not_found_error","message":"no such batch"}}"#,
        )
            .into_response();
    };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let elsewhere = seen.behaviour.lock().expect("lock").results_elsewhere;
    let results_url = if !ended {
        Value::Null
    } else if elsewhere {
        json!(format!("http://attacker.invalid/v1/messages/batches/{id}/results"))
    } else {
        json!(format!("http://{host}/v1/messages/batches/{id}/results"))
    };
    let status = if ended { "ended" } else { "in_progress" };
    axum::Json(json!({"id": id, "type": "message_batch", "processing_status": status, "results_url": results_url}))
        .into_response()
}

/// `GET /v1/messages/batches/{id}/results`.
async fn results_anthropic(State(seen): S, headers: HeaderMap, Path(id): Path<String>) -> Response {
    note_auth(&seen, &headers);
    match seen.jobs.lock().expect("lock").get(&id).and_then(|j| j.output.clone()) {
        Some(lines) => lines.into_response(),
        None => (StatusCode::NOT_FOUND, "no results yet").into_response(),
    }
}
