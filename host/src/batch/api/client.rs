//! One provider's batch API, over HTTP: OpenAI-compatible `/files` + `/batches`, or
//! Anthropic's Message Batches; creating a job, polling it until it ends, fetching its
//! results.

use super::super::BatchError;
use super::super::input::hash;
use super::journal::Reply;
use super::{Pending, Polling};
use moa_core::{HttpRequest, Redactor};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which batch API a call's provider speaks, from its chat URL.
pub(super) fn is_anthropic(http: &HttpRequest) -> bool {
    http.url.ends_with("/messages")
}

/// The request's JSON body for a batch: the same request, not streamed.
fn batch_body(http: &HttpRequest) -> Value {
    let mut body: Value = serde_json::from_str(&http.body).unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.remove("stream");
        o.remove("stream_options");
    }
    body
}

/// The path of a URL (`https://host/v1/chat/completions` → `/v1/chat/completions`).
fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let end = url.split_once("://").map_or(0, |(s, r)| s.len() + 3 + r.find('/').unwrap_or(r.len()));
    &url[..end]
}

/// The batch API's client for one provider: its base URL and the call's own auth headers.
pub(super) struct Api<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) base: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) anthropic: bool,
    /// Keys out of the provider's words, whole and in pieces (the core's redactor).
    pub(super) redactor: &'a Redactor,
    pub(super) polling: Polling,
}

impl Api<'_> {
    fn fail(&self, message: String) -> BatchError {
        BatchError::Api { provider: self.base.clone(), message: self.redactor.redact(&message) }
    }

    /// Sends one request to the batch API, retrying 429s, 5xx and transport errors a few
    /// times; returns the body of a 2xx.
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Vec<u8>, BatchError> {
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=5 {
            let mut req = self.client.request(method.clone(), url);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            if let Some((content_type, bytes)) = &body {
                req = req.header("content-type", *content_type).body(bytes.clone());
            }
            let outcome = match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    let bytes = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    if status.is_success() {
                        return Ok(bytes);
                    }
                    let text = String::from_utf8_lossy(&bytes).chars().take(2000).collect::<String>();
                    let message = format!("{method} {} answered {status}: {text}", path_of(url));
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(self.fail(message));
                    }
                    message
                }
                Err(e) => format!("{method} {}: {}", path_of(url), crate::transport::describe(&e)),
            };
            if attempt == 5 {
                return Err(self.fail(outcome));
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        unreachable!("the loop returns")
    }

    async fn json(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Result<Value, BatchError> {
        let body = body.map(|b| ("application/json", b.to_string().into_bytes()));
        let bytes = self.send(method, url, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| self.fail(format!("{}: not JSON: {e}", path_of(url))))
    }

    /// Creates a job for `calls`; returns its id.
    pub(super) async fn create(&self, calls: &[&Pending]) -> Result<String, BatchError> {
        if self.anthropic {
            let requests: Vec<Value> =
                calls.iter().map(|p| json!({ "custom_id": p.custom_id, "params": batch_body(&p.http) })).collect();
            let job = self
                .json(
                    reqwest::Method::POST,
                    &format!("{}/messages/batches", self.base),
                    Some(json!({ "requests": requests })),
                )
                .await?;
            return job["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.fail(format!("a batch without an id: {job}")));
        }
        let endpoint = path_of(&calls[0].http.url).to_owned();
        let mut file = Vec::new();
        for p in calls {
            let line =
                json!({ "custom_id": p.custom_id, "method": "POST", "url": endpoint, "body": batch_body(&p.http) });
            file.extend_from_slice(line.to_string().as_bytes());
            file.push(b'\n');
        }
        // multipart/form-data by hand: two parts, a boundary no JSON line contains.
        let boundary = format!("moa-{:016x}", hash(&file));
        let mut form = Vec::new();
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n").as_bytes(),
        );
        form.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"moa-batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").as_bytes());
        form.extend_from_slice(&file);
        form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let bytes =
            self.send(reqwest::Method::POST, &format!("{}/files", self.base), Some((&content_type, form))).await?;
        let uploaded: Value =
            serde_json::from_slice(&bytes).map_err(|e| self.fail(format!("/files: not JSON: {e}")))?;
        let file_id =
            uploaded["id"].as_str().ok_or_else(|| self.fail(format!("an upload without an id: {uploaded}")))?;
        let job = self
            .json(
                reqwest::Method::POST,
                &format!("{}/batches", self.base),
                Some(json!({ "input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h" })),
            )
            .await?;
        job["id"].as_str().map(str::to_owned).ok_or_else(|| self.fail(format!("a batch without an id: {job}")))
    }

    /// Polls job `id` until it ends; returns every result it has (a job that failed,
    /// expired or was cancelled has results for some requests, or none).
    pub(super) async fn wait(&self, id: &str, cancel: &CancellationToken) -> Result<Option<Vec<Reply>>, BatchError> {
        let mut wait = self.polling.min;
        loop {
            let url = if self.anthropic {
                format!("{}/messages/batches/{id}", self.base)
            } else {
                format!("{}/batches/{id}", self.base)
            };
            let job = self.json(reqwest::Method::GET, &url, None).await?;
            if self.anthropic && job["processing_status"] == "ended" {
                return self.anthropic_results(&job).await.map(Some);
            }
            let status = job["status"].as_str().unwrap_or("");
            if !self.anthropic && ["completed", "failed", "expired", "cancelled"].contains(&status) {
                if status == "failed" {
                    // Refused as a whole (validation): say why; every request stays to do.
                    let why = job["errors"]["data"]
                        .as_array()
                        .and_then(|e| e.first())
                        .map_or_else(|| job.to_string(), Value::to_string);
                    return Err(self.fail(format!("job {id} failed: {why}")));
                }
                return self.openai_results(&job).await.map(Some);
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Ok(None),
            }
            wait = (wait * 2).min(self.polling.max);
        }
    }

    async fn openai_results(&self, job: &Value) -> Result<Vec<Reply>, BatchError> {
        let mut out = Vec::new();
        for key in ["output_file_id", "error_file_id"] {
            let Some(file) = job[key].as_str() else { continue };
            let bytes = self.send(reqwest::Method::GET, &format!("{}/files/{file}/content", self.base), None).await?;
            for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
                let v: Value =
                    serde_json::from_str(line).map_err(|e| self.fail(format!("a result line is not JSON: {e}")))?;
                let Some(custom_id) = v["custom_id"].as_str() else { continue };
                let reply = match (&v["response"], &v["error"]) {
                    (r, _) if r["status_code"].is_u64() => Reply {
                        custom_id: custom_id.into(),
                        status: r["status_code"].as_u64().unwrap_or(0) as u16,
                        body: r["body"].to_string(),
                    },
                    (_, e) => Reply {
                        custom_id: custom_id.into(),
                        status: 0,
                        body: format!(
                            "{}: {}",
                            e["code"].as_str().unwrap_or("error"),
                            e["message"].as_str().unwrap_or("no result")
                        ),
                    },
                };
                out.push(reply);
            }
        }
        Ok(out)
    }

    async fn anthropic_results(&self, job: &Value) -> Result<Vec<Reply>, BatchError> {
        let Some(url) = job["results_url"].as_str() else { return Ok(vec![]) };
        if origin_of(url) != origin_of(&self.base) {
            return Err(self.fail(format!(
                "the results are at {url}, not on the provider's own origin: not fetched (it would get the key)"
            )));
        }
        let bytes = self.send(reqwest::Method::GET, url, None).await?;
        let mut out = Vec::new();
        for line in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
            let v: Value =
                serde_json::from_str(line).map_err(|e| self.fail(format!("a result line is not JSON: {e}")))?;
            let Some(custom_id) = v["custom_id"].as_str() else { continue };
            let result = &v["result"];
            let reply = match result["type"].as_str() {
                Some("succeeded") => {
                    Reply { custom_id: custom_id.into(), status: 200, body: result["message"].to_string() }
                }
                Some("errored") => {
                    let error = &result["error"]["error"];
                    // The request was refused as such: a 400 (not retried); else a 500.
                    let status = if error["type"] == "invalid_request_error" { 400 } else { 500 };
                    Reply {
                        custom_id: custom_id.into(),
                        status,
                        body: json!({ "type": "error", "error": error }).to_string(),
                    }
                }
                other => Reply {
                    custom_id: custom_id.into(),
                    status: 0,
                    body: format!("the batch request {}", other.unwrap_or("ended without a result")),
                },
            };
            out.push(reply);
        }
        Ok(out)
    }
}
