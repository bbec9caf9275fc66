//! The journal beside OUT (`OUT.batch-api/`): each job as it is created and each result
//! as it is fetched, so a restarted moa polls the jobs it made and feeds the results it
//! has instead of submitting again.

use super::super::input::hash;
use super::super::{BatchError, io};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A call's result, as the journal keeps it.
pub(super) use moa_core::provider::batch::BatchReply as Reply;

/// A job as recorded when created: which requests it holds, as a hash of their
/// `custom_id`s (the same round after a restart asks for the same set).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Job {
    pub(super) endpoint: String,
    pub(super) id: String,
    pub(super) requests: usize,
    pub(super) fingerprint: String,
}

/// The fingerprint of a set of `custom_id`s, whatever their order.
pub(super) fn fingerprint(ids: &[&str]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    format!("{:016x}", hash(sorted.join("\n").as_bytes()))
}

/// The journal beside OUT.
pub(super) struct Journal {
    dir: PathBuf,
    pub(super) results: HashMap<String, Reply>,
    pub(super) jobs: Vec<Job>,
}

impl Journal {
    pub(super) fn open(out: &Path) -> Result<Journal, BatchError> {
        let mut name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".batch-api");
        let dir = out.with_file_name(name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut j = Journal { dir, results: HashMap::new(), jobs: Vec::new() };
        for line in j.lines("results.jsonl")? {
            let r: Reply = serde_json::from_str(&line).map_err(|e| io(&j.dir)(std::io::Error::other(e)))?;
            j.results.insert(r.custom_id.clone(), r);
        }
        for line in j.lines("jobs.jsonl")? {
            j.jobs.push(serde_json::from_str(&line).map_err(|e| io(&j.dir)(std::io::Error::other(e)))?);
        }
        Ok(j)
    }

    /// Whole lines of one of its files (a line cut short by a kill is dropped).
    fn lines(&self, file: &str) -> Result<Vec<String>, BatchError> {
        let path = self.dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&path)(e)),
        };
        let whole = text.rfind('\n').map_or("", |i| &text[..i]);
        Ok(whole.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
    }

    pub(super) fn append(&self, file: &str, lines: &[String]) -> Result<(), BatchError> {
        let path = self.dir.join(file);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        f.write_all(text.as_bytes()).and_then(|()| f.sync_data()).map_err(io(&path))
    }
}
