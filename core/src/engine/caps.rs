//! The concurrency caps: calls on the wire per provider, against each provider's
//! `max_concurrency` and the run's `policy.max_concurrency`.

use crate::named::Named;

/// Calls holding a provider's slot: in flight, or answered and still draining their body.
#[derive(Debug, Default)]
pub(super) struct Caps {
    busy: Named<u32>,
}

impl Caps {
    /// Whether one more call to `provider` fits under its cap and the run's.
    pub(super) fn has_room(&self, provider: &str, provider_cap: Option<u32>, run_cap: Option<u32>) -> bool {
        let busy = self.busy.get(provider).copied().unwrap_or(0);
        provider_cap.is_none_or(|cap| busy < cap) && run_cap.is_none_or(|cap| self.total() < cap)
    }

    /// A call to `provider` took a slot.
    pub(super) fn take(&mut self, provider: &str) {
        match self.busy.get_mut(provider) {
            Some(n) => *n += 1,
            None => {
                self.busy.insert(provider.to_owned(), 1);
            }
        }
    }

    /// A call to `provider` gave its slot back.
    pub(super) fn release(&mut self, provider: &str) {
        if let Some(n) = self.busy.get_mut(provider) {
            *n = n.saturating_sub(1);
        }
    }

    /// Calls holding slots, over every provider.
    pub(super) fn total(&self) -> u32 {
        self.busy.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_providers_cap_and_the_runs_hold_apart() {
        let mut caps = Caps::default();
        caps.take("a");
        caps.take("a");
        assert!(!caps.has_room("a", Some(2), None), "a is full");
        assert!(caps.has_room("b", Some(1), None), "b is not");
        assert!(!caps.has_room("b", Some(1), Some(2)), "the run's cap counts every provider");
        assert!(caps.has_room("a", None, None), "no cap, always room");
        caps.release("a");
        assert!(caps.has_room("a", Some(2), Some(2)));
        assert_eq!(caps.total(), 1);
    }

    #[test]
    fn releasing_more_than_was_taken_never_underflows() {
        let mut caps = Caps::default();
        caps.release("a");
        caps.take("a");
        caps.release("a");
        caps.release("a");
        assert_eq!(caps.total(), 0);
        assert!(caps.has_room("a", Some(1), Some(1)));
    }
}
