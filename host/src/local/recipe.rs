//! Which local models a recipe calls: a provider on this machine's loopback address whose
//! model is one of ours (by the name its server answers to, e.g.
//! `qwen05:Qwen2.5-Coder-0.5B-Instruct`), on the provider URL's port.

use super::{Cache, Health, LocalError, LocalModel, MODELS, healthy};
use moa_core::Recipe;

/// A local model a recipe needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Need {
    /// The model.
    pub model: &'static LocalModel,
    /// The recipe's provider that reaches it.
    pub provider: String,
    /// The provider's base URL.
    pub base_url: String,
    /// The port in it.
    pub port: u16,
}

fn port_of(base_url: &str) -> Option<u16> {
    let rest = base_url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    match authority.rsplit_once(':') {
        Some((_, p)) if !authority.ends_with(']') => p.parse().ok(),
        _ => Some(if base_url.starts_with("https") { 443 } else { 80 }),
    }
}

/// Every `provider:model` the recipe may call: agents, aggregators and judges.
fn model_refs(recipe: &Recipe) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut strategies = Vec::new();
    for layer in &recipe.layers {
        out.extend(layer.agents.iter().map(|a| a.model.as_str()));
        strategies.extend(&layer.strategy);
    }
    out.push(&recipe.aggregator.model);
    strategies.extend(&recipe.aggregator.strategy);
    for s in strategies {
        out.extend(s.params.get("judge").and_then(|j| j.as_str()));
    }
    out
}

/// The local models `recipe` calls, each once per provider.
pub fn needs(recipe: &Recipe) -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    for r in model_refs(recipe) {
        let Some((provider, model)) = r.split_once(':') else { continue };
        let Some(p) = recipe.providers.get(provider) else { continue };
        let Some(m) = MODELS.iter().find(|m| m.alias == model) else { continue };
        let Some(port) = port_of(&p.base_url) else { continue };
        if !moa_core::http::is_loopback(&p.base_url)
            || out.iter().any(|n| n.provider == provider && n.model.alias == m.alias)
        {
            continue;
        }
        out.push(Need { model: m, provider: provider.into(), base_url: p.base_url.clone(), port });
    }
    out
}

/// The needs nothing answers for, as one line that says how to start them, or `None`
/// when every one answers.
pub fn missing_hint(needs: &[Need]) -> Option<String> {
    let mut down: Vec<&Need> = Vec::new();
    for n in needs.iter().filter(|n| healthy(n.port) == Health::Down) {
        if !down.iter().any(|d| d.port == n.port && d.model.name == n.model.name) {
            down.push(n);
        }
    }
    if down.is_empty() {
        return None;
    }
    let places: Vec<String> = down.iter().map(|n| format!("{} ({})", n.base_url, n.model.name)).collect();
    Some(format!(
        "nothing answers at {}: start the local models with {}, or pass --start-local",
        places.join(", "),
        start_commands(&down).join(" and ")
    ))
}

/// One `moa local start` for the models on their default ports, and one per model on
/// another port: a port variable moves every server of that model, so the same model on
/// two ports needs two commands.
fn start_commands(down: &[&Need]) -> Vec<String> {
    let mut defaults: Vec<&str> = Vec::new();
    let mut moved: Vec<String> = Vec::new();
    for n in down {
        if n.model.port().ok() == Some(n.port) {
            if !defaults.contains(&n.model.name) {
                defaults.push(n.model.name);
            }
        } else {
            moved.push(format!("`{}={} moa local start {}`", n.model.port_var, n.port, n.model.name));
        }
    }
    let mut commands = Vec::new();
    if !defaults.is_empty() {
        commands.push(format!("`moa local start {}`", defaults.join(" ")));
    }
    commands.extend(moved);
    commands
}

/// Local servers a command started for its recipe; stopped when dropped.
pub struct Started {
    cache: Cache,
    models: Vec<(&'static LocalModel, u16)>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = super::stop_at(&self.cache, &self.models);
    }
}

/// Starts every local model `needs` names that is not running (on the recipe's ports),
/// provisioning what is missing; the returned guard stops the ones it started.
pub fn start_needed(needs: &[Need], say: &dyn Fn(&str)) -> Result<Started, LocalError> {
    let cache = Cache::from_env();
    let mut want: Vec<(&'static LocalModel, u16)> = Vec::new();
    for n in needs {
        if !want.contains(&(n.model, n.port)) {
            want.push((n.model, n.port));
        }
    }
    let models = super::start_at(&cache, &want, say)?;
    Ok(Started { cache, models })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(toml: &str) -> Recipe {
        Recipe::from_toml(toml).expect("recipe")
    }

    #[test]
    fn a_recipe_needs_the_local_models_it_names_on_loopback_providers() {
        let r = recipe(
            r#"
name = "t"
[providers.q]
kind = "openai"
base_url = "http://127.0.0.1:9182/v1"
[providers.remote]
kind = "openai"
base_url = "https://api.example.org/v1"
[[layers]]
agents = ["q:Qwen2.5-Coder-0.5B-Instruct", "q:Qwen2.5-Coder-0.5B-Instruct", "remote:Qwen2.5-Coder-1.5B-Instruct", "q:some-other-model"]
[aggregator]
model = "q:SmolLM2-135M-Instruct"
strategy = { name = "rank", params = { judge = "q:Qwen2.5-Coder-1.5B-Instruct" } }
"#,
        );
        let got: Vec<(&str, u16)> = needs(&r).iter().map(|n| (n.model.name, n.port)).collect();
        assert_eq!(got, [("qwen-0.5b", 9182), ("smollm", 9182), ("qwen-1.5b", 9182)]);
    }

    #[test]
    fn ports_come_from_the_url_or_its_scheme() {
        assert_eq!(port_of("http://127.0.0.1:8082/v1"), Some(8082));
        assert_eq!(port_of("http://localhost/v1"), Some(80));
        assert_eq!(port_of("http://[::1]:9000/v1"), Some(9000));
        assert_eq!(port_of("http://[::1]/v1"), Some(80));
    }

    #[test]
    fn the_same_model_on_two_ports_gets_a_command_for_each() {
        let need = |name: &str, port: Option<u16>| {
            let model = MODELS.iter().find(|m| m.name == name).expect("model");
            let port = port.unwrap_or_else(|| model.port().expect("default port"));
            Need { model, provider: "q".into(), base_url: format!("http://127.0.0.1:{port}/v1"), port }
        };
        let (qwen, moved, smollm) = (need("qwen-1.5b", None), need("smollm", Some(41037)), need("smollm", None));
        assert_eq!(
            start_commands(&[&qwen, &moved, &smollm]),
            ["`moa local start qwen-1.5b smollm`", "`MOA_SMOLLM_PORT=41037 moa local start smollm`"]
        );
    }
}
