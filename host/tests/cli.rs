//! The `moa` binary, end to end against the fake server on 127.0.0.1: output streams,
//! exit codes, keys that never leak, and batch jobs that survive `kill -9`.

use moa_testkit as common;

use common::Fake;
use moa_core::Event;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

const SENTINEL: &str = "sk-SENTINEL-never-print-me-4242";

fn moa() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moa"));
    c.env("MOA_TEST_KEY", SENTINEL).stdin(Stdio::null());
    c
}

/// Writes a recipe file: provider `fake` (key from MOA_TEST_KEY), proposers, aggregator.
fn recipe_file(dir: &Path, fake: &Fake, models: &[&str], aggregator: &str, extra: &str) -> PathBuf {
    let agents: Vec<String> = models.iter().map(|m| format!("\"fake:{m}\"")).collect();
    let text = format!(
        "name = \"fake\"\n{extra}\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"MOA_TEST_KEY\"\n\n[[layers]]\nagents = [{}]\n\n[aggregator]\nmodel = \"fake:{aggregator}\"\n",
        fake.base_url,
        agents.join(", ")
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).expect("write recipe");
    path
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn assert_no_key(o: &Output) {
    let (out, err) = text(o);
    assert!(!out.contains(SENTINEL) && !err.contains(SENTINEL), "the key leaked:\n{out}\n{err}");
}

#[test]
fn run_streams_the_answer_to_stdout_and_progress_to_stderr() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;text=one", "b;text=two"], "agg;text=the final answer", "");
    let o = moa().args(["run", "--recipe"]).arg(&r).arg("What?").output().expect("runs");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "the final answer\n");
    assert!(err.contains("fake:a;text=one: done"), "{err}");
    assert!(err.contains("aggregating with fake:agg"), "{err}");
    assert_no_key(&o);
    let auth = fake.seen.auth.lock().expect("lock").clone();
    assert!(
        auth.iter().all(|a| a.as_deref() == Some(&format!("Bearer {SENTINEL}")[..])),
        "the key reached its provider"
    );
}

#[test]
fn json_mode_prints_every_event_as_a_line() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;tokens=3", "b;tokens=2"], "agg;tokens=4", "");
    let o = moa()
        .args(["run", "--json", "--recipe"])
        .arg(&r)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(b"a prompt from stdin")?;
            c.wait_with_output()
        });
    let o = o.expect("runs");
    assert_eq!(o.status.code(), Some(0));
    let events: Vec<Event> = text(&o).0.lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect();
    assert!(matches!(events.first(), Some(Event::RunStarted { planned_calls: 3, .. })));
    assert!(matches!(events.last(), Some(Event::Final { text, .. }) if text == "t0 t1 t2 t3 "));
    assert_eq!(events.iter().filter(|e| matches!(e, Event::TextDelta { .. })).count(), 9);
    let bodies = fake.seen.bodies.lock().expect("lock").clone();
    assert_eq!(bodies[0]["messages"][0]["content"], "a prompt from stdin");
    assert_no_key(&o);
}

#[test]
fn show_proposals_prints_each_layer_before_the_answer() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;text=alpha", "b;text=beta"], "agg;text=omega", "");
    let o = moa().args(["run", "--show-proposals", "--recipe"]).arg(&r).arg("q").output().expect("runs");
    let (out, _) = text(&o);
    assert_eq!(
        out,
        "── layer 0 · fake:a;text=alpha ──\nalpha\n\n── layer 0 · fake:b;text=beta ──\nbeta\n\n── final answer ──\nomega\n"
    );
}

#[test]
fn overrides_apply_and_exit_codes_tell_what_happened() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a"], "agg", "");
    // --set and the knobs reach the request.
    let o = moa()
        .args([
            "run",
            "--temperature",
            "0.3",
            "--max-tokens",
            "77",
            "--set",
            "layers[0].agents[0].system=Be terse.",
            "--recipe",
        ])
        .arg(&r)
        .arg("q")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0));
    let first = fake.seen.bodies.lock().expect("lock")[0].clone();
    assert_eq!((first["temperature"].as_f64(), first["max_tokens"].as_u64()), (Some(0.3), Some(77)));
    assert_eq!(first["messages"][0]["content"], "Be terse.");

    // A bad recipe: exit 2, and the error names the field.
    std::fs::write(dir.path().join("bad.toml"), "[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n[[layers]]\nagents = [\"y:m\"]\n[aggregator]\nmodel = \"x:m\"\n").expect("write");
    let o = moa().args(["run", "--recipe"]).arg(dir.path().join("bad.toml")).arg("q").output().expect("runs");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("providers.x.base_url: \"ftp://x\" is not an http:// or https:// URL"), "{err}");
    assert!(err.contains("layers[0].agents[0]: unknown provider \"y\" (known: x)"), "{err}");
    let o = moa().args(["check"]).arg(dir.path().join("bad.toml")).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));

    // A missing key: exit 2, naming the variable.
    let o = moa().env_remove("MOA_TEST_KEY").args(["run", "--recipe"]).arg(&r).arg("q").output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("set MOA_TEST_KEY"));

    // A run that fails: exit 1 with every failure listed, and still no key anywhere.
    let r = recipe_file(dir.path(), &fake, &["a;fault=500;times=99"], "agg", "[policy]\nretries = 0");
    let o = moa().args(["run", "--recipe"]).arg(&r).arg("q").output().expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("the run failed: layer 0: 0 agent(s) succeeded, 1 needed\n  fake:a;fault=500;times=99: HTTP 500: internal error"), "{}", text(&o).1);
    assert_no_key(&o);
}

#[test]
fn ctrl_c_cancels_the_run_and_closes_every_connection() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;tokens=200;rate=20", "b;tokens=200;rate=20"], "agg", "");
    let child = moa()
        .args(["run", "--recipe"])
        .arg(&r)
        .arg("q")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    for _ in 0..100 {
        if fake.seen.open.load(Ordering::SeqCst) == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 2, "both proposers streaming");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
    let o = child.wait_with_output().expect("exits");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o).1);
    // The fake sees the closed connections as they arrive: wait for them, not a fixed time.
    for _ in 0..500 {
        if fake.seen.open.load(Ordering::SeqCst) == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fake.seen.open.load(Ordering::SeqCst), 0);
    assert_eq!(fake.seen.dropped.load(Ordering::SeqCst), 2);
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..whole]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("whole lines are JSON"))
        .collect()
}

#[test]
fn batch_answers_every_shape_skips_done_ids_and_retries_failures() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;fault=500"], "agg;text=answered", "[policy]\nretries = 0");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    std::fs::write(&input, "\"plain prompt\"\n{\"id\": \"x\", \"instruction\": \"alpaca shape\"}\n\n{\"id\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"chat shape\"}]}\n").expect("write");
    let run = || {
        moa()
            .args(["batch", "-q", "-j", "1", "--proposals", "--recipe"])
            .arg(&r)
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .output()
            .expect("runs")
    };
    let o = run();
    assert_eq!(o.status.code(), Some(1), "one item failed: {}", text(&o).1);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 3);
    let failed: Vec<_> = lines.iter().filter(|l| l.get("error").is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().expect("text").contains("HTTP 500"));
    let ok = lines.iter().find(|l| l["id"] == "x").expect("x answered");
    assert_eq!(ok["answer"], "answered");
    assert_eq!(ok["layers"][0]["calls"][0]["text"], "hello from fake");
    assert!(ok["usage"]["output_tokens"].as_u64().expect("tokens") > 0);
    assert!(ok["timings"]["wall_ms"].as_f64().is_some());
    // The rerun redoes only the failed item, and OUT ends with each id once.
    let before = fake.seen.bodies.lock().expect("lock").len();
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(fake.seen.bodies.lock().expect("lock").len() - before, 2, "one item: proposer + aggregator");
    let lines = read_lines(&out);
    let ids: BTreeSet<String> = lines.iter().map(|l| l["id"].to_string()).collect();
    assert_eq!((lines.len(), ids.len()), (3, 3));
    assert!(ids.contains("1") && ids.contains("\"x\"") && ids.contains("7"), "{ids:?}");
    assert!(lines.iter().all(|l| l["answer"] == "answered"));
    assert_no_key(&o);
    assert!(!std::fs::read_to_string(&out).expect("out").contains(SENTINEL));

    // Bad input names the file and line.
    std::fs::write(&input, "\"ok\"\n{\"instruction\": 5}\n").expect("write");
    let o = run();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("in.jsonl:2: not an item: invalid type: integer `5`, expected a string (column 17)"),
        "{}",
        text(&o).1
    );
}

#[test]
fn batch_survives_kill_9_at_any_moment() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(
        dir.path(),
        &fake,
        &["a;ttft=40;tokens=20;rate=400", "b;ttft=60;tokens=10;rate=300"],
        "agg;ttft=30;tokens=30;rate=600",
        "",
    );
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    let n = 60;
    let items: String =
        (0..n).map(|i| format!("{{\"id\": \"item-{i}\", \"instruction\": \"question {i}\"}}\n")).collect();
    std::fs::write(&input, items).expect("write");
    let batch = || {
        let mut c = moa();
        c.args(["batch", "-q", "-j", "8", "--recipe"])
            .arg(&r)
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // Kill at several moments; after each, the whole lines are valid and unique.
    for delay_ms in [150, 420, 90, 700, 260] {
        let mut child = batch().spawn().expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let lines = read_lines(&out);
        let ids: BTreeSet<String> = lines.iter().map(|l| l["id"].to_string()).collect();
        assert_eq!(ids.len(), lines.len(), "no duplicates after a kill at {delay_ms} ms");
    }
    let o = batch().output().expect("finishes");
    assert_eq!(o.status.code(), Some(0));
    let bytes = std::fs::read(&out).expect("out");
    assert_eq!(bytes.last(), Some(&b'\n'), "only whole lines");
    let lines = read_lines(&out);
    let ids: BTreeSet<String> = lines.iter().map(|l| l["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!((lines.len(), ids.len()), (n, n), "every item exactly once");
    assert!(lines.iter().all(|l| l["answer"].as_str().is_some_and(|a| a.starts_with("t0 t1"))));
}

#[test]
fn run_loads_plugins_relative_to_the_recipe_file() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("plugins")).expect("mkdir");
    std::fs::copy(common::plugins::path("majority-vote"), dir.path().join("plugins/vote.wasm")).expect("copy");
    let r = recipe_file(dir.path(), &fake, &["a;text=The answer is 4.", "b;text=4", "c;text=5"], "agg", "");
    let toml = std::fs::read_to_string(&r).expect("read") + "strategy = { plugin = \"plugins/vote.wasm\" }\n";
    std::fs::write(&r, toml).expect("write");
    // Run from elsewhere: the path is the recipe's, not the working directory's.
    let o = moa()
        .current_dir(std::env::temp_dir())
        .args(["run", "--recipe"])
        .arg(&r)
        .arg("What is 2+2?")
        .output()
        .expect("runs");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(out, "The answer is 4.\n");
    assert!(err.contains("vote.wasm"), "{err}");
    assert_eq!(fake.count("agg"), 0);
}

/// The aggregator streams "one two " and then its connection resets; its retry would
/// stream the whole "one two three four".
const BREAKS_ONCE: &str = "agg;text=one two three four;fault=reset";

#[test]
fn run_to_a_pipe_never_appends_a_retried_answer_to_a_broken_one() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a"], BREAKS_ONCE, "[policy]\nbackoff_secs = 0.05");
    let o = moa().args(["run", "--recipe"]).arg(&r).arg("What?").output().expect("runs");
    let (out, err) = text(&o);
    // stdout is a pipe: what was printed stays printed, so the run ends with a clear
    // error rather than printing a second answer after the first one's start.
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(out, "one two ", "only the part already delivered");
    assert!(err.contains("broke off after 8 characters had been delivered"), "{err}");
    assert_eq!(fake.count(BREAKS_ONCE), 1, "not retried");

    // --json lines can be taken back by their reader: the run retries, and the void
    // attempt says how much of its text to drop.
    let fake = Fake::start();
    let r = recipe_file(dir.path(), &fake, &["a"], BREAKS_ONCE, "[policy]\nbackoff_secs = 0.05");
    let o = moa().args(["run", "--json", "--recipe"]).arg(&r).arg("What?").output().expect("runs");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let events: Vec<Event> = out.lines().map(|l| serde_json::from_str(l).expect("event")).collect();
    assert!(events.iter().any(|e| matches!(e, Event::CallFailed { at, will_retry: true, discarded_chars: 8, .. }
        if at.layer == 1)));
    match events.last() {
        Some(Event::Final { text, usage, wasted, .. }) => {
            assert_eq!(text, "one two three four");
            assert!(wasted.output_tokens > 0 && usage.total() > wasted.total(), "{usage:?} {wasted:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn batch_calls_waiting_for_a_provider_capped_at_one_never_stall() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    // Calls take about 0.5 s each and the provider takes one at a time, so the last of
    // 16 calls waits ~7.5 s in the queue: far past both deadlines, which must not run
    // until it is sent.
    let r = recipe_file(
        dir.path(),
        &fake,
        &["a;ttft=250;tokens=2;rate=4"],
        "agg;ttft=250;tokens=2;rate=4",
        "[policy]\nstall_timeout_secs = 0.75\ntimeout_secs = 1.25",
    );
    let toml = std::fs::read_to_string(&r).expect("read").replace("api_key_env", "max_concurrency = 1\napi_key_env");
    std::fs::write(&r, toml).expect("write");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    std::fs::write(&input, (0..8).map(|i| format!("\"q{i}\"\n")).collect::<String>()).expect("write");
    let o = moa()
        .args(["batch", "-q", "-j", "16", "--proposals", "--recipe"])
        .arg(&r)
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 8);
    for l in &lines {
        assert!(l["answer"].is_string(), "{l}");
        for layer in l["layers"].as_array().expect("layers") {
            assert_eq!(layer["calls"][0]["attempts"], 1, "first attempt: {l}");
        }
    }
    assert_eq!(fake.seen.max_open.load(Ordering::SeqCst), 1, "the cap held");
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), 16, "no retries");
}

#[test]
fn batch_refuses_a_second_batch_on_the_same_output_and_keeps_ids_exactly() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;ttft=300"], "agg;text=ok", "");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    // Ids JSON numbers cannot hold exactly: they must come back as written.
    let big = ["123456789012345678901234567890", "18446744073709551617", "-9007199254740993"];
    let mut lines: String = big.iter().map(|id| format!("{{\"id\": {id}, \"instruction\": \"q\"}}\n")).collect();
    lines.push_str("{\"id\": \"s\", \"instruction\": \"q\"}\n");
    std::fs::write(&input, lines).expect("write");
    let batch = || {
        let mut c = moa();
        c.args(["batch", "-q", "-j", "1", "--recipe"]).arg(&r).arg(&input).arg("-o").arg(&out);
        c
    };
    let mut first = batch().stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starts");
    for _ in 0..200 {
        if !fake.seen.bodies.lock().expect("lock").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let second = batch().output().expect("runs");
    assert_eq!(second.status.code(), Some(2), "{}", text(&second).1);
    assert!(text(&second).1.contains("in use by another moa batch"), "{}", text(&second).1);
    assert!(first.wait().expect("waits").success());
    let written = std::fs::read_to_string(&out).expect("out");
    for id in big {
        assert!(written.contains(&format!("{{\"id\":{id},")), "{id} round-trips:\n{written}");
    }
    // A rerun finds every id done (exact text match) and calls nothing.
    let before = fake.seen.bodies.lock().expect("lock").len();
    let o = batch().output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), before);
    assert!(text(&o).1.contains("4 already done"), "{}", text(&o).1);
}

#[test]
fn batch_runs_plugin_strategies() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(common::plugins::path("majority-vote"), dir.path().join("vote.wasm")).expect("copy");
    let r = recipe_file(dir.path(), &fake, &["a;text=The answer is 4.", "b;text=4", "c;text=5"], "agg", "");
    let toml = std::fs::read_to_string(&r).expect("read") + "strategy = { plugin = \"vote.wasm\" }\n";
    std::fs::write(&r, toml).expect("write");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    std::fs::write(&input, "\"What is 2+2?\"\n").expect("write");
    let o = moa().args(["batch", "-q", "--recipe"]).arg(&r).arg(&input).arg("-o").arg(&out).output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let lines = read_lines(&out);
    assert_eq!(lines[0]["answer"], "The answer is 4.", "{}", lines[0]);
    assert_eq!(fake.count("agg"), 0, "the plugin decided");
}

/// Runs `moa` on a pseudo-terminal of 24 × 100 and returns the screen as a terminal would
/// show it at the end (a real VT100 parser, so erased text is really gone).
fn run_on_a_terminal(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    use std::io::Read;
    let size = nix::pty::Winsize { ws_row: 24, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 };
    let pty = nix::pty::openpty(Some(&size), None).expect("a pseudo-terminal");
    let slave = std::fs::File::from(pty.slave);
    let mut child = moa()
        .args(args)
        .stdout(slave.try_clone().expect("fd"))
        .stderr(slave.try_clone().expect("fd"))
        .spawn()
        .expect("runs");
    drop(slave);
    let mut master = std::fs::File::from(pty.master);
    let mut bytes = Vec::new();
    // Reading ends with EIO once the child has exited and the slave is closed.
    let mut buf = [0u8; 4096];
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let status = child.wait().expect("waits");
    let mut screen = vt100::Parser::new(24, 100, 0);
    screen.process(&bytes);
    (status.code(), screen.screen().contents())
}

#[test]
fn run_on_a_terminal_erases_a_broken_answer_and_shows_the_retry_alone() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a"], BREAKS_ONCE, "[policy]\nbackoff_secs = 0.05");
    let (code, screen) = run_on_a_terminal(&["run".as_ref(), "--recipe".as_ref(), r.as_os_str(), "What?".as_ref()]);
    assert_eq!(code, Some(0), "{screen}");
    let answers: Vec<&str> = screen.lines().filter(|l| l.starts_with("one two")).collect();
    assert_eq!(answers, ["one two three four"], "the broken part is erased:\n{screen}");
    assert!(screen.contains("broke off"), "the user is told why it restarted:\n{screen}");
    assert_eq!(fake.count(BREAKS_ONCE), 2, "retried");
}

#[test]
fn a_provider_that_echoes_the_key_never_makes_moa_print_it() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let echoes = [
        "e1;fault=echo;status=401;times=99",
        "e2;fault=echo;status=429;times=99",
        "e3;fault=echo;status=500;times=99",
        "e4;fault=echo;status=400;times=99",
        "e5;fault=echostream;times=99",
    ];
    let mut models = vec!["ok"];
    models.extend(echoes);
    let r = recipe_file(dir.path(), &fake, &models, "agg", "[policy]\nretries = 0\nmin_successes = 1");
    let o = moa().args(["run", "--json", "--recipe"]).arg(&r).arg("What?").output().expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_no_key(&o);
    let (out, _) = text(&o);
    assert!(out.matches("[redacted key]").count() >= echoes.len(), "each echo is marked:\n{out}");
    assert!(!out.contains("SENTINEL"), "not even a piece of the key:\n{out}");
    // Without --json, errors go to stderr; every agent failing shows every error.
    let all_fail = recipe_file(dir.path(), &fake, &echoes, "agg", "[policy]\nretries = 0\nmin_successes = 1");
    let o = moa().args(["run", "--recipe"]).arg(&all_fail).arg("What?").output().expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert_no_key(&o);
    assert!(!text(&o).1.contains("SENTINEL"), "{}", text(&o).1);
    // Batch lines, with their proposals.
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    std::fs::write(&input, "\"q\"\n").expect("write");
    let o = moa()
        .args(["batch", "-q", "--proposals", "--recipe"])
        .arg(&all_fail)
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("runs");
    assert_no_key(&o);
    let written = std::fs::read_to_string(&out).expect("out");
    assert!(!written.contains("SENTINEL") && written.contains("[redacted key]"), "{written}");
}

#[test]
fn keys_never_follow_a_redirect_and_loopback_never_goes_through_a_proxy() {
    let fake = Fake::start();
    let thief = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let to = format!("{}/chat/completions", thief.base_url);
    let r = recipe_file(dir.path(), &fake, &[&format!("a;fault=redirect;to={to}")], "agg", "[policy]\nretries = 0");
    // A proxy that refuses everything: loopback traffic must not try it.
    let o = moa()
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .env("ALL_PROXY", "http://127.0.0.1:1")
        .args(["run", "--recipe"])
        .arg(&r)
        .arg("What?")
        .output()
        .expect("runs");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("HTTP 307"), "the redirect is the provider's answer, an error:\n{err}");
    assert!(!err.contains("127.0.0.1:1"), "no proxy was tried:\n{err}");
    assert_eq!(thief.seen.bodies.lock().expect("lock").len(), 0, "the key did not follow the redirect");
    let ok = recipe_file(dir.path(), &fake, &["b"], "agg", "");
    let o = moa()
        .env("HTTP_PROXY", "http://127.0.0.1:1")
        .args(["run", "--recipe"])
        .arg(&ok)
        .arg("Q")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
}

#[test]
fn a_recipe_cannot_send_an_arbitrary_variable_without_the_user_saying_so() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a"], "agg", "");
    let toml = std::fs::read_to_string(&r).expect("read").replace("MOA_TEST_KEY", "GITHUB_TOKEN");
    std::fs::write(&r, toml).expect("write");
    let o = moa().env("GITHUB_TOKEN", SENTINEL).args(["run", "--recipe"]).arg(&r).arg("Q").output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o).1;
    assert!(
        err.contains("$GITHUB_TOKEN (provider fake, sent to 127.0.0.1:") && err.contains("--allow-key-env"),
        "{err}"
    );
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), 0);
    let o = moa().args(["check"]).arg(&r).output().expect("runs");
    assert!(text(&o).0.contains("key: $GITHUB_TOKEN is sent to 127.0.0.1:"), "{}", text(&o).0);
    let o = moa()
        .env("GITHUB_TOKEN", SENTINEL)
        .args(["run", "--allow-key-env", "GITHUB_TOKEN", "--recipe"])
        .arg(&r)
        .arg("Q")
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
}

#[test]
fn batch_writes_alpaca_evals_model_outputs() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a"], "agg;text=an answer", "");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"instruction\": \"Write a haiku.\"}\n\"plain prompt\"\n{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"last turn\"}]}\n",
    )
    .expect("write");
    let outputs = dir.path().join("model_outputs.json");
    let o = moa()
        .args(["batch", "-q", "--recipe"])
        .arg(&r)
        .arg(&input)
        .arg("-o")
        .arg(dir.path().join("out.jsonl"))
        .arg("--alpaca-eval")
        .arg(&outputs)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs).expect("written")).expect("json");
    assert_eq!(
        rows,
        serde_json::json!([
            {"instruction": "Write a haiku.", "output": "an answer", "generator": "fake"},
            {"instruction": "plain prompt", "output": "an answer", "generator": "fake"},
            {"instruction": "last turn", "output": "an answer", "generator": "fake"},
        ])
    );
}

#[test]
fn a_local_model_that_is_not_running_is_one_line_that_says_how_to_start_it() {
    // Before: twelve "connection refused" retry lines over ~10 s, then a failure.
    let dead = common::refusing_port();
    let port = dead.port;
    for command in
        [&["run", "--recipe", "local"][..], &["batch", "--recipe", "local", "in.jsonl", "-o", "out.jsonl"][..]]
    {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        for p in moa_core::recipe::preset("local").expect("preset").providers.keys() {
            args.push("--set".into());
            args.push(format!("providers.{p}.base_url=http://127.0.0.1:{port}/v1"));
        }
        if command[0] == "run" {
            args.push("What is 2 + 2?".into());
        }
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("in.jsonl"), "{\"prompt\": \"hi\"}\n").expect("input");
        let o = moa().current_dir(dir.path()).env_remove("MOA_START_LOCAL").args(&args).output().expect("moa");
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{command:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line: {stderr}");
        assert!(lines[0].starts_with(&format!("moa: nothing answers at http://127.0.0.1:{port}/v1 (")), "{stderr}");
        assert!(lines[0].contains("moa local start") && lines[0].contains("--start-local"), "{stderr}");
        assert!(!dir.path().join("out.jsonl").exists(), "no batch output for a run that cannot start");
    }
}

#[test]
fn a_refused_loopback_connection_fails_at_once_without_retry_lines() {
    // The preflight only knows the local models; any other server on this machine that is
    // down is refused by the engine, which does not retry it.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("r.toml");
    let dead = common::refusing_port();
    let port = dead.port;
    std::fs::write(
        &path,
        format!("name = \"x\"\nlayers = []\n[policy]\nretries = 5\n[providers.mine]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\n[aggregator]\nmodel = \"mine:my-model\"\n"),
    )
    .expect("recipe");
    let o = moa().args(["run", "--json", "--recipe"]).arg(&path).arg("hi").output().expect("moa");
    assert_eq!(o.status.code(), Some(1));
    let events: Vec<Event> = text(&o).0.lines().map(|l| serde_json::from_str(l).expect("an event per line")).collect();
    let failed: Vec<bool> = events
        .iter()
        .filter_map(|e| if let Event::CallFailed { will_retry, .. } = e { Some(*will_retry) } else { None })
        .collect();
    assert_eq!(failed, [false], "one failure, not retried");
}

#[test]
fn moa_local_refuses_unknown_models_and_bad_ports() {
    let o = moa().args(["local", "start", "gpt-5"]).output().expect("moa");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).1.contains("unknown local model \"gpt-5\" (known: smollm, qwen-0.5b, qwen-1.5b)"),
        "{}",
        text(&o).1
    );
    let o = moa().args(["local", "running", "smollm"]).env("MOA_SMOLLM_PORT", "eighty").output().expect("moa");
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("MOA_SMOLLM_PORT=\"eighty\" is not a port number"), "{}", text(&o).1);
    let dead = common::refusing_port();
    let port = dead.port;
    let o =
        moa().args(["local", "running", "qwen-0.5b"]).env("MOA_QWEN05_PORT", port.to_string()).output().expect("moa");
    assert_eq!(o.status.code(), Some(1), "nothing runs there");
}

#[test]
fn moa_local_stop_never_signals_a_process_its_stale_pid_file_names() {
    // A pid file left by a crash or a reboot may name a process that is now something
    // else: stopping must leave it alone (and drop the stale file).
    let cache = tempfile::tempdir().expect("tmp");
    let run = cache.path().join("llm/run");
    std::fs::create_dir_all(&run).expect("run dir");
    let mut bystander = Command::new("sleep").arg("60").spawn().expect("sleep");
    let dead = common::refusing_port();
    let port = dead.port;
    std::fs::write(run.join(format!("smollm-{port}.pid")), bystander.id().to_string()).expect("pid file");
    let o = moa()
        .args(["local", "stop", "smollm"])
        .env("MOA_CACHE", cache.path())
        .env("MOA_SMOLLM_PORT", port.to_string())
        .output()
        .expect("moa");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert!(bystander.try_wait().expect("wait").is_none(), "the bystander still runs");
    assert!(!run.join(format!("smollm-{port}.pid")).exists(), "the stale pid file is gone");
    bystander.kill().expect("kill");
    let _ = bystander.wait();
}

#[test]
fn moa_local_start_refuses_a_port_something_else_serves() {
    // Something that is not a llama.cpp server holds the port: say so, start nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answer = std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let cache = tempfile::tempdir().expect("tmp");
    let o = moa()
        .args(["local", "start", "smollm"])
        .env("MOA_CACHE", cache.path())
        .env("MOA_SMOLLM_PORT", port.to_string())
        .output()
        .expect("moa");
    let err = text(&o).1;
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("something else already serves 127.0.0.1:{port}; set MOA_SMOLLM_PORT")), "{err}");
    assert!(!cache.path().join("llm").exists(), "nothing was provisioned for a port it cannot use");
    answer.join().expect("thread");
}

#[test]
fn run_with_tools_prints_the_calls_and_refuses_bad_tool_files_by_name() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe_file(dir.path(), &fake, &["a;text=call it"], r#"agg;tool=weather;args={\"city\":\"Oslo\"}"#, "");
    let tools = dir.path().join("tools.json");
    let weather = r#"[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]"#;
    std::fs::write(&tools, weather).expect("write");
    let o = moa()
        .args(["run", "--tool-choice", "required", "--tools"])
        .arg(&tools)
        .arg("--recipe")
        .arg(&r)
        .arg("Oslo?")
        .output()
        .expect("runs");
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let line = out.lines().find_map(|l| l.strip_prefix("tool_call ")).unwrap_or_else(|| panic!("{out}"));
    let call: serde_json::Value = serde_json::from_str(line).expect("a call as JSON");
    assert_eq!(call["function"]["name"], "weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
    // A tool whose parameters are not a schema is refused before any call, by its field.
    std::fs::write(&tools, r#"[{"name": "weather", "parameters": {"type": "map"}}]"#).expect("write");
    let before = fake.seen.bodies.lock().expect("lock").len();
    let o = moa().args(["run", "--tools"]).arg(&tools).arg("--recipe").arg(&r).arg("Oslo?").output().expect("runs");
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("tools[0].function.parameters"), "{err}");
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), before, "nothing was called");
}
