//! The connection loop under the router: what axum's `serve` leaves open for a server
//! that stays up on a developer's machine. A client that sends its headers one byte a
//! second is dropped after a bounded time; connections are bounded below the process's
//! file-descriptor limit, so half-open ones cannot lock real clients out; and a shutdown
//! waits for requests in flight only for a bounded drain time.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connection limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The time a client has to send a request's whole header block.
    pub header_timeout: Duration,
    /// Connections at once; further ones wait in the listen queue.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { header_timeout: Duration::from_secs(10), max_connections: 512, drain: Duration::from_secs(10) }
    }
}

/// Serves `app` on `listener` until `shutdown` fires, then drains for at most
/// `limits.drain`.
pub async fn run(listener: TcpListener, app: Router, limits: Limits, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((socket, _)) => socket,
                Err(e) => {
                    // Out of file descriptors or the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = socket.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(socket), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(limits.drain) => tracing::warn!(drain_secs = limits.drain.as_secs_f64(), "requests still open after the drain time; closing them"),
    }
}
