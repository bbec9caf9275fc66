//! `moa tune` against fakes whose accuracy is known (`acc=` in the fake's model string):
//! a model right 70% of the time and one right 40%, on items whose question carries its
//! answer for the fake to read. Majority voting over samples of the better model is
//! expected to win (P(3 of 5 right) = 0.84 at 0.7), and budgets to change the choice.

use moa_testkit as common;

use common::Fake;
use std::path::Path;
use std::process::{Command, Output};

const GOOD: &str = "fake:acc=0.7;name=good";
const BAD: &str = "fake:acc=0.4;name=bad";

fn dataset(dir: &Path, n: usize) -> std::path::PathBuf {
    let path = dir.join("items.jsonl");
    let lines: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"q{i}\", \"prompt\": \"Question {i}, gold={}\", \"answer\": \"{}\"}}\n",
                100 + i,
                100 + i
            )
        })
        .collect();
    std::fs::write(&path, lines).expect("dataset");
    path
}

fn base(dir: &Path, fake: &Fake) -> std::path::PathBuf {
    let path = dir.join("base.toml");
    let toml = format!(
        "name = \"base\"\nmax_tokens = 16\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_concurrency = 16\n[[layers]]\nagents = [\"{GOOD}\"]\n[aggregator]\nmodel = \"{GOOD}\"\n",
        fake.base_url
    );
    std::fs::write(&path, toml).expect("base");
    path
}

fn tune(dir: &Path, data: &Path, base: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["tune", "-q", "--pool", GOOD, "--pool", BAD, "--base"])
        .arg(base)
        .arg("-o")
        .arg(dir.join("out"))
        .arg(data)
        .args(extra)
        .output()
        .expect("moa tune runs")
}

fn pareto(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("out/pareto.json")).expect("pareto.json");
    serde_json::from_str(&text).expect("pareto.json is JSON")
}

fn requests(fake: &Fake) -> usize {
    fake.seen.bodies.lock().expect("lock").len()
}

#[test]
fn tune_finds_the_mixture_that_beats_its_best_member_and_writes_a_recipe_that_runs() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dataset(dir.path(), 64);
    let base = base(dir.path(), &fake);
    let o = tune(dir.path(), &data, &base, &[]);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");

    // Every candidate is reported: 2 alone, 2 x (3, 5) x (vote, synthesize), 2 x 3 mixtures.
    let entries = pareto(dir.path());
    assert_eq!(entries.len(), 16, "{entries:#?}");
    let by = |name: &str| entries.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name}"));
    // The single models ran every item; losers stopped early (successive halving).
    assert_eq!(by("acc=0.7;name=good alone")["items"], 64);
    assert!(entries.iter().any(|e| e["items"].as_u64() < Some(64)), "some candidates were dropped early");
    let good_alone = by("acc=0.7;name=good alone")["score"]["mean"].as_f64().expect("score");
    assert!((0.55..0.85).contains(&good_alone), "the 0.7 model scored {good_alone}");

    // The choice: a vote over samples of the better model, better than it alone, with its
    // paired comparison against the best member in the report.
    let best = stdout.lines().find_map(|l| l.strip_prefix("best: ")).expect("best line").to_owned();
    assert!(best.contains("good") && best.contains("vote"), "chose {best}\n{stdout}");
    let chosen = by(&best);
    assert!(chosen["score"]["mean"].as_f64() > Some(good_alone), "{chosen}");
    assert_eq!(chosen["vs_best_member"][0], "acc=0.7;name=good alone");
    assert!(chosen["vs_best_member"][1]["wins"].as_u64() > chosen["vs_best_member"][1]["losses"].as_u64());

    // best.toml is a recipe that runs as is, on the base's provider.
    let best_toml = dir.path().join("out/best.toml");
    let recipe = moa_core::Recipe::from_toml(&std::fs::read_to_string(&best_toml).expect("best.toml")).expect("valid");
    assert_eq!(recipe.providers["fake"].base_url, fake.base_url);
    let run = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["run", "--recipe"])
        .arg(&best_toml)
        .arg("Question 7, gold=107")
        .output()
        .expect("moa run");
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));

    // Resumable: the same command again asks nothing new and chooses the same.
    let before = requests(&fake);
    let again = tune(dir.path(), &data, &base, &[]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(requests(&fake), before, "a rerun makes no new calls");
    assert!(String::from_utf8_lossy(&again.stdout).contains(&format!("best: {best}")));
}

#[test]
fn budgets_choose_within_them_or_say_what_was_cheapest() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dataset(dir.path(), 16);
    let base = base(dir.path(), &fake);
    // One call per item fits; a mixture's several calls do not.
    let alone = tune(dir.path(), &data, &base, &["--max-tokens-per-item", "20"]);
    let stdout = String::from_utf8_lossy(&alone.stdout);
    assert_eq!(alone.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&alone.stderr));
    assert!(stdout.contains("best: acc=0.7;name=good alone"), "{stdout}");
    let entries = pareto(dir.path());
    assert!(entries.iter().any(|e| e["over_budget"].as_array().is_some_and(|b| !b.is_empty())));

    let none = tune(dir.path(), &data, &base, &["--max-tokens-per-item", "1"]);
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert_eq!(none.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no candidate meets the budgets; the cheapest were:"), "{stderr}");
    assert!(stderr.contains("tokens per item > 1"), "{stderr}");
}

#[test]
fn bad_input_is_refused_before_any_call() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let data = dataset(dir.path(), 4);
    let base = base(dir.path(), &fake);
    let run = |args: &[&str], data: &Path| {
        Command::new(env!("CARGO_BIN_EXE_moa"))
            .args(["tune", "-q", "--base"])
            .arg(&base)
            .arg("-o")
            .arg(dir.path().join("bad"))
            .args(args)
            .arg(data)
            .output()
            .expect("moa tune")
    };
    let o = run(&["--pool", GOOD, "--pool", "together:some-model"], &data);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(
            "--pool together:some-model: the base recipe \"base\" has no provider \"together\" (it has: fake)"
        ),
        "{err}"
    );

    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").expect("write");
    let o = run(&["--pool", GOOD], &empty);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("empty.jsonl: no items"), "{err}");

    let o = run(&["--pool", "no-colon"], &data);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pool no-colon: expected PROVIDER:MODEL"));
    assert_eq!(requests(&fake), 0, "nothing was asked");
}
