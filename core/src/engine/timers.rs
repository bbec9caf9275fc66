//! The run's timers as one table keyed by what each one is for, after quinn-proto's
//! `TimerTable`: the engine arms and stops them as calls start, stream, retry, drain and
//! layers reach their quorum, and asks the table for the next deadline and for what has
//! expired.

use super::attempt::{SlotId, SlotState};
use super::{Action, CallError, Run, secs};
use crate::event::CallId;
use crate::time::Time;

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A call's whole answer is due (`policy.timeout_secs` after it was sent).
    Attempt(CallId),
    /// A call's next byte is due (`policy.stall_timeout_secs` after its last).
    Stall(CallId),
    /// A slot's retry may start (its backoff, or the provider's `Retry-After`).
    Retry(SlotId),
    /// An answered call's connection must have ended by now, or it is cancelled.
    Drain(CallId),
    /// The layer's stragglers have had their grace since its quorum was met.
    QuorumGrace,
}

/// The armed timers. A list: a run has a few dozen at most, and a map type costs the
/// browser module.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    armed: Vec<(Timer, Time)>,
}

impl TimerTable {
    /// Arms `timer` for `at`, replacing its deadline if it was armed.
    pub(super) fn set(&mut self, timer: Timer, at: Time) {
        match self.armed.iter_mut().find(|(t, _)| *t == timer) {
            Some(entry) => entry.1 = at,
            None => self.armed.push((timer, at)),
        }
    }

    /// Disarms `timer`, if it was armed.
    pub(super) fn stop(&mut self, timer: Timer) {
        self.armed.retain(|(t, _)| *t != timer);
    }

    /// When `timer` fires, if it is armed.
    pub(super) fn get(&self, timer: Timer) -> Option<Time> {
        self.armed.iter().find(|(t, _)| *t == timer).map(|(_, at)| *at)
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Time> {
        self.armed.iter().map(|(_, at)| *at).min()
    }

    /// Disarms and returns the first timer due by `now`: the earliest, and among equal
    /// deadlines the first in `Timer`'s order (a call's total deadline before its stall),
    /// so expiry is the same whatever order the timers were armed in.
    pub(super) fn pop_expired(&mut self, now: Time) -> Option<Timer> {
        let (i, _) = self
            .armed
            .iter()
            .enumerate()
            .filter(|(_, (_, at))| *at <= now)
            .min_by_key(|(_, (timer, at))| (*at, *timer))?;
        Some(self.armed.swap_remove(i).0)
    }

    /// Disarms every timer of the current layer's slots and quorum; calls still draining
    /// keep theirs (their connections outlive the layer).
    pub(super) fn new_layer(&mut self) {
        self.armed.retain(|(t, _)| matches!(t, Timer::Drain(_)));
    }
}

impl Run {
    /// Starts a call's clocks: its whole answer and its next byte are due from now.
    pub(super) fn arm_call(&mut self, call: CallId) {
        let policy = &self.recipe.policy;
        let (timeout, stall) = (secs(policy.timeout_secs), secs(policy.stall_timeout_secs));
        self.timers.set(Timer::Attempt(call), self.now + timeout);
        self.timers.set(Timer::Stall(call), self.now + stall);
    }

    /// A byte of `call` arrived: its next one is due a stall limit from now.
    pub(super) fn touch_call(&mut self, call: CallId) {
        if self.timers.get(Timer::Stall(call)).is_some() {
            self.timers.set(Timer::Stall(call), self.now + secs(self.recipe.policy.stall_timeout_secs));
        }
    }

    /// Acts on every timer due by now, earliest first.
    pub(super) fn check_timers(&mut self) {
        while let Some(timer) = self.timers.pop_expired(self.now) {
            match timer {
                Timer::Attempt(call) | Timer::Stall(call) => {
                    let Some(i) = self.slot_of(call) else { continue };
                    let policy = &self.recipe.policy;
                    let error = match timer {
                        Timer::Attempt(_) => CallError::Timeout(policy.timeout_secs),
                        _ => CallError::Stalled(policy.stall_timeout_secs),
                    };
                    self.fail_attempt(i, error, None, true);
                }
                Timer::Retry(i) => {
                    let slot = match i {
                        SlotId::Agent(i) => self.slots.agents.get_mut(i),
                        SlotId::Stair => self.slots.stair.as_mut(),
                    };
                    if let Some(slot) = slot
                        && matches!(slot.state, SlotState::Waiting)
                    {
                        slot.state = SlotState::Queued;
                    }
                }
                Timer::Drain(call) => {
                    self.end_drain(call);
                    self.queue.push_back(Action::Cancel { call });
                }
                Timer::QuorumGrace => self.stop_open(CallError::Cut("the layer had its quorum")),
            }
        }
    }

    /// When the driver must come back if nothing arrives before.
    pub(super) fn next_deadline(&self) -> Option<Time> {
        self.timers.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    #[test]
    fn the_next_deadline_is_the_earliest_and_a_timer_set_again_moves() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Stall(CallId(1)), at(500));
        t.set(Timer::Attempt(CallId(1)), at(900));
        t.set(Timer::QuorumGrace, at(700));
        assert_eq!(t.next(), Some(at(500)));
        t.set(Timer::Stall(CallId(1)), at(800));
        assert_eq!((t.next(), t.get(Timer::Stall(CallId(1)))), (Some(at(700)), Some(at(800))));
        t.stop(Timer::QuorumGrace);
        t.stop(Timer::QuorumGrace);
        assert_eq!(t.next(), Some(at(800)));
    }

    #[test]
    fn expired_timers_come_earliest_first_then_in_timer_order_whatever_the_arming_order() {
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let timers = [
                (Timer::Drain(CallId(4)), at(100)),
                (Timer::Stall(CallId(2)), at(200)),
                (Timer::Attempt(CallId(2)), at(200)),
                (Timer::Retry(SlotId::Agent(0)), at(300)),
            ];
            let mut t = TimerTable::default();
            for i in order {
                t.set(timers[i].0, timers[i].1);
            }
            let mut fired = Vec::new();
            while let Some(timer) = t.pop_expired(at(250)) {
                fired.push(timer);
            }
            assert_eq!(fired, [Timer::Drain(CallId(4)), Timer::Attempt(CallId(2)), Timer::Stall(CallId(2))]);
            assert_eq!(t.next(), Some(at(300)), "not yet due, still armed");
        }
    }

    #[test]
    fn a_new_layer_keeps_only_the_drains() {
        let mut t = TimerTable::default();
        t.set(Timer::Retry(SlotId::Agent(3)), at(1));
        t.set(Timer::QuorumGrace, at(2));
        t.set(Timer::Drain(CallId(9)), at(3));
        t.new_layer();
        assert_eq!(t.pop_expired(at(10)), Some(Timer::Drain(CallId(9))));
        assert_eq!(t.pop_expired(at(10)), None);
    }
}
