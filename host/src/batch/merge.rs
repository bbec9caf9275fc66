//! `moa batch merge`: the outputs of a batch's shards, as one output in input order,
//! checking that every input item is answered exactly once.

use super::input::{Reader, hash};
use super::{BatchError, each_result, io, replace_file};
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

/// Merges `outputs` (each a shard's OUT) into `to`, in the order of `input`. Writes the
/// merged file even when items are missing (it is what there is), and says which.
pub fn merge(input: &Path, outputs: &[PathBuf], to: &Path) -> Result<Merged, BatchError> {
    // Where each answered id is: (file, offset), and every file it was answered in.
    let mut at: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut twice: HashMap<u64, Vec<usize>> = HashMap::new();
    for (f, path) in outputs.iter().enumerate() {
        each_result(path, |head, offset, _| {
            if head.answered() {
                let key = hash(head.id.get().as_bytes());
                if let Some((first, _)) = at.insert(key, (f, offset)) {
                    twice.entry(key).or_insert_with(|| vec![first]).push(f);
                }
            }
            Ok(())
        })?;
    }
    let mut files: Vec<std::fs::File> =
        outputs.iter().map(|p| std::fs::File::open(p).map_err(io(p))).collect::<Result<_, _>>()?;
    let mut merged = Merged::default();
    let mut line = Vec::new();
    let mut pending: Option<BatchError> = None;
    replace_file(to, |w| {
        for item in Reader::open(input).map_err(std::io::Error::other)? {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    pending = Some(e);
                    return Err(std::io::Error::other("the input has a bad line"));
                }
            };
            merged.total += 1;
            let key = hash(item.id.get().as_bytes());
            if let Some(fs) = twice.get(&key) {
                merged.duplicates.push((item.id.get().to_owned(), fs.iter().map(|&f| outputs[f].clone()).collect()));
            }
            let Some(&(f, offset)) = at.get(&key) else {
                merged.missing.push(item.id.get().to_owned());
                continue;
            };
            files[f].seek(std::io::SeekFrom::Start(offset))?;
            line.clear();
            std::io::BufReader::new(&mut files[f]).read_until(b'\n', &mut line)?;
            w.write_all(&line)?;
            merged.written += 1;
        }
        Ok(())
    })
    .map_err(|e| pending.take().unwrap_or(e))?;
    Ok(merged)
}
