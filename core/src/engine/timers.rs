//! The run's timers: each attempt's total and stall deadlines, retries waiting out their
//! delay, answered calls draining, and a layer's quorum grace.

use super::attempt::{Flight, SlotState};
use super::{Action, CallError, Run, secs};
use crate::event::CallId;
use crate::time::Time;

impl Run {
    /// The deadline of an attempt: its total timeout or its stall limit, whichever
    /// comes first; none while it waits in a transport's queue.
    pub(super) fn flight_deadline(&self, f: &Flight) -> Option<Time> {
        let policy = &self.recipe.policy;
        f.clocks_running
            .then(|| (f.started + secs(policy.timeout_secs)).min(f.last_byte + secs(policy.stall_timeout_secs)))
    }

    pub(super) fn check_timers(&mut self) {
        let policy = &self.recipe.policy;
        let (timeout, stall) = (policy.timeout_secs, policy.stall_timeout_secs);
        for i in 0..self.slots.len() {
            let SlotState::InFlight(f) = &self.slots[i].state else { continue };
            if !f.clocks_running {
                continue;
            }
            let error = if self.now >= f.started + secs(timeout) {
                CallError::Timeout(timeout)
            } else if self.now >= f.last_byte + secs(stall) {
                CallError::Stalled(stall)
            } else {
                continue;
            };
            self.fail_attempt(i, error, None, true);
        }
        let now = self.now;
        let expired: Vec<CallId> = self.draining.iter().filter(|(_, t, _)| *t <= now).map(|(c, _, _)| *c).collect();
        for call in expired {
            self.end_drain(call);
            self.queue.push_back(Action::Cancel { call });
        }
    }

    pub(super) fn next_deadline(&self) -> Option<Time> {
        let calls = self.slots.iter().filter_map(|s| match &s.state {
            SlotState::InFlight(f) => self.flight_deadline(f),
            SlotState::Queued { not_before } if *not_before > self.now => Some(*not_before),
            _ => None,
        });
        calls
            .chain(self.draining.iter().map(|(_, t, _)| *t))
            .chain(self.layer_phase().and_then(|l| l.quorum_at).filter(|t| *t > self.now))
            .min()
    }
}
