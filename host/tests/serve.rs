//! `moa serve` as a process: the official `openai` Python client against the real local
//! llama-server, and the operating rules (auth, body cap, 429 past the run bound, client
//! disconnects cancelling upstream calls, SIGTERM) against the fake upstream.

use moa_testkit as common;

use common::Fake;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A `moa serve` child on an ephemeral port; killed when dropped.
struct Server {
    child: Child,
    base: String,
    /// Its stderr (the access log), line by line, as it comes.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn log(&self) -> String {
        self.log.lock().expect("lock").join("\n")
    }

    /// The log once `ready` holds of it, polled for up to 10 s: the line a test asserts on
    /// is waited for, never a fixed time.
    fn log_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = std::time::Instant::now();
        loop {
            let log = self.log();
            if ready(&log) {
                return log;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no {what} in the log after 10 s:\n{log}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(recipes: &Path, extra: &[&str]) -> Server {
    serve_with(Command::new(env!("CARGO_BIN_EXE_moa")), recipes, extra)
}

fn serve_with(mut command: Command, recipes: &Path, extra: &[&str]) -> Server {
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--recipes"])
        .arg(recipes)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .expect("moa serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Warnings may come first; then "moa: serving on http://127.0.0.1:PORT/v1 (...)".
    let mut early = Vec::new();
    let first = loop {
        let line = lines.next().expect("a line").expect("text");
        if line.contains("serving on") {
            break line;
        }
        early.push(line);
    };
    let addr = first.split("http://").nth(1).and_then(|s| s.split('/').next()).unwrap_or_else(|| panic!("{first}"));
    let base = format!("http://{addr}");
    let log = std::sync::Arc::new(std::sync::Mutex::new(early));
    let sink = log.clone();
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| sink.lock().expect("lock").push(l)));
    Server { child, base, log }
}

fn fake_recipe(dir: &Path, fake: &Fake, name: &str, models: &[&str], aggregator: &str) {
    let agents: Vec<String> = models.iter().map(|m| format!("\"fake:{m}\"")).collect();
    let text = format!(
        "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[[layers]]\nagents = [{}]\n[aggregator]\nmodel = \"fake:{aggregator}\"\n",
        fake.base_url,
        agents.join(", ")
    );
    std::fs::write(dir.join(format!("{name}.toml")), text).expect("write");
}

fn post(base: &str, token: Option<&str>, body: &str) -> (u16, String, Option<String>) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-D",
        "/dev/stderr",
        "-H",
        "content-type: application/json",
        "--data-binary",
        "@-",
    ]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("authorization: Bearer {t}")]);
    }
    let mut child = cmd
        .arg(format!("{base}/v1/chat/completions"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("send");
    let o = child.wait_with_output().expect("curl runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (body, code) = out.rsplit_once('\n').expect("status line");
    let headers = String::from_utf8_lossy(&o.stderr).to_lowercase();
    let retry = headers.lines().find_map(|l| l.strip_prefix("retry-after: ").map(|v| v.trim().to_owned()));
    (code.parse().expect("code"), body.to_owned(), retry)
}

#[test]
fn the_openai_python_client_works_against_the_real_local_model() {
    if !common::needs::wanted(common::needs::Needs::Llama) {
        return;
    }
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let ports = [("MOA_SMOLLM_PORT", "18481")];
    let llm = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_moa")).args(["local", arg, "smollm"]).envs(ports).status().expect("moa local")
    };
    assert!(llm("start").success());
    struct Stop<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _stop = Stop(|| {
        llm("stop");
    });
    let dir = tempfile::tempdir().expect("tmp");
    let mut recipe = moa_core::recipe::preset("local-smollm").expect("preset");
    recipe.providers.get_mut("smollm").expect("smollm").base_url = "http://127.0.0.1:18481/v1".into();
    // The aggregator writes every answer here: the client's checks read its finish_reason.
    recipe.aggregator.strategy = None;
    recipe.max_tokens = Some(32);
    std::fs::write(dir.path().join("local-test.toml"), recipe.to_toml()).expect("write");
    let server = serve(dir.path(), &[]);
    let python = python();
    let o = Command::new(&python)
        .arg(repo().join("tests/serve/openai_client.py"))
        .args([&format!("{}/v1", server.base), "local-test"])
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e} (scripts/test installs the openai client in ~/.cache/moa/venv)"));
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("4 checks passed"));
}

#[test]
fn a_real_local_model_makes_a_tool_round_trip_through_moa_serve() {
    if !common::needs::wanted(common::needs::Needs::Llama) || !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let ports = [("MOA_QWEN15_PORT", "18483")];
    let llm = |arg: &str| {
        Command::new(env!("CARGO_BIN_EXE_moa"))
            .args(["local", arg, "qwen-1.5b"])
            .envs(ports)
            .status()
            .expect("moa local")
    };
    assert!(llm("start").success());
    struct Stop<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)()
        }
    }
    let _stop = Stop(|| {
        llm("stop");
    });
    let dir = tempfile::tempdir().expect("tmp");
    // The model alone: the round trip is what is tested, and one call per step keeps it short.
    let mut recipe = moa_core::recipe::preset("local").expect("preset");
    recipe.providers.get_mut("qwen15").expect("qwen15").base_url = "http://127.0.0.1:18483/v1".into();
    recipe.layers.clear();
    recipe.aggregator.strategy = None;
    recipe.max_tokens = Some(96);
    std::fs::write(dir.path().join("qwen-tools.toml"), recipe.to_toml()).expect("write");
    let server = serve(dir.path(), &[]);
    let o = Command::new(python())
        .arg(repo().join("tests/serve/openai_tool_real.py"))
        .args([&format!("{}/v1", server.base), "qwen-tools"])
        .output()
        .expect("python runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}\n{}", String::from_utf8_lossy(&o.stderr), server.log());
    assert!(out.contains("real tool round trip: 2 checks passed"), "{out}");
}

#[test]
fn auth_body_cap_and_proposals() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "quick", &["a;text=one", "b;text=two"], "agg;text=final");
    let server = serve(dir.path(), &["--token", "s3cret", "--max-body", "2000"]);
    let body = r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}], "moa_proposals": true, "temperature": 0.1, "max_tokens": 9}"#;
    let (code, text, _) = post(&server.base, None, body);
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("\"code\":\"invalid_api_key\""), "{text}");
    let (code, text, _) = post(&server.base, Some("s3cret"), body);
    assert_eq!(code, 200, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "final");
    assert_eq!(v["moa"]["layers"][0]["calls"][1]["text"], "two", "proposals on request");
    let agg = fake.seen.bodies.lock().expect("lock").last().cloned().expect("aggregator call");
    assert_eq!(
        (agg["temperature"].as_f64(), agg["max_tokens"].as_u64()),
        (Some(0.1), Some(9)),
        "the request's knobs reach the aggregator"
    );
    let big = format!(r#"{{"model": "quick", "messages": [{{"role": "user", "content": "{}"}}]}}"#, "x".repeat(5000));
    let (code, _, _) = post(&server.base, Some("s3cret"), &big);
    assert_eq!(code, 413);
}

#[test]
fn past_the_run_bound_clients_get_429_and_a_disconnect_cancels_upstream() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "slow", &["a;tokens=100;rate=20", "b;tokens=100;rate=20"], "agg");
    let server = serve(dir.path(), &["--max-runs", "1"]);
    // One streaming client holds the only run slot...
    let mut streaming = Command::new("curl")
        .args([
            "-sN",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"model": "slow", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#,
        ])
        .arg(format!("{}/v1/chat/completions", server.base))
        .stdout(Stdio::null())
        .spawn()
        .expect("curl");
    for _ in 0..100 {
        if fake.seen.open.load(Ordering::SeqCst) == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 2, "both proposers streaming");
    // ...so the next one is told to come back, not queued.
    let (code, text, retry) =
        post(&server.base, None, r#"{"model": "slow", "messages": [{"role": "user", "content": "hi"}]}"#);
    assert_eq!(code, 429, "{text}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(text.contains("rate_limit_exceeded"), "{text}");
    // The streaming client goes away: its run and both upstream calls are cancelled.
    streaming.kill().expect("kill curl");
    let _ = streaming.wait();
    for _ in 0..100 {
        if fake.seen.open.load(Ordering::SeqCst) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 0, "upstream calls cancelled");
    assert_eq!(fake.seen.dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn served_recipes_may_use_plugin_strategies() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(common::plugins::path("majority-vote"), dir.path().join("vote.wasm")).expect("copy");
    fake_recipe(dir.path(), &fake, "voted", &["a;text=4", "b;text=4", "c;text=5"], "agg");
    let path = dir.path().join("voted.toml");
    let text = std::fs::read_to_string(&path).expect("read") + "strategy = { plugin = \"vote.wasm\" }\n";
    std::fs::write(&path, text).expect("write");
    let server = serve(dir.path(), &[]);
    let (code, body, _) =
        post(&server.base, None, r#"{"model": "voted", "messages": [{"role": "user", "content": "2+2?"}]}"#);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"content\":\"4\""), "{body}");
    assert_eq!(fake.count("agg"), 0, "the plugin decided; no aggregator call");
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "quick", &["a"], "agg");
    let mut server = serve(dir.path(), &[]);
    let (code, _, _) =
        post(&server.base, None, r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}]}"#);
    assert_eq!(code, 200);
    assert!(Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill").success());
    let status = server.child.wait().expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_streamed_answer_that_breaks_ends_with_an_error_and_a_plain_one_is_retried() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    // The aggregator streams "one two " and then its connection resets, once per model.
    fake_recipe(dir.path(), &fake, "breaks", &["a"], "agg;text=one two three four;fault=reset");
    fake_recipe(dir.path(), &fake, "breaks2", &["a"], "agg2;text=one two three four;fault=reset");
    let server = serve(dir.path(), &[]);
    let (code, body, _) = post(
        &server.base,
        None,
        r#"{"model": "breaks", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#,
    );
    assert_eq!(code, 200);
    let content: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(content, "one two ", "no second answer appended:\n{body}");
    assert!(body.contains("\"error\"") && body.contains("broke off"), "{body}");
    assert!(!body.contains("[DONE]"), "a broken stream does not end as if whole:\n{body}");
    assert!(!body.contains("\"finish_reason\":\"stop\""), "{body}");
    // Without streaming nothing was delivered yet: the retry gives the whole answer,
    // and the usage counts the broken attempt too.
    let (code, body, _) =
        post(&server.base, None, r#"{"model": "breaks2", "messages": [{"role": "user", "content": "hi"}]}"#);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "one two three four");
    assert!(v["usage"]["moa_wasted_tokens"].as_u64().is_some_and(|n| n > 0), "{body}");
    assert_eq!(v["usage"]["moa_estimated"], true, "{body}");
}

#[test]
fn a_providers_cap_holds_across_concurrent_requests() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let text = format!(
        "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_concurrency = 2\n[[layers]]\nagents = [\"fake:a;ttft=100\", \"fake:b;ttft=100\", \"fake:c;ttft=100\"]\n[aggregator]\nmodel = \"fake:agg;ttft=100\"\n[policy]\nstall_timeout_secs = 0.5\n",
        fake.base_url
    );
    std::fs::write(dir.path().join("capped.toml"), text).expect("write");
    let server = serve(dir.path(), &[]);
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let base = server.base.clone();
            std::thread::spawn(move || {
                post(&base, None, r#"{"model": "capped", "messages": [{"role": "user", "content": "hi"}]}"#)
            })
        })
        .collect();
    for c in clients {
        let (code, body, _) = c.join().expect("client");
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(fake.seen.max_open.load(Ordering::SeqCst), 2, "two slots, across all six requests");
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), 24, "no call stalled in the queue and was retried");
}

fn python() -> String {
    common::needs::python()
}

#[test]
fn the_contract_with_the_official_client_refused_honoured_and_every_error_openais() {
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "stops", &["a"], "agg;text=alpha beta STOP gamma");
    fake_recipe(dir.path(), &fake, "long", &["a"], "agg;text=cut;finish=length");
    let server = serve(dir.path(), &["--token", "tok-123", "--max-body", "100000"]);
    let o = Command::new(python())
        .arg(repo().join("tests/serve/openai_contract.py"))
        .args([&format!("{}/v1", server.base), "tok-123"])
        .output()
        .expect("python runs (scripts/test installs the openai client in ~/.cache/moa/venv)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("openai contract: 19 checks passed"), "{out}");
    // The honoured knobs reached the aggregator as sent.
    let bodies = fake.seen.bodies.lock().expect("lock").clone();
    let agg = bodies.iter().find(|b| b["model"] == "agg;text=alpha beta STOP gamma" && b.get("seed").is_some());
    let agg = agg.expect("the aggregator call with the knobs");
    assert_eq!(agg["top_p"], 0.5);
    assert_eq!(agg["seed"], 7);
    assert_eq!(agg["stop"], serde_json::json!(["STOP"]));
    assert_eq!((agg["presence_penalty"].as_f64(), agg["frequency_penalty"].as_f64()), (Some(0.25), Some(-0.25)));
    // Refused requests started nothing upstream: only the three accepted runs called it.
    assert_eq!(bodies.len(), 6, "{} upstream calls", bodies.len());
}

/// Raw HTTP on a fresh connection: (status, headers and body as text).
fn raw_http(base: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(request.as_bytes()).expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

#[test]
fn web_pages_and_rebound_names_cannot_drive_it() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "quick", &["a"], "agg");
    let server = serve(dir.path(), &["--allow-origin", "https://app.example"]);
    let port = server.base.rsplit(':').next().expect("port").to_owned();
    let body = r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}]}"#;
    let post = |headers: &str| {
        raw_http(
            &server.base,
            &format!(
                "POST /v1/chat/completions HTTP/1.1\r\n{headers}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    // DNS rebinding: a page whose own name resolves to 127.0.0.1.
    let (code, text) = post(&format!("Host: evil.example:{port}"));
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("is not this server's address"), "{text}");
    // Another origin, and a cross-site fetch without an Origin.
    let (code, text) = post(&format!("Host: 127.0.0.1:{port}\r\nOrigin: http://evil.example"));
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("--allow-origin"), "{text}");
    let (code, _) = post(&format!("Host: localhost:{port}\r\nSec-Fetch-Site: cross-site"));
    assert_eq!(code, 403);
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), 0, "no run started");
    // The allowed origin works, with CORS headers; so does a client that is no browser.
    let (code, text) = post(&format!("Host: localhost:{port}\r\nOrigin: https://app.example"));
    assert_eq!(code, 200, "{text}");
    assert!(text.to_lowercase().contains("access-control-allow-origin: https://app.example"), "{text}");
    let (code, text) = post(&format!("Host: 127.0.0.1:{port}"));
    assert_eq!(code, 200, "{text}");
    // With a token, other host names are fine (it is meant to be reached).
    let server = serve(dir.path(), &["--token", "t"]);
    let (code, text) = raw_http(
        &server.base,
        &format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: moa.internal\r\nauthorization: Bearer t\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(code, 200, "{text}");
}

#[test]
fn slow_and_half_open_connections_cannot_hold_it() {
    use std::io::{Read, Write};
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "quick", &["a"], "agg");
    // This test itself holds 1,100+ sockets: raise its own descriptor limit (soft up to
    // the hard limit), and fail clearly if the machine does not allow that many.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < 4096 {
        // Root may raise the hard limit too; anyone may raise the soft one up to it.
        let raised = setrlimit(Resource::RLIMIT_NOFILE, 4096, hard.max(4096)).is_ok()
            || setrlimit(Resource::RLIMIT_NOFILE, hard.min(4096), hard).is_ok();
        let (now, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        assert!(raised && now >= 1200, "this test needs 1,200 file descriptors; the limit is {now} (hard {hard})");
    }
    // The server gets 1,024 file descriptors and 1,100 connections that never finish
    // their headers, plus one that sends a byte a second.
    let mut sh = Command::new("sh");
    sh.args(["-c", &format!("ulimit -n 1024 && exec {} \"$@\"", env!("CARGO_BIN_EXE_moa")), "moa"]);
    let mut server =
        serve_with(sh, dir.path(), &["--header-timeout-secs", "1", "--max-connections", "900", "--drain-secs", "1"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let t = std::time::Instant::now();
    let mut dribbler = std::net::TcpStream::connect(&addr).expect("connect");
    let mut idle: Vec<std::net::TcpStream> = Vec::new();
    for _ in 0..1100 {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect (the listen queue holds the rest)");
        let _ = s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        idle.push(s);
    }
    // A real client is served within a bounded time, not locked out.
    let body = r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}]}"#;
    let (code, out, _) = post(&server.base, None, body);
    assert_eq!(code, 200, "{out}");
    assert!(t.elapsed() < Duration::from_secs(10), "served after {:?}", t.elapsed());
    // The byte-a-second client is dropped once its header time is up.
    dribbler.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let started = std::time::Instant::now();
    let mut closed = false;
    for b in b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n" {
        if dribbler.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let mut buf = [0u8; 512];
    closed |= matches!(dribbler.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "a client dribbling its headers is dropped");
    // SIGTERM with half-sent requests open: out within the drain time, not forever.
    let t = std::time::Instant::now();
    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill");
    let status = server.child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "stopped after {:?}", t.elapsed());
    drop(idle);
}

#[test]
fn started_anywhere_it_serves_the_page_built_into_it_and_www_overrides() {
    let dir = tempfile::tempdir().expect("tmp");
    // Started in an empty folder, far from the project's www/.
    let mut command = Command::new(env!("CARGO_BIN_EXE_moa"));
    command.current_dir(dir.path());
    let server = serve_with(command, dir.path(), &[]);
    let get = |base: &str, path: &str| {
        let o = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code} %{content_type}"])
            .arg(format!("{base}{path}"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let page = get(&server.base, "/");
    assert!(page.ends_with("200 text/html; charset=utf-8"), "{page}");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo").to_path_buf();
    let module = repo.join("www/pkg/moa_wasm_bg.wasm");
    if std::env::var_os("MOA_TEST_BROWSER").is_some() {
        // scripts/test builds the browser module before moa: the page is the app.
        assert!(module.is_file(), "scripts/test builds www/pkg before the tests");
    }
    if module.is_file() {
        let index = std::fs::read_to_string(repo.join("www/index.html")).expect("www/index.html");
        assert!(page.starts_with(&index), "/ is www/index.html: {page}");
        let wasm = get(&server.base, "/pkg/moa_wasm_bg.wasm");
        assert!(wasm.ends_with("200 application/wasm"), "{}", &wasm[wasm.len().saturating_sub(40)..]);
    } else {
        assert!(page.contains("built without the browser module"), "{page}");
    }
    let missing = get(&server.base, "/nothing.js");
    assert!(missing.ends_with("404 application/json"), "{missing}");
    let o = Command::new("curl")
        .args(["-s", "-X", "POST", "-w", "\n%{http_code}"])
        .arg(format!("{}/", server.base))
        .output()
        .expect("curl");
    let posted = String::from_utf8_lossy(&o.stdout);
    assert!(posted.ends_with("405") && posted.contains("method_not_allowed"), "{posted}");
    // --www serves a folder instead; one without a page is refused by name.
    std::fs::write(dir.path().join("index.html"), "<p>mine</p>").expect("write");
    let own = serve(dir.path(), &["--www", &dir.path().display().to_string()]);
    assert!(get(&own.base, "/").starts_with("<p>mine</p>"));
    let o = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["serve", "--listen", "127.0.0.1:0", "--www", "/nonexistent-www"])
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--www /nonexistent-www: no index.html there"), "{o:?}");
}

#[test]
fn a_body_that_arrives_a_byte_at_a_time_gets_a_408_instead_of_holding_its_connection() {
    use std::io::{Read, Write};
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "quick", &["a"], "agg");
    let server = serve(dir.path(), &["--body-timeout-secs", "1"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body = r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}]}"#;
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("headers");
    // A byte every 300 ms (the read timeout paces it) until the server answers: the whole
    // body would take 20 s.
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    let (started, mut got, mut buf) = (std::time::Instant::now(), Vec::new(), [0u8; 2048]);
    for b in body.bytes() {
        if s.write_all(&[b]).is_err() {
            break;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) if started.elapsed() < Duration::from_secs(15) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered after {:?}", started.elapsed());
    // The server still serves others.
    let (code, out, _) = post(&server.base, None, body);
    assert_eq!(code, 200, "{out}");
}

#[test]
fn long_runs_send_keep_alives_and_the_access_log_tells_what_happened_without_prompts() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "slow", &["a;ttft=1200"], "agg;text=the answer");
    let server = serve(dir.path(), &["--keep-alive-secs", "0.2", "--token", "tok-SENTINEL"]);
    let o = Command::new("curl")
        .args(["-sN", "-H", "content-type: application/json", "-H", "authorization: Bearer tok-SENTINEL", "-d"])
        .arg(r#"{"model": "slow", "stream": true, "messages": [{"role": "user", "content": "PROMPT-SENTINEL"}]}"#)
        .arg(format!("{}/v1/chat/completions", server.base))
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&o.stdout);
    let first_content = body.find(r#""content":"the "#).expect("answer streamed");
    let keepalives = body[..first_content].lines().filter(|l| l.starts_with(':')).count();
    assert!(keepalives >= 3, "SSE comments while the proposers work:\n{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let access = |l: &str| l.contains("chat completion") && l.contains("status=200");
    let log = server.log_when("access line", |log| log.lines().any(access));
    let line = log.lines().find(|l| access(l)).expect("an access line");
    for field in ["id=chatcmpl-moa-", "model=slow", "stream=true", "calls=2", "tokens=", "wall_ms=", "ttft_ms="] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(!log.contains("PROMPT-SENTINEL") && !log.contains("tok-SENTINEL"), "no prompt or key in:\n{log}");
    // Ids are unique across restarts: another server's ids differ in their prefix.
    let id = |log: &str| {
        log.split("id=")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .map(|s| s.rsplit_once('-').map(|(p, _)| p.to_owned()))
    };
    let other = serve(dir.path(), &["--log-prompts"]);
    let (code, _, _) =
        post(&other.base, None, r#"{"model": "slow", "messages": [{"role": "user", "content": "PROMPT-SENTINEL"}]}"#);
    assert_eq!(code, 200);
    let other_log = other.log_when("access line", |log| log.lines().any(access));
    assert_ne!(id(&log), id(&other_log), "ids differ across restarts");
    assert!(other_log.contains("PROMPT-SENTINEL"), "--log-prompts puts prompts in the log");
}

#[test]
fn a_log_filter_it_cannot_read_is_said_and_the_log_stays_at_info() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    fake_recipe(dir.path(), &fake, "quick", &["a"], "agg;text=the answer");
    let mut command = Command::new(env!("CARGO_BIN_EXE_moa"));
    command.env("MOA_LOG", "moa::access=loud");
    let server = serve_with(command, dir.path(), &[]);
    let (code, _, _) =
        post(&server.base, None, r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}]}"#);
    assert_eq!(code, 200);
    let log = server.log_when("access line", |log| log.contains("chat completion") && log.contains("status=200"));
    assert!(log.contains(r#"MOA_LOG="moa::access=loud" is not a filter"#), "{log}");
    // A filter it reads is obeyed: the access log alone, at info.
    let mut command = Command::new(env!("CARGO_BIN_EXE_moa"));
    command.env("MOA_LOG", "moa::access=info");
    let server = serve_with(command, dir.path(), &[]);
    let (code, _, _) =
        post(&server.base, None, r#"{"model": "quick", "messages": [{"role": "user", "content": "hi"}]}"#);
    assert_eq!(code, 200);
    let log = server.log_when("access line", |log| log.contains("chat completion"));
    assert!(!log.contains("is not a filter"), "{log}");
}

#[test]
fn a_502_names_agents_and_kinds_of_failure_never_upstream_text_or_addresses() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    // One proposer gets a 500 whose body is the provider's own words; the other
    // provider is down (a refused connection names its address).
    let text = format!(
        "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[providers.down]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[layers]]\nagents = [\"fake:a;fault=500;times=9\", \"down:b\"]\n[aggregator]\nmodel = \"fake:agg\"\n[policy]\nretries = 0\n",
        fake.base_url
    );
    std::fs::write(dir.path().join("failing.toml"), text).expect("write");
    let server = serve(dir.path(), &[]);
    let (code, body, _) =
        post(&server.base, None, r#"{"model": "failing", "messages": [{"role": "user", "content": "hi"}]}"#);
    assert_eq!(code, 502, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("an OpenAI error");
    let message = v["error"]["message"].as_str().expect("message");
    assert!(message.contains("fake:a;fault=500;times=9 (HTTP 500)"), "{message}");
    assert!(message.contains("down:b (connection refused)"), "{message}");
    for secret in ["internal error", "127.0.0.1", ":9", "http://", "error sending request"] {
        assert!(!message.contains(secret), "{secret:?} relayed to the client: {message}");
    }
    assert_eq!(v["error"]["code"], "upstream_failed");
    let log = server.log_when("run failure", |log| log.contains("run failed"));
    assert!(log.contains("internal error") && log.contains("127.0.0.1:9"), "the detail is in the log:\n{log}");
}

#[test]
fn a_provider_that_echoes_the_key_never_makes_the_server_show_it() {
    const KEY: &str = "sk-SERVED-SENTINEL-0123456789";
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let text = format!(
        "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"MOA_TEST_KEY\"\n[[layers]]\nagents = [\"fake:a;fault=echo;status=401;times=99\", \"fake:b;fault=echostream;times=99\", \"fake:c\"]\n[aggregator]\nmodel = \"fake:agg;fault=echo;status=400;times=99\"\n[policy]\nretries = 0\n",
        fake.base_url
    );
    std::fs::write(dir.path().join("echo.toml"), text).expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_moa"));
    cmd.env("MOA_TEST_KEY", KEY);
    let server = serve_with(cmd, dir.path(), &[]);
    for stream in ["false", "true"] {
        let (code, body, _) = post(
            &server.base,
            None,
            &format!(
                r#"{{"model": "echo", "stream": {stream}, "moa_proposals": true, "messages": [{{"role": "user", "content": "hi"}}]}}"#
            ),
        );
        // The aggregator is refused (400) every time: the run fails. Whole, that is a 502;
        // streamed, the 200 stream ends with an error event instead of [DONE].
        if stream == "true" {
            assert_eq!(code, 200, "{body}");
            assert!(body.contains("\"code\":\"upstream_failed\"") && !body.contains("[DONE]"), "{body}");
        } else {
            assert_eq!(code, 502, "{body}");
        }
        assert!(!body.contains("SENTINEL"), "the response shows the key:\n{body}");
    }
    let log = server.log_when("both runs' failures", |log| log.matches("run failed").count() >= 2);
    assert!(log.contains("[redacted key]"), "the log keeps the detail, redacted:\n{log}");
    assert!(!log.contains("SENTINEL"), "the log shows the key:\n{log}");
}

#[test]
fn plugins_spinning_to_their_deadline_never_stall_the_server() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(common::plugins::path("misbehave"), dir.path().join("spin.wasm")).expect("copy");
    fake_recipe(dir.path(), &fake, "spins", &["a"], "agg");
    let path = dir.path().join("spins.toml");
    // Each decision spins for its whole 3 s deadline, then the run falls back.
    let text = std::fs::read_to_string(&path).expect("read")
        + "strategy = { plugin = \"spin.wasm\", params = { mode = \"loop\" }, timeout_ms = 3000, on_error = \"synthesize\" }\n";
    std::fs::write(&path, text).expect("write");
    let server = serve(dir.path(), &["--max-runs", "32"]);
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let base = server.base.clone();
            std::thread::spawn(move || {
                post(&base, None, r#"{"model": "spins", "messages": [{"role": "user", "content": "q"}]}"#)
            })
        })
        .collect();
    // Once every run has had its proposal, the plugins are spinning (or queued to).
    for _ in 0..200 {
        if fake.count("a") == 16 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    // The server still answers while they spin: far sooner than one plugin deadline
    // (when decisions held its threads, this waited for them).
    let t = std::time::Instant::now();
    let o = Command::new("curl").args(["-sf"]).arg(format!("{}/v1/models", server.base)).output().expect("curl");
    let waited = t.elapsed();
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("spins"));
    assert!(waited < Duration::from_millis(1500), "/v1/models waited {waited:?} behind the plugins");
    for c in clients {
        let (code, body, _) = c.join().expect("client");
        assert_eq!(code, 200, "the run falls back to synthesize after the deadline: {body}");
    }
}

#[test]
fn served_plugins_load_at_startup_and_a_bad_one_stops_it_there() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("broken.wasm"), b"not wasm at all").expect("write");
    fake_recipe(dir.path(), &fake, "bad", &["a", "b"], "agg");
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&path).expect("read") + "strategy = { plugin = \"broken.wasm\" }\n";
    std::fs::write(&path, text).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["serve", "--listen", "127.0.0.1:0", "--recipes"])
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("recipe bad") && err.contains("not WebAssembly at all"), "{err}");
}

#[test]
fn a_served_local_recipe_whose_server_is_down_is_a_warning_after_the_serving_line() {
    // The first line stays "serving on ..." (callers read the address from it); a local
    // model that is not running is said after it, with how to start it, and the other
    // recipes are served meanwhile.
    let dir = tempfile::tempdir().expect("tmp");
    let dead = common::refusing_port();
    let port = dead.port;
    std::fs::write(
        dir.path().join("mine.toml"),
        format!("layers = []\n[providers.q]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n[aggregator]\nmodel = \"q:SmolLM2-135M-Instruct\"\n"),
    )
    .expect("recipe");
    let server = serve(dir.path(), &[]);
    let mut log = String::new();
    for _ in 0..100 {
        log = server.log();
        if log.contains("warning") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Presets served beside it may name local models that are down too; whatever else is
    // listed, this one is, with a command that starts it on its port.
    let warning = log.lines().find(|l| l.contains("warning: nothing answers at")).unwrap_or_else(|| panic!("{log}"));
    assert!(warning.contains(&format!("http://127.0.0.1:{port}/v1 (smollm)")), "{log}");
    assert!(warning.contains(&format!("`MOA_SMOLLM_PORT={port} moa local start smollm`")), "{log}");
}

#[test]
fn agents_use_tools_and_structured_output_with_the_official_clients() {
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let recipe = |name: &str, agg: &str| {
        let text = format!(
            "[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[[layers]]\nagents = ['fake:a', 'fake:b']\n\
             [aggregator]\nmodel = '{agg}'\n[policy]\nretries = 1\nbackoff_secs = 0\n",
            fake.base_url
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), text).expect("write");
    };
    recipe("tools", r#"fake:agg;tool=get_weather;args={"city": "Oslo"}"#);
    recipe("shape", r#"fake:shape;texts={"city": "Oslo"}|{"city": "Oslo", "temp_c": 12}"#);
    recipe("never", r#"fake:never;text=It is twelve degrees."#);
    let server = serve(dir.path(), &[]);
    let o = Command::new(python())
        .arg(repo().join("tests/serve/openai_tools.py"))
        .arg(format!("{}/v1", server.base))
        .output()
        .expect("python runs (scripts/test installs openai and langchain-openai in ~/.cache/moa/venv)");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("openai tools: 11 checks passed"), "{out}");
    let bodies = fake.seen.bodies.lock().expect("lock").clone();
    // Proposers advised without the real tools; the aggregator had them.
    assert!(bodies.iter().filter(|b| b["model"] == "a").all(|b| b.get("tools").is_none()));
    assert!(bodies.iter().any(|b| b["model"].as_str().is_some_and(|m| m.starts_with("agg;")) && b["tools"].is_array()));
    // The schema was asked natively, and the retry was told what was wrong.
    let shape: Vec<&serde_json::Value> =
        bodies.iter().filter(|b| b["model"].as_str().is_some_and(|m| m.starts_with("shape;"))).collect();
    assert_eq!(shape.len(), 2, "one refused answer, one retry");
    assert_eq!(shape[0]["response_format"]["type"], "json_schema");
    let told = shape[1]["messages"].as_array().and_then(|m| m.last()).expect("a correction");
    assert!(told["content"].as_str().is_some_and(|c| c.contains("missing required property \"temp_c\"")), "{told}");
}
