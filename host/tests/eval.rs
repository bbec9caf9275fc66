//! `moa eval` end to end against the fake provider: scores, baselines, the paired
//! comparison, judges (position bias cancelled, unreadable verdicts counted), resuming,
//! failures, and the report files.

use moa_testkit as common;

use common::Fake;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// Ten items: the even ones' answer is 42, the odd ones' 7.
fn dataset(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("data.jsonl");
    let lines: Vec<String> = (0..10)
        .map(|i| {
            let answer = if i % 2 == 0 { "42" } else { "7" };
            format!(r#"{{"id": "q{i}", "prompt": "Question {i}?", "answer": "{answer}", "reference": "The answer is {answer}."}}"#)
        })
        .collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write dataset");
    path
}

/// A recipe file `name.toml` on the fake: proposers answer with `texts`, the aggregator with `agg`.
fn recipe(dir: &Path, fake: &Fake, name: &str, texts: &[&str], agg: &str) -> String {
    let agents: Vec<String> = texts.iter().map(|t| format!("\"fake:text={t}\"")).collect();
    let toml = format!(
        "name = \"{name}\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[[layers]]\nagents = [{}]\n\n[aggregator]\nmodel = \"fake:text={agg}\"\n\n[policy]\nretries = 0\n",
        fake.base_url,
        agents.join(", ")
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).expect("write recipe");
    path.display().to_string()
}

fn eval(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moa")).arg("eval").args(args).arg("-q").output().expect("moa runs")
}

/// `moa eval DATA --recipe RECIPE --scorer judge --judge JUDGE --judge-mode MODE -o OUT`.
fn judged(data: &Path, recipe: &str, judge: &str, mode: &str, out: &Path) -> Output {
    let (data, out) = (data.to_str().expect("path"), out.to_str().expect("path"));
    eval(&[data, "--recipe", recipe, "--scorer", "judge", "--judge", judge, "--judge-mode", mode, "-o", out])
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).expect("summary.json")).expect("json")
}

fn by_name<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["recipes"]
        .as_array()
        .expect("recipes")
        .iter()
        .find(|r| r["recipe"] == name)
        .unwrap_or_else(|| panic!("{name} in {s}"))
}

#[test]
fn a_mixture_is_scored_against_its_best_member_and_the_report_says_so() {
    let fake = Fake::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = dataset(tmp.path());
    // The proposers: one always says 42 (right on half the items), one always 8 (never
    // right); the aggregator says 42. Baselines: each proposer alone.
    let mix = recipe(tmp.path(), &fake, "mix", &["42", "8"], "The answer is 42.");
    let out = tmp.path().join("out");
    let o = eval(&[data.to_str().expect("path"), "--recipe", &mix, "--baselines", "-o", out.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("score [95% CI]") && table.contains("fake:text=8 alone (baseline)"), "{table}");
    let s = summary(&out);
    assert!(s["intervals"].as_str().expect("says how").contains("Wilson"));
    let mixed = by_name(&s, "mix");
    assert_eq!(mixed["score"]["mean"], 0.5);
    assert_eq!(mixed["score"]["method"], "wilson");
    assert!(mixed["score"]["lo"].as_f64().expect("lo") < 0.5 && mixed["score"]["hi"].as_f64().expect("hi") > 0.5);
    assert_eq!(mixed["calls_mean"], 3.0);
    let alone = by_name(&s, "fake:text=42 alone");
    assert_eq!(
        (alone["score"]["mean"].clone(), alone["calls_mean"].clone(), alone["baseline"].clone()),
        (0.5.into(), 1.0.into(), true.into())
    );
    assert_eq!(by_name(&s, "fake:text=8 alone")["score"]["mean"], 0.0);
    // Paired with the best baseline: the same items right, so all ties, p = 1.
    let (best, paired) = (&mixed["vs_best_baseline"][0], &mixed["vs_best_baseline"][1]);
    assert_eq!(best, "fake:text=42 alone");
    assert_eq!(
        (paired["wins"].clone(), paired["losses"].clone(), paired["ties"].clone()),
        (0.into(), 0.into(), 10.into())
    );
    assert_eq!(paired["p_value"], 1.0);
    // Per item and recipe, with every call's accounts.
    let results: Vec<Value> = std::fs::read_to_string(out.join("results.jsonl"))
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    assert_eq!(results.len(), 30);
    let q0 = results.iter().find(|r| r["recipe"] == "mix" && r["id"] == "q0").expect("q0");
    assert_eq!((q0["score"].clone(), q0["calls"].clone()), (1.0.into(), 3.into()));
    assert!(q0["ttft_ms"].as_f64().expect("ttft") <= q0["wall_ms"].as_f64().expect("wall"));
    // The page: self-contained, both charts, the Pareto front.
    let html = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("class=\"pareto\"") && html.contains("Score against time to first token"));
    assert!(
        !html.contains("<script") && !html.contains("http://") && !html.contains("https://"),
        "no scripts, no fetches"
    );

    // A rerun resumes: nothing is asked again, and the summary is the same.
    let before = fake.seen.bodies.lock().expect("lock").len();
    let o = eval(&[data.to_str().expect("path"), "--recipe", &mix, "--baselines", "-o", out.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(fake.seen.bodies.lock().expect("lock").len(), before, "a rerun makes no calls");
    assert_eq!(summary(&out)["recipes"], s["recipes"]);
}

#[test]
fn judges_judge_both_orders_and_unreadable_verdicts_are_counted_never_guessed() {
    let fake = Fake::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = dataset(tmp.path());
    let solo = recipe(tmp.path(), &fake, "solo", &["x"], "The answer is 42.");
    // A judge that always prefers whatever it is shown first: in both orders, a tie.
    let biased = recipe(tmp.path(), &fake, "biased", &["x"], "Verdict: A");
    let out = tmp.path().join("pair");
    let o = judged(&data, &solo, &biased, "pairwise", &out);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&out);
    assert!(s["scoring"].as_str().expect("words").contains("in both orders"));
    assert_eq!(by_name(&s, "solo")["score"]["mean"], 0.5, "position bias cancels");
    assert_eq!(by_name(&s, "solo")["unparseable"], 0);
    // A judge that will not say: every verdict unreadable, counted, and no score made up.
    let vague = recipe(tmp.path(), &fake, "vague", &["x"], "Both answers have merit.");
    let out = tmp.path().join("vague");
    let o = judged(&data, &solo, &vague, "grade", &out);
    assert_eq!(o.status.code(), Some(0));
    let s = summary(&out);
    assert_eq!(by_name(&s, "solo")["unparseable"], 10);
    assert_eq!(by_name(&s, "solo")["score"], Value::Null);
    // A rubric judge, per skill.
    let rubric = recipe(
        tmp.path(),
        &fake,
        "rubric",
        &["x"],
        "correctness: 5\\nfactuality: 4\\ncompleteness: 3\\nreadability: 2",
    );
    let out = tmp.path().join("rubric");
    let o = judged(&data, &solo, &rubric, "rubric", &out);
    assert_eq!(o.status.code(), Some(0));
    let s = summary(&out);
    let skills = &by_name(&s, "solo")["skills"];
    assert_eq!(skills[0][0], "correctness");
    assert_eq!(skills[0][1]["mean"], 5.0);
    assert_eq!(skills[3][1]["mean"], 2.0);
    assert_eq!(by_name(&s, "solo")["score"]["mean"], 3.5);
}

#[test]
fn failed_runs_score_as_wrong_exit_1_and_a_rerun_retries_them() {
    let fake = Fake::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = dataset(tmp.path());
    // The aggregator fails its first three requests (no retries in the recipe).
    let flaky = recipe(tmp.path(), &fake, "flaky", &["42"], "42;fault=500;times=3");
    let out = tmp.path().join("out");
    let args = [data.to_str().expect("path"), "--recipe", &flaky, "-o", out.to_str().expect("path"), "-j", "1"];
    let o = eval(&args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 runs failed (scored as wrong; rerun to retry them)"));
    let s = summary(&out);
    assert_eq!(by_name(&s, "flaky")["failed"], 3);
    assert_eq!(by_name(&s, "flaky")["score"]["mean"], 0.3, "two of the five 42s were lost to failures");
    let o = eval(&args);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(by_name(&summary(&out), "flaky")["score"]["mean"], 0.5);
    // Bad input says what and where.
    std::fs::write(tmp.path().join("bad.jsonl"), "{\"prompt\": \"x\", \"answer\": \"1\"}\n{\"answer\": \"2\"}\n")
        .expect("write");
    let o = eval(&[
        tmp.path().join("bad.jsonl").to_str().expect("path"),
        "--recipe",
        &flaky,
        "-o",
        out.to_str().expect("path"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.jsonl:2: needs \"prompt\", \"messages\" or \"turns\""));
}

#[test]
fn the_shipped_generated_sets_are_what_their_script_writes() {
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(repo.join("scripts/gen-evals")).arg("--check").output().expect("python3 runs it");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Every item of every shipped set parses, and its id is unique.
    for set in ["arithmetic", "units", "facts"] {
        let path = repo.join(format!("evals/{set}.jsonl"));
        let items = moa_host::eval::read_dataset(&path, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(items.len() >= 20, "{set}");
        assert!(items.iter().all(|(_, i)| i.answer.is_some()), "{set}: every item has an answer");
    }
}

#[test]
fn multi_turn_items_are_asked_and_graded_turn_by_turn() {
    let fake = Fake::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("turns.jsonl");
    std::fs::write(
        &data,
        "{\"id\": \"m1\", \"turns\": [\"Name a fruit.\", \"What colour is it?\"]}\n{\"id\": \"s1\", \"prompt\": \"One turn only.\"}\n",
    )
    .expect("write");
    let solo = recipe(tmp.path(), &fake, "solo", &["x"], "A banana.");
    let judge = recipe(tmp.path(), &fake, "grader", &["x"], "Rating: [[7]]");
    let out = tmp.path().join("out");
    let args = [
        data.to_str().expect("path"),
        "--recipe",
        &solo,
        "--scorer",
        "judge",
        "--judge",
        &judge,
        "--judge-mode",
        "grade",
        "-o",
        out.to_str().expect("path"),
    ];
    let o = eval(&args);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // The second turn was asked after the recipe's own first answer.
    let bodies = fake.seen.bodies.lock().expect("lock").clone();
    let second = bodies
        .iter()
        .find(|b| b["messages"].as_array().is_some_and(|m| m.iter().any(|x| x["content"] == "What colour is it?")))
        .expect("turn 2 asked");
    let roles: Vec<&str> =
        second["messages"].as_array().expect("list").iter().filter_map(|m| m["role"].as_str()).collect();
    assert!(roles.ends_with(&["user", "assistant", "user"]), "{roles:?}");
    assert!(second.to_string().contains("A banana."), "its own first answer: {second}");
    let s = summary(&out);
    let r = by_name(&s, "solo");
    assert_eq!(r["score"]["mean"], 7.0);
    assert_eq!(r["skills"][0][0], "turn 1");
    assert_eq!(r["skills"][1][0], "turn 2");
    assert_eq!(r["skills"][1][1]["n"], 1, "only the multi-turn item has a second turn");
    // Rule scorers cannot judge turns.
    let o = eval(&[data.to_str().expect("path"), "--recipe", &solo, "-o", out.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("turn by turn, MT-Bench style"));
}
