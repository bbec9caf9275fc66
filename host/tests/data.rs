//! Synthetic data with `moa batch`: training files (SFT, DPO) with provenance and nothing
//! failed in them, repeated prompts skipped, shards run as separate processes (by flag, by
//! a Slurm array's and a Kubernetes Indexed Job's variables, and by the shipped Slurm
//! script and Job manifest) and merged with every id checked.

use moa_testkit as common;

use common::Fake;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn moa() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moa"));
    c.stdin(Stdio::null());
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect()
}

/// A recipe of two proposers and an aggregator on the fake, each with a fixed answer.
fn recipe(dir: &Path, fake: &Fake, aggregator: &str) -> PathBuf {
    let text = format!(
        "name = \"data\"\n[policy]\nretries = 0\n\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n\n[[layers]]\nagents = [\"fake:a;text=Paris is the capital of France\", \"fake:b;text=The capital is Lyon\"]\n\n[aggregator]\nmodel = \"fake:{aggregator}\"\n",
        fake.base_url
    );
    let path = dir.join("recipe.toml");
    std::fs::write(&path, text).expect("write recipe");
    path
}

/// `moa batch export --input INPUT RAW -o TO EXTRA...`.
fn export(input: &Path, raw: &Path, to: &Path, extra: &[&str]) -> Output {
    moa().args(["batch", "export", "--input"]).arg(input).arg(raw).arg("-o").arg(to).args(extra).output().expect("runs")
}

fn batch(recipe: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    moa()
        .args(["batch", "-q", "-j", "1", "--recipe"])
        .arg(recipe)
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .expect("moa runs")
}

/// The OpenAI fine-tuning chat format (and TRL's conversational one): `messages`, each a
/// `role` of system/user/assistant and a string `content`, the last the assistant's.
fn assert_chat_record(r: &Value, extra_keys: &[&str]) {
    let obj = r.as_object().expect("an object");
    let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = ["messages"].into_iter().chain(extra_keys.iter().copied()).collect();
    assert_eq!(keys, want, "{r}");
    let messages = r["messages"].as_array().expect("messages");
    assert!(messages.iter().all(|m| {
        m.as_object().is_some_and(|o| o.len() == 2)
            && ["system", "user", "assistant"].contains(&m["role"].as_str().unwrap_or(""))
            && m["content"].is_string()
    }));
    assert_eq!(messages.last().expect("one")["role"], "assistant");
}

#[test]
fn sft_and_dpo_files_carry_provenance_and_never_a_failed_or_short_answer() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    // The aggregator fails its first request (no retries): one item fails.
    let r = recipe(dir.path(), &fake, "agg;text=Paris is the capital of France.;fault=500;times=1");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"id": "fails", "instruction": "first, and failed"}"#,
            r#"{"id": "q1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]}"#,
            r#"{"id": 2, "instruction": "Which city, by the reference?", "answer": "Lyon"}"#,
            r#""a plain prompt""#,
        ]
        .join("\n"),
    )
    .expect("write");
    let out = dir.path().join("out.jsonl");
    let o = batch(&r, &input, &out, &["--format", "sft"]);
    assert_eq!(o.status.code(), Some(1), "one item failed: {}", stderr(&o));
    assert!(stderr(&o).contains("out.sft.jsonl: 3 records; left out: 1 unanswered"), "{}", stderr(&o));
    let sft = lines(&dir.path().join("out.sft.jsonl"));
    assert_eq!(sft.len(), 3);
    for rec in &sft {
        assert_chat_record(rec, &["moa"]);
        let p = &rec["moa"];
        assert_eq!(p["recipe"], "data");
        assert_eq!(p["recipe_sha256"].as_str().map(str::len), Some(64));
        assert_eq!(
            p["models"],
            json!([
                "fake:a;text=Paris is the capital of France",
                "fake:b;text=The capital is Lyon",
                "fake:agg;text=Paris is the capital of France.;fault=500;times=1"
            ])
        );
        assert_eq!(p["moa"], env!("CARGO_PKG_VERSION"));
        assert!(p["seed"].is_u64() && p["usage"]["output_tokens"].as_u64().is_some_and(|n| n > 0), "{p}");
    }
    assert_eq!(sft[0]["moa"]["id"], "q1");
    assert_eq!(
        sft[0]["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
               {"role": "assistant", "content": "Paris is the capital of France."}])
    );
    assert!(sft.iter().all(|r| r["moa"]["id"] != "fails"));
    // The raw output keeps the failure, with its provenance too.
    let raw = lines(&out);
    let failed = raw.iter().find(|l| l["id"] == "fails").expect("kept in OUT");
    assert!(
        failed["error"].as_str().is_some_and(|e| e.contains("HTTP 500")) && failed["provenance"]["recipe"] == "data"
    );

    // Re-exported bare (for APIs that refuse unknown keys), and with a length floor.
    let bare = dir.path().join("bare.jsonl");
    let o = export(&input, &out, &bare, &["--format", "sft", "--bare"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    lines(&bare).iter().for_each(|r| assert_chat_record(r, &[]));
    let o = export(&input, &out, &bare, &["--format", "sft", "--min-answer-chars", "100"]);
    assert!(
        stderr(&o).contains("0 records; left out: 1 unanswered (failed or not run), 3 with an empty or short answer"),
        "{}",
        stderr(&o)
    );

    // DPO: a rerun answers the failed item too (the fault was once), with proposals.
    let o = batch(&r, &input, &out, &["--format", "dpo", "--scorer", "contains"]);
    assert!(
        stderr(&o).contains("out.dpo.jsonl: 1 record; left out: 3 without a proposal that differs from the answer"),
        "{}",
        stderr(&o)
    );
    // Items answered before without proposals cannot make a pair; run them again.
    let out2 = dir.path().join("out2.jsonl");
    let o = batch(&r, &input, &out2, &["--format", "dpo", "--scorer", "contains"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dpo = lines(&dir.path().join("out2.dpo.jsonl"));
    assert_eq!(dpo.len(), 4);
    for rec in &dpo {
        let keys: BTreeSet<&str> = rec.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["prompt", "chosen", "rejected", "moa"]));
        assert_eq!(rec["chosen"], json!([{"role": "assistant", "content": "Paris is the capital of France."}]));
    }
    let by_id = |id: Value| dpo.iter().find(|r| r["moa"]["id"] == id).expect("record");
    // No reference: the proposal least like the answer.
    assert_eq!(by_id(json!("q1"))["rejected"], json!([{"role": "assistant", "content": "The capital is Lyon"}]));
    assert!(by_id(json!("q1"))["moa"]["rejected"]["rule"].as_str().expect("rule").starts_with("least similar"));
    assert_eq!(by_id(json!("q1"))["prompt"][1], json!({"role": "user", "content": "Capital of France?"}));
    // A reference ("Lyon", scored by `contains`): the proposal that scores lowest.
    let refd = by_id(json!(2));
    assert_eq!(refd["rejected"], json!([{"role": "assistant", "content": "Paris is the capital of France"}]));
    assert!(refd["moa"]["rejected"]["rule"].as_str().expect("rule").starts_with("lowest contains score"), "{refd}");

    // A judge recipe: the proposal it names as worst is rejected (here the first, which
    // the rule without a judge would have kept); its verdicts are a batch of their own.
    let judge = dir.path().join("judge.toml");
    std::fs::write(
        &judge,
        format!("name = \"judge\"\nlayers = []\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[aggregator]\nmodel = 'fake:judge;text={{\"worst\": 1}}'\n", fake.base_url),
    )
    .expect("write");
    let judged = dir.path().join("judged.jsonl");
    let o = export(&input, &out2, &judged, &["--format", "dpo", "--judge", judge.to_str().expect("utf-8 path")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let judged = lines(&judged);
    assert_eq!(judged.len(), 4);
    let q1 = judged.iter().find(|r| r["moa"]["id"] == "q1").expect("q1");
    assert_eq!(q1["rejected"], json!([{"role": "assistant", "content": "Paris is the capital of France"}]));
    assert_eq!(q1["moa"]["rejected"]["rule"], "ranked lowest by the judge recipe (response 1 of 2)");
    let prompts = lines(&dir.path().join("out2.dpo-judge.in.jsonl"));
    assert_eq!(prompts.len(), 4);
    assert!(prompts[0]["messages"][1]["content"].as_str().expect("text").contains("[Response 2]\nThe capital is Lyon"));
}

#[test]
fn repeated_prompts_are_skipped_and_reported() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "agg");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"id\": \"a\", \"instruction\": \"Name a prime.\"}\n{\"id\": \"b\", \"instruction\": \"name  a PRIME.\"}\n\"Name a prime. \"\n\"Another one\"\n").expect("write");
    let out = dir.path().join("out.jsonl");
    let o = batch(&r, &input, &out, &["--dedup"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped 2 items whose prompt repeats an earlier one's: \"b\" (as \"a\"), 3 (as \"a\")"),
        "{}",
        stderr(&o)
    );
    let ids: Vec<String> = lines(&out).iter().map(|l| l["id"].to_string()).collect();
    assert_eq!(ids, ["\"a\"", "4"]);
}

/// `moa batch merge --input INPUT OUTPUTS... -o TO`.
fn merge(input: &Path, outputs: &[PathBuf], to: &Path) -> Output {
    moa().args(["batch", "merge", "--input"]).arg(input).args(outputs).arg("-o").arg(to).output().expect("runs")
}

/// `moa batch --shard auto` with the scheduler's variables `env`.
fn auto_shard(recipe: &Path, input: &Path, out: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = moa();
    c.args(["batch", "-q", "--recipe"]).arg(recipe).arg(input).arg("-o").arg(out).args(["--shard", "auto"]);
    c.envs(env.iter().copied()).output().expect("runs")
}

fn ids(path: &Path) -> BTreeSet<String> {
    lines(path).iter().filter(|l| l["answer"].is_string()).map(|l| l["id"].to_string()).collect()
}

#[test]
fn shards_partition_the_input_stably_run_apart_and_merge_checking_every_id() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "agg");
    let input = dir.path().join("in.jsonl");
    let items: Vec<String> =
        (0..60).map(|i| format!("{{\"id\": \"item-{i}\", \"instruction\": \"prompt {i}\"}}")).collect();
    std::fs::write(&input, items.join("\n")).expect("write");
    // Three shards as three processes at once.
    let outs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("shard-{i}.jsonl"))).collect();
    let children: Vec<_> = (0..3)
        .map(|i| {
            moa()
                .args(["batch", "-q", "--recipe"])
                .arg(&r)
                .arg(&input)
                .arg("-o")
                .arg(&outs[i])
                .args(["--shard", &format!("{i}/3")])
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().expect("waits");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let shards: Vec<BTreeSet<String>> = outs.iter().map(|o| ids(o)).collect();
    assert!(
        shards.iter().all(|s| s.len() > 5),
        "each shard has a share: {:?}",
        shards.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
    assert_eq!(shards.iter().map(BTreeSet::len).sum::<usize>(), 60);
    assert!(
        shards[0].is_disjoint(&shards[1]) && shards[1].is_disjoint(&shards[2]) && shards[0].is_disjoint(&shards[2])
    );

    // Stable: reversed and with 20 more items appended, every old item stays in its shard.
    let mut more: Vec<String> = items.iter().rev().cloned().collect();
    more.extend((60..80).map(|i| format!("{{\"id\": \"item-{i}\", \"instruction\": \"prompt {i}\"}}")));
    let reordered = dir.path().join("reordered.jsonl");
    std::fs::write(&reordered, more.join("\n")).expect("write");
    let again = dir.path().join("again-1.jsonl");
    assert_eq!(batch(&r, &reordered, &again, &["--shard", "1/3"]).status.code(), Some(0));
    assert!(ids(&again).is_superset(&shards[1]));

    // `--shard auto`, as a Slurm array task and as a Kubernetes Indexed Job pod sees it.
    let slurm = dir.path().join("slurm-2.jsonl");
    let slurm_env = [("SLURM_ARRAY_TASK_ID", "7"), ("SLURM_ARRAY_TASK_MIN", "5"), ("SLURM_ARRAY_TASK_COUNT", "3")];
    let o = auto_shard(&r, &input, &slurm, &slurm_env);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(ids(&slurm), shards[2]);
    let k8s = dir.path().join("k8s-0.jsonl");
    let o = auto_shard(&r, &input, &k8s, &[("JOB_COMPLETION_INDEX", "0"), ("MOA_SHARD_COUNT", "3")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(ids(&k8s), shards[0]);
    let o = auto_shard(&r, &input, &k8s, &[("JOB_COMPLETION_INDEX", "0")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("MOA_SHARD_COUNT is not"), "{}", stderr(&o));

    // The merge: every id once, in input order.
    let all = dir.path().join("all.jsonl");
    let o = merge(&input, &outs, &all);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let merged: Vec<String> = lines(&all).iter().map(|l| l["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(merged, (0..60).map(|i| format!("item-{i}")).collect::<Vec<_>>());
    // A shard missing: its ids are listed, and the merge fails.
    let o = merge(&input, &outs[..2], &all);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("{} items have no answer in any output", shards[2].len())), "{}", stderr(&o));
    // A shard given twice: its ids are answered twice.
    let twice: Vec<PathBuf> = outs.iter().chain([&outs[0]]).cloned().collect();
    let o = merge(&input, &twice, &all);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is answered in more than one output"), "{}", stderr(&o));
}

/// The shipped Slurm script and Kubernetes manifest, checked for syntax and run: each
/// array task or pod as the scheduler would start it (its variables set), then merged.
#[test]
fn the_shipped_slurm_script_and_indexed_job_run_their_shards() {
    if !common::needs::wanted(common::needs::Needs::Python) {
        return;
    }
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let r = recipe(dir.path(), &fake, "agg");
    let input = dir.path().join("prompts.jsonl");
    let items: Vec<String> = (0..24).map(|i| format!("{{\"id\": {i}, \"instruction\": \"prompt {i}\"}}")).collect();
    std::fs::write(&input, items.join("\n")).expect("write");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let bin = Path::new(env!("CARGO_BIN_EXE_moa")).parent().expect("bin dir").to_owned();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());

    // Slurm: bash -n, the array is 0-3, and each task runs its shard.
    let script = deploy.join("slurm-array.sh");
    assert!(Command::new("bash").arg("-n").arg(&script).status().expect("bash").success());
    let text = std::fs::read_to_string(&script).expect("script");
    assert!(text.contains("#SBATCH --array=0-3"));
    let out = dir.path().join("slurm");
    for task in 0..4 {
        let o = Command::new("bash")
            .arg(&script)
            .arg(&r)
            .arg(&input)
            .arg(&out)
            .env("PATH", &path)
            .envs([
                ("SLURM_ARRAY_TASK_ID", task.to_string()),
                ("SLURM_ARRAY_TASK_MIN", "0".into()),
                ("SLURM_ARRAY_TASK_COUNT", "4".into()),
            ])
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(0), "task {task}: {}", stderr(&o));
    }
    let shards: Vec<PathBuf> = (0..4).map(|i| out.join(format!("shard-{i}.jsonl"))).collect();
    let o = merge(&input, &shards, &dir.path().join("all.jsonl"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Kubernetes: the manifest parses, is an Indexed Job whose MOA_SHARD_COUNT is its
    // completions, and its container's command runs each pod's shard.
    let manifest = deploy.join("k8s-indexed-job.yaml");
    let o = Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"])
        .arg(&manifest)
        .output()
        .expect("python3 with yaml (python3-yaml)");
    assert!(o.status.success(), "{}", stderr(&o));
    let job: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!((job["apiVersion"].as_str(), job["kind"].as_str()), (Some("batch/v1"), Some("Job")));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().expect("completions");
    let container = &spec["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().expect("env");
    let count = env.iter().find(|e| e["name"] == "MOA_SHARD_COUNT").expect("MOA_SHARD_COUNT")["value"]
        .as_str()
        .expect("a string");
    assert_eq!(count, completions.to_string());
    let command: Vec<String> =
        container["command"].as_array().expect("command").iter().map(|c| c.as_str().expect("str").to_owned()).collect();
    assert_eq!(command[..2], ["sh", "-c"]);
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("out")).expect("mkdir");
    std::fs::copy(&r, data.join("recipe.toml")).expect("copy");
    std::fs::copy(&input, data.join("prompts.jsonl")).expect("copy");
    let line = command[2].replace("/data", &data.display().to_string());
    for pod in 0..completions {
        let o = Command::new("sh")
            .args(["-c", &line])
            .env("PATH", &path)
            .envs([("JOB_COMPLETION_INDEX", pod.to_string()), ("MOA_SHARD_COUNT", count.to_owned())])
            .output()
            .expect("runs");
        assert_eq!(o.status.code(), Some(0), "pod {pod}: {}", stderr(&o));
    }
    let shards: Vec<PathBuf> = (0..completions).map(|i| data.join(format!("out/shard-{i}.jsonl"))).collect();
    let o = merge(&input, &shards, &data.join("all.jsonl"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(lines(&data.join("all.jsonl")).len(), 24);
}
