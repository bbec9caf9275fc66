//! The native transport: carries out a [`Run`]'s requests with reqwest and feeds the
//! responses back as they stream in. No protocol logic lives here; it is all in moa-core.

mod net;

use crate::clock::Clock;
use bytes::Bytes;
use futures_util::StreamExt;
use moa_core::Recipe;
use moa_core::engine::NetError;
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
    Failed { call: CallId, kind: NetError, error: String },
    Invalid { call: CallId, error: String },
}

/// An HTTP client shared by every run: one connection pool, reused across calls.
#[derive(Clone, Debug)]
pub struct Transport {
    client: reqwest::Client,
    /// Caps shared by every run on this transport, by provider identity (the normalized
    /// base URL, [`moa_core::HttpRequest::endpoint`]; never a prefix of it).
    limits: Arc<HashMap<String, Arc<Semaphore>>>,
}

impl Transport {
    /// A transport with connection reuse, HTTP/2 where offered, and no timeouts of its
    /// own (deadlines are the core's).
    pub fn new() -> Result<Transport, reqwest::Error> {
        let client = reqwest::Client::builder()
            // Keys never follow a redirect: a 3xx is the provider's answer (an error).
            .redirect(reqwest::redirect::Policy::none())
            // Proxies from the environment, but loopback never goes through one.
            .no_proxy()
            .proxy(env_proxy())
            .tcp_nodelay(true)
            // The system resolver, with a typed error: a name that does not resolve is told
            // from other failures by its type.
            .dns_resolver(Arc::new(net::Resolver))
            .connect_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("moa/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Transport { client, limits: Arc::default() })
    }

    /// The HTTP client (no redirects followed, no proxy for loopback), for requests that
    /// are not chat calls: the providers' batch APIs.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Shares each provider's `max_concurrency` across every run on this transport (a
    /// batch runs many items at once, a server many requests). A provider is identified
    /// by its normalized base URL, so two recipes naming the same server share one cap;
    /// where they give it different caps, the smallest holds. Every request reports
    /// [`Input::Sent`] when it leaves, so with [`moa_core::RunOptions::reports_sent`]
    /// waiting here counts against no deadline.
    pub fn with_provider_limits<'a>(mut self, recipes: impl IntoIterator<Item = &'a Recipe>) -> Transport {
        let mut caps: HashMap<String, u32> = HashMap::new();
        for p in recipes.into_iter().flat_map(|r| r.providers.values()) {
            let (Some(cap), Ok(endpoint)) = (p.max_concurrency, moa_core::http::normalize_base_url(&p.base_url)) else {
                continue;
            };
            let c = caps.entry(endpoint).or_insert(cap);
            *c = (*c).min(cap);
        }
        let limits = caps.into_iter().map(|(k, cap)| (k, Arc::new(Semaphore::new(cap as usize)))).collect();
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
                    let limit = self.limits.get(&http.endpoint).cloned();
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
                // This host runs its plugins itself (HostResolver): it never resolves a
                // strategy for a driver to run.
                Action::Decide { decision, .. } => run.handle(Input::Decided {
                    decision,
                    answer: Err("this host runs its plugins itself, not through its driver"),
                    now: clock.now(),
                }),
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
        Msg::Failed { call, kind, error } => {
            tasks.remove(&call);
            run.handle(Input::Failed { call, kind, error, now })
        }
        Msg::Invalid { call, error } => {
            tasks.remove(&call);
            run.handle(Input::Invalid { call, error, now })
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
    // A request the HTTP library cannot even build (a URL or header value it rejects)
    // is reported as such: retrying cannot help.
    let method = match reqwest::Method::from_bytes(http.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            let _ = tx.send(Msg::Invalid { call, error: format!("not an HTTP method: {:?}", http.method) });
            return;
        }
    };
    let mut req = client.request(method, &http.url).body(http.body);
    for (k, v) in &http.headers {
        req = req.header(k, v);
    }
    let req = match req.build() {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Msg::Invalid { call, error: describe(&e) });
            return;
        }
    };
    // Held until the body ends or the task is aborted.
    let _permit = match limit {
        Some(s) => s.acquire_owned().await.ok(),
        None => None,
    };
    let _ = tx.send(Msg::Sent { call });
    let resp = match client.execute(req).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(Msg::Failed { call, kind: net::classify(&e), error: describe(&e) });
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
                let _ = tx.send(Msg::Failed { call, kind: net::classify(&e), error: describe(&e) });
                return;
            }
        }
    }
    let _ = tx.send(Msg::End { call });
}

/// `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` (and `NO_PROXY`) as reqwest reads them,
/// except that loopback addresses are never proxied: a local model server's traffic
/// (and any key sent to it) stays on the machine.
fn env_proxy() -> reqwest::Proxy {
    let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()));
    let https = var(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]);
    let http = var(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]);
    let no_proxy = reqwest::NoProxy::from_env();
    reqwest::Proxy::custom(move |url| {
        let host = url.host_str().unwrap_or("");
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            return None;
        }
        let proxy = if url.scheme() == "https" { https.clone() } else { http.clone() }?;
        reqwest::Url::parse(&proxy).ok()
    })
    .no_proxy(no_proxy)
}

/// Whether the connection was refused, by the OS's own error kind in the cause chain
/// (reqwest says only that connecting failed).
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
