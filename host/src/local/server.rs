//! Starting, stopping and probing the local servers: one process per model, detached, its
//! pid and log under the cache's `run/`, each on 127.0.0.1 only.

use super::provision::{ServerKind, server_installed, server_kind};
use super::{Cache, LocalError, LocalModel, io, provision, verified};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The launcher for the prebuilt wheel (it ships no command-line program).
const LAUNCHER: &str = include_str!("launch.py");

/// How long a server may take to load its weights and answer `/health`.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// What a port answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// `/health` says ok.
    Ok,
    /// Something listens but is not (yet) a healthy llama.cpp server.
    Other,
    /// Nothing listens.
    Down,
}

/// Probes `http://127.0.0.1:{port}/health` with a short timeout.
pub fn healthy(port: u16) -> Health {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else { return Health::Down };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return Health::Other;
    }
    let mut text = String::new();
    let _ = s.take(64 * 1024).read_to_string(&mut text);
    if text.starts_with("HTTP/1.1 200") && text.contains("\"ok\"") { Health::Ok } else { Health::Other }
}

/// Threads per server: one (`MOA_LLM_THREADS`). On 2 cores, two servers with two threads
/// each under load fell to ~1 token/s; one thread each gave 8-12 (0.5B).
fn threads() -> String {
    std::env::var("MOA_LLM_THREADS").ok().filter(|t| t.parse::<u32>().is_ok_and(|n| n > 0)).unwrap_or("1".into())
}

fn pid_file(cache: &Cache, m: &LocalModel, port: u16) -> PathBuf {
    cache.run_dir().join(format!("{}-{port}.pid", m.name))
}

fn log_file(cache: &Cache, m: &LocalModel, port: u16) -> PathBuf {
    cache.run_dir().join(format!("{}-{port}.log", m.name))
}

/// Servers this process spawned, kept so that one that exits is reaped (a zombie would
/// still answer `kill -0`).
static CHILDREN: std::sync::Mutex<Vec<std::process::Child>> = std::sync::Mutex::new(Vec::new());

/// Whether `pid` is a live process: reaped first if it is a child of ours, and not a
/// zombie by `/proc` where there is one.
fn alive(pid: u32) -> bool {
    if let Ok(mut children) = CHILDREN.lock()
        && let Some(i) = children.iter().position(|c| c.id() == pid)
    {
        // An error from try_wait means the child is gone too.
        if let Ok(None) = children[i].try_wait() {
            return true;
        }
        let mut exited = children.remove(i);
        let _ = exited.wait();
        return false;
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        return stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']));
    }
    Command::new("kill").args(["-0", &pid.to_string()]).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Whether `pid` is the server of `m` on `port` that a pid file names: alive, and (where
/// `/proc` tells) running those weights on that port, so a pid reused after a reboot or a
/// crash is never signalled.
fn ours(pid: u32, m: &LocalModel, port: u16) -> bool {
    if !alive(pid) {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => {
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let has = |s: &str| args.iter().any(|a| a.ends_with(s.as_bytes()));
            has(m.file) && has(&port.to_string())
        }
        Err(_) => true,
    }
}

fn read_pid(path: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn spawn(cache: &Cache, kind: &ServerKind, m: &LocalModel, port: u16) -> Result<u32, LocalError> {
    let log_path = log_file(cache, m, port);
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let err = log.try_clone().map_err(io(&log_path))?;
    let (t, ctx, port_s) = (threads(), m.context.to_string(), port.to_string());
    let mut cmd = match kind {
        ServerKind::Wheel { python } => {
            // Written whole under a temporary name, then renamed: another start may be
            // reading it.
            let launcher = cache.run_dir().join("launch.py");
            let tmp = cache.run_dir().join(format!("launch.py.{}", std::process::id()));
            std::fs::write(&tmp, LAUNCHER).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &launcher).map_err(io(&launcher))?;
            let mut c = Command::new(python);
            c.arg(&launcher).arg("--model").arg(cache.weights(m));
            c.args(["--port", &port_s, "--alias", m.alias, "--ctx", &ctx, "--parallel", "4", "--threads", &t]);
            c
        }
        ServerKind::Source { binary } => {
            let mut c = Command::new(binary);
            c.arg("-m").arg(cache.weights(m));
            c.args(["--host", "127.0.0.1", "--port", &port_s, "-np", "4", "-c", &ctx, "-t", &t, "-tb", &t]);
            // --metrics: token counters the end-to-end tests compare with moa's own accounts.
            c.args(["--alias", m.alias, "--metrics", "--jinja"]);
            c
        }
    };
    // Its own process group: a Ctrl-C meant for the command that started it is not its.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child =
        cmd.stdin(Stdio::null()).stdout(log).stderr(err).spawn().map_err(|e| LocalError::Command {
            what: format!("starting {}'s server", m.name),
            detail: e.to_string(),
        })?;
    let pid = child.id();
    if let Ok(mut children) = CHILDREN.lock() {
        children.push(child);
    }
    Ok(pid)
}

/// Starts `models`' servers on their ports unless they already run (provisioning what is
/// missing first), and waits until each answers `/health`. Returns the ones it started.
pub fn start(
    cache: &Cache,
    models: &[&'static LocalModel],
    say: &dyn Fn(&str),
) -> Result<Vec<&'static LocalModel>, LocalError> {
    let at: Vec<(&'static LocalModel, u16)> =
        models.iter().map(|m| Ok((*m, m.port()?))).collect::<Result<_, LocalError>>()?;
    Ok(start_at(cache, &at, say)?.into_iter().map(|(m, _)| m).collect())
}

/// [`start`] on the ports given. A model already answering on its port is used as it is
/// (and not stopped later: it is not this call's); only the models to be started are
/// provisioned. On any failure the servers this call started are stopped again.
pub fn start_at(
    cache: &Cache,
    models: &[(&'static LocalModel, u16)],
    say: &dyn Fn(&str),
) -> Result<Vec<(&'static LocalModel, u16)>, LocalError> {
    let mut wanted: Vec<(&'static LocalModel, u16)> = Vec::new();
    for &(m, port) in models {
        if let Some((other, _)) = wanted.iter().find(|(o, p)| *p == port && o.name != m.name) {
            return Err(LocalError::SharedPort { port, first: other.name.into(), second: m.name.into() });
        }
        if !wanted.contains(&(m, port)) {
            wanted.push((m, port));
        }
    }
    let mut to_start = Vec::new();
    for &(m, port) in &wanted {
        match healthy(port) {
            Health::Ok => say(&format!("{} already running on 127.0.0.1:{port}", m.name)),
            Health::Other if read_pid(&pid_file(cache, m, port)).is_some_and(|pid| ours(pid, m, port)) => {
                say(&format!("{} is starting on 127.0.0.1:{port}; waiting for it", m.name));
                wait_ready(cache, m, port)?;
            }
            Health::Other => return Err(LocalError::PortTaken { port, var: m.port_var.into() }),
            Health::Down => to_start.push((m, port)),
        }
    }
    if to_start.is_empty() {
        return Ok(vec![]);
    }
    let distinct: Vec<&LocalModel> = to_start.iter().map(|(m, _)| *m).collect();
    let kind = provision(cache, &distinct, say)?;
    let run = cache.run_dir();
    std::fs::create_dir_all(&run).map_err(io(&run))?;
    let mut started = Vec::new();
    let mut result = Ok(());
    for &(m, port) in &to_start {
        say(&format!("starting {} on 127.0.0.1:{port} ({} thread)", m.name, threads()));
        match spawn(cache, &kind, m, port) {
            Ok(pid) => {
                started.push((m, port));
                let pf = pid_file(cache, m, port);
                if let Err(e) = std::fs::write(&pf, pid.to_string()) {
                    result = Err(LocalError::Io { path: pf.display().to_string(), source: e });
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() {
        for &(m, port) in &started {
            if let Err(e) = wait_ready(cache, m, port) {
                result = Err(e);
                break;
            }
            say(&format!("{} ready on http://127.0.0.1:{port}/v1", m.name));
        }
    }
    if let Err(e) = result {
        // None of this call's servers is left running half-started.
        let _ = stop_at(cache, &started);
        return Err(e);
    }
    Ok(started)
}

fn wait_ready(cache: &Cache, m: &LocalModel, port: u16) -> Result<(), LocalError> {
    let log = log_file(cache, m, port);
    let pid = read_pid(&pid_file(cache, m, port));
    let fail =
        |reason: String| LocalError::NotStarted { model: m.name.into(), port, reason, log: log.display().to_string() };
    let began = Instant::now();
    while began.elapsed() < READY_WITHIN {
        if healthy(port) == Health::Ok {
            return Ok(());
        }
        if !pid.is_some_and(alive) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(fail(format!("it exited: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "))));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(fail(format!("no healthy answer within {} s", READY_WITHIN.as_secs())))
}

/// Stops the servers of `models` that `start` started (by their pid files); returns the
/// ones it stopped.
pub fn stop(cache: &Cache, models: &[&'static LocalModel]) -> Result<Vec<&'static LocalModel>, LocalError> {
    let at: Vec<(&'static LocalModel, u16)> =
        models.iter().map(|m| Ok((*m, m.port()?))).collect::<Result<_, LocalError>>()?;
    Ok(stop_at(cache, &at)?.into_iter().map(|(m, _)| m).collect())
}

/// [`stop`] on the ports given: each whose pid file names a live server of that model on
/// that port is sent SIGTERM (SIGKILL after 10 s); a stale pid file is removed. Every
/// model is tried; the first error is returned after.
pub fn stop_at(
    cache: &Cache,
    models: &[(&'static LocalModel, u16)],
) -> Result<Vec<(&'static LocalModel, u16)>, LocalError> {
    let mut stopped = Vec::new();
    let mut first_error = None;
    for &(m, port) in models {
        let pf = pid_file(cache, m, port);
        let Some(pid) = read_pid(&pf) else { continue };
        if ours(pid, m, port) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let began = Instant::now();
            while alive(pid) && began.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                while alive(pid) && began.elapsed() < Duration::from_secs(12) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            stopped.push((m, port));
        }
        if let Err(e) = std::fs::remove_file(&pf) {
            first_error.get_or_insert(LocalError::Io { path: pf.display().to_string(), source: e });
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(stopped),
    }
}

/// A line per model: weights present, server running, and the server's kind.
pub fn status(cache: &Cache) -> Result<Vec<String>, LocalError> {
    let server = match server_kind(cache) {
        ServerKind::Wheel { .. } => "prebuilt llama.cpp server (PyPI xllamacpp)",
        ServerKind::Source { .. } => "llama-server built from source",
    };
    let installed = if server_installed(cache) { "installed" } else { "not installed" };
    let mut out = vec![format!("server: {server}, {installed} ({})", cache.root.display())];
    for m in &super::MODELS {
        let port = m.port()?;
        let weights = if verified(cache, m) { "weights ok" } else { "weights missing" };
        let state = match healthy(port) {
            Health::Ok => format!("running on http://127.0.0.1:{port}/v1"),
            Health::Other => format!("port {port} answers, but not as a healthy server"),
            Health::Down => format!("not running (port {port})"),
        };
        out.push(format!("{:10} {:28} {weights}, {state}", m.name, m.alias));
    }
    Ok(out)
}
