//! A small JSON Schema validator for tool arguments and structured answers.
//!
//! Written here rather than taken from a crate because the browser module carries the
//! core and the full validators weigh hundreds of kilobytes. It covers what tool
//! definitions and OpenAI's structured outputs use: `type` (one or a list), `enum`,
//! `const`, `properties`, `required`, `additionalProperties`, `items`, `prefixItems`,
//! `minItems`/`maxItems`, `uniqueItems`, `minLength`/`maxLength`, `pattern` (where the
//! core is built with its `regex` feature: natively; the browser module does not check
//! it), `minimum`/`maximum` and their exclusive forms, `multipleOf`, `contains`,
//! `propertyNames`, `minProperties`/`maxProperties`, `anyOf`, `oneOf`, `allOf`, `not`, and
//! local `$ref`s (`#`, `#/$defs/...`, `#/definitions/...`). Numbers compare by value (`1`
//! equals `1.0`). Annotations (`format`, `description`, `title`...) are not checked, as the
//! standard allows. [`Schema::compile`] refuses, naming where, the keywords that would
//! constrain a value and that it does not check (`patternProperties`, `if`/`then`/`else`,
//! `dependentRequired`, `dependentSchemas`, `unevaluatedProperties`, `unevaluatedItems`,
//! `minContains`, `maxContains`), so a schema is never half-checked. Validation has a step
//! budget: a schema whose branches multiply (`anyOf` of references to itself) is refused
//! when an instance would take too long, never left to run.

use crate::quote::Quoted;
use serde_json::{Map, Value};

/// How deep validation may go (schema references and nesting together) before it stops:
/// a schema that refers to itself without descending must not loop.
const MAX_DEPTH: usize = 256;

/// Most schema-and-value steps one validation may take.
const MAX_STEPS: usize = 200_000;

/// Keywords that constrain values and that this validator does not check.
const UNSUPPORTED: [&str; 10] = [
    "patternProperties",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "minContains",
    "maxContains",
];

/// A schema checked and ready to validate with.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    root: Value,
}

/// Why a schema cannot be used, or an instance does not match: what, and where (a JSON
/// pointer into the schema or the instance).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("at {path}: ") })]
pub struct SchemaError {
    /// Where: a JSON pointer (`/items/0/name`), empty for the root.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn err<T>(path: &str, message: impl Into<String>) -> Result<T, SchemaError> {
    Err(SchemaError { path: path.to_owned(), message: message.into() })
}

const TYPES: [&str; 7] = ["object", "array", "string", "number", "integer", "boolean", "null"];

impl Schema {
    /// Checks that `root` is a schema this validator can apply.
    pub fn compile(root: &Value) -> Result<Schema, SchemaError> {
        check(root, root, "", 0)?;
        Ok(Schema { root: root.clone() })
    }

    /// Checks `instance` against the schema; the first mismatch, with its place in the
    /// instance.
    pub fn validate(&self, instance: &Value) -> Result<(), SchemaError> {
        Validator { root: &self.root, steps: std::cell::Cell::new(0) }.at(&self.root, instance, "", 0)
    }
}

fn check(schema: &Value, root: &Value, path: &str, depth: usize) -> Result<(), SchemaError> {
    if depth > MAX_DEPTH {
        return err(path, "the schema nests too deep");
    }
    let map = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(map) => map,
        _ => return err(path, format!("a schema is an object or a boolean, not {}", kind(schema))),
    };
    check_type(map, path)?;
    if let Some(key) = UNSUPPORTED.iter().find(|k| map.contains_key(**k)) {
        return err(path, format!("{key} is not a keyword moa's validator checks; express the schema without it"));
    }
    for key in ["properties", "$defs", "definitions"] {
        if let Some(v) = map.get(key) {
            let Value::Object(props) = v else { return err(path, format!("{key} must be an object")) };
            for (name, sub) in props {
                check(sub, root, &format!("{path}/{key}/{}", escape(name)), depth + 1)?;
            }
        }
    }
    for key in ["items", "additionalProperties", "not", "contains", "propertyNames"] {
        if let Some(sub) = map.get(key) {
            check(sub, root, &format!("{path}/{key}"), depth + 1)?;
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
        if let Some(v) = map.get(key) {
            let Some(list) = v.as_array().filter(|l| !l.is_empty()) else {
                return err(path, format!("{key} must be a non-empty array of schemas"));
            };
            for (i, sub) in list.iter().enumerate() {
                check(sub, root, &format!("{path}/{key}/{i}"), depth + 1)?;
            }
        }
    }
    check_keywords(map, path)?;
    if let Some(r) = map.get("$ref") {
        let Some(target) = r.as_str() else { return err(path, "$ref must be a string") };
        if resolve(root, target).is_none() {
            return err(
                path,
                format!("$ref {} does not resolve in this schema (only local references do)", Quoted(target)),
            );
        }
    }
    Ok(())
}

fn check_type(map: &Map<String, Value>, path: &str) -> Result<(), SchemaError> {
    let names: Vec<&Value> = match map.get("type") {
        None => return Ok(()),
        Some(Value::Array(list)) if list.is_empty() => return err(path, "type [] allows no value"),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
    };
    for name in names {
        match name.as_str() {
            Some(t) if TYPES.contains(&t) => {}
            _ => {
                return err(path, format!("type {} is not one of {}", crate::json_text::write(name), TYPES.join(", ")));
            }
        }
    }
    Ok(())
}

fn check_keywords(map: &Map<String, Value>, path: &str) -> Result<(), SchemaError> {
    if let Some(r) = map.get("required")
        && !r.as_array().is_some_and(|l| l.iter().all(Value::is_string))
    {
        return err(path, "required must be an array of property names");
    }
    if map.get("enum").is_some_and(|e| !e.is_array()) {
        return err(path, "enum must be an array");
    }
    let counts = ["minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"];
    for key in counts {
        if map.get(key).is_some_and(|v| !v.is_u64()) {
            return err(path, format!("{key} must be a non-negative integer"));
        }
    }
    for key in ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"] {
        if map.get(key).is_some_and(|v| !v.is_number()) {
            return err(path, format!("{key} must be a number"));
        }
    }
    if map.get("multipleOf").and_then(Value::as_f64).is_some_and(|m| m <= 0.0) {
        return err(path, "multipleOf must be above 0");
    }
    if let Some(p) = map.get("pattern") {
        let Some(p) = p.as_str() else { return err(path, "pattern must be a string") };
        #[cfg(feature = "regex")]
        if let Err(e) = regex_lite::Regex::new(p) {
            return err(path, format!("pattern {} is not a regular expression moa can run: {e}", Quoted(p)));
        }
        #[cfg(not(feature = "regex"))]
        let _ = p;
    }
    Ok(())
}

/// The schema a local reference points at.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        _ => kind(v) == t,
    }
}

struct Validator<'a> {
    root: &'a Value,
    steps: std::cell::Cell<usize>,
}

impl Validator<'_> {
    fn at(&self, schema: &Value, v: &Value, path: &str, depth: usize) -> Result<(), SchemaError> {
        if depth > MAX_DEPTH {
            return err(path, "the value nests too deep for the schema");
        }
        self.steps.set(self.steps.get() + 1);
        self.budget(path)?;
        let map = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return err(path, "no value is allowed here"),
            Value::Object(map) => map,
            _ => return Ok(()), // compile refused it
        };
        if let Some(target) = map.get("$ref").and_then(Value::as_str).and_then(|r| resolve(self.root, r)) {
            self.at(target, v, path, depth + 1)?;
        }
        self.type_and_values(map, v, path)?;
        self.combinators(map, v, path, depth)?;
        match v {
            Value::Object(obj) => self.object(map, obj, path, depth),
            Value::Array(items) => self.array(map, items, path, depth),
            Value::String(s) => string(map, s, path),
            Value::Number(_) => number(map, v, path),
            _ => Ok(()),
        }
    }

    fn type_and_values(&self, map: &Map<String, Value>, v: &Value, path: &str) -> Result<(), SchemaError> {
        if let Some(t) = map.get("type") {
            let names: Vec<&str> = match t {
                Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                other => other.as_str().into_iter().collect(),
            };
            if !names.iter().any(|t| is_type(v, t)) {
                return err(path, format!("expected {}, got {}", names.join(" or "), kind(v)));
            }
        }
        if let Some(options) = map.get("enum").and_then(Value::as_array)
            && !options.iter().any(|o| same(o, v))
        {
            return err(
                path,
                format!("{} is not one of {}", short(v), crate::json_text::write(&Value::Array(options.clone()))),
            );
        }
        if let Some(c) = map.get("const")
            && !same(c, v)
        {
            return err(path, format!("expected {}, got {}", crate::json_text::write(c), short(v)));
        }
        Ok(())
    }

    fn combinators(&self, map: &Map<String, Value>, v: &Value, path: &str, depth: usize) -> Result<(), SchemaError> {
        let list = |key: &str| map.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for sub in list("allOf") {
            self.at(sub, v, path, depth + 1)?;
        }
        let any = list("anyOf");
        if !any.is_empty() && !any.iter().any(|s| self.at(s, v, path, depth + 1).is_ok()) {
            self.budget(path)?;
            return err(path, "matches none of the schemas in anyOf");
        }
        let one = list("oneOf");
        if !one.is_empty() {
            let matched = one.iter().filter(|s| self.at(s, v, path, depth + 1).is_ok()).count();
            self.budget(path)?;
            if matched != 1 {
                return err(path, format!("matches {matched} of the schemas in oneOf, not exactly one"));
            }
        }
        if let Some(not) = map.get("not")
            && self.at(not, v, path, depth + 1).is_ok()
        {
            return err(path, "matches the schema in not");
        }
        self.budget(path)
    }

    /// A step budget spent inside a branch is the whole validation's: its failure, not
    /// the branch's.
    fn budget(&self, path: &str) -> Result<(), SchemaError> {
        match self.steps.get() > MAX_STEPS {
            true => err(path, "the schema takes too many steps to check this value (its branches multiply)"),
            false => Ok(()),
        }
    }

    fn object(
        &self,
        map: &Map<String, Value>,
        obj: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), SchemaError> {
        for name in map.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                return err(path, format!("missing required property {}", Quoted(name)));
            }
        }
        let props = map.get("properties").and_then(Value::as_object);
        if let Some(names) = map.get("propertyNames") {
            for name in obj.keys() {
                self.at(names, &Value::String(name.clone()), path, depth + 1)?;
            }
        }
        for (name, value) in obj {
            let here = format!("{path}/{}", escape(name));
            match (props.and_then(|p| p.get(name)), map.get("additionalProperties")) {
                (Some(sub), _) => self.at(sub, value, &here, depth + 1)?,
                (None, Some(Value::Bool(false))) => {
                    return err(
                        path,
                        format!("property {} is not allowed (additionalProperties is false)", Quoted(name)),
                    );
                }
                (None, Some(extra)) => self.at(extra, value, &here, depth + 1)?,
                (None, None) => {}
            }
        }
        let n = obj.len() as u64;
        if map.get("minProperties").and_then(Value::as_u64).is_some_and(|m| n < m) {
            return err(path, format!("{n} properties, fewer than minProperties"));
        }
        if map.get("maxProperties").and_then(Value::as_u64).is_some_and(|m| n > m) {
            return err(path, format!("{n} properties, more than maxProperties"));
        }
        Ok(())
    }

    fn array(&self, map: &Map<String, Value>, items: &[Value], path: &str, depth: usize) -> Result<(), SchemaError> {
        let prefix = map.get("prefixItems").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for (i, item) in items.iter().enumerate() {
            let here = format!("{path}/{i}");
            match (prefix.get(i), map.get("items")) {
                (Some(sub), _) | (None, Some(sub)) => self.at(sub, item, &here, depth + 1)?,
                (None, None) => {}
            }
        }
        let n = items.len() as u64;
        if map.get("minItems").and_then(Value::as_u64).is_some_and(|m| n < m) {
            return err(path, format!("{n} items, fewer than minItems"));
        }
        if map.get("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m) {
            return err(path, format!("{n} items, more than maxItems"));
        }
        if map.get("uniqueItems") == Some(&Value::Bool(true))
            && items.iter().enumerate().any(|(i, a)| items[..i].iter().any(|b| same(a, b)))
        {
            return err(path, "items are not unique");
        }
        if let Some(wanted) = map.get("contains")
            && !items.iter().any(|item| self.at(wanted, item, path, depth + 1).is_ok())
        {
            return err(path, "no item matches the schema in contains");
        }
        Ok(())
    }
}

fn string(map: &Map<String, Value>, s: &str, path: &str) -> Result<(), SchemaError> {
    let n = s.chars().count() as u64;
    if map.get("minLength").and_then(Value::as_u64).is_some_and(|m| n < m) {
        return err(path, format!("{n} characters, fewer than minLength"));
    }
    if map.get("maxLength").and_then(Value::as_u64).is_some_and(|m| n > m) {
        return err(path, format!("{n} characters, more than maxLength"));
    }
    #[cfg(feature = "regex")]
    if let Some(p) = map.get("pattern").and_then(Value::as_str)
        && regex_lite::Regex::new(p).is_ok_and(|re| !re.is_match(s))
    {
        return err(path, format!("{} does not match the pattern {}", short(&Value::String(s.into())), Quoted(p)));
    }
    Ok(())
}

fn number(map: &Map<String, Value>, v: &Value, path: &str) -> Result<(), SchemaError> {
    let Some(x) = v.as_f64() else { return Ok(()) };
    let bound = |key: &str| map.get(key).and_then(Value::as_f64);
    let fails = [
        (bound("minimum").is_some_and(|m| x < m), "minimum"),
        (bound("maximum").is_some_and(|m| x > m), "maximum"),
        (bound("exclusiveMinimum").is_some_and(|m| x <= m), "exclusiveMinimum"),
        (bound("exclusiveMaximum").is_some_and(|m| x >= m), "exclusiveMaximum"),
        (bound("multipleOf").is_some_and(|m| ((x / m) - (x / m).round()).abs() > 1e-9), "multipleOf"),
    ];
    match fails.iter().find(|(failed, _)| *failed) {
        Some((_, key)) => {
            err(path, format!("{} breaks {key} {}", crate::json_text::write(v), crate::json_text::write(&map[*key])))
        }
        None => Ok(()),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), as JSON Schema does.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(i), Some(j), _, _) => i == j,
            (_, _, Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

/// A value shortened for an error message.
pub(crate) fn short(v: &Value) -> String {
    let s = crate::json_text::write(v);
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: Value, v: Value) -> Result<(), String> {
        Schema::compile(&schema).expect("a valid schema").validate(&v).map_err(|e| e.to_string())
    }

    #[test]
    fn objects_properties_and_required() {
        let s = json!({"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
                       "required": ["city"], "additionalProperties": false});
        assert_eq!(check(s.clone(), json!({"city": "Paris", "days": 3})), Ok(()));
        assert_eq!(check(s.clone(), json!({})), Err("missing required property \"city\"".into()));
        assert_eq!(check(s.clone(), json!({"city": 3})), Err("at /city: expected string, got integer".into()));
        assert_eq!(check(s.clone(), json!({"city": "x", "days": 0})), Err("at /days: 0 breaks minimum 1".into()));
        assert_eq!(
            check(s.clone(), json!({"city": "x", "days": 1.5})),
            Err("at /days: expected integer, got number".into())
        );
        assert!(
            check(s.clone(), json!({"city": "x", "zip": 1})).expect_err("refused").contains("\"zip\" is not allowed")
        );
        assert_eq!(check(s, json!([1])), Err("expected object, got array".into()));
    }

    #[test]
    fn arrays_enums_and_combinators() {
        let s = json!({"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1, "uniqueItems": true});
        assert_eq!(check(s.clone(), json!(["a", "b"])), Ok(()));
        assert!(check(s.clone(), json!(["a", "c"])).expect_err("refused").starts_with("at /1: \"c\" is not one of"));
        assert!(check(s.clone(), json!([])).expect_err("refused").contains("minItems"));
        assert!(check(s, json!(["a", "a"])).expect_err("refused").contains("unique"));
        let any = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert_eq!(check(any.clone(), json!(null)), Ok(()));
        assert!(check(any, json!(1)).is_err());
        let one = json!({"oneOf": [{"type": "number"}, {"type": "integer"}]});
        assert!(check(one.clone(), json!(1)).expect_err("refused").contains("2 of the schemas"));
        assert_eq!(check(one, json!(1.5)), Ok(()));
        assert!(check(json!({"not": {"const": 3}}), json!(3)).is_err());
        assert_eq!(check(json!({"type": ["string", "null"]}), json!(null)), Ok(()));
    }

    #[test]
    fn local_references_and_self_reference() {
        let s = json!({"$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
                       "$ref": "#/$defs/node"});
        assert_eq!(check(s.clone(), json!({"kids": [{"kids": []}]})), Ok(()));
        assert!(check(s, json!({"kids": [{"kids": 1}]})).expect_err("refused").starts_with("at /kids/0/kids"));
        // Refers to itself without descending: stops instead of looping.
        let loops = Schema::compile(&json!({"$ref": "#"})).expect("compiles");
        assert!(loops.validate(&json!(1)).is_err());
    }

    #[test]
    fn compile_names_what_it_cannot_check() {
        let e = |s: Value| Schema::compile(&s).expect_err("refused").to_string();
        assert_eq!(e(json!("object")), "a schema is an object or a boolean, not string");
        assert!(e(json!({"type": "objekt"})).starts_with("type \"objekt\" is not one of"));
        assert_eq!(
            e(json!({"properties": {"a": {"type": 3}}})),
            "at /properties/a: type 3 is not one of object, array, string, number, integer, boolean, null"
        );
        assert_eq!(e(json!({"required": "a"})), "required must be an array of property names");
        assert!(e(json!({"$ref": "https://example.com/s.json"})).contains("does not resolve"));
        assert!(e(json!({"anyOf": []})).contains("non-empty array"));
        assert!(e(json!({"minLength": -1})).contains("non-negative integer"));
        #[cfg(feature = "regex")]
        assert!(e(json!({"pattern": "("})).contains("not a regular expression"));
        assert_eq!(check(json!(true), json!({"x": 1})), Ok(()));
        assert!(check(json!(false), json!(1)).is_err());
    }

    #[test]
    fn branches_that_multiply_are_stopped_by_the_step_budget() {
        let s = Schema::compile(&json!({"anyOf": [{"$ref": "#"}, {"$ref": "#"}]})).expect("compiles");
        let e = s.validate(&json!(1)).expect_err("refused, not left to run");
        assert!(e.message.contains("too many steps"), "{e}");
    }

    #[test]
    fn numbers_compare_by_value_and_the_other_keywords_hold() {
        assert_eq!(check(json!({"enum": [1]}), json!(1.0)), Ok(()));
        assert_eq!(check(json!({"const": 0}), json!(0.0)), Ok(()));
        assert!(check(json!({"uniqueItems": true}), json!([1, 1.0])).is_err());
        assert!(check(json!({"contains": {"const": "x"}}), json!([])).is_err());
        assert_eq!(check(json!({"contains": {"const": "x"}}), json!(["y", "x"])), Ok(()));
        assert!(check(json!({"propertyNames": {"maxLength": 2}}), json!({"abc": 1})).is_err());
        let e = Schema::compile(&json!({"patternProperties": {"^x": {}}})).expect_err("refused");
        assert!(e.message.starts_with("patternProperties is not a keyword"), "{e}");
        assert!(Schema::compile(&json!({"type": []})).is_err());
    }

    #[cfg(feature = "regex")]
    #[test]
    fn strings_lengths_and_patterns() {
        let s = json!({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3});
        assert_eq!(check(s.clone(), json!("abc")), Ok(()));
        assert!(check(s.clone(), json!("abcd")).expect_err("refused").contains("maxLength"));
        assert!(check(s, json!("ab1")).expect_err("refused").contains("pattern"));
        assert!(check(json!({"multipleOf": 0.5}), json!(1.25)).is_err());
        assert_eq!(check(json!({"multipleOf": 0.5}), json!(1.5)), Ok(()));
    }
}
