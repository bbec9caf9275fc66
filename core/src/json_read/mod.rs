//! Reading parsed JSON by hand, with the path of what is wrong.
//!
//! For the few shapes the browser module reads where serde's derives cost most: a derived
//! `Deserialize` brings a visitor per struct, for maps and for sequences, and a buffered
//! copy of the input for every tagged enum, all instantiated again per deserializer. These
//! readers walk a [`Value`] that `serde_json` already knows how to build, and say where a
//! value is wrong (`decision.val[0].role: expected one of "system", "user", "assistant"`).

pub(crate) mod serde_like;

use serde_json::{Map, Value};

/// A JSON object's fields, with its path, refusing fields it does not know.
pub(crate) struct Object<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

/// `at` with `key` after it: `a.b`, or `b` at the top.
fn join(at: &str, key: &str) -> String {
    if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") }
}

fn what(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `at: expected EXPECTED, found WHAT`.
fn wrong(at: &str, expected: &str, v: &Value) -> String {
    let at = if at.is_empty() { "the value" } else { at };
    format!("{at}: expected {expected}, found {}", what(v))
}

impl<'a> Object<'a> {
    /// `v` as an object whose fields are all among `known`.
    pub(crate) fn new(v: &'a Value, at: &str, known: &[&str]) -> Result<Object<'a>, String> {
        let Value::Object(map) = v else {
            return Err(wrong(at, "an object", v));
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            let expected: Vec<String> = known.iter().map(|k| crate::quote::Quoted(k).to_string()).collect();
            return Err(format!(
                "{}: unknown field, expected {}",
                join(at, &crate::quote::Quoted(k).to_string()),
                expected.join(", ")
            ));
        }
        Ok(Object { map, at: at.to_owned() })
    }

    /// The path of field `key`.
    pub(crate) fn at(&self, key: &str) -> String {
        join(&self.at, key)
    }

    /// Field `key`, absent or null as `None`.
    pub(crate) fn opt(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Field `key` read by `read`, absent or null as `None`.
    pub(crate) fn get<T>(
        &self,
        key: &str,
        read: impl Fn(&Value, &str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        self.opt(key).map(|v| read(v, &self.at(key))).transpose()
    }

    /// Field `key`, which must be there (and not null).
    pub(crate) fn req(&self, key: &str) -> Result<&'a Value, String> {
        self.opt(key).ok_or_else(|| format!("{}: missing", self.at(key)))
    }

    /// The only field, for an object that holds exactly one of `known`.
    pub(crate) fn only(&self) -> Result<(&'a str, &'a Value), String> {
        let mut fields = self.map.iter();
        match (fields.next(), fields.next()) {
            (Some((k, v)), None) => Ok((k, v)),
            _ => {
                Err(format!("{}: expected exactly one field", if self.at.is_empty() { "the value" } else { &self.at }))
            }
        }
    }
}

/// `v` as a string.
pub(crate) fn string(v: &Value, at: &str) -> Result<String, String> {
    v.as_str().map(str::to_owned).ok_or_else(|| wrong(at, "a string", v))
}

/// `v` as a whole number from 0 to `u32::MAX`.
pub(crate) fn u32(v: &Value, at: &str) -> Result<u32, String> {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| wrong(at, "a whole number from 0 to 4294967295", v))
}

/// `v` as a list, each item read by `item` with its path.
pub(crate) fn list<T>(v: &Value, at: &str, item: impl Fn(&Value, &str) -> Result<T, String>) -> Result<Vec<T>, String> {
    let Value::Array(items) = v else {
        return Err(wrong(at, "a list", v));
    };
    items.iter().enumerate().map(|(i, v)| item(v, &format!("{at}[{i}]"))).collect()
}

/// `v` as one of `names`, by its index there.
pub(crate) fn one_of(v: &Value, at: &str, names: &[&str]) -> Result<usize, String> {
    let expected = || {
        let names: Vec<String> = names.iter().map(|n| crate::quote::Quoted(n).to_string()).collect();
        format!("one of {}", names.join(", "))
    };
    match v.as_str().and_then(|s| names.iter().position(|n| *n == s)) {
        Some(i) => Ok(i),
        None if v.is_string() => Err(format!("{at}: expected {}, found {}", expected(), crate::schema::short(v))),
        None => Err(wrong(at, &expected(), v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_refuse_unknown_fields_and_name_missing_ones() {
        let v = json!({"a": 1, "b": null});
        let o = Object::new(&v, "x", &["a", "b", "c"]).expect("known fields");
        assert_eq!(o.req("a"), Ok(&json!(1)));
        assert_eq!(o.opt("b"), None);
        assert_eq!(o.req("c"), Err("x.c: missing".to_owned()));
        let err = Object::new(&v, "x", &["a"]).err();
        assert_eq!(err.as_deref(), Some(r#"x."b": unknown field, expected "a""#));
        assert_eq!(
            Object::new(&json!([1]), "", &[]).err().as_deref(),
            Some("the value: expected an object, found a list")
        );
        assert!(Object::new(&json!({"a": 1, "b": 2}), "", &["a", "b"]).expect("ok").only().is_err());
        assert_eq!(Object::new(&json!({"a": 1}), "", &["a"]).expect("ok").only(), Ok(("a", &json!(1))));
    }

    #[test]
    fn scalars_are_read_exactly() {
        assert_eq!(u32(&json!(4294967295u64), "n"), Ok(u32::MAX));
        for bad in [json!(-1), json!(4294967296u64), json!(1.0), json!("1")] {
            assert!(u32(&bad, "n").is_err(), "{bad}");
        }
        assert_eq!(list(&json!([1, 2]), "l", u32), Ok(vec![1, 2]));
        assert_eq!(
            list(&json!([1, "2"]), "l", u32).err().as_deref(),
            Some("l[1]: expected a whole number from 0 to 4294967295, found a string")
        );
        assert_eq!(one_of(&json!("b"), "r", &["a", "b"]), Ok(1));
        assert_eq!(
            one_of(&json!("c"), "r", &["a", "b"]).err().as_deref(),
            Some(r#"r: expected one of "a", "b", found "c""#)
        );
        let long = one_of(&json!("x".repeat(1000)), "r", &["a"]).expect_err("not a name");
        assert!(long.len() < 100, "{long}");
        assert_eq!(string(&json!(null), "s").err().as_deref(), Some("s: expected a string, found null"));
    }
}
