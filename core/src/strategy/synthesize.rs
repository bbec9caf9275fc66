//! The paper's aggregate-and-synthesize prompt.

use super::{Decision, Strategy, StrategyError, StrategyInput, StrategyKind, check_params};
use crate::message::{Message, Role};

/// The aggregate-and-synthesize system prompt of Wang et al. 2024, byte for byte as the
/// reference implementation (`inject_references_to_messages`) writes it; the numbered
/// references follow it.
pub const REFERENCE_PROMPT: &str = "You have been provided with a set of responses from various open-source models to the latest user query. Your task is to synthesize these responses into a single, high-quality response. It is crucial to critically evaluate the information provided in these responses, recognizing that some of it may be biased or incorrect. Your response should not simply replicate the given answers but should offer a refined, accurate, and comprehensive reply to the instruction. Ensure your response is well-structured, coherent, and adheres to the highest standards of accuracy and reliability.\n\nResponses from models:";

/// Adds the references to the conversation exactly as the reference implementation does:
/// the prompt, then `\n1. ...`, `\n2. ...`; appended after `\n\n` to an existing first
/// system message, or prepended as a new system message.
pub fn inject_references(messages: &[Message], references: &[&str]) -> Vec<Message> {
    let mut out = messages.to_vec();
    let mut system = REFERENCE_PROMPT.to_owned();
    for (i, r) in references.iter().enumerate() {
        system.push_str(&format!("\n{}. {r}", i + 1));
    }
    match out.first_mut() {
        Some(first) if first.role == Role::System => {
            first.content.push_str("\n\n");
            first.content.push_str(&system);
        }
        _ => out.insert(0, Message::system(system)),
    }
    out
}

/// The default strategy: every proposal, numbered, in the paper's prompt.
#[derive(Clone, Copy, Debug, Default)]
pub struct Synthesize;

impl Synthesize {
    /// Synthesize takes no parameters.
    pub fn from_params(params: &serde_json::Value) -> Result<Synthesize, StrategyError> {
        check_params(StrategyKind::Synthesize, params)?;
        Ok(Synthesize)
    }
}

impl Strategy for Synthesize {
    fn name(&self) -> &str {
        StrategyKind::Synthesize.name()
    }

    fn decide(&mut self, input: &StrategyInput<'_>) -> Result<Decision, StrategyError> {
        let refs: Vec<&str> = input.proposals.iter().map(|p| p.text.as_str()).collect();
        Ok(Decision::Messages(inject_references(input.conversation, &refs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_is_the_papers_text() {
        // Checked against togethercomputer/MoA utils.py; tests/fixtures pins every byte.
        assert!(REFERENCE_PROMPT.starts_with("You have been provided with a set of responses"));
        assert!(REFERENCE_PROMPT.ends_with("reliability.\n\nResponses from models:"));
        assert_eq!(REFERENCE_PROMPT.len(), 606);
    }

    #[test]
    fn prepends_a_system_message_when_there_is_none() {
        let out = inject_references(&[Message::user("q")], &["a", "b"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].content, format!("{REFERENCE_PROMPT}\n1. a\n2. b"));
        assert_eq!(out[1], Message::user("q"));
    }

    #[test]
    fn appends_to_an_existing_system_message() {
        let out = inject_references(&[Message::system("Be brief."), Message::user("q")], &["a"]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].content, format!("Be brief.\n\n{REFERENCE_PROMPT}\n1. a"));
    }
}
