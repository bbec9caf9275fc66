//! Staircase streaming (arXiv 2510.05059): the aggregator starts on the last proposer
//! layer's first chunks instead of waiting for the whole layer.
//!
//! While the last proposer layer runs, its agents have the aggregator's stair slot beside
//! them. Each time every live proposer has streamed another chunk (or finished), the stair
//! slot makes a step: a call with the paper's prompt over the proposals so far, the answer
//! so far carried forward, at most the step's tokens long ([`Schedule`]: each chunk and
//! step `growth` times the one before). Its text goes to the user
//! as it streams, as the aggregator's (layer = the aggregator's, slot 0), and is only ever
//! appended to: a step that fails keeps what it delivered, and is not retried (the next
//! step, or the final call, continues from it). When the layer ends, the aggregator's
//! usual call writes the rest from the whole proposals, continuing the same answer.

use super::attempt::{Flight, Slot, SlotId, SlotState};
use super::{CallError, CallReport, Event, Place, Run};
use crate::message::{Message, Role};
use crate::provider::ProviderKind;
use crate::recipe::Staircase;
use crate::strategy::inject_references;
use crate::time::millis;
use crate::usage::{Usage, add_cost};

/// The staircase's state over the last proposer layer and the aggregator.
pub(super) struct Stair {
    /// When the next step starts, and how much it may write.
    pub(super) schedule: Schedule,
    /// The aggregator's `max_tokens`: what all steps together may write, counted in the
    /// output tokens the provider reports (a provider that reports none caps each step,
    /// not their sum).
    pub(super) budget: u32,
    /// Everything the steps delivered, in order.
    pub(super) answer: String,
    /// Each step's account, for the aggregator's layer report.
    pub(super) reports: Vec<CallReport>,
    pub(super) usage: Usage,
    pub(super) wasted: Usage,
    pub(super) cost: Option<f64>,
}

/// When each step starts and how much it may write: the k-th step (from 0) starts once
/// every live proposer has streamed `chunk_chars × (1 + g + … + gᵏ)` characters (or
/// finished) and writes at most `step_tokens × gᵏ` tokens, `g` being the growth. It
/// saturates: a schedule past any length only never steps again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Schedule {
    /// Characters each live proposer needs for the next step.
    due: usize,
    /// The next chunk's characters.
    chunk: usize,
    /// The next step's most tokens.
    tokens: u32,
    growth: u32,
}

impl Schedule {
    pub(super) fn new(st: Staircase) -> Schedule {
        let chunk = st.chunk_chars as usize;
        Schedule { due: chunk, chunk, tokens: st.step_tokens, growth: st.growth.max(1) }
    }

    /// Characters every live proposer needs before the next step.
    pub(super) fn due(&self) -> usize {
        self.due
    }

    /// The most tokens the next step may write.
    pub(super) fn tokens(&self) -> u32 {
        self.tokens
    }

    /// On to the step after the next.
    pub(super) fn advance(&mut self) {
        self.chunk = self.chunk.saturating_mul(self.growth as usize);
        self.due = self.due.saturating_add(self.chunk);
        self.tokens = self.tokens.saturating_mul(self.growth);
    }
}

/// Adds the answer so far to an aggregator's messages: as a true assistant prefix where
/// the provider continues one (Anthropic), else as an instruction to continue it.
pub(super) fn continue_from(messages: &mut Vec<Message>, answer: &str, kind: ProviderKind) {
    if kind == ProviderKind::Anthropic {
        // Anthropic refuses a prefix that ends in whitespace.
        messages.push(Message::assistant(answer.trim_end()));
        return;
    }
    let note = format!(
        "\n\nYou have already written the beginning of your response; it follows \"Your response so far:\" \
         below. Continue it from exactly where it stops: do not repeat any of it and do not start over.\
         \n\nYour response so far:\n{answer}"
    );
    match messages.first_mut() {
        Some(first) if first.role == Role::System => first.content.push_str(&note),
        _ => messages.insert(0, Message::system(note.trim_start())),
    }
}

impl Run {
    /// Where events of slot `i` say they happen: the stair slot's are the aggregator's, a
    /// strategy's call is the judged layer's next one.
    pub(super) fn place_of(&self, i: SlotId) -> (usize, usize) {
        match (self.asking(), i) {
            (Some(a), _) => (self.layer, a.slot),
            (None, SlotId::Stair) => (self.recipe.layers.len(), 0),
            (None, SlotId::Agent(i)) => (self.layer, i),
        }
    }

    /// Adds the stair slot when the last proposer layer begins and the recipe asks for a
    /// staircase.
    pub(super) fn stair_begin(&mut self) {
        let Some(st) = self.recipe.aggregator.staircase else { return };
        // An answer that is checked before it is delivered cannot be started early.
        if self.toolbox.any() {
            return;
        }
        if self.layer + 1 != self.recipe.layers.len() {
            return;
        }
        let agent = self.recipe.aggregator_agent();
        let budget = agent.max_tokens;
        let kind = self.recipe.providers[&agent.provider].kind;
        let mut slot = Slot::new(agent, kind);
        // Idle until its first step.
        slot.state = SlotState::Succeeded;
        self.slots.stair = Some(slot);
        let Some(phase) = self.layer_phase_mut() else { return };
        phase.stair = Some(Stair {
            schedule: Schedule::new(st),
            budget,
            answer: String::new(),
            reports: Vec::new(),
            usage: Usage::default(),
            wasted: Usage::default(),
            cost: None,
        });
    }

    /// Starts the next step when every live proposer has streamed another chunk, and some
    /// are still going (when all have finished, the aggregator's own call writes the rest).
    pub(super) fn stair_check(&mut self) {
        let Some(stair) = self.stair() else { return };
        let Some(slot) = &self.slots.stair else { return };
        if !matches!(slot.state, SlotState::Succeeded) {
            return; // a step is under way
        }
        let agents = &self.slots.agents;
        let live: Vec<&Slot> = agents.iter().filter(|s| !matches!(s.state, SlotState::Failed)).collect();
        let done = |s: &&Slot| matches!(s.state, SlotState::Succeeded);
        if live.is_empty() || live.iter().all(done) {
            return;
        }
        let need = stair.schedule.due();
        if !live.iter().all(|s| done(s) || s.text.chars().count() >= need) {
            return;
        }
        // No step writes past the aggregator's max_tokens (by the reported tokens): what is
        // left is the last call's.
        let written = u32::try_from(stair.usage.output_tokens).unwrap_or(u32::MAX);
        let tokens = stair.schedule.tokens().min(stair.budget.saturating_sub(written));
        if tokens == 0 {
            return;
        }
        let refs: Vec<&str> = live.iter().map(|s| s.text.trim()).collect();
        let mut messages = inject_references(&self.conversation, &refs);
        if !stair.answer.is_empty() {
            continue_from(&mut messages, &stair.answer, slot.kind);
        }
        if let Some(s) = self.stair_mut() {
            s.schedule.advance();
        }
        // Each step is a first attempt: a step is not a retry.
        self.slots[SlotId::Stair].attempts = 0;
        self.slots[SlotId::Stair].agent.max_tokens = tokens;
        self.start_with(SlotId::Stair, messages);
    }

    /// A step ended well: its text joins the answer, its account the aggregator's books.
    pub(super) fn stair_step_done(&mut self, flight: &Flight) {
        let s = &self.slots[SlotId::Stair];
        let (usage, ttft, server_ms) = (s.usage, s.ttft.map(millis), s.server_ms);
        self.stair_book(flight, Ok(()), usage, ttft, server_ms);
    }

    /// A step failed: what it delivered stays delivered (and in the answer); it is not
    /// retried: the next step, or the final call, continues from it.
    pub(super) fn stair_step_failed(&mut self, error: CallError, cancel: bool) {
        let Some(flight) = self.end_flight(SlotId::Stair, SlotState::Succeeded) else { return };
        if cancel {
            self.queue.push_back(super::Action::Cancel { call: flight.call });
        }
        let message = self.redactor.redact(&error.to_string());
        let s = &self.slots[SlotId::Stair];
        let usage = s.failed_usage(&flight);
        let event = Event::CallFailed {
            at: Place { call: flight.call, layer: self.recipe.layers.len(), slot: 0 },
            agent: s.agent.label.clone(),
            error: message.clone(),
            kind: error.kind(),
            will_retry: false,
            retry_in_ms: None,
            // Delivered text is the user's: nothing is taken back.
            discarded_chars: 0,
            usage,
            cost: self.price(&s.agent, Some(usage)),
            t_ms: self.t_ms(),
        };
        self.stair_book(&flight, Err(message), Some(usage), None, None);
        self.emit(event);
    }

    /// Books a step that ended (`Err` with its error when it broke): its text joins the
    /// answer, its account the aggregator's books.
    fn stair_book(
        &mut self,
        flight: &Flight,
        result: Result<(), String>,
        usage: Option<Usage>,
        ttft_ms: Option<f64>,
        server_ms: Option<f64>,
    ) {
        let s = &self.slots[SlotId::Stair];
        let cost = self.price(&s.agent, usage);
        let ok = result.is_ok();
        // A step that broke counts as waste, as any failed call does; what it delivered
        // stays in the answer all the same.
        let wasted = if ok { Usage::default() } else { usage.unwrap_or_default() };
        let report = CallReport {
            slot: 0,
            agent: s.agent.label.clone(),
            provider: s.agent.provider.clone(),
            model: s.agent.model.clone(),
            ok,
            text: s.text.clone(),
            errors: result.err().into_iter().collect(),
            attempts: 1,
            usage: if ok { usage } else { None },
            cost,
            wasted,
            latency_ms: Some(millis(self.now.since(flight.started))),
            ttft_ms,
            started_ms: Some(millis(flight.started.since(self.started))),
            server_ms,
            asked: false,
        };
        let text = s.text.clone();
        if let Some(stair) = self.stair_mut() {
            stair.answer.push_str(&text);
            stair.usage += usage.unwrap_or_default();
            stair.wasted += wasted;
            add_cost(&mut stair.cost, cost);
            stair.reports.push(report);
        }
    }

    /// A run that ends before its aggregator's layer (cancelled, or too few proposals)
    /// still books the steps the staircase made, as the aggregator's layer.
    pub(super) fn stair_close_books(&mut self) {
        let Some(stair) = self.layer_phase_mut().and_then(|l| l.stair.take()) else { return };
        if stair.reports.is_empty() {
            return;
        }
        let report = super::LayerReport {
            layer: self.recipe.layers.len(),
            aggregator: true,
            calls: stair.reports,
            usage: stair.usage,
            cost: stair.cost,
            wasted: stair.wasted,
        };
        self.usage += report.usage;
        self.wasted += report.wasted;
        add_cost(&mut self.cost, report.cost);
        self.reports.push(report);
    }
}

#[cfg(test)]
mod tests {
    use super::Schedule;
    use crate::recipe::Staircase;

    fn steps(st: Staircase, n: usize) -> Vec<(usize, u32)> {
        let mut s = Schedule::new(st);
        (0..n)
            .map(|_| {
                let step = (s.due(), s.tokens());
                s.advance();
                step
            })
            .collect()
    }

    #[test]
    fn the_default_schedule_starts_small_and_grows_eightfold() {
        assert_eq!(steps(Staircase::default(), 3), [(48, 32), (432, 256), (3504, 2048)]);
    }

    #[test]
    fn growth_one_keeps_every_chunk_and_step_the_same() {
        let st = Staircase { chunk_chars: 100, step_tokens: 24, growth: 1 };
        assert_eq!(steps(st, 3), [(100, 24), (200, 24), (300, 24)]);
    }

    #[test]
    fn a_schedule_past_any_length_saturates_instead_of_overflowing() {
        let st = Staircase { chunk_chars: u32::MAX, step_tokens: u32::MAX, growth: 16 };
        let last = *steps(st, 40).last().expect("steps");
        assert_eq!(last, (usize::MAX, u32::MAX));
    }
}
