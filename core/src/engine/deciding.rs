//! Decisions the driver makes for the engine: a strategy it runs itself (a plugin in
//! the browser's Worker) is asked through [`Action::Decide`], and between layers the run
//! waits in [`Phase::Deciding`] until [`Input::Decided`] brings the answer. The driver
//! enforces the plugin's deadline, memory and output caps; the engine checks what comes
//! back exactly as it checks a native plugin's reply.

use super::phase::{LayerPhase, Phase};
use super::{Action, Run};
use crate::strategy::plugin::PluginRequest;
use crate::strategy::{Proposal, StrategyError};

/// The phase between layers while the driver runs a strategy's decision.
pub(super) struct Deciding {
    /// The layer the decision feeds.
    pub(super) next: usize,
    /// The proposals it decides on.
    pub(super) proposals: Vec<Proposal>,
    /// The reply to the decision's last ask, if it asked.
    pub(super) reply: Option<Result<String, String>>,
    /// Calls asked for in this decision.
    pub(super) asks: usize,
}

/// Which decision the driver answers (a run asks for one at a time; the id keeps a late
/// answer to an earlier one from being taken for the current one).
pub type DecisionId = u64;

impl Run {
    /// Asks the driver to run `request`, and waits.
    pub(super) fn await_decision(&mut self, request: PluginRequest, deciding: Deciding) {
        self.next_decision += 1;
        let decision = self.next_decision;
        self.phase = Phase::Deciding(decision, deciding);
        self.queue.push_back(Action::Decide { decision, request });
    }

    /// The driver's answer to decision `id`: the plugin's reply in the wire format, or
    /// why running it failed (its deadline, its memory or output cap, a trap).
    pub(super) fn on_decided(&mut self, id: DecisionId, answer: Result<&str, &str>) {
        if !matches!(self.phase, Phase::Deciding(d, _) if d == id) {
            return;
        }
        let Phase::Deciding(_, deciding) = std::mem::replace(&mut self.phase, Phase::Layer(LayerPhase::default()))
        else {
            return;
        };
        let conversation = self.conversation.clone();
        let Deciding { next, proposals, reply, asks } = deciding;
        let input = self.strategy_input(&conversation, next, &proposals, reply.as_ref());
        let strategy = &mut self.deciders[next - 1].strategy;
        let name = strategy.name().to_owned();
        let decided = match strategy.external() {
            Some(external) => external.answer(answer, &input),
            None => Err("the engine asked the driver for a built-in strategy's decision".into()),
        };
        let decided = decided.map_err(|message| StrategyError { strategy: name, message });
        self.carry_out(&input, decided, asks);
    }
}
