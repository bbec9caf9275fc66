//! The evaluation's report: the summary as a table for the terminal, and the files in
//! its folder (`results.jsonl`, `summary.json`, `report.html`).

use super::{EvalError, Scoring, html, io};
use moa_core::eval::judge::JudgeMode;
use moa_core::eval::{ItemResult, RecipeSummary, Scorer};
use serde::Serialize;
use std::path::Path;

/// `summary.json`.
#[derive(Serialize)]
struct SummaryFile<'a> {
    dataset: String,
    items: usize,
    scoring: &'a str,
    intervals: &'static str,
    paired_test: &'static str,
    recipes: &'a [RecipeSummary],
}

/// Writes `results.jsonl`, `summary.json` and `report.html` into `out`.
pub fn write(
    out: &Path,
    dataset: &Path,
    items: usize,
    scoring: &Scoring,
    results: &[ItemResult],
    summary: &[RecipeSummary],
) -> Result<(), EvalError> {
    let results_path = out.join("results.jsonl");
    let text: String = results.iter().filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect();
    std::fs::write(&results_path, text).map_err(io(&results_path))?;
    let scoring = scoring_words(scoring);
    let doc = SummaryFile {
        dataset: dataset.display().to_string(),
        items,
        scoring: &scoring,
        intervals: "95%: Wilson's score interval when every score is 0 or 1, else a percentile bootstrap (2,000 resamples, fixed seed)",
        paired_test: "exact two-sided sign test over items where the recipe and the best baseline differ",
        recipes: summary,
    };
    let summary_path = out.join("summary.json");
    std::fs::write(&summary_path, serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
        .map_err(io(&summary_path))?;
    let html_path = out.join("report.html");
    std::fs::write(&html_path, html::html(&dataset.display().to_string(), &scoring, summary)).map_err(io(&html_path))
}

/// The scoring, in words, for the report.
pub fn scoring_words(s: &Scoring) -> String {
    match s {
        Scoring::Rule(Scorer::Exact) => {
            "exact: normalized answer equals the reference (or its last number does)".into()
        }
        Scoring::Rule(Scorer::Choice) => "choice: the multiple-choice letter picked".into(),
        Scoring::Rule(Scorer::Contains) => "contains: the reference appears in the answer".into(),
        Scoring::Rule(Scorer::Regex) => "regex: the reference pattern matches the answer".into(),
        Scoring::Rule(Scorer::Tool) => "tool: the calls made equal the reference's (canonical arguments)".into(),
        Scoring::Judge { recipe, mode: JudgeMode::Pairwise, against, .. } => format!(
            "pairwise win rate against {} judged by {} in both orders, ties half",
            against.as_deref().unwrap_or("the reference outputs"),
            recipe.name
        ),
        Scoring::Judge { recipe, mode: JudgeMode::Grade, .. } => format!("1-10 grade by {}", recipe.name),
        Scoring::Judge { recipe, mode: JudgeMode::Rubric, skills, .. } => {
            format!("1-5 rubric ({}) by {}, the score their mean", skills.join(", "), recipe.name)
        }
    }
}

/// The summary as a plain-text table.
pub fn table(summary: &[RecipeSummary]) -> String {
    let mut rows = vec![[
        "recipe".to_owned(),
        "items".into(),
        "score [95% CI]".into(),
        "vs best baseline W/L/T (p) diff [95% CI]".into(),
        "tokens/item".into(),
        "cost".into(),
        "wall p50/p95 s".into(),
        "TTFT p50/p95 s".into(),
        "calls/item".into(),
    ]];
    for s in summary {
        let score = s.score.as_ref().map_or("-".into(), |e| format!("{:.3} [{:.3}, {:.3}]", e.mean, e.lo, e.hi));
        let vs = s.vs_best_baseline.as_ref().map_or("-".into(), |(_, p)| {
            let diff =
                p.diff.as_ref().map_or(String::new(), |d| format!(" {:+.3} [{:+.3}, {:+.3}]", d.mean, d.lo, d.hi));
            format!("{}/{}/{} ({:.3}){diff}", p.wins, p.losses, p.ties, p.p_value)
        });
        rows.push([
            format!("{}{}", s.recipe, if s.baseline { " (baseline)" } else { "" }),
            format!("{}{}", s.items, if s.failed > 0 { format!(" ({} failed)", s.failed) } else { String::new() }),
            score,
            vs,
            format!("{:.0}", s.tokens_mean),
            s.cost.map_or("-".into(), |c| format!("${c:.4}")),
            format!("{:.2}/{:.2}", s.wall_ms.0 / 1e3, s.wall_ms.1 / 1e3),
            s.ttft_ms.map_or("-".into(), |(a, b)| format!("{:.2}/{:.2}", a / 1e3, b / 1e3)),
            format!("{:.1}", s.calls_mean),
        ]);
    }
    let widths: Vec<usize> = (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
