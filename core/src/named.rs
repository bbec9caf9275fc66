//! Entries by name — a recipe's `providers` and `prices`, a run's keys, the calls busy per
//! provider — in a list kept in name order.
//!
//! A `BTreeMap` brought a B-tree's code into the browser module for each entry type (8 KB
//! for the recipe's two); there are a handful of entries, and a sorted list does all these
//! need with a fraction of that. It reads and writes as a table (TOML) or an object
//! (JSON), and refuses a repeated key: `{"a": 1, "a": 2}` would let a shared file hide a
//! second `providers.together` behind the one a reader sees first.

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::fmt;
use std::marker::PhantomData;

/// Entries by name, in name order, each name once.
#[derive(Clone, Debug, PartialEq)]
pub struct Named<V>(Vec<(String, V)>);

impl<V> Default for Named<V> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<V> Named<V> {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `key` is, or where it would go.
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The entry named `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    /// The entry named `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    /// Whether an entry is named `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets the entry named `key`, and gives back the one it replaces.
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in name order.
    pub fn iter(&self) -> Iter<'_, V> {
        self.0.iter().map(entry)
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    /// The entries' values, in name order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The entries' values, to change.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.0.iter_mut().map(|(_, v)| v)
    }
}

fn entry<V>((k, v): &(String, V)) -> (&String, &V) {
    (k, v)
}

/// The entries of a [`Named`], in name order.
pub type Iter<'a, V> = std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> (&'a String, &'a V)>;

impl<'a, V> IntoIterator for &'a Named<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

/// The entry named `key`; like a map's, it panics when there is none (a recipe's checks
/// make sure every name used is there).
impl<V> std::ops::Index<&str> for Named<V> {
    type Output = V;
    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no entry named {key:?}"),
        }
    }
}

/// Later entries replace earlier ones with the same name, as a map's do.
impl<V> FromIterator<(String, V)> for Named<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(entries: I) -> Self {
        let mut out = Named::new();
        for (k, v) in entries {
            out.insert(k, v);
        }
        out
    }
}

impl<V, const N: usize> From<[(String, V); N]> for Named<V> {
    fn from(entries: [(String, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<V: Serialize> Serialize for Named<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Named<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = Named<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of named entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Named::new();
                while let Some(k) = m.next_key::<String>()? {
                    if out.contains_key(&k) {
                        return Err(de::Error::custom(format!("duplicate key {}", crate::quote::Quoted(&k))));
                    }
                    let v = m.next_value()?;
                    out.insert(k, v);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Entries(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::Named;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Whatever is inserted, it answers as a `BTreeMap` given the same would.
        #[test]
        fn it_keeps_what_a_map_keeps(ops in prop::collection::vec(("[a-e]{0,2}", any::<u8>()), 0..40)) {
            let mut ours = Named::new();
            let mut map = BTreeMap::new();
            for (k, v) in &ops {
                prop_assert_eq!(ours.insert(k.clone(), *v), map.insert(k.clone(), *v));
            }
            prop_assert_eq!(ours.iter().collect::<Vec<_>>(), map.iter().collect::<Vec<_>>());
            for k in ["", "a", "ab", "e", "z"] {
                prop_assert_eq!(ours.get(k), map.get(k));
                prop_assert_eq!(ours.contains_key(k), map.contains_key(k));
            }
            let collected: Named<u8> = ops.iter().cloned().collect();
            prop_assert_eq!(collected, ours);
        }
    }

    #[test]
    fn a_repeated_key_is_refused_and_a_table_reads_in_name_order() {
        let err = toml::from_str::<Named<u8>>("a = 1\nb = 2\na = 3").map(|_| ()).expect_err("repeated");
        assert!(err.to_string().contains("duplicate key"), "{err}");
        let ok: Named<u8> = serde_json::from_str(r#"{"b": 2, "a": 1}"#).expect("JSON");
        assert_eq!(serde_json::to_string(&ok).expect("JSON"), r#"{"a":1,"b":2}"#);
        let err = serde_json::from_str::<Named<u8>>(r#"{"a": 1, "a": 2}"#).map(|_| ()).expect_err("repeated");
        assert!(err.to_string().starts_with("duplicate key \"a\""), "{err}");
    }
}
