//! The providers' batch APIs as formats, without I/O: OpenAI-compatible `/files` +
//! `/batches` and Anthropic's Message Batches. Builders for what is sent (a job's
//! requests, the upload, the job) and parsers for what comes back (a job's id and state,
//! its result lines), so a host only moves the bytes and polls.

use crate::http::HttpRequest;
use crate::vocab::ProviderKind;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One call's result from a batch job: the HTTP status the provider gave it and its body
/// (what the call would have received), or status 0 and why there is none.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BatchReply {
    /// The request's `custom_id`.
    pub custom_id: String,
    /// The HTTP status, or 0 when the batch API gave none (the request expired, was
    /// cancelled, or the API's own error).
    pub status: u16,
    /// The response body, or why there is none.
    pub body: String,
}

/// Where a job is.
#[derive(Clone, Debug, PartialEq)]
pub enum JobState {
    /// Still running: poll again.
    Running,
    /// Ended; its results are in these places: OpenAI's output and error file ids, or
    /// Anthropic's results URL.
    Ended(Vec<String>),
    /// Refused as a whole (validation): why. Every request is still to do.
    Failed(String),
}

/// What an HTTP request to a batch API is: method, URL, content type and body.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// The body's content type, when it has a body.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl ApiRequest {
    fn get(url: String) -> ApiRequest {
        ApiRequest { method: "GET", url, content_type: None, body: vec![] }
    }

    fn json(url: String, body: &Value) -> ApiRequest {
        ApiRequest {
            method: "POST",
            url,
            content_type: Some("application/json".into()),
            body: body.to_string().into_bytes(),
        }
    }
}

/// A call's request as a batch holds it: the same JSON body, not streamed (batch APIs
/// refuse streaming).
pub fn unstreamed(http: &HttpRequest) -> Value {
    let mut body: Value = serde_json::from_str(&http.body).unwrap_or(Value::Null);
    if let Some(o) = body.as_object_mut() {
        o.remove("stream");
        o.remove("stream_options");
    }
    body
}

/// The path of a URL (`https://host/v1/chat/completions` → `/v1/chat/completions`).
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &str) -> &str {
    let end = url.split_once("://").map_or(0, |(s, r)| s.len() + 3 + r.find('/').unwrap_or(r.len()));
    &url[..end]
}

/// A job's requests: `(custom_id, the call's request)`.
pub type Calls<'a> = [(&'a str, &'a HttpRequest)];

/// The first request that creates a job for `calls` at `base` (a provider's base URL):
/// OpenAI's upload of the requests file (the job itself follows with [`openai_create`]
/// once the file has an id), or Anthropic's job.
pub fn create(kind: ProviderKind, base: &str, calls: &Calls<'_>) -> ApiRequest {
    match kind {
        ProviderKind::Anthropic => {
            let requests: Vec<Value> =
                calls.iter().map(|(id, http)| json!({ "custom_id": id, "params": unstreamed(http) })).collect();
            ApiRequest::json(format!("{base}/messages/batches"), &json!({ "requests": requests }))
        }
        ProviderKind::OpenAi => openai_upload(base, calls),
    }
}

/// OpenAI's upload: a JSONL file of the requests, as multipart/form-data with
/// `purpose = batch`.
fn openai_upload(base: &str, calls: &Calls<'_>) -> ApiRequest {
    let mut file = Vec::new();
    for (id, http) in calls {
        let line = json!({ "custom_id": id, "method": "POST", "url": path_of(&http.url), "body": unstreamed(http) });
        file.extend_from_slice(line.to_string().as_bytes());
        file.push(b'\n');
    }
    // Two parts, and a boundary no JSON line contains (a hash of the file).
    let hash = file.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    let boundary = format!("moa-{hash:016x}");
    let mut form = Vec::new();
    form.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n").as_bytes(),
    );
    form.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"moa-batch.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n").as_bytes());
    form.extend_from_slice(&file);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    ApiRequest {
        method: "POST",
        url: format!("{base}/files"),
        content_type: Some(format!("multipart/form-data; boundary={boundary}")),
        body: form,
    }
}

/// OpenAI's job, for the uploaded file `file_id` of requests to `endpoint` (a path).
pub fn openai_create(base: &str, file_id: &str, endpoint: &str) -> ApiRequest {
    let body = json!({ "input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h" });
    ApiRequest::json(format!("{base}/batches"), &body)
}

/// The `id` of an upload or a job, from the provider's answer.
pub fn id_of(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    v["id"].as_str().map(str::to_owned).ok_or_else(|| format!("no id in {v}"))
}

/// The request that polls job `id`.
pub fn poll(kind: ProviderKind, base: &str, id: &str) -> ApiRequest {
    match kind {
        ProviderKind::Anthropic => ApiRequest::get(format!("{base}/messages/batches/{id}")),
        ProviderKind::OpenAi => ApiRequest::get(format!("{base}/batches/{id}")),
    }
}

/// A job's state, from its poll's answer.
pub fn state(kind: ProviderKind, body: &[u8]) -> Result<JobState, String> {
    let job: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    match kind {
        ProviderKind::Anthropic if job["processing_status"] == "ended" => {
            Ok(JobState::Ended(job["results_url"].as_str().map(str::to_owned).into_iter().collect()))
        }
        ProviderKind::Anthropic => Ok(JobState::Running),
        ProviderKind::OpenAi => match job["status"].as_str().unwrap_or("") {
            "failed" => {
                let errors = job["errors"]["data"].as_array().and_then(|e| e.first());
                Ok(JobState::Failed(errors.map_or_else(|| job.to_string(), Value::to_string)))
            }
            "completed" | "expired" | "cancelled" => {
                let files = ["output_file_id", "error_file_id"].iter().filter_map(|k| job[k].as_str());
                Ok(JobState::Ended(files.map(str::to_owned).collect()))
            }
            _ => Ok(JobState::Running),
        },
    }
}

/// The request that fetches one place of an ended job's results (a file id for OpenAI,
/// the results URL for Anthropic, which must be on the provider's own origin: a URL
/// elsewhere would be sent the key).
pub fn fetch(kind: ProviderKind, base: &str, place: &str) -> Result<ApiRequest, String> {
    match kind {
        ProviderKind::OpenAi => Ok(ApiRequest::get(format!("{base}/files/{place}/content"))),
        ProviderKind::Anthropic if origin_of(place) == origin_of(base) => Ok(ApiRequest::get(place.to_owned())),
        ProviderKind::Anthropic => Err(format!(
            "the results are at {place}, not on the provider's own origin: not fetched (it would get the key)"
        )),
    }
}

/// The replies in a results file (JSONL); lines without a `custom_id` are skipped.
pub fn results(kind: ProviderKind, text: &str) -> Result<Vec<BatchReply>, String> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("a result line is not JSON: {e}"))?;
        let Some(custom_id) = v["custom_id"].as_str().map(str::to_owned) else { continue };
        let (status, body) = match kind {
            ProviderKind::OpenAi => openai_result(&v),
            ProviderKind::Anthropic => anthropic_result(&v["result"]),
        };
        out.push(BatchReply { custom_id, status, body });
    }
    Ok(out)
}

fn openai_result(v: &Value) -> (u16, String) {
    let (r, e) = (&v["response"], &v["error"]);
    match r["status_code"].as_u64() {
        Some(status) => (u16::try_from(status).unwrap_or(0), r["body"].to_string()),
        None => {
            (0, format!("{}: {}", e["code"].as_str().unwrap_or("error"), e["message"].as_str().unwrap_or("no result")))
        }
    }
}

fn anthropic_result(result: &Value) -> (u16, String) {
    match result["type"].as_str() {
        Some("succeeded") => (200, result["message"].to_string()),
        Some("errored") => {
            let error = &result["error"]["error"];
            // The request was refused as such: a 400 (not retried); else a 500.
            let status = if error["type"] == "invalid_request_error" { 400 } else { 500 };
            (status, json!({ "type": "error", "error": error }).to_string())
        }
        other => (0, format!("the batch request {}", other.unwrap_or("ended without a result"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(url: &str, body: &str) -> HttpRequest {
        HttpRequest {
            method: "POST",
            url: url.into(),
            headers: vec![],
            body: body.into(),
            endpoint: "http://h/v1".into(),
            kind: ProviderKind::OpenAi,
        }
    }

    #[test]
    fn openais_upload_is_a_jsonl_file_of_unstreamed_requests_in_a_multipart_form() {
        let c = call("http://h/v1/chat/completions", r#"{"model":"m","stream":true,"stream_options":{}}"#);
        let req = create(ProviderKind::OpenAi, "http://h/v1", &[("id-1", &c)]);
        assert_eq!((req.method, req.url.as_str()), ("POST", "http://h/v1/files"));
        let ct = req.content_type.expect("a content type");
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").expect("multipart");
        let body = String::from_utf8(req.body).expect("text");
        assert!(body.starts_with(&format!("--{boundary}\r\n")) && body.ends_with(&format!("--{boundary}--\r\n")));
        assert!(body.contains("name=\"purpose\"\r\n\r\nbatch\r\n"), "{body}");
        let line = body.lines().find(|l| l.starts_with('{')).expect("a request line");
        let v: Value = serde_json::from_str(line).expect("json");
        assert_eq!(
            v,
            json!({ "custom_id": "id-1", "method": "POST", "url": "/v1/chat/completions", "body": { "model": "m" } })
        );
    }

    #[test]
    fn anthropics_job_holds_the_requests_as_params() {
        let c = call("http://h/v1/messages", r#"{"model":"m","stream":true}"#);
        let req = create(ProviderKind::Anthropic, "http://h/v1", &[("x", &c)]);
        assert_eq!(req.url, "http://h/v1/messages/batches");
        let v: Value = serde_json::from_slice(&req.body).expect("json");
        assert_eq!(v, json!({ "requests": [{ "custom_id": "x", "params": { "model": "m" } }] }));
    }

    #[test]
    fn job_states_and_where_their_results_are() {
        let s = |kind, body: &str| state(kind, body.as_bytes()).expect("a state");
        assert_eq!(s(ProviderKind::OpenAi, r#"{"status":"in_progress"}"#), JobState::Running);
        assert_eq!(
            s(ProviderKind::OpenAi, r#"{"status":"expired","output_file_id":"f1","error_file_id":"f2"}"#),
            JobState::Ended(vec!["f1".into(), "f2".into()])
        );
        let failed = s(ProviderKind::OpenAi, r#"{"status":"failed","errors":{"data":[{"message":"stream"}]}}"#);
        assert_eq!(failed, JobState::Failed(r#"{"message":"stream"}"#.into()));
        assert_eq!(s(ProviderKind::Anthropic, r#"{"processing_status":"in_progress"}"#), JobState::Running);
        assert_eq!(
            s(ProviderKind::Anthropic, r#"{"processing_status":"ended","results_url":"http://h/r"}"#),
            JobState::Ended(vec!["http://h/r".into()])
        );
        assert!(state(ProviderKind::OpenAi, b"<html>").is_err());
    }

    #[test]
    fn results_become_replies_with_the_status_the_call_would_have_had() {
        let openai = concat!(
            r#"{"custom_id":"a","response":{"status_code":200,"body":{"ok":1}}}"#,
            "\n",
            r#"{"custom_id":"b","response":null,"error":{"code":"batch_expired","message":"expired"}}"#,
            "\n",
            r#"{"no_id":true}"#
        );
        let r = results(ProviderKind::OpenAi, openai).expect("parsed");
        assert_eq!(r[0], BatchReply { custom_id: "a".into(), status: 200, body: r#"{"ok":1}"#.into() });
        assert_eq!((r[1].status, r[1].body.as_str(), r.len()), (0, "batch_expired: expired", 2));
        let anthropic = concat!(
            r#"{"custom_id":"a","result":{"type":"succeeded","message":{"id":"m"}}}"#,
            "\n",
            r#"{"custom_id":"b","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}}}"#,
            "\n",
            r#"{"custom_id":"c","result":{"type":"errored","error":{"type":"error","error":{"type":"api_error"}}}}"#,
            "\n",
            r#"{"custom_id":"d","result":{"type":"expired"}}"#
        );
        let r = results(ProviderKind::Anthropic, anthropic).expect("parsed");
        let statuses: Vec<u16> = r.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 400, 500, 0]);
        assert_eq!(r[3].body, "the batch request expired");
        assert!(results(ProviderKind::OpenAi, "not json").is_err());
    }

    #[test]
    fn anthropic_results_are_fetched_only_on_the_providers_origin() {
        assert!(
            fetch(ProviderKind::Anthropic, "https://api.anthropic.com/v1", "https://api.anthropic.com/v1/r").is_ok()
        );
        let err = fetch(ProviderKind::Anthropic, "https://api.anthropic.com/v1", "https://evil.example/r")
            .expect_err("elsewhere");
        assert!(err.contains("not on the provider's own origin"), "{err}");
        assert_eq!(
            fetch(ProviderKind::OpenAi, "http://h/v1", "f1").expect("a file").url,
            "http://h/v1/files/f1/content"
        );
    }
}
