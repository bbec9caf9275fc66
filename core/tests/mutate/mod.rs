//! Breaking valid JSON documents in one place, for the property tests that hold a hand
//! reader to serde's derived one: a node replaced by a value of another shape, an unknown
//! field added, a key left out.
#![allow(dead_code)]

use serde_json::Value;

/// Values put in place of a node: every JSON shape, and numbers out of range.
pub const REPLACEMENTS: &[&str] =
    &["{}", "[]", "\"x\"", "1.5", "-1", "true", "null", "70000", "[1]", "{\"a\":1}", "\"auto\"", "\"user\""];

/// One step of a path from a document's root.
#[derive(Clone, Debug)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Every node of `v`, as its path from the root.
pub fn nodes(v: &Value) -> Vec<Vec<Step>> {
    fn walk(v: &Value, here: Vec<Step>, out: &mut Vec<Vec<Step>>) {
        out.push(here.clone());
        let children: Vec<(Step, &Value)> = match v {
            Value::Object(m) => m.iter().map(|(k, c)| (Step::Key(k.clone()), c)).collect(),
            Value::Array(a) => a.iter().enumerate().map(|(i, c)| (Step::Index(i), c)).collect(),
            _ => Vec::new(),
        };
        for (step, child) in children {
            let mut p = here.clone();
            p.push(step);
            walk(child, p, out);
        }
    }
    let mut out = Vec::new();
    walk(v, Vec::new(), &mut out);
    out
}

/// The node at `path`.
pub fn at<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, s| match s {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// Breaks node `node` of `v` (any index: it wraps): `how` 0 replaces it with
/// `REPLACEMENTS[pick]`, 1 adds an unknown field to it (a string that needs escaping in
/// place of a scalar), 2 leaves it out of its object; anything else leaves `v` alone.
pub fn break_node(v: &mut Value, node: usize, how: usize, pick: usize) {
    let all = nodes(v);
    let path = &all[node % all.len()];
    match how {
        0 => *at(v, path) = serde_json::from_str(REPLACEMENTS[pick % REPLACEMENTS.len()]).expect("JSON"),
        1 => {
            if let Value::Object(m) = at(v, path) {
                m.insert("zz_unknown".into(), Value::Bool(true));
            } else {
                *at(v, path) = Value::String("tégé\u{1F600}\"\\".into());
            }
        }
        2 => {
            if let (Some(Step::Key(k)), Some((_, parent))) = (path.last(), path.split_last())
                && let Value::Object(m) = at(v, parent)
            {
                m.remove(k);
            }
        }
        _ => {}
    }
}
