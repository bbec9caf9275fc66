//! Its own prompt template: asks the next agents to critique each proposal first, then
//! answer. Params: `style` (a sentence appended to the instructions; optional).

wit_bindgen::generate!({ path: "../../../wit/v0.1.0", world: "plugin" });

use exports::moa::strategy::strategy::Guest;
use moa::strategy::types::{Context, Decision, Info, Message, Role};

struct Critique;

const TEMPLATE: &str = "Below are candidate answers to the user's latest message. First, critique each one briefly: what is right, what is wrong or missing. Then write the best possible answer, using what is right and fixing what is wrong. Put the final answer after a line that says \"Answer:\".";

impl Guest for Critique {
    fn describe() -> Info {
        Info {
            name: "critique".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Critique-then-answer: its own prompt instead of the paper's.".into(),
            params: r#"{"style": "an extra instruction, e.g. \"Be concise.\""}"#.into(),
        }
    }

    fn decide(ctx: Context) -> Result<Decision, String> {
        let params: serde_json::Value = serde_json::from_str(&ctx.params).map_err(|e| format!("params: {e}"))?;
        let mut system = TEMPLATE.to_owned();
        if let Some(style) = params.get("style").and_then(|s| s.as_str()) {
            system.push(' ');
            system.push_str(style);
        }
        for (i, p) in ctx.proposals.iter().enumerate() {
            system.push_str(&format!("\n\n[Candidate {}]\n{}", i + 1, p.text));
        }
        let mut messages = ctx.conversation;
        match messages.first_mut() {
            Some(first) if first.role == Role::System => {
                first.content = format!("{}\n\n{system}", first.content);
            }
            _ => messages.insert(0, Message { role: Role::System, content: system }),
        }
        Ok(Decision::Messages(messages))
    }
}

export!(Critique);
