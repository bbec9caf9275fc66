//! One provider's batch API over HTTP: the formats are the core's
//! (`moa_core::provider::batch`); this sends their requests, retries what is worth
//! retrying, and polls a job until it ends.

use super::super::BatchError;
use super::{Pending, Polling};
use moa_core::provider::batch::{self, ApiRequest, BatchReply, JobState, path_of};
use moa_core::vocab::ProviderKind;
use moa_core::{HttpRequest, Redactor};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The batch API's client for one provider: its base URL and the calls' own auth headers.
pub(super) struct Api<'a> {
    pub(super) client: &'a reqwest::Client,
    pub(super) base: String,
    pub(super) headers: Vec<(String, String)>,
    /// The provider's wire format, as its calls carry it.
    pub(super) kind: ProviderKind,
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
    async fn send(&self, req: &ApiRequest) -> Result<Vec<u8>, BatchError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let path = path_of(&req.url);
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=5 {
            let mut r = self.client.request(method.clone(), &req.url);
            for (k, v) in &self.headers {
                r = r.header(k, v);
            }
            if let Some(content_type) = &req.content_type {
                r = r.header("content-type", content_type).body(req.body.clone());
            }
            let outcome = match r.send().await {
                Ok(r) => {
                    let status = r.status();
                    let bytes = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                    if status.is_success() {
                        return Ok(bytes);
                    }
                    let text = String::from_utf8_lossy(&bytes).chars().take(2000).collect::<String>();
                    let message = format!("{method} {path} answered {status}: {text}");
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Err(self.fail(message));
                    }
                    message
                }
                Err(e) => format!("{method} {path}: {}", crate::transport::describe(&e)),
            };
            if attempt == 5 {
                return Err(self.fail(outcome));
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        unreachable!("the loop returns")
    }

    /// Creates a job for `calls` (OpenAI: the requests file, then the job); its id.
    pub(super) async fn create(&self, calls: &[&Pending]) -> Result<String, BatchError> {
        let pairs: Vec<(&str, &HttpRequest)> = calls.iter().map(|p| (p.custom_id.as_str(), &p.http)).collect();
        let first = batch::create(self.kind, &self.base, &pairs);
        let id =
            batch::id_of(&self.send(&first).await?).map_err(|e| self.fail(format!("{}: {e}", path_of(&first.url))))?;
        match self.kind {
            ProviderKind::Anthropic => Ok(id),
            ProviderKind::OpenAi => {
                let job = batch::openai_create(&self.base, &id, path_of(&calls[0].http.url));
                batch::id_of(&self.send(&job).await?).map_err(|e| self.fail(format!("{}: {e}", path_of(&job.url))))
            }
        }
    }

    /// Polls job `id` until it ends; returns every result it has (a job that expired or
    /// was cancelled has results for some requests, or none). `None` when cancelled.
    pub(super) async fn wait(
        &self,
        id: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Vec<BatchReply>>, BatchError> {
        let mut wait = self.polling.min;
        loop {
            let body = self.send(&batch::poll(self.kind, &self.base, id)).await?;
            match batch::state(self.kind, &body).map_err(|e| self.fail(format!("job {id}: {e}")))? {
                JobState::Running => {}
                // Refused as a whole (validation): say why; every request stays to do.
                JobState::Failed(why) => return Err(self.fail(format!("job {id} failed: {why}"))),
                JobState::Ended(places) => {
                    let mut out = Vec::new();
                    for place in places {
                        let req = batch::fetch(self.kind, &self.base, &place).map_err(|e| self.fail(e))?;
                        let text = String::from_utf8_lossy(&self.send(&req).await?).into_owned();
                        out.extend(batch::results(self.kind, &text).map_err(|e| self.fail(e))?);
                    }
                    return Ok(Some(out));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => return Ok(None),
            }
            wait = (wait * 2).min(self.polling.max);
        }
    }
}
