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
