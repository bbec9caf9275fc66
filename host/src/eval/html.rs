//! `report.html` of `moa eval`: one self-contained static file (no script, no fetches) with
//! the summary table and two charts drawn as inline SVG — score against cost and score
//! against time to first token, each recipe a point with its 95% interval, the Pareto
//! front marked: the paper's Figure 5, for the user's own task.

use moa_core::eval::{RecipeSummary, pareto};

/// Escapes text for HTML and SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report page.
pub fn html(dataset: &str, scoring: &str, summary: &[RecipeSummary]) -> String {
    let priced = summary.iter().all(|s| s.cost.is_some());
    let (cost_axis, cost): (&str, Vec<Option<f64>>) = if priced {
        ("cost over the dataset ($)", summary.iter().map(|s| s.cost).collect())
    } else {
        (
            "tokens per item (no prices in the recipes, so tokens stand for cost)",
            summary.iter().map(|s| Some(s.tokens_mean)).collect(),
        )
    };
    let ttft: Vec<Option<f64>> = summary.iter().map(|s| s.ttft_ms.map(|t| t.0 / 1e3)).collect();
    let rows: String = summary.iter().map(row).collect();
    let skills: String = summary.iter().filter(|s| !s.skills.is_empty()).map(skills_item).collect();
    let skills = if skills.is_empty() { String::new() } else { format!("<h2>Per skill</h2><ul>{skills}</ul>") };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>moa eval: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #1d1d1f; margin: 1.5rem; max-width: 72rem; }}
table {{ border-collapse: collapse; font-size: .9rem; }}
th, td {{ border-bottom: 1px solid #d0d4da; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
small {{ color: #5f6368; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1.5rem; }}
figure {{ margin: 0; }}
svg {{ max-width: 100%; height: auto; font-size: 11px; }}
.note {{ color: #5f6368; max-width: 60rem; }}
</style></head><body>
<h1>moa eval</h1>
<p>Dataset <code>{title}</code>; scoring: {scoring}.</p>
<table><thead><tr><th>recipe</th><th>items</th><th>score [95% CI]</th><th>vs best baseline W/L/T</th><th>tokens/item</th><th>cost</th><th>wall p50 / p95 (s)</th><th>TTFT p50 / p95 (s)</th><th>calls/item</th></tr></thead>
<tbody>
{rows}</tbody></table>
<p class="note">Intervals are 95%: Wilson's score interval for 0/1 scores, else a percentile bootstrap (2,000 resamples). W/L/T: items where the recipe scored higher / lower / the same as the best single-model baseline; p: exact two-sided sign test. TTFT: time to the answer's first token.</p>
{skills}
<div class="charts">
{chart_cost}
{chart_ttft}
</div>
<p class="note">Each point is a recipe, its bar the 95% interval of its score. Filled points joined by the line are the Pareto front: no other recipe scores at least as well for less.</p>
</body></html>
"#,
        title = esc(dataset),
        scoring = esc(scoring),
        chart_cost = chart("Score against cost", cost_axis, summary, &cost),
        chart_ttft = chart("Score against time to first token", "TTFT, median (s)", summary, &ttft),
    )
}

/// The summary table's row for one recipe.
fn row(s: &RecipeSummary) -> String {
    let score =
        s.score.as_ref().map_or("–".into(), |e| format!("{:.3} <small>[{:.3}, {:.3}]</small>", e.mean, e.lo, e.hi));
    let vs = s.vs_best_baseline.as_ref().map_or("–".into(), |(b, p)| {
        let diff = p
            .diff
            .as_ref()
            .map_or(String::new(), |d| format!(", difference {:+.3} [{:+.3}, {:+.3}]", d.mean, d.lo, d.hi));
        format!("{}/{}/{} <small>p = {:.3}{diff} vs {}</small>", p.wins, p.losses, p.ties, p.p_value, esc(b))
    });
    format!(
        "<tr><th scope=row>{}{}</th><td>{}{}</td><td>{score}</td><td>{vs}</td><td>{:.0}</td><td>{}</td><td>{:.2} / {:.2}</td><td>{}</td><td>{:.1}</td></tr>\n",
        esc(&s.recipe),
        if s.baseline { " <small>(baseline)</small>" } else { "" },
        s.items,
        if s.failed > 0 { format!(" <small>({} failed)</small>", s.failed) } else { String::new() },
        s.tokens_mean,
        s.cost.map_or("–".into(), |c| format!("${c:.4}")),
        s.wall_ms.0 / 1e3,
        s.wall_ms.1 / 1e3,
        s.ttft_ms.map_or("–".into(), |(a, b)| format!("{:.2} / {:.2}", a / 1e3, b / 1e3)),
        s.calls_mean,
    )
}

/// A recipe's per-skill scores, as a list item.
fn skills_item(s: &RecipeSummary) -> String {
    let cells: String =
        s.skills.iter().map(|(k, e)| format!("{}: {:.2} [{:.2}, {:.2}]; ", esc(k), e.mean, e.lo, e.hi)).collect();
    format!("<li>{}: {cells}</li>", esc(&s.recipe))
}

/// One scatter chart: `xs[i]` for recipe `i` (those without one are left out).
fn chart(title: &str, x_label: &str, summary: &[RecipeSummary], xs: &[Option<f64>]) -> String {
    let (w, h, l, r, t, b) = (520.0, 360.0, 56.0, 150.0, 30.0, 44.0);
    let points: Vec<(usize, f64, f64, f64, f64)> = summary
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let e = s.score.as_ref()?;
            Some((i, xs[i]?, e.mean, e.lo, e.hi))
        })
        .collect();
    let mut svg = format!(
        r#"<figure><svg viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{title}"><title>{title}</title>"#,
        title = esc(title)
    );
    if points.is_empty() {
        svg.push_str(r#"<text x="20" y="40">no data</text></svg></figure>"#);
        return svg;
    }
    let xmax = points.iter().map(|p| p.1).fold(0.0_f64, f64::max).max(1e-9) * 1.1;
    let ymin = points.iter().map(|p| p.3).fold(f64::INFINITY, f64::min).min(0.0);
    let ymax = points.iter().map(|p| p.4).fold(f64::NEG_INFINITY, f64::max).max(ymin + 1e-9);
    let frame = Frame { w, h, l, r, t, b };
    let px = |x: f64| frame.px(x, xmax);
    let py = |y: f64| frame.py(y, ymin, ymax);
    svg.push_str(&axes(&frame, x_label, xmax, ymin, ymax));
    // The Pareto front: higher score, lower x.
    let front = pareto(&points.iter().map(|p| (p.2, p.1)).collect::<Vec<_>>());
    let mut on: Vec<&(usize, f64, f64, f64, f64)> =
        points.iter().zip(&front).filter(|(_, f)| **f).map(|(p, _)| p).collect();
    on.sort_by(|a, b| a.1.total_cmp(&b.1));
    let path: Vec<String> = on.iter().map(|p| format!("{:.1},{:.1}", px(p.1), py(p.2))).collect();
    svg.push_str(&format!(
        r##"<polyline class="pareto" points="{}" fill="none" stroke="#2457c5" stroke-width="1.5" stroke-dasharray="4 3"/>"##,
        path.join(" ")
    ));
    let mut labels: Vec<(f64, f64)> = Vec::new();
    for ((i, x, y, lo, hi), f) in points.iter().zip(&front) {
        let s = &summary[*i];
        // Recipes at the same place get their labels stacked rather than overprinted.
        let (lx, mut ly) = (px(*x) + 8.0, py(*y) + 4.0);
        while labels.iter().any(|(ax, ay)| (ax - lx).abs() < 60.0 && (ay - ly).abs() < 11.0) {
            ly += 12.0;
        }
        labels.push((lx, ly));
        let colour = if s.baseline { "#5f6368" } else { "#b00020" };
        svg.push_str(&format!(
            r##"<g class="point{}" data-recipe="{}"><line x1="{cx:.1}" y1="{:.1}" x2="{cx:.1}" y2="{:.1}" stroke="{colour}"/><circle cx="{cx:.1}" cy="{cy:.1}" r="5" stroke="{colour}" stroke-width="1.5" fill="{}"/><text x="{:.1}" y="{:.1}" fill="#1d1d1f">{}</text></g>"##,
            if *f { " front" } else { "" },
            esc(&s.recipe),
            py(*lo),
            py(*hi),
            if *f { colour } else { "#fff" },
            lx,
            ly,
            esc(&short(&s.recipe)),
            cx = px(*x),
            cy = py(*y),
        ));
    }
    svg.push_str("</svg>");
    svg.push_str(&format!("<figcaption>{}</figcaption></figure>", esc(title)));
    svg
}

/// A chart's size and margins (left, right, top, bottom).
#[derive(Clone, Copy)]
struct Frame {
    w: f64,
    h: f64,
    l: f64,
    r: f64,
    t: f64,
    b: f64,
}

impl Frame {
    fn px(&self, x: f64, xmax: f64) -> f64 {
        self.l + (self.w - self.l - self.r) * x / xmax
    }

    fn py(&self, y: f64, ymin: f64, ymax: f64) -> f64 {
        self.t + (self.h - self.t - self.b) * (1.0 - (y - ymin) / (ymax - ymin))
    }
}

/// The axes, their ticks and their labels.
fn axes(frame: &Frame, x_label: &str, xmax: f64, ymin: f64, ymax: f64) -> String {
    let Frame { w, h, l, r, t, b } = *frame;
    let px = |x: f64| frame.px(x, xmax);
    let py = |y: f64| frame.py(y, ymin, ymax);
    let mut svg = String::new();
    svg.push_str(&format!(
        r##"<line x1="{l}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#1d1d1f"/><line x1="{l}" y1="{t}" x2="{l}" y2="{y0}" stroke="#1d1d1f"/>"##,
        y0 = h - b,
        x1 = w - r
    ));
    for k in 0..=4 {
        let xv = xmax * f64::from(k) / 4.0;
        let yv = ymin + (ymax - ymin) * f64::from(k) / 4.0;
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#5f6368">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#5f6368">{:.2}</text>"##,
            px(xv),
            h - b + 14.0,
            tick(xv),
            l - 6.0,
            py(yv) + 4.0,
            yv
        ));
    }
    svg.push_str(&format!(
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">score</text>"#,
        (l + w - r) / 2.0,
        h - 8.0,
        esc(x_label),
        (t + h - b) / 2.0,
        (t + h - b) / 2.0
    ));
    svg
}

fn tick(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// A recipe's name, cut for a chart label.
fn short(name: &str) -> String {
    let n: String = name.chars().take(24).collect();
    if name.chars().count() > 24 { format!("{n}…") } else { n }
}
