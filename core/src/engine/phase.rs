//! Where a run is: answering a layer, asking a strategy's call or waiting for the
//! driver's decision between layers, or done.
//! What belongs to one phase lives in it, so it cannot outlive it.

use super::ErrorKind;
use super::Run;
use super::ask::Asking;
use super::deciding::{Deciding, DecisionId};
use super::report::Outcome;
use super::stair::Stair;

/// The run's phase.
pub(super) enum Phase {
    /// A layer's agents (the aggregator, for the last) are answering.
    Layer(LayerPhase),
    /// Between layers: the next layer's strategy asked for a call before it decides.
    Asking(Asking),
    /// Between layers: the driver runs the next layer's strategy (a plugin in the
    /// browser) and the run waits for its answer to this decision.
    Deciding(DecisionId, Deciding),
    /// Over, with its outcome.
    Done(Outcome),
}

/// What a layer keeps while it runs.
#[derive(Default)]
pub(super) struct LayerPhase {
    /// Its agents agreed (`early_exit`): the run ends with this answer.
    pub(super) agreed: Option<Agreement>,
    /// The aggregator's staircase: from the last proposer layer on, when the recipe has one.
    pub(super) stair: Option<Stair>,
    /// The aggregator broke off after delivering text that cannot be taken back.
    pub(super) broken: Option<Broken>,
}

/// Agreeing proposals: the answer, and why it ends the run.
pub(super) struct Agreement {
    pub(super) answer: String,
    pub(super) why: String,
}

/// An aggregator's answer that broke after some of it was delivered.
pub(super) struct Broken {
    pub(super) delivered_chars: usize,
    pub(super) error: String,
    pub(super) kind: ErrorKind,
}

impl Run {
    /// The current layer's state, while a layer runs.
    pub(super) fn layer_phase(&self) -> Option<&LayerPhase> {
        match &self.phase {
            Phase::Layer(l) => Some(l),
            _ => None,
        }
    }

    pub(super) fn layer_phase_mut(&mut self) -> Option<&mut LayerPhase> {
        match &mut self.phase {
            Phase::Layer(l) => Some(l),
            _ => None,
        }
    }

    /// The staircase, while it runs or holds the answer so far.
    pub(super) fn stair(&self) -> Option<&Stair> {
        self.layer_phase()?.stair.as_ref()
    }

    pub(super) fn stair_mut(&mut self) -> Option<&mut Stair> {
        self.layer_phase_mut()?.stair.as_mut()
    }

    /// The strategy's call under way, if the run is between layers.
    pub(super) fn asking(&self) -> Option<&Asking> {
        match &self.phase {
            Phase::Asking(a) => Some(a),
            _ => None,
        }
    }
}
