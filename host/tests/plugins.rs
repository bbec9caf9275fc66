//! Strategy plugins: the examples do their jobs inside real runs, and hostile plugins get
//! a clear error naming them while the same host goes on to run a good plugin.

use moa_testkit as common;

use common::{Fake, plugins, recipe};
use moa_core::recipe::{OnError, StrategySpec};
use moa_core::strategy::{Decision, Proposal, Strategy, StrategyInput};
use moa_core::{Event, Message, Outcome, Recipe, Run, RunOptions};
use moa_host::plugin::{HostResolver, Limits, PluginError, PluginStrategy, Runtime, TICK};
use moa_host::{Clock, Transport};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn runtime() -> Arc<Runtime> {
    Runtime::new(None).expect("plugin runtime")
}

fn spec(plugin: &str, params: serde_json::Value) -> StrategySpec {
    StrategySpec { plugin: Some(plugins::path(plugin).display().to_string()), params, ..Default::default() }
}

fn proposals(texts: &[&str]) -> Vec<Proposal> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| Proposal {
            agent: format!("a{i}"),
            model: "m".into(),
            text: (*t).into(),
            usage: None,
            latency_ms: 1.0,
        })
        .collect()
}

fn decide(rt: &Arc<Runtime>, s: &StrategySpec, texts: &[&str]) -> Result<Decision, String> {
    let conv = [Message::user("q")];
    let ps = proposals(texts);
    let input = StrategyInput::new(&conv, 1, 1, &ps);
    let path = std::path::PathBuf::from(s.plugin.as_deref().expect("plugin"));
    let mut strategy = PluginStrategy::new(rt.clone(), &path, s).map_err(|e| e.to_string())?;
    strategy.decide(&input).map_err(|e| e.to_string())
}

async fn run_with(recipe: &Recipe, rt: &Arc<Runtime>) -> (Outcome, Vec<Event>) {
    let resolver = HostResolver { runtime: rt.clone(), base: ".".into() };
    let clock = Clock::new();
    let options = RunOptions { resolver: &resolver, ..RunOptions::default() };
    let mut run = Run::with_options(recipe, vec![Message::user("What is 2+2?")], clock.now(), options).expect("starts");
    let mut events = vec![];
    let outcome = Transport::new()
        .expect("client")
        .drive(&mut run, &clock, &CancellationToken::new(), |e| events.push(e.clone()))
        .await;
    (outcome, events)
}

#[tokio::test]
async fn dedup_top_k_keeps_k_distinct_proposals_for_the_aggregator() {
    let fake = Fake::start();
    let mut r = recipe(
        &fake.base_url,
        &["a;text=four is the answer", "b;text=four is the answer", "c;text=it is 4", "d;text=maybe five"],
        "agg",
        "",
    );
    r.aggregator.strategy = Some(spec("dedup-top-k", json!({"k": 2})));
    let (outcome, _) = run_with(&r, &runtime()).await;
    assert!(outcome.answer.is_ok(), "{:?}", outcome.answer.as_ref().err());
    let bodies = fake.seen.bodies.lock().expect("lock").clone();
    let system = bodies.last().expect("aggregator")["messages"][0]["content"].as_str().expect("system").to_owned();
    let refs: Vec<&str> = system.split("Responses from models:\n").nth(1).expect("references").lines().collect();
    assert_eq!(refs, ["1. four is the answer", "2. maybe five"], "duplicates dropped, two longest kept");
}

#[tokio::test]
async fn majority_vote_answers_without_the_aggregator_when_proposers_agree() {
    let fake = Fake::start();
    let mut r = recipe(&fake.base_url, &["a;text=The answer is 4.", "b;text=4", "c;text=5"], "agg", "");
    r.aggregator.strategy = Some(spec("majority-vote", json!({})));
    let (outcome, events) = run_with(&r, &runtime()).await;
    assert_eq!(outcome.answer.as_deref().ok(), Some("The answer is 4."));
    assert_eq!(fake.count("agg"), 0, "no aggregator call");
    assert!(
        matches!(events.last(), Some(Event::Final { decided_by, .. }) if decided_by.ends_with("majority_vote.wasm"))
    );
}

#[tokio::test]
async fn critique_sends_its_own_prompt() {
    let fake = Fake::start();
    let mut r = recipe(&fake.base_url, &["a;text=four", "b;text=five"], "agg;text=Answer: 4", "");
    r.aggregator.strategy = Some(spec("critique", json!({"style": "Be brief."})));
    let (outcome, _) = run_with(&r, &runtime()).await;
    assert_eq!(outcome.answer.as_deref().ok(), Some("Answer: 4"));
    let bodies = fake.seen.bodies.lock().expect("lock").clone();
    let system = bodies.last().expect("aggregator")["messages"][0]["content"].as_str().expect("system").to_owned();
    assert!(system.contains("critique each one briefly") && system.contains("Be brief."), "{system}");
    assert!(system.contains("[Candidate 1]\nfour") && system.contains("[Candidate 2]\nfive"), "{system}");
}

#[tokio::test]
async fn a_failing_plugin_falls_back_to_synthesize_or_fails_the_run_as_the_recipe_says() {
    let fake = Fake::start();
    let rt = runtime();
    for (on_error, ok) in [(OnError::Synthesize, true), (OnError::Fail, false)] {
        let mut r = recipe(&fake.base_url, &["a", "b"], "agg", "");
        r.aggregator.strategy = Some(StrategySpec { on_error, ..spec("misbehave", json!({"mode": "panic"})) });
        let (outcome, events) = run_with(&r, &rt).await;
        assert_eq!(outcome.answer.is_ok(), ok, "{on_error:?}: {:?}", outcome.answer.as_ref().err());
        let failed = events.iter().find_map(|e| match e {
            Event::StrategyFailed { error, fallback, .. } => Some((error.clone(), *fallback)),
            _ => None,
        });
        let (error, fallback) = failed.expect("strategy_failed event");
        assert_eq!(fallback, ok);
        assert!(
            error.contains("misbehave.wasm")
                && error.contains("it panicked: ")
                && error.contains("this plugin panics on purpose"),
            "{error}"
        );
    }
}

/// A plugin that keeps what one decision saw (in static memory and on the heap) finds
/// nothing of it in the next: every decision starts from the plugin's initial memory,
/// however the pool resets a freed slot. A server runs many users' decisions in one plugin.
#[test]
fn nothing_a_decision_saw_survives_into_the_next() {
    let rt = runtime();
    let remember = spec("misbehave", json!({"mode": "remember"}));
    for (i, secret) in ["first-users-secret", "second-users-secret", "third"].iter().enumerate() {
        let d = decide(&rt, &remember, &[secret, "x"]);
        assert_eq!(d, Ok(Decision::Final("remembered: ".into())), "decision {i} saw an earlier one");
    }
}

/// Every hostile behaviour: a clear error naming the plugin within the deadline plus one
/// tick, and then the same runtime runs a good plugin correctly.
#[test]
fn hostile_plugins_fail_their_decision_and_the_host_goes_on() {
    let rt = runtime();
    let good = spec("misbehave", json!({"mode": "ok"}));
    let limits = Limits::default();
    let cases = [
        ("loop", "ran past its deadline of 300 ms"),
        ("bomb", "tried to use more than its 64 MiB memory cap"),
        ("recursion", "crashed: "),
        ("huge", "a decision returned more than the 2162688 bytes the host copies out of a plugin"),
        ("panic", "crashed: it panicked: "),
        ("nonsense", "kept proposal 99, but there are only 3 (0..3)"),
        ("fail", "declined to decide"),
    ];
    // Loaded (compiled) before anything is timed.
    assert_eq!(decide(&rt, &good, &["a"]), Ok(Decision::Final("ok: 1 proposals".into())));
    for (mode, expected) in cases {
        let t = Instant::now();
        let err = decide(&rt, &spec("misbehave", json!({"mode": mode})), &["a", "b", "c"]).expect_err(mode);
        let took = t.elapsed();
        assert!(err.contains("misbehave.wasm") && err.contains(expected), "{mode}: {err}");
        // Generous slack for a loaded machine; the point is that nothing hangs.
        assert!(took < limits.timeout + TICK + Duration::from_millis(700), "{mode} took {took:?}");
        assert_eq!(decide(&rt, &good, &["a", "b", "c"]), Ok(Decision::Final("ok: 3 proposals".into())), "after {mode}");
    }
    // A tighter deadline from the recipe applies.
    let tight = StrategySpec { timeout_ms: Some(50), ..spec("misbehave", json!({"mode": "loop"})) };
    let t = Instant::now();
    let err = decide(&rt, &tight, &["a"]).expect_err("loops");
    assert!(err.contains("deadline of 50 ms (timeout_ms, wall time)"), "{err}");
    assert!(t.elapsed() < Duration::from_millis(50) + TICK + Duration::from_millis(500));
}

#[test]
fn plugins_that_import_what_the_contract_does_not_grant_are_refused_at_load() {
    let rt = runtime();
    for (name, import) in [("reads-files", "wasi:filesystem/"), ("opens-sockets", "wasi:sockets/")] {
        let err = rt.load(&plugins::path(name)).err().expect("refused");
        assert!(matches!(err, PluginError::Contract { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(import) && text.contains("does not grant"), "{text}");
        assert_eq!(
            decide(&rt, &spec("dedup-top-k", json!({})), &["x y", "z"]).map(|d| matches!(d, Decision::Messages(_))),
            Ok(true)
        );
    }
}

#[test]
fn files_that_are_not_components_get_a_clear_error() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "hello").expect("write");
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").expect("write"); // an empty core module
    let broken = dir.path().join("broken.wasm");
    let mut bytes = std::fs::read(plugins::path("critique")).expect("read");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&broken, bytes).expect("write");
    let missing = dir.path().join("missing.wasm");
    let errs: Vec<String> =
        [&text, &module, &broken, &missing].iter().map(|p| rt.load(p).err().expect("refused").to_string()).collect();
    assert!(errs[0].ends_with("not a valid WebAssembly component: not WebAssembly at all"), "{}", errs[0]);
    assert!(errs[1].contains("a core WebAssembly module, not a component"), "{}", errs[1]);
    assert!(errs[2].contains("broken.wasm: not a valid WebAssembly component: "), "{}", errs[2]);
    assert!(errs[3].contains("missing.wasm: cannot read it"), "{}", errs[3]);
}

#[test]
fn moa_plugin_check_reports_contract_and_timing() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["plugin", "check"])
        .arg(plugins::path("majority-vote"))
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("contract moa:strategy@0.1.0, loaded in "), "{out}");
    assert!(out.contains("majority-vote 0.1.0") && out.contains(" µs"), "{out}");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["plugin", "check", "--params", "{\"mode\": \"loop\"}"])
        .arg(plugins::path("misbehave"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ran past its deadline"));
}

#[test]
fn what_a_decision_causes_is_bounded_and_plugin_text_is_inert() {
    let rt = runtime();
    // 262,144 copies of one index would make a prompt thousands of times the proposals.
    let err = decide(&rt, &spec("misbehave", json!({"mode": "dupkeep"})), &["a", "b"]).expect_err("duplicates");
    assert!(err.contains("kept proposal 0 twice"), "{err}");
    // Control sequences (set title, clear screen) and a forged line come out escaped.
    let err = decide(&rt, &spec("misbehave", json!({"mode": "control"})), &["a"]).expect_err("fails");
    assert!(!err.chars().any(|c| c.is_control()), "control characters reached the host's text: {err:?}");
    assert!(err.contains("\\u{1b}]0;pwned"), "{err}");
}

#[test]
fn moa_plugin_check_prints_a_plugins_messages_with_control_bytes_escaped() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["plugin", "check", "--params", "{\"mode\": \"controlmsg\"}"])
        .arg(plugins::path("misbehave"))
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let raw: Vec<char> = out.chars().filter(|c| c.is_control() && *c != '\n').collect();
    assert!(raw.is_empty(), "control bytes reached the terminal: {raw:?} in {out:?}");
    assert!(out.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\rforged"), "{out}");
    // A newline in a message is shown as the message's next line, indented.
    assert!(out.contains("\n      second line"), "{out}");
}

/// `moa plugin check` on `plugin` with `args`: its exit code, stderr, and the host's peak
/// memory in MiB as it reports it.
fn check(plugin: &str, args: &[&str]) -> (Option<i32>, String, f64) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["plugin", "check"])
        .args(args)
        .arg(plugins::path(plugin))
        .output()
        .expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let peak = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("host memory at its peak: "))
        .and_then(|v| v.trim_end_matches(" MiB").parse().ok())
        .unwrap_or_else(|| panic!("no peak memory in: {out}"));
    (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned(), peak)
}

/// What the host copies out of a plugin is counted before it is copied: a result small
/// in the plugin's memory that would multiply in the host is refused while it is lifted.
#[test]
fn host_copies_of_a_plugins_results_are_bounded_before_they_happen() {
    // Four million messages aliasing one byte: 112 MiB of the plugin's own memory, and
    // (copied before counting, as before) 250 MiB more in the host — 365 MiB at the peak.
    let (code, err, peak) = check(
        "misbehave",
        &["--params", r#"{"mode": "alias", "n": 4000000}"#, "--memory-mib", "256", "--timeout-ms", "10000"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a decision returned more than the 2162688 bytes") && err.contains("refused before"), "{err}");
    assert!(peak < 200.0, "the host peaked at {peak:.0} MiB for a result it refused");
    // An error message of 48 MiB is refused the same way, not copied and then cut.
    let (code, err, _) = check("misbehave", &["--params", r#"{"mode": "bigerror"}"#]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("refused before the host held it") && err.len() < 1000, "{err}");
    // So is a 48 MiB description, at load.
    let (code, err, _) = check("big-describe", &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("describe returned more than the 65536 bytes"), "{err}");
    // An honest plugin's result within the cap is untouched by the bound.
    let (code, err, _) = check("dedup-top-k", &["--max-output-kib", "1"]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn loading_is_bounded_files_and_functions() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tmp");
    // /dev/zero would be read until the host is killed.
    let err = rt.load(std::path::Path::new("/dev/zero")).err().expect("refused").to_string();
    assert!(err.contains("not a regular file"), "{err}");
    let big = dir.path().join("big.wasm");
    let f = std::fs::File::create(&big).expect("create");
    f.set_len(moa_host::plugin::MAX_FILE + 1).expect("size");
    let err = rt.load(&big).err().expect("refused").to_string();
    assert!(err.contains("over 32 MiB, the largest plugin this host reads; build it smaller"), "{err}");
    // A component whose one function is over the compile cap: refused before compiling.
    let body = "nop\n".repeat(moa_host::plugin::MAX_FUNCTION + 16);
    let wat = format!("(component (core module (func {body})))");
    let huge = dir.path().join("huge.wasm");
    std::fs::write(&huge, wat::parse_str(&wat).expect("wat")).expect("write");
    let err = rt.load(&huge).err().expect("refused").to_string();
    assert!(err.contains("over the 512 KiB this host compiles; build it smaller"), "{err}");
}

#[test]
fn compiling_runs_in_a_child_process_under_its_own_limits() {
    let check = |env: (&str, &str)| {
        std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
            .env(env.0, env.1)
            .args(["plugin", "check"])
            .arg(plugins::path("dedup-top-k"))
            .output()
            .expect("runs")
    };
    // Limits too small for any compile: the host refuses the plugin and lives on.
    let o = check(("MOA_PLUGIN_COMPILE_MIB", "1"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("compiling it failed within the host's compile limits (1 MiB"), "{err}");
    let o = check(("MOA_PLUGIN_COMPILE_SECS", "0.001"));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("compiling it took more than the host's 0.001 s"), "{err}");
    // Under the default limits the child compiles, and the host reads its cache.
    let o = check(("MOA_UNUSED", "1"));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The `diverse` example plugin (host/plugins/examples/diverse, written without moa-core)
/// decides exactly as the built-in on the same proposals: the guide's claim that a built-in
/// can be written as a plugin, held by a test.
#[test]
fn the_diverse_example_plugin_decides_as_the_built_in_does() {
    let rt = runtime();
    const WORDS: [&str; 12] =
        ["Paris", "is", "the", "capital", "of", "France", "Lyon", "city", "big", "river", "Seine", "food!"];
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % n) as usize
    };
    let mut cases: Vec<(Vec<String>, serde_json::Value)> = vec![
        (
            vec![
                "Paris is the capital of France and its largest city.".into(),
                "Paris is the capital of France and its largest city!".into(),
                "The capital of France is Paris, on the Seine.".into(),
                "Lyon is a city in France known for its food.".into(),
            ],
            json!({"k": 3}),
        ),
        (vec!["same words here".into(); 3], json!({})),
        (vec!["yes".into(), "Yes!".into(), "no".into()], json!({"k": 2, "duplicate": 0.5})),
    ];
    for _ in 0..150 {
        let texts = (0..1 + next(7))
            .map(|_| (0..next(14)).map(|_| WORDS[next(WORDS.len() as u64)]).collect::<Vec<_>>().join(" "))
            .collect();
        let duplicate = [0.3, 0.5, 0.8, 1.0][next(4)];
        let params = json!({"k": 1 + next(5), "duplicate": duplicate});
        cases.push((texts, params));
    }
    for (texts, params) in cases {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let builtin_spec =
            StrategySpec { params: params.clone(), ..StrategySpec::builtin(moa_core::strategy::StrategyKind::Diverse) };
        let mut builtin =
            moa_core::strategy::Resolver::resolve(&moa_core::strategy::Builtins, &builtin_spec).expect("built-in");
        let conv = [Message::user("q")];
        let ps = proposals(&refs);
        let want = builtin.decide(&StrategyInput::new(&conv, 1, 1, &ps)).expect("built-in decides");
        let got = decide(&rt, &spec("diverse", params.clone()), &refs);
        assert_eq!(got, Ok(want), "{texts:?} with {params}");
    }
}
