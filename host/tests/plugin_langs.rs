//! One strategy written in Rust, Python and JavaScript: the `longest` examples decide
//! alike (decisions, notes, refusals) natively, and each passes `moa plugin check`.

use moa_testkit::needs::{Needs, wanted};
use moa_testkit::plugins::{self, Lang};

use moa_core::Message;
use moa_core::recipe::StrategySpec;
use moa_core::strategy::{Decision, Proposal, Strategy, StrategyInput};
use moa_host::plugin::{PluginStrategy, Runtime};
use serde_json::json;
use std::path::PathBuf;

/// The three builds of `longest`, or `None` (said on stderr) when the builders are not here.
fn builds() -> Option<[(&'static str, PathBuf); 3]> {
    if !wanted(Needs::Componentize) {
        return None;
    }
    Some([
        ("rust", plugins::path("longest")),
        ("python", plugins::built("longest", Lang::Python)),
        ("js", plugins::built("longest", Lang::Js)),
    ])
}

fn decide(
    rt: &std::sync::Arc<Runtime>,
    path: &std::path::Path,
    params: &serde_json::Value,
    input: &StrategyInput<'_>,
) -> Result<(Decision, Option<String>), String> {
    let spec = StrategySpec {
        plugin: Some(path.display().to_string()),
        params: params.clone(),
        timeout_ms: Some(5_000),
        ..Default::default()
    };
    let mut s = PluginStrategy::new(rt.clone(), path, &spec).map_err(|e| e.to_string())?;
    let d = s.decide(input).map_err(|e| e.to_string())?;
    Ok((d, s.note()))
}

#[test]
fn longest_decides_alike_in_rust_python_and_javascript() {
    let Some(builds) = builds() else { return };
    let rt = Runtime::new(None).expect("runtime");
    const WORDS: [&str; 6] = ["a", "naïve", "日本語", "🙂🙂", "word", "x y"];
    let mut seed: u64 = 0x10_6e57;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let conv = [Message::user("Which is longest?")];
    for case in 0..40 {
        let n = 1 + next(6) as usize;
        let proposals: Vec<Proposal> = (0..n)
            .map(|i| Proposal {
                agent: format!("a{i}"),
                model: "m".into(),
                text: (0..next(5)).map(|_| WORDS[next(6) as usize]).collect::<Vec<_>>().join(" "),
                usage: None,
                latency_ms: 1.0,
            })
            .collect();
        let layer_count = 1 + next(2) as usize;
        let layer = 1 + next(layer_count as u64 + 1) as usize;
        let params = match next(3) {
            0 => json!({}),
            _ => json!({"k": 1 + next(5)}),
        };
        let input = StrategyInput::new(&conv, layer, layer_count, &proposals);
        let want = decide(&rt, &builds[0].1, &params, &input).expect("the Rust build decides");
        for (lang, path) in &builds[1..] {
            let got = decide(&rt, path, &params, &input);
            assert_eq!(
                got.as_ref(),
                Ok(&want),
                "case {case}, {lang}: {params} on {:?}",
                proposals.iter().map(|p| &p.text).collect::<Vec<_>>()
            );
        }
    }
    // A refusal says the same in each language.
    let ps = [Proposal { agent: "a".into(), model: "m".into(), text: "t".into(), usage: None, latency_ms: 1.0 }];
    let input = StrategyInput::new(&conv, 1, 1, &ps);
    for (lang, path) in &builds {
        let err = decide(&rt, path, &json!({"kk": 1}), &input).expect_err("refused");
        assert!(err.contains("declined to decide: unknown parameter \"kk\" (it takes k)"), "{lang}: {err}");
    }
}

#[test]
fn each_language_passes_plugin_check() {
    let Some(builds) = builds() else { return };
    for (lang, path) in builds {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_moa"))
            .args(["plugin", "check", "--params", r#"{"k": 3}"#, "--timeout-ms", "5000"])
            .arg(&path)
            // What is tested is that each passes the check, not how fast a debug build
            // compiles an 18 MB Python plugin while the other test compiles it too, on a
            // busy 2-core machine (that took more than the default 20 s).
            .env("MOA_PLUGIN_COMPILE_SECS", "120")
            .output()
            .expect("runs");
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0), "{lang}: {out}{}", String::from_utf8_lossy(&o.stderr));
        assert!(out.contains("contract moa:strategy@0.2.0") && out.contains("longest 0.1.0"), "{lang}: {out}");
        assert!(out.contains("note: kept the 3 longest of 6"), "{lang}: {out}");
    }
}
