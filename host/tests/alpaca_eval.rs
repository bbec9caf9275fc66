//! The real `alpaca_eval` tool (PyPI) on `moa batch --alpaca-eval` output, offline, with
//! its judge behind `moa serve` — the interop the README shows. The judge's model is the
//! fake provider (it ranks whichever answer it is shown first as better, so AlpacaEval's
//! own randomized order must bring the win rate to 50%); what is under test is that
//! the files and the endpoints fit the real tool, not a judge's taste.
//!
//! Needs the tool: `scripts/test` installs it in `~/.cache/moa/alpaca-venv` (or set
//! `MOA_ALPACA_EVAL` to its `alpaca_eval` executable).

use moa_testkit as common;

use common::Fake;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn alpaca_eval() -> PathBuf {
    let path = std::env::var_os("MOA_ALPACA_EVAL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/moa/alpaca-venv/bin/alpaca_eval")
    });
    assert!(
        path.exists(),
        "{} is missing: scripts/test installs alpaca-eval into ~/.cache/moa/alpaca-venv",
        path.display()
    );
    path
}

/// `moa serve` on `recipes`, killed when dropped; its base URL.
struct Serve(std::process::Child, String);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn serve(recipes: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["serve", "--listen", "127.0.0.1:0", "--recipes"])
        .arg(recipes)
        .stderr(Stdio::piped())
        .spawn()
        .expect("moa serve starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = lines.next().expect("a line").expect("text");
    // Keep reading its log: a closed pipe would end the server at its first log line.
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let addr = first.split("http://").nth(1).and_then(|s| s.split('/').next()).unwrap_or_else(|| panic!("{first}"));
    Serve(child, format!("http://{addr}"))
}

#[test]
fn the_real_alpaca_eval_scores_moa_batch_output_with_a_judge_behind_moa_serve() {
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let tool = alpaca_eval();
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // The outputs to judge: `moa batch --alpaca-eval`.
    std::fs::write(
        d.join("in.jsonl"),
        "{\"instruction\": \"Name a fruit.\"}\n{\"instruction\": \"Name a colour.\"}\n{\"instruction\": \"Name a river.\"}\n{\"instruction\": \"Name a tree.\"}\n",
    )
    .expect("write");
    let answerer = format!(
        "name = \"moa-under-test\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[[layers]]\nagents = [\"fake:text=A short answer.\"]\n[aggregator]\nmodel = \"fake:text=The answer.\"\n",
        fake.base_url
    );
    std::fs::write(d.join("answerer.toml"), answerer).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["batch", "-q", "--recipe"])
        .arg(d.join("answerer.toml"))
        .arg(d.join("in.jsonl"))
        .arg("-o")
        .arg(d.join("out.jsonl"))
        .arg("--alpaca-eval")
        .arg(d.join("model_outputs.json"))
        .output()
        .expect("moa batch runs");
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let reference: Vec<serde_json::Value> = ["Name a fruit.", "Name a colour.", "Name a river.", "Name a tree."]
        .iter()
        .map(|i| serde_json::json!({"instruction": i, "output": "A reference answer.", "generator": "reference"}))
        .collect();
    std::fs::write(d.join("reference.json"), serde_json::to_string(&reference).expect("json")).expect("write");
    // The judge: a served recipe of one call, answering in the ranking format the
    // alpaca_eval_gpt4 annotator parses.
    let recipes = d.join("recipes");
    std::fs::create_dir(&recipes).expect("mkdir");
    let judge = format!(
        "name = \"judge\"\nlayers = []\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[aggregator]\nmodel = \"fake:text=[{{'model': 'model_1', 'rank': 1}}, {{'model': 'model_2', 'rank': 2}}]\"\n",
        fake.base_url
    );
    std::fs::write(recipes.join("judge.toml"), judge).expect("write");
    let server = serve(&recipes);
    // The annotator config, and the tool's own prompt beside it.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::create_dir(d.join("judge")).expect("mkdir");
    std::fs::copy(repo.join("tests/alpaca_eval/configs.yaml"), d.join("judge/configs.yaml")).expect("copy");
    let template = Command::new(tool.parent().expect("bin").join("python"))
        .args(["-c", "import alpaca_eval, os; print(os.path.join(os.path.dirname(alpaca_eval.__file__), 'evaluators_configs/alpaca_eval_gpt4/alpaca_eval.txt'))"])
        .output()
        .expect("python runs");
    let template = String::from_utf8_lossy(&template.stdout).trim().to_owned();
    std::fs::copy(&template, d.join("judge/alpaca_eval.txt")).unwrap_or_else(|e| panic!("{template}: {e}"));
    let o = Command::new(&tool)
        .current_dir(d)
        .args(["evaluate", "--model_outputs", "model_outputs.json", "--reference_outputs", "reference.json"])
        // An absolute path: a relative one is looked up among the tool's own configs.
        .arg("--annotators_config")
        .arg(d.join("judge/configs.yaml"))
        .args(["--output_path", "results"])
        // Length control fetches its model of instruction difficulty from the Hugging
        // Face hub, which this machine cannot reach: the plain win rate is offline.
        .args(["--fn_metric", "get_winrate", "--sort_by", "win_rate"])
        .env("OPENAI_API_BASE", format!("{}/v1", server.1))
        .env("OPENAI_API_KEY", "unused")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("alpaca_eval runs");
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let board = std::fs::read_to_string(d.join("results/moa_judge/leaderboard.csv"))
        .or_else(|_| std::fs::read_to_string(d.join("results/leaderboard.csv")))
        .expect("leaderboard.csv");
    let row = board.lines().find(|l| l.starts_with("moa-under-test,")).unwrap_or_else(|| panic!("{board}"));
    let header: Vec<&str> = board.lines().next().expect("header").split(',').collect();
    let cell =
        |name: &str| row.split(',').nth(header.iter().position(|h| *h == name).expect(name)).expect(name).to_owned();
    assert_eq!(cell("n_total"), "4", "{board}");
    let win: f64 = cell("win_rate").parse().expect("a number");
    assert!((0.0..=100.0).contains(&win), "{board}");
    assert!(
        fake.seen.bodies.lock().expect("lock").iter().any(|b| b.to_string().contains("Now please rank the models")),
        "the judge got AlpacaEval's own prompt"
    );
}
