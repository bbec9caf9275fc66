//! `moa batch --via batch-api`: the same engine, another transport. Every item's run
//! goes on as usual, but its calls are not sent one by one: the calls all runs ask for
//! are collected, layer by layer, into one batch job per provider (OpenAI-compatible
//! `/files` + `/batches`; Anthropic's Message Batches), polled with backoff until they
//! end, and each result is handed to its run as the whole JSON response it is. A call that
//! failed (an error result, an expired or cancelled job) is retried by the engine's own
//! rules, so the retries of a round go out as the next, smaller job. Costs are at each
//! price's `batch` share.
//!
//! Resumable across restarts of moa: beside OUT, `OUT.batch-api/jobs.jsonl` records each
//! job (its id and its requests' `custom_id`s) when it is created, and `results.jsonl` each
//! result as it is fetched. A call's `custom_id` is a hash of its item's id and its request
//! (with the count of identical requests before it), and runs replay deterministically
//! (seeded), so a restarted moa asks for the same calls: answered ones are fed from the
//! journal, ones in a recorded job are polled there, only the rest are submitted.
//!
//! Trust: the provider's answers go through the engine like any response (keys redacted
//! from errors); the URL Anthropic gives for results is fetched only on the provider's own
//! origin (a results URL elsewhere would get the key).

use super::input::hash;
use super::record::ResultLine;
use super::{Batch, BatchError, Provenance, Summary, io, item_seed};
use crate::Transport;
use crate::clock::Clock;
use moa_core::engine::{Action, Input};
use moa_core::{CallId, HttpRequest, Run, RunOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a job is polled: from `min`, doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling { min: Duration::from_secs(5), max: Duration::from_secs(120) }
    }
}

/// A call's result: the HTTP status the provider gave it and its body, or status 0 and
/// why there is none.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct Reply {
    custom_id: String,
    status: u16,
    body: String,
}

/// A job as recorded when created: which requests it holds, as a hash of their
/// `custom_id`s (the same round after a restart asks for the same set).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Job {
    endpoint: String,
    id: String,
    requests: usize,
    fingerprint: String,
}

/// The fingerprint of a set of `custom_id`s, whatever their order.
fn fingerprint(ids: &[&str]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    format!("{:016x}", hash(sorted.join("\n").as_bytes()))
}

/// The journal beside OUT.
struct Journal {
    dir: PathBuf,
    results: HashMap<String, Reply>,
    jobs: Vec<Job>,
}

impl Journal {
    fn open(out: &Path) -> Result<Journal, BatchError> {
        let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".batch-api");
        let dir = out.with_file_name(name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut j = Journal { dir, results: HashMap::new(), jobs: Vec::new() };
        for line in j.lines("results.jsonl")? {
            let r: Reply = serde_json::from_str(&line).map_err(|e| io(&j.dir)(std::io::Error::other(e)))?;
            j.results.insert(r.custom_id.clone(), r);
        }
        for line in j.lines("jobs.jsonl")? {
            j.jobs.push(serde_json::from_str(&line).map_err(|e| io(&j.dir)(std::io::Error::other(e)))?);
        }
        Ok(j)
    }

    /// Whole lines of one of its files (a line cut short by a kill is dropped).
    fn lines(&self, file: &str) -> Result<Vec<String>, BatchError> {
        let path = self.dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&path)(e)),
        };
        let whole = text.rfind('\n').map_or("", |i| &text[..i]);
        Ok(whole.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
    }

    fn append(&self, file: &str, lines: &[String]) -> Result<(), BatchError> {
        let path = self.dir.join(file);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        f.write_all(text.as_bytes()).and_then(|()| f.sync_data()).map_err(io(&path))
    }
}

/// One call waiting for its job.
struct Pending {
    run: usize,
    call: CallId,
    http: HttpRequest,
    custom_id: String,
}

/// Which batch API a call's provider speaks, from its chat URL.
fn is_anthropic(http: &HttpRequest) -> bool {
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
struct Api<'a> {
    client: &'a reqwest::Client,
    base: String,
    headers: Vec<(String, String)>,
    anthropic: bool,
    keys: &'a [String],
    polling: Polling,
}

impl Api<'_> {
    fn fail(&self, message: String) -> BatchError {
        let mut message = message;
        for k in self.keys.iter().filter(|k| !k.is_empty()) {
            message = message.replace(k.as_str(), "[key]");
        }
        BatchError::Api { provider: self.base.clone(), message }
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
    async fn create(&self, calls: &[&Pending]) -> Result<String, BatchError> {
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
    async fn wait(&self, id: &str, cancel: &CancellationToken) -> Result<Option<Vec<Reply>>, BatchError> {
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

/// Feeds a reply to its run as the provider's whole response.
fn feed(run: &mut Run, call: CallId, reply: &Reply, now: moa_core::Time) {
    if reply.status == 0 {
        // The batch API's own error for the request, with no HTTP status of its own.
        let kind = moa_core::engine::NetError::Other;
        return run.handle(Input::Failed { call, kind, error: reply.body.clone(), now });
    }
    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    run.handle(Input::Head { call, status: reply.status, headers, now });
    run.handle(Input::Body { call, bytes: reply.body.as_bytes(), now });
    run.handle(Input::End { call, now });
}

/// Runs the batch through the providers' batch APIs. See the module's comment.
pub async fn run(
    batch: Batch,
    transport: &Transport,
    polling: Polling,
    cancel: CancellationToken,
) -> Result<Summary, BatchError> {
    let mut lock = super::lock_output(&batch.output)?;
    let _held = lock.try_write().map_err(|_| BatchError::Locked {
        path: batch.output.display().to_string(),
        lock: format!("{}.lock", batch.output.display()),
    })?;
    let done = super::prepare_output(&batch.output)?;
    let scan = super::input::scan(&batch.input, &batch.select, &done)?;
    let mut journal = Journal::open(&batch.output)?;
    let provenance = Provenance::of(&batch.recipe);
    let clock = Clock::new();
    let mut summary = Summary {
        total: scan.total - scan.other_shards - scan.repeated,
        skipped: scan.answered,
        other_shards: scan.other_shards,
        repeated: scan.repeated,
        repeats: scan.repeats.clone(),
        ..Summary::default()
    };
    let mut out =
        std::fs::OpenOptions::new().create(true).append(true).open(&batch.output).map_err(io(&batch.output))?;
    // Every item's run at once: a batch API job holds a layer of every item.
    let mut runs: Vec<Option<(Box<serde_json::value::RawValue>, Run, u64)>> = Vec::new();
    for item in super::input::todo(&batch.input, &batch.select, &done)? {
        let item = item?;
        let seed = item_seed(batch.seed, &item.id);
        let mut options = RunOptions {
            seed,
            keys: batch.keys.clone(),
            reports_sent: true,
            batch_prices: true,
            ..RunOptions::default()
        };
        if let Some(r) = &batch.resolver {
            options.resolver = r.as_ref();
        }
        match Run::with_options(&batch.recipe, item.messages, clock.now(), options) {
            Ok(run) => runs.push(Some((item.id, run, seed))),
            // As over HTTP: the item is written with its error, to be retried next time.
            Err(e) => {
                let outcome = super::not_started(e);
                let mut line =
                    ResultLine::new(&item.id, &outcome, batch.proposals, &provenance, seed).to_json().into_bytes();
                line.push(b'\n');
                out.write_all(&line).map_err(io(&batch.output))?;
                summary.count(&outcome);
            }
        }
    }
    let keys: Vec<String> = batch.keys.values().cloned().collect();
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    loop {
        // Everything the runs ask for now, and when the earliest of them wants a tick.
        let mut pending: Vec<Pending> = Vec::new();
        let mut tick: Option<moa_core::Time> = None;
        for (i, slot) in runs.iter_mut().enumerate() {
            let Some((id, run, seed)) = slot else { continue };
            loop {
                match run.poll() {
                    Action::Request { call, http } => {
                        let key = (hash(id.get().as_bytes()), hash(http.body.as_bytes()));
                        let n = seen.entry(key).or_default();
                        *n += 1;
                        let custom_id = format!("{:016x}-{:016x}-{n}", key.0, key.1);
                        pending.push(Pending { run: i, call, http, custom_id });
                    }
                    Action::Cancel { .. } | Action::Event(_) => {}
                    Action::Wait(deadline) => {
                        if let Some(d) = deadline {
                            tick = Some(tick.map_or(d, |t| t.min(d)));
                        }
                        break;
                    }
                    Action::Done(outcome) => {
                        let mut line =
                            ResultLine::new(id, &outcome, batch.proposals, &provenance, *seed).to_json().into_bytes();
                        line.push(b'\n');
                        out.write_all(&line).and_then(|()| out.sync_data()).map_err(io(&batch.output))?;
                        summary.count(&outcome);
                        *slot = None;
                        break;
                    }
                }
            }
        }
        if cancel.is_cancelled() {
            break;
        }
        if pending.is_empty() {
            match tick {
                // Only backoffs are left (retries waiting): wait for the earliest.
                Some(t) => {
                    let wait = t.since(clock.now());
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => break,
                    }
                    let now = clock.now();
                    runs.iter_mut().flatten().for_each(|(_, run, _)| run.handle(Input::Tick { now }));
                    continue;
                }
                None => break,
            }
        }
        // Answered before a restart: from the journal.
        let now = clock.now();
        let mut todo: Vec<Pending> = Vec::new();
        for p in pending {
            match journal.results.get(&p.custom_id) {
                Some(reply) => {
                    if let Some((_, run, _)) = runs[p.run].as_mut() {
                        feed(run, p.call, reply, now);
                    }
                }
                None => todo.push(p),
            }
        }
        // One job per provider, all at once.
        let mut groups: HashMap<String, Vec<&Pending>> = HashMap::new();
        for p in &todo {
            groups.entry(p.http.endpoint.clone()).or_default().push(p);
        }
        let jobs = groups.into_iter().map(|(endpoint, calls)| {
            let api = Api {
                client: transport.client(),
                base: endpoint.clone(),
                headers: calls[0]
                    .http
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        !["content-type", "accept", "anthropic-dangerous-direct-browser-access"].contains(&k.as_str())
                    })
                    .cloned()
                    .collect(),
                anthropic: is_anthropic(&calls[0].http),
                keys: &keys,
                polling,
            };
            let print = fingerprint(&calls.iter().map(|c| c.custom_id.as_str()).collect::<Vec<_>>());
            let recorded = journal
                .jobs
                .iter()
                .rev()
                .find(|j| j.endpoint == endpoint && j.fingerprint == print)
                .map(|j| j.id.clone());
            let cancel = cancel.clone();
            let journal = &journal;
            async move {
                let (id, created) = match recorded {
                    Some(id) => (id, None),
                    None => {
                        let id = api.create(&calls).await?;
                        let job = Job {
                            endpoint: endpoint.clone(),
                            id: id.clone(),
                            requests: calls.len(),
                            fingerprint: print,
                        };
                        // Recorded before the first poll: a moa killed while the job runs
                        // polls it again when restarted, instead of submitting it twice.
                        journal.append("jobs.jsonl", &[serde_json::to_string(&job).unwrap_or_default()])?;
                        (id, Some(job))
                    }
                };
                Ok::<_, BatchError>((created, id.clone(), api.wait(&id, &cancel).await, calls))
            }
        });
        let mut results: Vec<Reply> = Vec::new();
        let mut unanswered: Vec<(String, String)> = Vec::new();
        for job in futures_util::future::join_all(jobs).await {
            let (created, id, replies, calls) = job?;
            if let Some(job) = created {
                journal.jobs.push(job);
            }
            let Some(replies) = replies? else { continue };
            let answered: std::collections::HashSet<&str> = replies.iter().map(|r| r.custom_id.as_str()).collect();
            for c in calls.iter().filter(|c| !answered.contains(c.custom_id.as_str())) {
                unanswered.push((c.custom_id.clone(), id.clone()));
            }
            results.extend(replies);
        }
        if cancel.is_cancelled() {
            break;
        }
        // A request the job ended without: failed, to be retried by the engine's rules.
        results.extend(unanswered.into_iter().map(|(custom_id, job)| Reply {
            custom_id,
            status: 0,
            body: format!("batch job {job} ended without a result for this request"),
        }));
        // Only this round's requests, each once: a provider's extra, repeated or unknown
        // ids are dropped (they would be answers to calls not asked yet).
        let by_id: HashMap<&str, &Pending> = todo.iter().map(|p| (p.custom_id.as_str(), p)).collect();
        let mut fed: std::collections::HashSet<String> = std::collections::HashSet::new();
        results.retain(|r| by_id.contains_key(r.custom_id.as_str()) && fed.insert(r.custom_id.clone()));
        journal.append(
            "results.jsonl",
            &results.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect::<Vec<_>>(),
        )?;
        let now = clock.now();
        for reply in &results {
            if let Some(p) = by_id.get(reply.custom_id.as_str())
                && let Some((_, run, _)) = runs[p.run].as_mut()
            {
                feed(run, p.call, reply, now);
            }
        }
        for reply in results {
            journal.results.insert(reply.custom_id.clone(), reply);
        }
    }
    Ok(summary)
}
