//! `moa batch merge`: the outputs of a batch's shards, as one output in input order,
//! checking that every input item is answered exactly once.

use super::input::{Reader, hash};
use super::{BatchError, io};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};

/// What a merge found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Merged {
    /// Items in the input.
    pub total: usize,
    /// Answered, written to the merged output.
    pub written: usize,
    /// Ids with no answer in any shard's output (failed or never run), in input order.
    pub missing: Vec<String>,
    /// Ids answered in more than one output: (id, the files).
    pub duplicates: Vec<(String, Vec<PathBuf>)>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(default)]
    answer: Option<Value>,
}

/// Merges `outputs` (each a shard's OUT) into `to`, in the order of `input`. Writes the
/// merged file even when items are missing (it is what there is), and says which.
pub fn merge(input: &Path, outputs: &[PathBuf], to: &Path) -> Result<Merged, BatchError> {
    // Where each answered id is: (file, offset), and every file it was answered in.
    let mut at: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut twice: HashMap<u64, Vec<usize>> = HashMap::new();
    for (f, path) in outputs.iter().enumerate() {
        let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?);
        let (mut offset, mut n, mut line) = (0u64, 0usize, Vec::new());
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(io(path))?;
            if read == 0 {
                break;
            }
            n += 1;
            if line.last() == Some(&b'\n') && !line.iter().all(u8::is_ascii_whitespace) {
                let head: Head = serde_json::from_slice(&line).map_err(|e| BatchError::Output {
                    path: path.display().to_string(),
                    line: n,
                    reason: e.to_string(),
                })?;
                if head.answer.as_ref().is_some_and(Value::is_string) {
                    let key = hash(head.id.get().as_bytes());
                    if let Some((first, _)) = at.insert(key, (f, offset)) {
                        twice.entry(key).or_insert_with(|| vec![first]).push(f);
                    }
                }
            }
            offset += read as u64;
        }
    }
    let dir = match to.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new().prefix(".moa-merge-").tempfile_in(dir).map_err(io(dir))?;
    let mut w = std::io::BufWriter::new(tmp.as_file());
    let mut files: Vec<std::fs::File> =
        outputs.iter().map(|p| std::fs::File::open(p).map_err(io(p))).collect::<Result<_, _>>()?;
    let mut merged = Merged::default();
    let mut line = Vec::new();
    for item in Reader::open(input)? {
        let item = item?;
        merged.total += 1;
        let key = hash(item.id.get().as_bytes());
        if let Some(fs) = twice.get(&key) {
            merged.duplicates.push((item.id.get().to_owned(), fs.iter().map(|&f| outputs[f].clone()).collect()));
        }
        let Some(&(f, offset)) = at.get(&key) else {
            merged.missing.push(item.id.get().to_owned());
            continue;
        };
        files[f].seek(std::io::SeekFrom::Start(offset)).map_err(io(&outputs[f]))?;
        line.clear();
        std::io::BufReader::new(&mut files[f]).read_until(b'\n', &mut line).map_err(io(&outputs[f]))?;
        w.write_all(&line).map_err(io(to))?;
        merged.written += 1;
    }
    w.flush().map_err(io(to))?;
    drop(w);
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    tmp.persist(to).map_err(|e| io(to)(e.error))?;
    Ok(merged)
}
