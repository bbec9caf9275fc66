//! `moa batch --via batch-api`: the same engine, another transport. Every item's run
//! goes on as usual, but its calls are not sent one by one: the calls all runs ask for
//! are collected, layer by layer, into one batch job per provider (OpenAI-compatible
//! `/files` + `/batches`; Anthropic's Message Batches), polled with backoff until they
//! end, and each result is handed to its run as the whole JSON response it is. A call that
//! failed (an error result, an expired or cancelled job) is retried by the engine's own
//! rules, so the retries of a round go out as the next, smaller job. Costs are at each
//! price's `batch` share.
//!
//! Resumable across restarts of moa: beside OUT, `OUT.batch-api/jobs.jsonl` records each
//! job (its id and its requests' `custom_id`s) when it is created, and `results.jsonl` each
//! result as it is fetched. A call's `custom_id` is a hash of its item's id and its request
//! (with the count of identical requests before it), and runs replay deterministically
//! (seeded), so a restarted moa asks for the same calls: answered ones are fed from the
//! journal, ones in a recorded job are polled there, only the rest are submitted.
//!
//! Trust: the provider's answers go through the engine like any response (keys redacted
//! from errors); the URL Anthropic gives for results is fetched only on the provider's own
//! origin (a results URL elsewhere would get the key).

mod client;
mod journal;

use super::input::hash;
use super::ledger::Ledger;
use super::record::ResultLine;
use super::{Batch, BatchError, Provenance, Summary, item_seed};
use crate::Transport;
use crate::clock::Clock;
use client::Api;
use journal::{Job, Journal, Reply, fingerprint};
use moa_core::engine::{Action, Input};
use moa_core::{CallId, HttpRequest, Redactor, Run, RunOptions};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a job is polled: from `min`, doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Polling {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Polling { min: Duration::from_secs(5), max: Duration::from_secs(120) }
    }
}

/// One call waiting for its job.
struct Pending {
    run: usize,
    call: CallId,
    http: HttpRequest,
    custom_id: String,
}

/// Feeds a reply to its run as the provider's whole response.
fn feed(run: &mut Run, call: CallId, reply: &Reply, now: moa_core::Time) {
    if reply.status == 0 {
        // The batch API's own error for the request, with no HTTP status of its own.
        let kind = moa_core::engine::NetError::Other;
        return run.handle(Input::Failed { call, kind, error: reply.body.clone(), now });
    }
    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    run.handle(Input::Head { call, status: reply.status, headers, now });
    run.handle(Input::Body { call, bytes: reply.body.as_bytes(), now });
    run.handle(Input::End { call, now });
}

/// Every item's run (its id and seed beside it), `None` once written.
type Runs = Vec<Option<(Box<serde_json::value::RawValue>, Run, u64)>>;

/// Runs the batch through the providers' batch APIs. See the module's comment.
pub async fn run(
    batch: Batch,
    transport: &Transport,
    polling: Polling,
    cancel: CancellationToken,
) -> Result<Summary, BatchError> {
    let mut lock = super::lock_output(&batch.output)?;
    let ledger = Ledger::open(&batch.output, &mut lock)?;
    let scan = super::input::scan(&batch.input, &batch.select, &ledger.done)?;
    let mut journal = Journal::open(&batch.output)?;
    let provenance = Provenance::of(&batch.recipe);
    let clock = Clock::new();
    let mut summary = Summary::of_scan(&scan);
    let mut runs = start(&batch, &ledger, &provenance, &clock, &mut summary)?;
    let report = super::Reporter(batch.on_progress.clone());
    report.of(&summary);
    let redactor = Redactor::new(batch.keys.values());
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
    loop {
        let (pending, tick) = collect(&mut runs, &mut seen, &ledger, &batch, &provenance, &mut summary)?;
        report.of(&summary);
        if cancel.is_cancelled() {
            break;
        }
        if pending.is_empty() {
            // Only backoffs are left (retries waiting): wait for the earliest.
            let Some(t) = tick else { break };
            tokio::select! {
                _ = tokio::time::sleep(t.since(clock.now())) => {}
                _ = cancel.cancelled() => break,
            }
            let now = clock.now();
            runs.iter_mut().flatten().for_each(|(_, run, _)| run.handle(Input::Tick { now }));
            continue;
        }
        // Answered before a restart: from the journal.
        let now = clock.now();
        let (known, todo): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| journal.results.contains_key(&p.custom_id));
        for p in &known {
            if let (Some(reply), Some((_, run, _))) = (journal.results.get(&p.custom_id), runs[p.run].as_mut()) {
                feed(run, p.call, reply, now);
            }
        }
        let api = Apis { client: transport.client(), redactor: &redactor, polling };
        let Some(results) = round(&todo, &mut journal, &api, &cancel).await? else { break };
        let by_id: HashMap<&str, &Pending> = todo.iter().map(|p| (p.custom_id.as_str(), p)).collect();
        let now = clock.now();
        for reply in &results {
            if let Some(p) = by_id.get(reply.custom_id.as_str())
                && let Some((_, run, _)) = runs[p.run].as_mut()
            {
                feed(run, p.call, reply, now);
            }
        }
        for reply in results {
            journal.results.insert(reply.custom_id.clone(), reply);
        }
    }
    ledger.close()?;
    Ok(summary)
}

/// Every item's run at once (a batch API job holds a layer of every item); an item whose
/// run cannot start is written with its error, to be retried next time, as over HTTP.
fn start(
    batch: &Batch,
    ledger: &Ledger<'_>,
    provenance: &Provenance,
    clock: &Clock,
    summary: &mut Summary,
) -> Result<Runs, BatchError> {
    let mut runs: Runs = Vec::new();
    for item in super::input::todo(&batch.input, &batch.select, &ledger.done)? {
        let item = item?;
        let seed = item_seed(batch.seed, &item.id);
        // Batch API calls are billed at each price's batch share.
        let options = RunOptions { batch_prices: true, ..batch.run_options(seed, &item) };
        match Run::with_options(&batch.recipe, item.messages, clock.now(), options) {
            Ok(run) => runs.push(Some((item.id, run, seed))),
            Err(e) => {
                let outcome = super::not_started(e);
                ledger.append(&ResultLine::new(&item.id, &outcome, batch.proposals, provenance, seed))?;
                summary.count(&outcome);
            }
        }
    }
    Ok(runs)
}

/// Everything the runs ask for now, each call under its `custom_id`, and when the earliest
/// of them wants a tick; finished runs are written to OUT on the way.
fn collect(
    runs: &mut Runs,
    seen: &mut HashMap<(u64, u64), usize>,
    ledger: &Ledger<'_>,
    batch: &Batch,
    provenance: &Provenance,
    summary: &mut Summary,
) -> Result<(Vec<Pending>, Option<moa_core::Time>), BatchError> {
    let mut pending: Vec<Pending> = Vec::new();
    let mut tick: Option<moa_core::Time> = None;
    for (i, slot) in runs.iter_mut().enumerate() {
        let Some((id, run, seed)) = slot else { continue };
        loop {
            match run.poll() {
                Action::Request { call, http } => {
                    let key = (hash(id.get().as_bytes()), hash(http.body.as_bytes()));
                    let n = seen.entry(key).or_default();
                    *n += 1;
                    let custom_id = format!("{:016x}-{:016x}-{n}", key.0, key.1);
                    pending.push(Pending { run: i, call, http, custom_id });
                }
                Action::Cancel { .. } | Action::Event(_) => {}
                // This host runs its plugins itself (HostResolver): never asked.
                // (The engine's clock never goes back: time 0 leaves it where it is.)
                Action::Decide { decision, .. } => run.handle(Input::Decided {
                    decision,
                    answer: Err("this host runs its plugins itself, not through its driver"),
                    now: moa_core::Time::from_micros(0),
                }),
                Action::Wait(deadline) => {
                    if let Some(d) = deadline {
                        tick = Some(tick.map_or(d, |t| t.min(d)));
                    }
                    break;
                }
                Action::Done(outcome) => {
                    ledger.append(&ResultLine::new(id, &outcome, batch.proposals, provenance, *seed))?;
                    summary.count(&outcome);
                    *slot = None;
                    break;
                }
            }
        }
    }
    Ok((pending, tick))
}

/// What every provider's batch API client shares.
struct Apis<'a> {
    client: &'a reqwest::Client,
    redactor: &'a Redactor,
    polling: Polling,
}

impl Apis<'_> {
    /// The client for the provider of `calls` (one endpoint): its base URL and the calls'
    /// own auth headers.
    fn for_calls(&self, endpoint: &str, calls: &[&Pending]) -> Api<'_> {
        let skip = ["content-type", "accept", "anthropic-dangerous-direct-browser-access"];
        Api {
            client: self.client,
            base: endpoint.to_owned(),
            headers: calls[0].http.headers.iter().filter(|(k, _)| !skip.contains(&k.as_str())).cloned().collect(),
            kind: calls[0].http.kind,
            redactor: self.redactor,
            polling: self.polling,
        }
    }
}

/// One round: a job per provider for `todo` (or the job a restarted moa recorded for the
/// same requests), all polled at once until they end; their results, each of this
/// round's requests at most once, journaled. `None` when cancelled.
async fn round(
    todo: &[Pending],
    journal: &mut Journal,
    apis: &Apis<'_>,
    cancel: &CancellationToken,
) -> Result<Option<Vec<Reply>>, BatchError> {
    let mut groups: HashMap<String, Vec<&Pending>> = HashMap::new();
    for p in todo {
        groups.entry(p.http.endpoint.clone()).or_default().push(p);
    }
    let journaled = &*journal;
    let jobs = groups.into_iter().map(|(endpoint, calls)| async move {
        let api = apis.for_calls(&endpoint, &calls);
        let print = fingerprint(&calls.iter().map(|c| c.custom_id.as_str()).collect::<Vec<_>>());
        let recorded = journaled.jobs.iter().rev().find(|j| j.endpoint == endpoint && j.fingerprint == print);
        let (id, created) = match recorded {
            Some(j) => (j.id.clone(), None),
            None => {
                let id = api.create(&calls).await?;
                let job = Job { endpoint: endpoint.clone(), id: id.clone(), requests: calls.len(), fingerprint: print };
                // Recorded before the first poll: a moa killed while the job runs polls it
                // again when restarted, instead of submitting it twice.
                journaled.append("jobs.jsonl", &[serde_json::to_string(&job).unwrap_or_default()])?;
                (id, Some(job))
            }
        };
        Ok::<_, BatchError>((created, id.clone(), api.wait(&id, cancel).await, calls))
    });
    let mut results: Vec<Reply> = Vec::new();
    let mut unanswered: Vec<(String, String)> = Vec::new();
    let finished = futures_util::future::join_all(jobs).await;
    for job in finished {
        let (created, id, replies, calls) = job?;
        journal.jobs.extend(created);
        let Some(replies) = replies? else { continue };
        let answered: std::collections::HashSet<&str> = replies.iter().map(|r| r.custom_id.as_str()).collect();
        for c in calls.iter().filter(|c| !answered.contains(c.custom_id.as_str())) {
            unanswered.push((c.custom_id.clone(), id.clone()));
        }
        results.extend(replies);
    }
    if cancel.is_cancelled() {
        return Ok(None);
    }
    // A request the job ended without: failed, to be retried by the engine's rules.
    results.extend(unanswered.into_iter().map(|(custom_id, job)| Reply {
        custom_id,
        status: 0,
        body: format!("batch job {job} ended without a result for this request"),
    }));
    // Only this round's requests, each once: a provider's extra, repeated or unknown ids
    // are dropped (they would be answers to calls not asked yet).
    let asked: std::collections::HashSet<&str> = todo.iter().map(|p| p.custom_id.as_str()).collect();
    let mut fed: std::collections::HashSet<String> = std::collections::HashSet::new();
    results.retain(|r| asked.contains(r.custom_id.as_str()) && fed.insert(r.custom_id.clone()));
    let lines: Vec<String> = results.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
    journal.append("results.jsonl", &lines)?;
    Ok(Some(results))
}
