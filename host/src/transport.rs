//! The native transport: carries out a [`Run`]'s requests with reqwest and feeds the
//! responses back as they stream in. No protocol logic lives here; it is all in moa-core.

use crate::clock::Clock;
use bytes::Bytes;
use futures_util::StreamExt;
use moa_core::Recipe;
use moa_core::{Action, CallId, Event, HttpRequest, Input, Outcome, Run};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a request task reports.
enum Msg {
    Sent { call: CallId },
    Head { call: CallId, status: u16, headers: Vec<(String, String)> },
    Body { call: CallId, bytes: Bytes },
    End { call: CallId },
    Failed { call: CallId, error: String },
}

/// An HTTP client shared by every run: one connection pool, reused across calls.
#[derive(Clone, Debug)]
pub struct Transport {
    client: reqwest::Client,
    /// Caps shared by every run on this transport, by provider base URL.
    limits: Arc<Vec<(String, Arc<Semaphore>)>>,
}

impl Transport {
    /// A transport with connection reuse, HTTP/2 where offered, and no timeouts of its
    /// own (deadlines are the core's).
    pub fn new() -> Result<Transport, reqwest::Error> {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("moa/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Transport { client, limits: Arc::default() })
    }

    /// Shares each provider's `max_concurrency` across every run on this transport (a
    /// batch runs many at once). Queued requests report [`Input::Sent`] when they leave,
    /// so waiting here counts against no deadline.
    pub fn with_provider_limits(mut self, recipe: &Recipe) -> Transport {
        let limits = recipe
            .providers
            .values()
            .filter_map(|p| {
                Some((
                    p.base_url.trim_end_matches('/').to_owned(),
                    Arc::new(Semaphore::new(p.max_concurrency? as usize)),
                ))
            })
            .collect();
        self.limits = Arc::new(limits);
        self
    }

    /// Drives `run` to its end. `on_event` sees every event as it happens; cancelling
    /// `cancel` cancels the run (and so every call in flight).
    pub async fn drive(
        &self,
        run: &mut Run,
        clock: &Clock,
        cancel: &CancellationToken,
        mut on_event: impl FnMut(&Event),
    ) -> Outcome {
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Aborts every request task if this future is dropped (a server's client went away).
        let mut tasks = Tasks::default();
        let mut cancelled = false;
        loop {
            match run.poll() {
                Action::Request { call, http } => {
                    let limit = self
                        .limits
                        .iter()
                        .find(|(base, _)| http.url.starts_with(base.as_str()))
                        .map(|(_, s)| s.clone());
                    let task = tokio::spawn(send(self.client.clone(), call, http, limit, tx.clone()));
                    tasks.0.insert(call, task);
                }
                Action::Cancel { call } => {
                    // Aborting the task drops the response, which closes the connection.
                    if let Some(task) = tasks.0.remove(&call) {
                        task.abort();
                    }
                }
                Action::Event(event) => on_event(&event),
                Action::Done(outcome) => return outcome,
                Action::Wait(deadline) => {
                    let sleep = async {
                        match deadline {
                            Some(t) => tokio::time::sleep_until(clock.instant(t).into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        biased;
                        _ = cancel.cancelled(), if !cancelled => {
                            cancelled = true;
                            run.cancel(clock.now());
                        }
                        msg = rx.recv() => {
                            // `tx` lives in this scope, so the channel never closes.
                            if let Some(msg) = msg {
                                feed(run, msg, clock, &mut tasks.0);
                                // Take whatever else has arrived before polling again.
                                while let Ok(msg) = rx.try_recv() {
                                    feed(run, msg, clock, &mut tasks.0);
                                }
                            }
                        }
                        _ = sleep => run.handle(Input::Tick { now: clock.now() }),
                    }
                }
            }
        }
    }
}

/// The request tasks of one run; dropping it aborts them, which closes their connections.
#[derive(Default)]
struct Tasks(HashMap<CallId, JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

fn feed(run: &mut Run, msg: Msg, clock: &Clock, tasks: &mut HashMap<CallId, JoinHandle<()>>) {
    let now = clock.now();
    match msg {
        Msg::Sent { call } => run.handle(Input::Sent { call, now }),
        Msg::Head { call, status, headers } => run.handle(Input::Head { call, status, headers, now }),
        Msg::Body { call, bytes } => run.handle(Input::Body { call, bytes: &bytes, now }),
        Msg::End { call } => {
            tasks.remove(&call);
            run.handle(Input::End { call, now })
        }
        Msg::Failed { call, error } => {
            tasks.remove(&call);
            run.handle(Input::Failed { call, error, now })
        }
    }
}

async fn send(
    client: reqwest::Client,
    call: CallId,
    http: HttpRequest,
    limit: Option<Arc<Semaphore>>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    // Held until the body ends or the task is aborted.
    let _permit = match limit {
        Some(s) => match s.acquire_owned().await {
            Ok(p) => {
                let _ = tx.send(Msg::Sent { call });
                Some(p)
            }
            Err(_) => None,
        },
        None => None,
    };
    let mut req = client.request(reqwest::Method::POST, &http.url).body(http.body);
    for (k, v) in &http.headers {
        req = req.header(k, v);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Msg::Failed { call, error: describe(&e) });
            return;
        }
    };
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let _ = tx.send(Msg::Head { call, status: resp.status().as_u16(), headers });
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => {
                let _ = tx.send(Msg::Body { call, bytes });
            }
            Err(e) => {
                let _ = tx.send(Msg::Failed { call, error: describe(&e) });
                return;
            }
        }
    }
    let _ = tx.send(Msg::End { call });
}

/// The error with its causes ("error sending request ...: connection refused"), which is
/// what a user needs; reqwest's top-level message alone hides the cause.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}
