//! The input, streamed: each line read, checked and handed on, never the whole file in
//! memory, so a batch of a million prompts runs in the memory of a few. What is kept per
//! item is 16 bytes (its id's hash and line, to refuse a repeated id), 32 when
//! deduplicating (its prompt's hash and first line too).
//!
//! Which items a run takes: its shard's (`--shard I/N`: by a hash of the item's id, or of
//! its prompt when it has no id, so the partition survives reordering and appending), minus
//! repeated prompts (`--dedup`), minus what OUT already answers.

use super::{BatchError, io};
use moa_core::tools::{ResponseFormat, Tools};
use moa_core::{Message, Role};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// One prompt to answer.
#[derive(Clone, Debug)]
pub struct Item {
    /// The id from the input exactly as written there (so a 20-digit integer stays that
    /// integer), or the 1-based line number.
    pub id: Box<RawValue>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// The item's gold answer or reference, if the input gives one (`answer` or
    /// `reference`): used to pick a DPO pair's rejected answer.
    pub reference: Option<String>,
    /// Whether the id was written in the input (not a line number).
    pub has_id: bool,
    /// Tools the answer may call (`tools`, `tool_choice`, `parallel_tool_calls`, as in
    /// OpenAI's request).
    pub tools: Option<Tools>,
    /// The answer's shape (`response_format`).
    pub response_format: ResponseFormat,
}

impl Item {
    /// What places the item in a shard: its id's hash when it has an id, else its
    /// prompt's (a line number would move when lines are reordered).
    pub fn shard_key(&self) -> u64 {
        if self.has_id { hash(self.id.get().as_bytes()) } else { self.prompt_key() }
    }

    /// What makes two items the same question: the conversation's [`prompt_hash`], and the
    /// tools and format it is asked with (the same words with other tools are another
    /// question).
    pub fn prompt_key(&self) -> u64 {
        let prompt = prompt_hash(&self.messages);
        if self.tools.is_none() && self.response_format == ResponseFormat::Text {
            return prompt;
        }
        // Typed values of strings and JSON: serializing cannot fail.
        let extra = serde_json::to_string(&(&self.tools, &self.response_format)).unwrap_or_default();
        hash(format!("{prompt:x} {extra}").as_bytes())
    }
}

/// A stable 64-bit hash: FNV-1a, then SplitMix64's finalizer so its low bits are as good
/// as its high ones (shards are taken modulo N).
pub fn hash(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3));
    let z = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The hash of a conversation's normalized text: each message's role and content,
/// lowercased, whitespace collapsed. Two prompts that differ only in case or spacing
/// are the same prompt.
pub fn prompt_hash(messages: &[Message]) -> u64 {
    let mut text = String::new();
    for m in messages {
        text.push_str(match m.role {
            Role::System => "\u{1}s ",
            Role::User => "\u{1}u ",
            Role::Assistant => "\u{1}a ",
            Role::Tool => "\u{1}t ",
        });
        for c in &m.tool_calls {
            text.push_str(&c.canonical());
            text.push(' ');
        }
        for w in m.content.split_whitespace() {
            text.push_str(&w.to_lowercase());
            text.push(' ');
        }
    }
    hash(text.as_bytes())
}

/// `--shard I/N`: this run takes the items whose shard key is `I` modulo `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N), or `auto`: the index and count from a Slurm job array
    /// (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_COUNT`) or a
    /// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, and the count from
    /// `MOA_SHARD_COUNT`, which the Job sets to its `completions`: Kubernetes does not
    /// pass it).
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        let num = |name: &str, v: &str| v.trim().parse::<u64>().map_err(|_| format!("{name}={v:?} is not a number"));
        let (index, count) = if text == "auto" {
            if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
                let count = env("SLURM_ARRAY_TASK_COUNT")
                    .ok_or("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not")?;
                let min = env("SLURM_ARRAY_TASK_MIN").map_or(Ok(0), |m| num("SLURM_ARRAY_TASK_MIN", &m))?;
                let id = num("SLURM_ARRAY_TASK_ID", &id)?;
                let index = id
                    .checked_sub(min)
                    .ok_or(format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"))?;
                (index, num("SLURM_ARRAY_TASK_COUNT", &count)?)
            } else if let Some(i) = env("JOB_COMPLETION_INDEX") {
                let count = env("MOA_SHARD_COUNT").ok_or(
                    "JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but MOA_SHARD_COUNT is not: set it to the Job's completions",
                )?;
                (num("JOB_COMPLETION_INDEX", &i)?, num("MOA_SHARD_COUNT", &count)?)
            } else {
                return Err("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm job array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set".into());
            }
        } else {
            let (i, n) = text.split_once('/').ok_or(format!("--shard {text:?}: expected I/N (like 0/4) or auto"))?;
            (num("I", i)?, num("N", n)?)
        };
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: the index must be below the count (0-based)"));
        }
        Ok(Shard { index, count })
    }

    /// Whether `item` is this shard's.
    pub fn takes(&self, item: &Item) -> bool {
        item.shard_key() % self.count == self.index
    }
}

/// Which items a run takes.
#[derive(Clone, Debug, Default)]
pub struct Select {
    /// Only this shard's items.
    pub shard: Option<Shard>,
    /// Skip items whose normalized prompt repeats an earlier one's.
    pub dedup: bool,
}

/// What the first pass over the input found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Items in the input.
    pub total: usize,
    /// Items in other shards.
    pub other_shards: usize,
    /// Items skipped as repeats: (its id, the id of the first item with that prompt),
    /// the first 20 of them, and how many in all.
    pub repeats: Vec<(String, String)>,
    /// How many repeats in all.
    pub repeated: usize,
    /// This run's items that OUT already answers.
    pub answered: usize,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    instruction: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    answer: Option<Value>,
    #[serde(default)]
    reference: Option<Value>,
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<ResponseFormat>,
}

/// The items of an input file, one line at a time.
pub struct Reader {
    path: PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    n: usize,
}

impl Reader {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Reader, BatchError> {
        let file = std::fs::File::open(path).map_err(io(path))?;
        Ok(Reader { path: path.to_owned(), lines: std::io::BufReader::new(file).lines(), n: 0 })
    }

    /// The 1-based line number of the last item read.
    pub fn line(&self) -> usize {
        self.n
    }

    fn bad(&self, reason: String) -> BatchError {
        BatchError::Input { path: self.path.display().to_string(), line: self.n, reason }
    }
}

impl Iterator for Reader {
    type Item = Result<Item, BatchError>;

    /// The next item: a JSON string (the prompt), `{"instruction": ...}` (AlpacaEval's
    /// shape) or `{"messages": [...]}`, with an optional `id` and `answer` or `reference`.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.n += 1;
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => return Some(Err(io(&self.path)(e))),
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            return Some(self.parse(line));
        }
    }
}

impl Reader {
    fn parse(&self, line: &str) -> Result<Item, BatchError> {
        let (mut tools, mut response_format) = (None, ResponseFormat::Text);
        let (id, messages, reference) = if line.starts_with('"') {
            let prompt: String = serde_json::from_str(line).map_err(|e| self.bad(format!("not JSON: {e}")))?;
            (None, vec![Message::user(prompt)], None)
        } else if line.starts_with('{') {
            let v: Line = serde_json::from_str(line).map_err(|e| {
                // serde_json counts within the line; the file's line is already said.
                let what = e.to_string();
                let what = what.split(" at line ").next().unwrap_or(&what).to_owned();
                self.bad(format!("not an item: {what} (column {})", e.column()))
            })?;
            let messages = match (v.instruction, v.messages) {
                (Some(s), None) => vec![Message::user(s)],
                (None, Some(m)) => m,
                _ => return Err(self.bad("expected \"instruction\": \"...\" or \"messages\": [...]".into())),
            };
            tools = Tools::from_openai(v.tools.as_ref(), v.tool_choice.as_ref(), v.parallel_tool_calls)
                .map_err(|e| self.bad(e.to_string()))?;
            response_format = v.response_format.unwrap_or_default();
            let reference = v.answer.or(v.reference).map(|r| match r {
                Value::String(s) => s,
                other => other.to_string(),
            });
            (v.id.map(|r| r.to_owned()), messages, reference)
        } else {
            return Err(self.bad("expected a prompt string or an object".into()));
        };
        moa_core::message::validate_conversation(&messages).map_err(|e| self.bad(e))?;
        let has_id = id.is_some();
        let id = match id {
            Some(id) => id,
            None => RawValue::from_string(self.n.to_string()).map_err(|e| self.bad(e.to_string()))?,
        };
        if !id.get().starts_with(|c: char| c == '"' || c == '-' || c.is_ascii_digit()) {
            return Err(self.bad("id must be a string or a number".into()));
        }
        Ok(Item { id, messages, reference, has_id, tools, response_format })
    }
}

/// The first pass: checks every line (so a bad line 90,000 stops the batch before it
/// starts, not after hours), refuses repeated ids, and counts what `select` leaves out and
/// what `done` (hashes of answered ids) already answers. Keeps 16 bytes per item (32 with
/// `--dedup`: its prompt's hash and first line).
pub fn scan(path: &Path, select: &Select, done: &HashSet<u64>) -> Result<Scan, BatchError> {
    let mut reader = Reader::open(path)?;
    let mut ids: HashMap<u64, usize> = HashMap::new();
    // Each prompt's first line, to name it when a repeat is reported.
    let mut prompts: HashMap<u64, usize> = HashMap::new();
    let mut repeats: Vec<(String, usize)> = Vec::new();
    let mut out = Scan::default();
    while let Some(item) = reader.next() {
        let item = item?;
        let line = reader.line();
        // Ids compare by a 64-bit hash: two different ids collide about once in 10^8
        // batches of 100,000 items, and then the batch refuses to start, naming both lines.
        if let Some(first) = ids.insert(hash(item.id.get().as_bytes()), line) {
            return Err(BatchError::Input {
                path: path.display().to_string(),
                line,
                reason: format!("id {} already used on line {first}", item.id.get()),
            });
        }
        out.total += 1;
        if select.shard.is_some_and(|s| !s.takes(&item)) {
            out.other_shards += 1;
            continue;
        }
        if select.dedup {
            let key = item.prompt_key();
            if let Some(&first) = prompts.get(&key) {
                out.repeated += 1;
                if repeats.len() < 20 {
                    repeats.push((item.id.get().to_owned(), first));
                }
                continue;
            }
            prompts.insert(key, line);
        }
        if done.contains(&hash(item.id.get().as_bytes())) {
            out.answered += 1;
        }
    }
    // The first items' ids, read again for the few repeats reported (rather than every
    // item's id kept in memory on the chance it repeats).
    if !repeats.is_empty() {
        let wanted: HashSet<usize> = repeats.iter().map(|(_, l)| *l).collect();
        let mut names: HashMap<usize, String> = HashMap::new();
        let mut reader = Reader::open(path)?;
        while names.len() < wanted.len() {
            let Some(item) = reader.next() else { break };
            if wanted.contains(&reader.line()) {
                names.insert(reader.line(), item?.id.get().to_owned());
            }
        }
        out.repeats = repeats.into_iter().map(|(id, l)| (id, names.get(&l).cloned().unwrap_or_default())).collect();
    }
    Ok(out)
}

/// The second pass: the items `select` takes that `done` (hashes of answered ids) does
/// not hold, in input order, one at a time.
pub fn todo<'a>(
    path: &Path,
    select: &'a Select,
    done: &'a HashSet<u64>,
) -> Result<impl Iterator<Item = Result<Item, BatchError>> + 'a, BatchError> {
    let mut prompts: HashSet<u64> = HashSet::new();
    Ok(Reader::open(path)?.filter(move |item| match item {
        Err(_) => true,
        Ok(item) => {
            if select.shard.is_some_and(|s| !s.takes(item)) {
                return false;
            }
            if select.dedup && !prompts.insert(item.prompt_key()) {
                return false;
            }
            !done.contains(&hash(item.id.get().as_bytes()))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_from_flags_and_schedulers() {
        let none = |_: &str| None;
        assert_eq!(Shard::parse("1/4", none), Ok(Shard { index: 1, count: 4 }));
        assert!(Shard::parse("4/4", none).is_err());
        assert!(Shard::parse("1-4", none).is_err());
        assert!(Shard::parse("auto", none).expect_err("no scheduler").contains("neither"));
        let slurm = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("7".into()),
            "SLURM_ARRAY_TASK_MIN" => Some("5".into()),
            "SLURM_ARRAY_TASK_COUNT" => Some("3".into()),
            _ => None,
        };
        assert_eq!(Shard::parse("auto", slurm), Ok(Shard { index: 2, count: 3 }));
        let k8s = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("0".into()),
            "MOA_SHARD_COUNT" => Some("2".into()),
            _ => None,
        };
        assert_eq!(Shard::parse("auto", k8s), Ok(Shard { index: 0, count: 2 }));
        let k8s_without_count = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "0".to_owned());
        assert!(Shard::parse("auto", k8s_without_count).expect_err("no count").contains("MOA_SHARD_COUNT"));
    }

    #[test]
    fn prompts_repeat_regardless_of_case_and_spacing_but_not_of_role() {
        let a = [Message::user("What is  2+2?")];
        let b = [Message::user("what is 2+2? ")];
        assert_eq!(prompt_hash(&a), prompt_hash(&b));
        assert_ne!(prompt_hash(&a), prompt_hash(&[Message::system("What is 2+2?")]));
        assert_ne!(prompt_hash(&a), prompt_hash(&[Message::user("What is 2+3?")]));
        let item = |tools: Option<Tools>| Item {
            id: RawValue::from_string("1".into()).expect("json"),
            messages: a.to_vec(),
            reference: None,
            has_id: false,
            tools,
            response_format: ResponseFormat::Text,
        };
        let tools = Tools::from_openai(Some(&serde_json::json!([{"name": "f"}])), None, None).expect("valid");
        assert_ne!(item(None).prompt_key(), item(tools).prompt_key(), "other tools, another question");
        assert_eq!(item(None).prompt_key(), prompt_hash(&a));
    }
}
