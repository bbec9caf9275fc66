//! Recipes: TOML and JSON load the same struct; bad recipes name the field and the reason.

use moa_core::recipe::{self, PRESETS, RecipeError, StrategySpec};
use moa_core::strategy::REFERENCE_PROMPT;
use moa_core::{Message, Recipe};

const TOML: &str = r#"
name = "mine"
temperature = 0.5

[providers.together]
kind = "openai"
base_url = "https://api.together.xyz/v1"
api_key_env = "TOGETHER_API_KEY"
max_concurrency = 4

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:8081/v1"

[[layers]]
agents = ["together:Qwen/Qwen1.5-72B-Chat", { model = "local:smol", samples = 3, temperature = 1.0, max_tokens = 64 }]

[[layers]]
agents = ["together:databricks/dbrx-instruct"]
strategy = { name = "vote", params = { threshold = 0.6 } }
min_successes = 1

[aggregator]
model = "together:Qwen/Qwen1.5-72B-Chat"
system = "Be brief."

[policy]
timeout_secs = 60
retries = 2

[prices."together:Qwen/Qwen1.5-72B-Chat"]
input = 0.9
output = 0.9
"#;

const JSON: &str = r#"{
  "name": "mine", "temperature": 0.5,
  "providers": {
    "together": {"kind": "openai", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY", "max_concurrency": 4},
    "local": {"kind": "openai", "base_url": "http://127.0.0.1:8081/v1"}
  },
  "layers": [
    {"agents": ["together:Qwen/Qwen1.5-72B-Chat", {"model": "local:smol", "samples": 3, "temperature": 1.0, "max_tokens": 64}]},
    {"agents": ["together:databricks/dbrx-instruct"], "strategy": {"name": "vote", "params": {"threshold": 0.6}}, "min_successes": 1}
  ],
  "aggregator": {"model": "together:Qwen/Qwen1.5-72B-Chat", "system": "Be brief."},
  "policy": {"timeout_secs": 60, "retries": 2},
  "prices": {"together:Qwen/Qwen1.5-72B-Chat": {"input": 0.9, "output": 0.9}}
}"#;

fn invalid(r: Result<Recipe, RecipeError>) -> Vec<String> {
    match r {
        Err(RecipeError::Invalid(errors)) => errors.iter().map(ToString::to_string).collect(),
        other => panic!("expected validation errors, got {other:?}"),
    }
}

fn parse_error(r: Result<Recipe, RecipeError>) -> (String, String) {
    match r {
        Err(RecipeError::Parse { path, message, .. }) => (path, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn toml_and_json_load_the_same_recipe() {
    let a = Recipe::from_toml(TOML).expect("valid TOML");
    let b = Recipe::from_json(JSON).expect("valid JSON");
    assert_eq!(a, b);
    assert_eq!(a.call_count(), 6);
    let agents = a.layer_agents(0);
    assert_eq!(agents.len(), 4);
    assert_eq!((agents[0].temperature, agents[0].max_tokens), (0.5, 2048), "recipe default, then the reference's");
    assert_eq!((agents[3].label.as_str(), agents[3].temperature, agents[3].max_tokens), ("local:smol#3", 1.0, 64));
    assert_eq!(
        a.layers[1].strategy,
        Some(StrategySpec {
            params: serde_json::json!({"threshold": 0.6}),
            ..StrategySpec::builtin(moa_core::strategy::StrategyKind::Vote)
        })
    );
    // Writing and reading back gives the same recipe, in both formats.
    assert_eq!(Recipe::from_toml(&a.to_toml()).expect("round trip"), a);
    assert_eq!(Recipe::from_json(&a.to_json()).expect("round trip"), a);
}

#[test]
fn defaults_are_the_reference_implementations() {
    let r = recipe::preset("moa").expect("preset");
    let agent = &r.layer_agents(0)[0];
    assert_eq!((agent.temperature, agent.max_tokens), (0.7, 2048));
    assert_eq!(r.aggregator_agent().model, "Qwen/Qwen1.5-110B-Chat");
}

#[test]
fn presets_are_valid_and_have_the_papers_shape() {
    let counts: Vec<(&str, usize)> =
        PRESETS.iter().map(|(n, _)| (*n, recipe::preset(n).expect("exists").call_count())).collect();
    assert_eq!(
        counts,
        [
            ("moa", 13),
            ("moa-lite", 7),
            ("self-moa", 7),
            ("local", 4),
            ("local-quality", 6),
            ("local-smollm", 4),
            ("moa-fast", 13),
            ("local-fast", 4),
            // 18 proposers, 3 judges, the aggregator.
            ("smoa", 22),
            // 20 samples, 3 windows, the aggregator's last.
            ("self-moa-seq", 24),
            ("local-smoa", 9),
            ("local-seq", 12)
        ]
    );
    for (name, _) in PRESETS {
        let r = recipe::preset(name).expect("exists");
        r.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(Recipe::from_toml(&r.to_toml()).expect("round trip"), r, "{name}");
    }
    assert_eq!(recipe::preset("moa-lite").expect("p").aggregator.model, "together:Qwen/Qwen1.5-72B-Chat");
    assert!(recipe::preset("nope").is_none());
    for name in ["local", "local-quality", "local-smollm", "local-fast", "local-smoa", "local-seq"] {
        let local = recipe::preset(name).expect("p");
        assert!(
            local.providers.values().all(|p| p.base_url.starts_with("http://127.0.0.1:") && p.api_key_env.is_none()),
            "{name}: local servers, no keys"
        );
    }
    // SmolLM2 at three temperatures, a majority answering (see the preset's comment).
    let smollm = recipe::preset("local-smollm").expect("p");
    let temperatures: Vec<f64> = smollm.layer_agents(0).iter().map(|a| a.temperature).collect();
    assert_eq!(temperatures, [0.2, 0.7, 1.0]);
    assert_eq!(smollm.aggregator.strategy.as_ref().and_then(|s| s.name.as_deref()), Some("vote"));
}

#[test]
fn unknown_provider_names_the_path_and_the_known_ones() {
    let text = TOML.replace("agents = [\"together:databricks", "agents = [\"togther:databricks");
    assert_eq!(
        invalid(Recipe::from_toml(&text)),
        [r#"layers[1].agents[0]: unknown provider "togther" (known: local, together)"#]
    );
}

#[test]
fn every_problem_is_listed_with_its_path() {
    let text = TOML
        .replace("temperature = 1.0", "temperature = 2.5")
        .replace("samples = 3", "samples = 0")
        .replace("https://api.together.xyz/v1", "api.together.xyz")
        .replace("name = \"vote\"", "name = \"votes\"")
        .replace("min_successes = 1", "min_successes = 2")
        .replace("timeout_secs = 60", "timeout_secs = -1");
    let errors = invalid(Recipe::from_toml(&text));
    let expected = [
        r#"providers.together.base_url: "api.together.xyz" is not an http:// or https:// URL"#,
        "layers[0].agents[1].temperature: 2.5 is out of range 0..=2",
        "layers[0].agents[1].samples: 0 is out of range 1..=64",
        r#"layers[1].strategy: unknown strategy "votes" (built-in: synthesize, vote, diverse, rank, select, sequential; or use { plugin = "file.wasm" })"#,
        "layers[1].min_successes: 2 successes needed but layer 1 has only 1 agents",
        "policy.timeout_secs: -1 must be a positive number of seconds, at most 604800 (a week)",
    ];
    assert_eq!(errors, expected);
}

/// Everything that would fail at run time is caught at check time, at its path.
#[test]
fn a_recipe_that_validates_runs() {
    let base = |url: &str| invalid(Recipe::from_toml(&TOML.replace("https://api.together.xyz/v1", url)));
    // What the page's "Add provider" creates, a port past 65535, a space in the host.
    assert_eq!(base("https://"), [r#"providers.together.base_url: "https://" has no host"#]);
    assert_eq!(
        base("http://127.0.0.1:99999/v1"),
        [r#"providers.together.base_url: "http://127.0.0.1:99999/v1" has a port that is not a number in 1..=65535"#]
    );
    assert_eq!(
        base("http://my host/v1"),
        [r#"providers.together.base_url: "http://my host/v1" contains a space or a control character; a URL has none"#]
    );
    // A built-in strategy's parameters, at check time.
    assert_eq!(
        invalid(Recipe::from_toml(&TOML.replace("threshold = 0.6", "treshold = 0.5"))),
        [r#"layers[1].strategy.params: unknown parameter "treshold" (it takes threshold, max_answer_chars)"#]
    );
    assert_eq!(
        invalid(Recipe::from_toml(&TOML.replace("threshold = 0.6", "threshold = 1.5"))),
        ["layers[1].strategy.params: threshold must be a number in 0 ≤ t < 1"]
    );
    // Durations are bounded: huge ones are an error, not a panic (the wasm build aborts
    // on a panic) nor a browser timer that overflows and fires at once.
    assert_eq!(
        invalid(Recipe::from_toml(&TOML.replace("timeout_secs = 60", "timeout_secs = 1e20"))),
        ["policy.timeout_secs: 1e+20 must be a positive number of seconds, at most 604800 (a week)"]
    );
    let json =
        JSON.replace(r#""retries": 2"#, r#""retries": 2, "stall_timeout_secs": 1e300, "max_retry_after_secs": 1e12"#);
    assert_eq!(invalid(Recipe::from_json(&json)).len(), 2);
    // samples = 0: one message, not a second one about min_successes.
    assert_eq!(
        invalid(Recipe::from_toml(
            &TOML
                .replace("samples = 3", "samples = 0")
                .replace(r#"agents = ["together:Qwen/Qwen1.5-72B-Chat", { model"#, r#"agents = [{ model"#)
        )),
        ["layers[0].agents[0].samples: 0 is out of range 1..=64"]
    );
}

#[test]
fn type_errors_and_unknown_fields_carry_the_path() {
    let (path, message) = parse_error(Recipe::from_toml(&TOML.replace("temperature = 1.0", "temperature = \"hot\"")));
    assert_eq!(path, "layers[0].agents[1].temperature");
    assert!(message.contains("invalid type: string \"hot\", expected f64"), "{message}");

    let (path, message) = parse_error(Recipe::from_toml(&TOML.replace("max_tokens = 64", "max_tokns = 64")));
    assert_eq!(path, "layers[0].agents[1].max_tokns");
    assert!(message.contains("unknown field `max_tokns`"), "{message}");

    let (path, message) = parse_error(Recipe::from_json(
        &JSON.replace("\"openai\", \"base_url\": \"http://127", "\"opneai\", \"base_url\": \"http://127"),
    ));
    assert_eq!(path, "providers.local.kind");
    assert!(message.contains("unknown variant `opneai`, expected `openai` or `anthropic`"), "{message}");

    let (path, _) = parse_error(Recipe::from_toml("name = [broken"));
    assert_eq!(path, ".");
    let (path, message) = parse_error(Recipe::from_json("{}"));
    assert_eq!((path.as_str(), message.contains("missing field `providers`")), (".", true), "{message}");
}

#[test]
fn strategy_rules() {
    let first = TOML
        .replace("[[layers]]\nagents = [\"together:Qwen", "[[layers]]\nstrategy = \"vote\"\nagents = [\"together:Qwen");
    assert_eq!(
        invalid(Recipe::from_toml(&first)),
        [
            "layers[0].strategy: the first layer has no earlier proposals to aggregate; set strategies on later layers or the aggregator"
        ]
    );
    let both = TOML.replace("name = \"vote\"", "name = \"vote\", plugin = \"x.wasm\"");
    assert!(invalid(Recipe::from_toml(&both))[0].contains("not both"));
    let plugin = TOML.replace(
        "name = \"vote\", params",
        "plugin = \"rank.wasm\", on_error = \"synthesize\", timeout_ms = 200, params",
    );
    let r = Recipe::from_toml(&plugin).expect("valid");
    let spec = r.layers[1].strategy.as_ref().expect("strategy");
    assert_eq!((spec.plugin.as_deref(), spec.timeout_ms), (Some("rank.wasm"), Some(200)));
    let anthropic_hot = r#"{"providers": {"a": {"kind": "anthropic", "base_url": "https://api.anthropic.com/v1"}},
        "layers": [{"agents": [{"model": "a:claude", "temperature": 1.5}]}], "aggregator": "a:claude"}"#;
    assert_eq!(
        invalid(Recipe::from_json(anthropic_hot)),
        ["layers[0].agents[0].temperature: 1.5 is out of range 0..=1"]
    );
}

#[test]
fn the_synthesize_prompt_is_the_papers_byte_for_byte() {
    // tests/fixtures/reference_prompt.txt is the text of `inject_references_to_messages` in
    // togethercomputer/MoA (utils.py), copied as bytes.
    let fixture = include_str!("fixtures/reference_prompt.txt");
    assert_eq!(REFERENCE_PROMPT, fixture);
    let out = moa_core::strategy::inject_references(&[Message::user("q")], &["x", "y"]);
    assert_eq!(out[0].content, format!("{fixture}\n1. x\n2. y"));
}

#[test]
fn duplicate_keys_in_a_json_recipe_are_an_error_not_last_one_wins() {
    let json = r#"{"providers": {"together": {"kind": "openai", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY"},
                                 "together": {"kind": "openai", "base_url": "https://evil.example/v1", "api_key_env": "TOGETHER_API_KEY"}},
                   "layers": [{"agents": ["together:m"]}], "aggregator": "together:m"}"#;
    let (path, message) = parse_error(Recipe::from_json(json));
    // The path names the repeated key (JSON; TOML's parser names the table).
    assert_eq!(path, "providers.together");
    assert!(message.contains("duplicate key \"together\""), "{message}");
    let json = r#"{"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}}, "layers": [{"agents": ["p:m"]}],
                   "aggregator": "p:m", "aggregator": "p:other"}"#;
    let (path, message) = parse_error(Recipe::from_json(json));
    assert_eq!((path.as_str(), message.as_str()), ("aggregator", "duplicate key \"aggregator\""));
    // TOML's parser refuses a repeated key itself.
    assert!(Recipe::from_toml("aggregator = \"p:m\"\naggregator = \"p:other\"").is_err());
}
