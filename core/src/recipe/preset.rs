//! Built-in recipes: the paper's MoA and MoA-Lite, Self-MoA, SMoA, Self-MoA-Seq, and
//! local llama.cpp setups.

use super::Named;
use super::{Agent, Aggregator, Layer, Policy, Provider, Quorum, Recipe, Staircase, StrategySpec};
use crate::vocab::tools::ToolPolicy;
use crate::vocab::{ProviderKind, StrategyKind};

/// Names and one-line descriptions of the presets.
pub static PRESETS: [(&str, &str); 12] = [
    ("moa", "The paper's MoA: six open models in two layers, Qwen1.5-110B-Chat aggregates (13 calls, Together)"),
    ("moa-lite", "The paper's MoA-Lite: one layer of the six, Qwen1.5-72B-Chat aggregates (7 calls, Together)"),
    ("self-moa", "Self-MoA: one strong model sampled 6 times, then aggregated by itself (7 calls, Together)"),
    (
        "local",
        "The local models (moa local): Qwen2.5-Coder-1.5B sampled 3 times; a majority of final answers decides, else it synthesizes (Self-MoA vote, chosen by moa eval: evals/RESULTS.md)",
    ),
    (
        "local-quality",
        "The local models when time does not matter: Qwen2.5-Coder-1.5B sampled 5 times; a majority decides, else it synthesizes (slower)",
    ),
    (
        "local-smollm",
        "The smallest local model, SmolLM2-135M, at three temperatures; a majority answers, else it synthesizes (seconds on any machine, weak answers)",
    ),
    (
        "moa-fast",
        "The paper's MoA with quorum layers (4 of 6 answers, 500 ms grace for the rest) and a staircase aggregator (it starts on the last layer's first chunks)",
    ),
    ("local-fast", "The local recipe with a quorum of 2 (300 ms grace) that ends the run at once when those 2 agree"),
    (
        "smoa",
        "SMoA: the paper's six models in three layers; before each later layer and the aggregator a judge (Qwen1.5-110B-Chat) keeps the 2 best answers and may end the debate (up to 22 calls, Together)",
    ),
    (
        "self-moa-seq",
        "Self-MoA-Seq: one strong model sampled 20 times, aggregated by itself in windows of 6, the synthesis carried forward (24 calls, Together)",
    ),
    (
        "local-smoa",
        "SMoA on the local SmolLM2: three temperatures, twice; a judge keeps the 2 best before the second layer and the aggregator (9 calls)",
    ),
    (
        "local-seq",
        "Self-MoA-Seq on the local SmolLM2: 8 samples aggregated in windows of 3 within its 2,048-token window (12 calls)",
    ),
];

/// The six proposers of Wang et al. 2024, as Together serves them.
pub const PAPER_PROPOSERS: [&str; 6] = [
    "Qwen/Qwen1.5-110B-Chat",
    "Qwen/Qwen1.5-72B-Chat",
    "microsoft/WizardLM-2-8x22B",
    "meta-llama/Llama-3-70b-chat-hf",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "databricks/dbrx-instruct",
];

/// Port of the local SmolLM2 server (`moa local start smollm`).
pub const LOCAL_SMOLLM_PORT: u16 = 8081;
/// Port of the local Qwen2.5-Coder-1.5B server (`moa local start qwen-1.5b`).
pub const LOCAL_QWEN15_PORT: u16 = 8083;

/// The preset called `name`, if there is one.
pub fn preset(name: &str) -> Option<Recipe> {
    let recipe = match name {
        "moa" => {
            let layer = paper_layer();
            together(name, vec![layer.clone(), layer], "Qwen/Qwen1.5-110B-Chat")
        }
        "moa-lite" => together(name, vec![paper_layer()], "Qwen/Qwen1.5-72B-Chat"),
        "self-moa" => {
            let model = "together:microsoft/WizardLM-2-8x22B";
            let layer = Layer::new(vec![Agent { samples: 6, ..Agent::new(model) }]);
            together(name, vec![layer], "microsoft/WizardLM-2-8x22B")
        }
        "local" => local(),
        "local-quality" => {
            let mut r = local();
            r.name = name.into();
            r.description = description(name);
            r.layers[0].agents[0].samples = 5;
            r
        }
        "local-smollm" => local_smollm(),
        "moa-fast" => {
            let layer = paper_layer();
            let mut r = together(name, vec![layer.clone(), layer], "Qwen/Qwen1.5-110B-Chat");
            r.policy.quorum = Some(Quorum { min: 4, grace_ms: 500 });
            r.aggregator.staircase = Some(Staircase::default());
            r
        }
        "local-fast" => {
            let mut r = local();
            r.name = name.into();
            r.description = description(name);
            r.layers[0].quorum = Some(Quorum { min: 2, grace_ms: 300 });
            r.layers[0].early_exit = true;
            r
        }
        "smoa" => {
            let layer = paper_layer();
            let mut r = together(name, vec![layer.clone(), layer.clone(), layer], "Qwen/Qwen1.5-110B-Chat");
            for l in &mut r.layers[1..] {
                l.strategy = Some(StrategySpec::builtin(StrategyKind::Select));
            }
            r.aggregator.strategy = Some(StrategySpec::builtin(StrategyKind::Select));
            r
        }
        "self-moa-seq" => {
            let model = "together:microsoft/WizardLM-2-8x22B";
            let layer = Layer::new(vec![Agent { samples: 20, ..Agent::new(model) }]);
            let mut r = together(name, vec![layer], "microsoft/WizardLM-2-8x22B");
            r.aggregator.strategy = Some(sequential(6));
            r
        }
        "local-smoa" => {
            let mut r = local_smollm();
            r.name = name.into();
            r.description = description(name);
            r.layers.push(r.layers[0].clone());
            r.layers[1].strategy = Some(StrategySpec::builtin(StrategyKind::Select));
            r.aggregator.strategy = Some(StrategySpec::builtin(StrategyKind::Select));
            r
        }
        "local-seq" => {
            let mut r = local_smollm();
            r.name = name.into();
            r.description = description(name);
            let sample = Agent { samples: 8, temperature: Some(0.7), ..Agent::new("smollm:SmolLM2-135M-Instruct") };
            r.layers = vec![Layer::new(vec![sample])];
            r.aggregator.strategy = Some(sequential(3));
            r
        }
        _ => return None,
    };
    Some(recipe)
}

fn sequential(window: u32) -> StrategySpec {
    StrategySpec { params: serde_json::json!({ "window": window }), ..StrategySpec::builtin(StrategyKind::Sequential) }
}

fn paper_layer() -> Layer {
    Layer::new(PAPER_PROPOSERS.iter().map(|m| Agent::new(&format!("together:{m}"))).collect())
}

fn description(name: &str) -> String {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, d)| d.to_string()).unwrap_or_default()
}

fn together(name: &str, layers: Vec<Layer>, aggregator: &str) -> Recipe {
    let providers = Named::from([(
        "together".to_owned(),
        Provider {
            kind: ProviderKind::OpenAi,
            base_url: "https://api.together.xyz/v1".into(),
            api_key_env: Some("TOGETHER_API_KEY".into()),
            max_concurrency: None,
            context_tokens: None,
            tools: true,
        },
    )]);
    Recipe {
        name: name.into(),
        description: description(name),
        providers,
        temperature: None,
        max_tokens: None,
        layers,
        aggregator: Aggregator::new(&format!("together:{aggregator}")),
        policy: Policy::default(),
        prices: Named::new(),
        tool_policy: ToolPolicy::default(),
    }
}

/// The smallest local preset: SmolLM2 at three temperatures with `vote`, the best of the
/// SmolLM2 mixtures `moa eval` measured (evals/RESULTS.md, 2026-11): seconds a run, for
/// tests and slow machines, but a 135M model's answers.
fn local_smollm() -> Recipe {
    let providers = Named::from([(
        "smollm".to_owned(),
        Provider {
            kind: ProviderKind::OpenAi,
            base_url: format!("http://127.0.0.1:{LOCAL_SMOLLM_PORT}/v1"),
            api_key_env: None,
            // Matches `llama-server -np 4`: more would only queue inside the server.
            max_concurrency: Some(4),
            // `-c 8192` shared by the 4 slots: 2,048 tokens each.
            context_tokens: Some(2048),
            tools: false,
        },
    )]);
    let at = |t: f64| Agent {
        name: Some(format!("smollm-t{}", crate::float::Shortest(t))),
        temperature: Some(t),
        ..Agent::new("smollm:SmolLM2-135M-Instruct")
    };
    let layer = Layer::new(vec![at(0.2), at(0.7), at(1.0)]);
    Recipe {
        name: "local-smollm".into(),
        description: description("local-smollm"),
        providers,
        temperature: None,
        // Small models on a CPU: keep answers short so a run takes seconds.
        max_tokens: Some(256),
        layers: vec![layer],
        aggregator: Aggregator {
            strategy: Some(StrategySpec::builtin(StrategyKind::Vote)),
            ..Aggregator::new("smollm:SmolLM2-135M-Instruct")
        },
        policy: Policy { timeout_secs: 300.0, ..Policy::default() },
        prices: Named::new(),
        tool_policy: ToolPolicy::default(),
    }
}

/// A local llama.cpp server's provider (`moa local`): four slots (`max_concurrency`, more
/// would only queue inside the server) sharing the server's context. Tools go as text
/// (`tools = false`): the local models write a call as JSON in their answer, which
/// llama-server does not read as one (measured: Qwen2.5-Coder 1.5B answers a tool request
/// with a fenced `{"name", "arguments"}` object); moa reads it.
fn local_provider(port: u16, context_tokens: u32) -> Provider {
    Provider {
        kind: ProviderKind::OpenAi,
        base_url: format!("http://127.0.0.1:{port}/v1"),
        api_key_env: None,
        max_concurrency: Some(4),
        context_tokens: Some(context_tokens),
        tools: false,
    }
}

/// The `local` preset, chosen by `moa eval` on the local models (evals/RESULTS.md): see
/// its description and evals/RESULTS.md for what it beat and its latency on 2 cores.
fn local() -> Recipe {
    let providers = Named::from([("qwen15".to_owned(), local_provider(LOCAL_QWEN15_PORT, 4096))]);
    let sampled = Agent { samples: 3, temperature: Some(0.7), ..Agent::new("qwen15:Qwen2.5-Coder-1.5B-Instruct") };
    Recipe {
        name: "local".into(),
        description: description("local"),
        providers,
        temperature: None,
        // A small model on one CPU thread: enough room to reason, a bounded wait.
        max_tokens: Some(320),
        layers: vec![Layer::new(vec![sampled])],
        aggregator: Aggregator {
            temperature: Some(0.0),
            strategy: Some(StrategySpec::builtin(StrategyKind::Vote)),
            ..Aggregator::new("qwen15:Qwen2.5-Coder-1.5B-Instruct")
        },
        policy: Policy { timeout_secs: 600.0, ..Policy::default() },
        prices: Named::new(),
        tool_policy: ToolPolicy::default(),
    }
}
