//! `moa batch` at scale on one machine: 10,000 and 100,000 short items through the real
//! `moa` binary against the latency-injecting fake upstream (in this process, recording
//! nothing per request). Reports items/s against the ideal the provider cap sets, the
//! batch process's peak resident memory (it must not grow with the input: the input is
//! streamed), and the cost of resuming a 100,000-item output that is 99% done.
//! `cargo bench -p moa-host --bench batch_scale` (about five minutes on 2 cores);
//! `MOA_BENCH_ITEMS=2000,20000` for other sizes. Results are recorded in BENCHMARKS.md.
#![allow(missing_docs)]

use moa_testkit as common;

use common::Fake;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The provider cap and each call's latency at the fake: the ideal is CAP calls in
/// flight all the time.
const CAP: usize = 64;
const CALL_MS: u64 = 20;
/// Calls per item: two proposers, then the aggregator.
const CALLS: usize = 3;

/// Runs `moa batch`; returns its wall time, its peak resident memory (VmHWM, read from
/// /proc while it runs; the last reading before it exits) and the CPU seconds it used.
fn batch(recipe: &Path, input: &Path, out: &Path) -> (f64, u64, f64) {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moa"))
        .args(["batch", "-q", "-j", "256", "--recipe"])
        .arg(recipe)
        .arg(input)
        .arg("-o")
        .arg(out)
        .spawn()
        .expect("moa starts");
    let status = format!("/proc/{}/status", child.id());
    let stat = format!("/proc/{}/stat", child.id());
    let (mut peak_kb, mut cpu) = (0, 0.0);
    loop {
        // utime and stime, fields 14 and 15, in clock ticks (100 a second on Linux).
        if let Some(ticks) = std::fs::read_to_string(&stat).ok().and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some(after.get(11)?.parse::<f64>().ok()? + after.get(12)?.parse::<f64>().ok()?)
        }) {
            cpu = ticks / 100.0;
        }
        if let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        }) {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(code) = child.try_wait().expect("waits") {
            assert!(code.success(), "moa batch failed: {code}");
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (start.elapsed().as_secs_f64(), peak_kb / 1024, cpu)
}

fn write_input(path: &Path, n: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for i in 0..n {
        writeln!(f, "{{\"id\": \"q{i}\", \"instruction\": \"Short question number {i}?\"}}").expect("write");
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("MOA_BENCH_ITEMS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let fake = Fake::start();
    fake.seen.quiet.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().expect("tmp");
    let recipe = dir.path().join("recipe.toml");
    let call = format!("ttft={CALL_MS};text=a short answer");
    std::fs::write(
        &recipe,
        format!(
            "name = \"scale\"\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmax_concurrency = {CAP}\n\n[[layers]]\nagents = [\"fake:a;{call}\", \"fake:b;{call}\"]\n\n[aggregator]\nmodel = \"fake:agg;{call}\"\n",
            fake.base_url
        ),
    )
    .expect("recipe");
    let ideal = CAP as f64 / (CALLS as f64 * CALL_MS as f64 / 1000.0);
    println!(
        "moa batch at scale: 2 proposers + aggregator per item, provider cap {CAP}, calls of {CALL_MS} ms at the fake"
    );
    println!("ideal (the cap always full): {ideal:.0} items/s");
    let mut last = None;
    for &n in &sizes {
        let input = dir.path().join(format!("in-{n}.jsonl"));
        let out = dir.path().join(format!("out-{n}.jsonl"));
        write_input(&input, n);
        let (served, us) = (fake.seen.completed.load(Ordering::Relaxed), fake.seen.served_us.load(Ordering::Relaxed));
        let (wall, peak, cpu) = batch(&recipe, &input, &out);
        let calls = fake.seen.completed.load(Ordering::Relaxed) - served;
        let mean_ms = (fake.seen.served_us.load(Ordering::Relaxed) - us) as f64 / calls.max(1) as f64 / 1000.0;
        // The ideal at the latency the server actually gave (it shares the 2 cores).
        let served_ideal = CAP as f64 / (CALLS as f64 * mean_ms / 1000.0);
        println!(
            "{n:>7} items: {wall:>6.1} s, {:>6.0} items/s ({:.0}% of ideal; calls took {mean_ms:.1} ms at the server, for which the cap allows {served_ideal:.0} items/s: {:.0}%), peak resident memory {peak} MiB, CPU {cpu:.1} s ({:.2} cores)",
            n as f64 / wall,
            100.0 * n as f64 / wall / ideal,
            100.0 * n as f64 / wall / served_ideal,
            cpu / wall
        );
        last = Some((n, input, out, n as f64 / wall));
    }
    // Resume: drop every 100th line of the last output (1% left to do) and run again.
    let (n, input, out, rate) = last.expect("one size");
    let text = std::fs::read_to_string(&out).expect("out");
    let kept: String = text.lines().enumerate().filter(|(i, _)| i % 100 != 0).map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&out, kept).expect("rewrite");
    let left = n.div_ceil(100);
    let (wall, peak, _) = batch(&recipe, &input, &out);
    println!(
        "resume of {n} items, 99% done ({left} left): {wall:.2} s (answering {left} items alone takes about {:.2} s at the rate above), peak {peak} MiB",
        left as f64 / rate
    );
    assert_eq!(std::fs::read_to_string(&out).expect("out").lines().count(), n);
}
