//! A batch tells its caller how far it has got (the library reports; the command line
//! draws), counting what an earlier run already answered.

use moa_host::batch;
use moa_host::progress::{OnProgress, Progress};
use moa_host::transport::Transport;
use moa_testkit::{Fake, recipe};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_reports_each_item_to_its_caller() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.jsonl");
    let out = dir.path().join("out.jsonl");
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let job = |n: usize, seen: &Arc<Mutex<Vec<Progress>>>| {
        std::fs::write(&input, (0..n).map(|i| format!("\"question {i}\"\n")).collect::<String>()).expect("write");
        let sink = seen.clone();
        let on_progress: OnProgress = Arc::new(move |p: &Progress| sink.lock().expect("lock").push(p.clone()));
        batch::Batch {
            recipe: recipe(&fake.base_url, &["a"], "agg;fault=500;times=1", "[policy]\nretries = 0"),
            resolver: None,
            keys: Default::default(),
            input: input.clone(),
            output: out.clone(),
            concurrency: 2,
            proposals: false,
            seed: 0,
            on_progress: Some(on_progress),
            select: Default::default(),
        }
    };
    let transport = Transport::new().expect("transport");
    let s = batch::run(job(3, &seen), &transport, CancellationToken::new()).await.expect("batch");
    assert_eq!((s.answered, s.failed), (2, 1));
    let reports = seen.lock().expect("lock").clone();
    // The start, then one report per item, done counting up to the total.
    assert_eq!(reports.len(), 4, "{reports:?}");
    assert_eq!(reports.iter().map(|p| p.done).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let last = reports.last().expect("a report");
    assert_eq!((last.total, last.failed), (3, 1));
    assert!(last.tokens > 0, "{last:?}");
    // A rerun over a longer input starts where the first stopped: two answered already.
    let seen = Arc::default();
    let s = batch::run(job(4, &seen), &transport, CancellationToken::new()).await.expect("batch");
    assert_eq!((s.skipped, s.answered), (2, 2));
    let first = seen.lock().expect("lock").first().cloned().expect("a report");
    assert_eq!((first.total, first.done), (4, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_through_a_batch_api_reports_too() {
    use moa_testkit::batch_api::{Behaviour, FakeBatch};
    let fake = FakeBatch::start(Behaviour::default());
    let dir = tempfile::tempdir().expect("tmp");
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "\"one\"\n\"two\"\n").expect("write");
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let job = batch::Batch {
        recipe: recipe(&fake.base_url, &["a"], "agg", ""),
        resolver: None,
        keys: Default::default(),
        input,
        output: dir.path().join("out.jsonl"),
        concurrency: 2,
        proposals: false,
        seed: 0,
        on_progress: Some(Arc::new(move |p: &Progress| sink.lock().expect("lock").push(p.clone()))),
        select: Default::default(),
    };
    let polling =
        batch::api::Polling { min: std::time::Duration::from_millis(10), max: std::time::Duration::from_millis(20) };
    let s = batch::api::run(job, &Transport::new().expect("transport"), polling, CancellationToken::new())
        .await
        .expect("batch");
    assert_eq!(s.answered, 2);
    let reports = seen.lock().expect("lock").clone();
    assert_eq!(reports.first().map(|p| (p.total, p.done)), Some((2, 0)), "{reports:?}");
    assert_eq!(reports.last().map(|p| (p.total, p.done)), Some((2, 2)), "{reports:?}");
}
