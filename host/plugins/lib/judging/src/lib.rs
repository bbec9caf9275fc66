//! What the `rank` and `select` example plugins share, written without moa-core as a
//! plugin author would: the judge's parameters and messages, reading a JSON verdict out of
//! whatever a model wraps it in, and the seeded choice made when no verdict can be read.
//! `host/tests/plugins.rs` holds both plugins equal to the built-ins they copy.

/// The judge's parameters: `judge` (`provider:model`; the recipe's aggregator when unset)
/// and `max_tokens` (the verdict's cap, default 512).
pub struct Judge {
    pub model: Option<String>,
    pub max_tokens: u32,
}

/// The params object, refusing keys not in `known` (a typo is never silently ignored).
pub fn params(text: &str, known: &[&str]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let map = match serde_json::from_str(text).map_err(|e| format!("params: {e}"))? {
        serde_json::Value::Object(map) => map,
        _ => return Err("params must be a JSON object".into()),
    };
    if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown parameter {k:?} (it takes {})", known.join(", ")));
    }
    Ok(map)
}

impl Judge {
    pub fn from_params(params: &serde_json::Map<String, serde_json::Value>) -> Result<Judge, String> {
        let model = match params.get("judge") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .filter(|s| s.split_once(':').is_some_and(|(p, m)| !p.is_empty() && !m.is_empty()))
                    .ok_or("judge must be \"provider:model\"")?
                    .to_owned(),
            ),
        };
        let max_tokens = match params.get("max_tokens") {
            None => 512,
            Some(v) => {
                v.as_u64().filter(|n| (1..=32_768).contains(n)).ok_or("max_tokens must be an integer in 1..=32768")?
                    as u32
            }
        };
        Ok(Judge { model, max_tokens })
    }
}

/// The judge's user message: the conversation's last user message and every answer,
/// numbered from 1 (`[Response i]`).
pub fn judge_question(question: &str, answers: &[&str]) -> String {
    let mut user = format!("Question:\n{question}\n");
    for (i, a) in answers.iter().enumerate() {
        user.push_str(&format!("\n[Response {}]\n{a}\n", i + 1));
    }
    user
}

/// The first JSON object in `text` that parses, wherever it is.
pub fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    text.match_indices('{').find_map(|(at, _)| {
        let mut values = serde_json::Deserializer::from_str(&text[at..]).into_iter::<serde_json::Value>();
        match values.next() {
            Some(Ok(serde_json::Value::Object(map))) => Some(map),
            _ => None,
        }
    })
}

/// A 1-based answer number (a number or a numeric string) as a 0-based index below `n`.
pub fn index(v: &serde_json::Value, n: usize) -> Option<usize> {
    let k = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))?;
    (k >= 1 && (k as usize) <= n).then(|| k as usize - 1)
}

/// SplitMix64, the engine's generator, so a seeded choice matches the built-in's.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `k` distinct indexes below `n`, chosen by `seed`, in ascending order.
pub fn seeded(seed: u64, n: usize, k: usize) -> Vec<usize> {
    let mut state = seed;
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n) {
        let j = i + (next(&mut state) % (n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(k.min(n));
    (0..n).filter(|i| all.contains(i)).collect()
}

/// 1-based numbers for notes: `1, 3`.
pub fn numbers(ix: &[usize]) -> String {
    ix.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>().join(", ")
}

/// The first 200 characters of a reply, quoted, for a note.
pub fn quoted(reply: &str) -> String {
    format!("{:?}", reply.chars().take(200).collect::<String>())
}
