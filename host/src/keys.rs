//! API keys from the environment: each provider's `api_key_env`. A key goes only into
//! its provider's request headers; events, outputs and errors never carry it.
//!
//! A recipe is a file people share, so it must not be able to make moa read any variable
//! (`api_key_env = "GITHUB_TOKEN"`) and send it to a host of its choosing without the user
//! seeing. The rule: moa reads only variables whose names end in `_API_KEY` or `_KEY`;
//! any other needs `--allow-key-env NAME`; `moa check` lists which variable goes to which
//! host.

use moa_core::Recipe;
use std::collections::BTreeMap;

/// Whether a variable's name says it holds an API key, so a recipe may name it.
pub fn is_key_name(var: &str) -> bool {
    var.ends_with("_API_KEY") || var.ends_with("_KEY")
}

/// Which variable goes to which host: `(variable, provider, host)` for every provider
/// that takes a key.
pub fn routes(recipe: &Recipe) -> Vec<(String, String, String)> {
    recipe
        .providers
        .iter()
        .filter_map(|(name, p)| {
            let var = p.api_key_env.clone()?;
            let url = moa_core::http::normalize_base_url(&p.base_url).unwrap_or_else(|_| p.base_url.clone());
            let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or(&url).to_owned();
            Some((var, name.clone(), host))
        })
        .collect()
}

/// Refuses a recipe that names a variable that is not key-like and not allowed.
pub fn check_env(recipe: &Recipe, allowed: &[String]) -> Result<(), String> {
    let refused: Vec<String> = routes(recipe)
        .into_iter()
        .filter(|(var, _, _)| !is_key_name(var) && !allowed.contains(var))
        .map(|(var, provider, host)| format!("${var} (provider {provider}, sent to {host})"))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the recipe asks for {}: moa reads only variables named *_API_KEY or *_KEY for keys; \
         if this is what you want, pass --allow-key-env with the variable's name",
        refused.join(", ")
    ))
}

/// The keys the recipe's providers name, from the environment. A variable that is unset
/// or empty is left out; the run then refuses to start and names the variable.
pub fn from_env(recipe: &Recipe) -> BTreeMap<String, String> {
    recipe
        .providers
        .iter()
        .filter_map(|(name, p)| {
            let var = p.api_key_env.as_ref()?;
            let key = std::env::var(var).ok().filter(|k| !k.trim().is_empty())?;
            Some((name.clone(), key.trim().to_owned()))
        })
        .collect()
}

/// A provider that needs a key has none in the environment.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("provider {provider:?} of recipe {recipe:?} needs an API key: set {var}")]
pub struct MissingKey {
    /// The provider.
    pub provider: String,
    /// Its recipe's name.
    pub recipe: String,
    /// The variable to set.
    pub var: String,
}

/// The keys of the recipe's providers that `used` accepts (by name), from the
/// environment; the first of them that names a variable which is unset or empty is an
/// error before anything runs.
pub fn require(recipe: &Recipe, used: impl Fn(&str) -> bool) -> Result<BTreeMap<String, String>, MissingKey> {
    let keys = from_env(recipe);
    let missing =
        recipe.providers.iter().find(|(name, p)| used(name) && p.api_key_env.is_some() && !keys.contains_key(*name));
    match missing {
        Some((name, p)) => Err(MissingKey {
            provider: name.clone(),
            recipe: recipe.name.clone(),
            var: p.api_key_env.clone().unwrap_or_default(),
        }),
        None => Ok(keys),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_in_use_without_its_key_is_named_with_the_variable_to_set() {
        let mut recipe = moa_core::recipe::preset("moa-lite").expect("a preset");
        recipe.name = "r".into();
        let var = "MOA_TEST_KEYS_REQUIRE_UNSET_API_KEY";
        for p in recipe.providers.values_mut() {
            p.api_key_env = Some(var.into());
        }
        let first = recipe.providers.keys().next().cloned().expect("a provider");
        let err = require(&recipe, |_| true).expect_err("no key set");
        assert_eq!(err, MissingKey { provider: first.clone(), recipe: "r".into(), var: var.into() });
        assert_eq!(err.to_string(), format!("provider {first:?} of recipe \"r\" needs an API key: set {var}"));
        // Providers not in use need no key.
        assert_eq!(require(&recipe, |_| false), Ok(BTreeMap::new()));
    }
}
