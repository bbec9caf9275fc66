//! Training files from a batch's output: SFT (the OpenAI fine-tuning chat format), DPO
//! preference pairs (TRL's conversational preference format) and AlpacaEval's
//! `model_outputs.json`.
//!
//! Written from OUT (the raw, resumable results) and the input (for the prompts), in input
//! order. Items that failed, whose answer is empty or under `min_answer_chars`, never
//! appear in a training file: they stay in OUT, and the report counts them. Memory: 16
//! bytes per answered item (an index of OUT), each line read when written.

use super::input::{Reader, hash};
use super::{BatchError, ResultLine, each_result, io, replace_file};
use moa_core::eval::score::{Scorer, score};
use moa_core::strategy::text_similarity;
use moa_core::{CallReport, Message};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};

/// A training format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `{"messages": [..., {"role": "assistant", "content": answer}]}`.
    Sft,
    /// `{"prompt": [...], "chosen": [assistant], "rejected": [assistant]}`.
    Dpo,
    /// AlpacaEval's `[{"instruction", "output", "generator"}]`.
    AlpacaEval,
}

impl Format {
    /// The format called `name` (`sft`, `dpo`, `alpaca-eval`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "sft" => Some(Format::Sft),
            "dpo" => Some(Format::Dpo),
            "alpaca-eval" => Some(Format::AlpacaEval),
            _ => None,
        }
    }
}

/// What to write.
#[derive(Clone, Debug)]
pub struct Export {
    /// The format.
    pub format: Format,
    /// The batch's input (the prompts).
    pub input: PathBuf,
    /// The batch's output (OUT, or a merge of shards' outputs).
    pub raw: PathBuf,
    /// The training file.
    pub output: PathBuf,
    /// Answers shorter than this (in characters) are left out.
    pub min_answer_chars: usize,
    /// DPO: how a proposal is scored against the item's `answer`/`reference` when it has
    /// one (the lowest-scoring proposal is rejected).
    pub scorer: Scorer,
    /// Leave the `moa` provenance object out of each record, for APIs that refuse
    /// unknown keys.
    pub bare: bool,
    /// AlpacaEval: the generator's name.
    pub generator: String,
    /// DPO: the output of a judge recipe's batch over [`judge_input`]'s prompts; the
    /// proposal it names as worst is rejected.
    pub verdicts: Option<PathBuf>,
}

/// What an export wrote and left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// Records written.
    pub written: usize,
    /// Input items with no answer in OUT (failed, or not run yet).
    pub unanswered: usize,
    /// Answers that were empty or under `min_answer_chars`.
    pub short: usize,
    /// DPO: items without a proposal that differs from the answer (a one-call recipe, or
    /// every proposal the same as the answer).
    pub no_pair: usize,
    /// DPO: items whose answer scored below every differing proposal against the item's
    /// reference (a pair would teach the wrong preference).
    pub answer_worse: usize,
    /// DPO with a judge: verdicts that named no answer, so the rule without a judge chose.
    pub unreadable_verdicts: usize,
}

/// Offsets of OUT's answered lines, by id hash.
fn index(raw: &Path) -> Result<HashMap<u64, u64>, BatchError> {
    let mut out = HashMap::new();
    each_result(raw, |head, offset, _| {
        if head.answered() {
            out.insert(hash(head.id.get().as_bytes()), offset);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The proposals a DPO pair's rejected answer is chosen from: the last proposer layer's
/// successful calls (not a strategy's own calls) whose text differs from the answer.
fn candidates<'a>(result: &'a ResultLine, answer: &str) -> Vec<&'a CallReport> {
    let layers = result.layers.as_deref().unwrap_or_default();
    let last = layers.iter().rev().find(|l| !l.aggregator);
    last.map(|l| {
        l.calls
            .iter()
            .filter(|c| c.ok && !c.asked && !c.text.trim().is_empty() && c.text.trim() != answer.trim())
            .collect()
    })
    .unwrap_or_default()
}

/// The rejected answer of a DPO pair, and the rule that chose it: with a judge's verdict,
/// the proposal it names as worst; with a reference, the proposal that scores lowest
/// against it (ties: the least similar to the answer); otherwise the proposal least
/// similar to the answer (word 3-shingle Jaccard, as `diverse` measures it). `Err(true)`
/// when the answer scored below that proposal (no pair teaches the wrong preference),
/// `Err(false)` when there is no proposal to pair with.
fn rejected<'a>(
    result: &'a ResultLine,
    answer: &str,
    reference: Option<&str>,
    scorer: Scorer,
    verdict: Option<&str>,
    report: &mut Report,
) -> Result<(&'a CallReport, String), bool> {
    let candidates = candidates(result, answer);
    if candidates.is_empty() {
        return Err(false);
    }
    if let Some(v) = verdict {
        match moa_core::strategy::parse_pick(v, candidates.len(), "worst") {
            Some(i) => {
                let rule = format!("ranked lowest by the judge recipe (response {} of {})", i + 1, candidates.len());
                return Ok((candidates[i], rule));
            }
            None => report.unreadable_verdicts += 1,
        }
    }
    let sim = |c: &CallReport| text_similarity(&c.text, answer);
    let graded = reference.map(|r| (r, score(scorer, answer, r, &[]).ok()));
    let pick = candidates
        .iter()
        .map(|c| {
            let s = graded.and_then(|(r, _)| score(scorer, &c.text, r, &[]).ok());
            (*c, s, sim(c))
        })
        .min_by(|a, b| {
            let (sa, sb) = (a.1.unwrap_or(0.0), b.1.unwrap_or(0.0));
            sa.total_cmp(&sb).then(a.2.total_cmp(&b.2))
        });
    let Some((call, s, similarity)) = pick else { return Err(false) };
    let rule = match (graded, s) {
        (Some((_, Some(mine))), Some(theirs)) => {
            if mine < theirs {
                return Err(true);
            }
            let name = Scorer::ALL.iter().find(|(_, s)| *s == scorer).map_or("", |(n, _)| *n);
            format!(
                "lowest {name} score against the item's reference ({theirs}; the answer scored {mine}), then least similar"
            )
        }
        _ => format!("least similar to the answer (word 3-shingle Jaccard {similarity:.2})"),
    };
    Ok((call, rule))
}

/// Writes a judge's prompts for DPO pairs to `path` (a `moa batch` input): for every
/// answered item of `raw` with at least two proposals to choose from, the question and
/// those proposals, numbered, under [`moa_core::strategy::WORST_PROMPT`]; the item's own
/// id. Returns how many.
pub fn judge_input(input: &Path, raw: &Path, path: &Path) -> Result<usize, BatchError> {
    let offsets = index(raw)?;
    let mut raw_file = std::fs::File::open(raw).map_err(io(raw))?;
    let mut n = 0;
    let mut pending: Option<BatchError> = None;
    replace_file(path, |w| {
        let mut line = String::new();
        for item in Reader::open(input).map_err(|e| stop(e, &mut pending))? {
            let item = item.map_err(|e| stop(e, &mut pending))?;
            let Some(&at) = offsets.get(&hash(item.id.get().as_bytes())) else { continue };
            raw_file.seek(std::io::SeekFrom::Start(at))?;
            line.clear();
            std::io::BufReader::new(&mut raw_file).read_line(&mut line)?;
            let result: ResultLine = serde_json::from_str(&line).map_err(std::io::Error::other)?;
            let answer = result.answer.clone().unwrap_or_default();
            let texts: Vec<&str> = candidates(&result, &answer).iter().map(|c| c.text.as_str()).collect();
            if texts.len() < 2 {
                continue;
            }
            let messages = moa_core::strategy::judge_messages(moa_core::strategy::WORST_PROMPT, &item.messages, &texts);
            let msgs: Vec<Value> = messages.iter().map(message).collect();
            writeln!(
                w,
                "{}",
                json!({ "id": serde_json::from_str::<Value>(item.id.get()).unwrap_or(Value::Null), "messages": msgs })
            )?;
            n += 1;
        }
        Ok(())
    })
    .map_err(|e| pending.take().unwrap_or(e))?;
    Ok(n)
}

/// Keeps an input or output error while the writer only speaks `io::Error`.
fn stop(err: BatchError, pending: &mut Option<BatchError>) -> std::io::Error {
    *pending = Some(err);
    std::io::Error::other("stopped")
}

/// The judge's answers by item id hash.
fn verdicts(path: &Path) -> Result<HashMap<u64, String>, BatchError> {
    let mut out = HashMap::new();
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: ResultLine = serde_json::from_str(line).map_err(|e| io(path)(std::io::Error::other(e)))?;
        if let Some(a) = v.answer {
            out.insert(hash(v.id.get().as_bytes()), a);
        }
    }
    Ok(out)
}

fn assistant(text: &str) -> Value {
    json!([{ "role": "assistant", "content": text }])
}

/// Writes the training file; reports what it wrote and left out.
pub fn export(e: &Export) -> Result<Report, BatchError> {
    let offsets = index(&e.raw)?;
    let verdicts = match &e.verdicts {
        Some(p) => verdicts(p)?,
        None => HashMap::new(),
    };
    let mut raw = std::fs::File::open(&e.raw).map_err(io(&e.raw))?;
    let mut report = Report::default();
    let mut pending: Option<BatchError> = None;
    replace_file(&e.output, |w| {
        if e.format == Format::AlpacaEval {
            w.write_all(b"[")?;
        }
        let mut line = String::new();
        for item in Reader::open(&e.input).map_err(|err| stop(err, &mut pending))? {
            let item = item.map_err(|err| stop(err, &mut pending))?;
            let Some(&at) = offsets.get(&hash(item.id.get().as_bytes())) else {
                report.unanswered += 1;
                continue;
            };
            raw.seek(std::io::SeekFrom::Start(at))?;
            line.clear();
            std::io::BufReader::new(&mut raw).read_line(&mut line)?;
            let result: ResultLine = serde_json::from_str(&line).map_err(std::io::Error::other)?;
            let verdict = verdicts.get(&hash(item.id.get().as_bytes())).map(String::as_str);
            if let Some(text) = record(e, &item, &result, verdict, &mut report) {
                w.write_all(text.as_bytes())?;
                report.written += 1;
            }
        }
        if e.format == Format::AlpacaEval {
            w.write_all(b"\n]\n")?;
        }
        Ok(())
    })
    .map_err(|err| pending.take().unwrap_or(err))?;
    Ok(report)
}

/// One item's record, as text to append; `None` (and counted in `report`) when it is left
/// out.
fn record(
    e: &Export,
    item: &super::Item,
    result: &ResultLine,
    verdict: Option<&str>,
    report: &mut Report,
) -> Option<String> {
    let answer = result.answer.clone().unwrap_or_default();
    if answer.trim().is_empty() || answer.chars().count() < e.min_answer_chars {
        report.short += 1;
        return None;
    }
    let mut provenance = json!({
        "id": serde_json::from_str::<Value>(item.id.get()).unwrap_or(Value::Null),
        "recipe": result.provenance.as_ref().map(|p| &p.recipe),
        "recipe_sha256": result.provenance.as_ref().map(|p| &p.recipe_sha256),
        "models": result.provenance.as_ref().map(|p| &p.models),
        "moa": result.provenance.as_ref().map(|p| &p.moa),
        "seed": result.seed,
        "usage": result.usage,
        "cost": result.cost,
    });
    let mut record = match e.format {
        Format::Sft => {
            let mut messages: Vec<Value> = item.messages.iter().map(message).collect();
            messages.push(json!({ "role": "assistant", "content": answer }));
            json!({ "messages": messages })
        }
        Format::Dpo => match rejected(result, &answer, item.reference.as_deref(), e.scorer, verdict, report) {
            Err(worse) => {
                if worse {
                    report.answer_worse += 1
                } else {
                    report.no_pair += 1
                }
                return None;
            }
            Ok((call, rule)) => {
                provenance["rejected"] = json!({ "agent": call.agent, "model": call.model, "rule": rule });
                let prompt: Vec<Value> = item.messages.iter().map(message).collect();
                json!({ "prompt": prompt, "chosen": assistant(&answer), "rejected": assistant(&call.text) })
            }
        },
        Format::AlpacaEval => {
            let instruction =
                item.messages.iter().rev().find(|m| m.role == moa_core::Role::User).map_or("", |m| m.content.as_str());
            let sep = if report.written == 0 { "\n  " } else { ",\n  " };
            return Some(format!(
                "{sep}{}",
                json!({ "instruction": instruction, "output": answer, "generator": e.generator })
            ));
        }
    };
    if !e.bare {
        record["moa"] = provenance;
    }
    Some(format!("{record}\n"))
}

fn message(m: &Message) -> Value {
    json!({ "role": m.role, "content": m.content })
}
