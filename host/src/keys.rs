//! API keys from the environment: each provider's `api_key_env`. A key goes only into
//! its provider's request headers; events, outputs and errors never carry it.

use moa_core::Recipe;
use std::collections::BTreeMap;

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
