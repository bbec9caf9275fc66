//! Reading parsed JSON by hand in serde's words: the messages, field paths and rules of
//! serde's derived readers (`invalid type: string "hot", expected f64`, a missing field,
//! an unknown field or variant), for types whose derived reader also exists and is the
//! oracle of a property test: the recipe (`recipe/read.rs`) and what a JavaScript caller
//! hands a run (`crate::input`).

use crate::recipe::FieldError;
use serde_json::{Map, Value};

pub(crate) type Read<T> = Result<T, FieldError>;

/// A reader of one value at a path. Function pointers rather than closures: each
/// closure type would bring its own copy of every generic reader it passes through
/// (these readers exist to make the browser module smaller).
pub(crate) type Reader<T> = fn(&Value, &str) -> Read<T>;

pub(crate) fn fail(path: &str, message: String) -> FieldError {
    FieldError { path: if path.is_empty() { ".".to_owned() } else { path.to_owned() }, message }
}

/// `path` with `key` after it: `a.b`, or `b` at the top.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// What serde calls a value it did not expect.
fn unexpected(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        // JSON's quoting, shortened: a recipe's error may be shown next to a huge string.
        Value::String(_) => format!("string {}", crate::schema::short(v)),
        Value::Array(_) => "sequence".to_owned(),
        Value::Object(_) => "map".to_owned(),
    }
}

pub(crate) fn invalid(path: &str, v: &Value, expected: &str) -> FieldError {
    fail(path, format!("invalid type: {}, expected {expected}", unexpected(v)))
}

/// serde's list of what would have been right: `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``.
fn expected_names(names: &[&str]) -> String {
    match names {
        [one] => format!("`{one}`"),
        [a, b] => format!("`{a}` or `{b}`"),
        _ => format!("one of {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")),
    }
}

/// An object's fields, with its path, refusing fields it does not know.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(v: &'a Value, path: &'a str, name: &str, known: &[&str]) -> Read<Fields<'a>> {
        let Value::Object(map) = v else {
            return Err(invalid(path, v, &format!("struct {name}")));
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(fail(&join(path, k), format!("unknown field `{k}`, expected {}", expected_names(known))));
        }
        Ok(Fields { map, path })
    }

    /// `v` as an object of any fields, for a type that ignores those it does not know.
    pub(crate) fn lenient(v: &'a Value, path: &'a str, name: &str) -> Read<Fields<'a>> {
        match v {
            Value::Object(map) => Ok(Fields { map, path }),
            _ => Err(invalid(path, v, &format!("struct {name}"))),
        }
    }

    /// Field `key` read by `read`; absent or null is `None` (an `Option` field).
    pub(crate) fn opt<T>(&self, key: &str, read: Reader<T>) -> Read<Option<T>> {
        match self.map.get(key) {
            Some(v) if !v.is_null() => read(v, &join(self.path, key)).map(Some),
            _ => Ok(None),
        }
    }

    /// Field `key` read by `read` when present (null included: it is no `Option`).
    pub(crate) fn present<T>(&self, key: &str, read: Reader<T>) -> Read<Option<T>> {
        match self.map.get(key) {
            Some(v) => read(v, &join(self.path, key)).map(Some),
            None => Ok(None),
        }
    }

    /// Field `key` when present, else `default`.
    pub(crate) fn or<T>(&self, key: &str, read: Reader<T>, default: T) -> Read<T> {
        Ok(self.present(key, read)?.unwrap_or(default))
    }

    /// Field `key`, which must be present.
    pub(crate) fn req<T>(&self, key: &str, read: Reader<T>) -> Read<T> {
        match self.map.get(key) {
            Some(v) => read(v, &join(self.path, key)),
            None => Err(fail(self.path, format!("missing field `{key}`"))),
        }
    }
}

pub(crate) fn f64(v: &Value, path: &str) -> Read<f64> {
    v.as_f64().ok_or_else(|| invalid(path, v, "f64"))
}

pub(crate) fn bool(v: &Value, path: &str) -> Read<bool> {
    v.as_bool().ok_or_else(|| invalid(path, v, "a boolean"))
}

pub(crate) fn string(v: &Value, path: &str) -> Read<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| invalid(path, v, "a string"))
}

/// A whole number no larger than `max` (`what`: `u32` or `u64`).
fn whole(v: &Value, path: &str, max: u64, what: &str) -> Read<u64> {
    match v.as_u64() {
        Some(n) if n <= max => Ok(n),
        _ if v.is_u64() || v.is_i64() => Err(fail(path, format!("invalid value: {}, expected {what}", unexpected(v)))),
        _ => Err(invalid(path, v, what)),
    }
}

pub(crate) fn u32(v: &Value, path: &str) -> Read<u32> {
    whole(v, path, u32::MAX.into(), "u32").map(|n| n as u32)
}

pub(crate) fn u64(v: &Value, path: &str) -> Read<u64> {
    whole(v, path, u64::MAX, "u64")
}

pub(crate) fn list<T>(v: &Value, path: &str, item: Reader<T>) -> Read<Vec<T>> {
    let Value::Array(items) = v else {
        return Err(invalid(path, v, "a sequence"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        out.push(item(v, &format!("{path}[{i}]"))?);
    }
    Ok(out)
}

/// A table of named entries. JSON allows a name twice and a parsed `Value` keeps the
/// last: callers that must refuse that check the text first (`json_path::repeated_key`).
pub(crate) fn named<T, C: FromIterator<(String, T)>>(v: &Value, path: &str, entry: Reader<T>) -> Read<C> {
    let Value::Object(map) = v else {
        return Err(invalid(path, v, "a table of named entries"));
    };
    map.iter().map(|(k, v)| Ok((k.clone(), entry(v, &join(path, k))?))).collect()
}

/// A unit variant among `names`, by its index there.
pub(crate) fn variant(v: &Value, path: &str, name: &str, names: &[&str]) -> Read<usize> {
    let Some(s) = v.as_str() else {
        return Err(invalid(path, v, &format!("enum {name}")));
    };
    names
        .iter()
        .position(|n| *n == s)
        .ok_or_else(|| fail(path, format!("unknown variant `{s}`, expected {}", expected_names(names))))
}

/// A bare string standing for `short(s)`, or the type's own table.
pub(crate) fn string_or_table<T>(
    v: &Value,
    path: &str,
    expecting: &str,
    short: fn(&str) -> T,
    table: Reader<T>,
) -> Read<T> {
    match v {
        Value::String(s) => Ok(short(s)),
        Value::Object(_) => table(v, path),
        _ => Err(invalid(path, v, expecting)),
    }
}
