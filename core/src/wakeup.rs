//! The daemon's guard against a core that asks to be woken for a time it was already woken
//! for. Every way the fuzzer found to do that is fixed and tested (tests/wakeups.rs); should
//! there be another, the loop must not spin on it at full speed, starving sync and the
//! watchdog. The daemon reports each tick here and sleeps until what [`WakeupGuard::sleep_until`]
//! says instead of the core's own wakeup.

use std::time::{Duration, Instant};

/// How soon a stale wakeup is served again: the core still gets ticks (its other timers keep
/// working), but at most this often.
pub const STALE_WAKEUP_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct WakeupGuard {
    /// When the last tick the core was handed was read.
    last_tick: Option<Instant>,
    /// A stale wakeup has been logged (once per run: each repeat says nothing new).
    warned: bool,
}

impl WakeupGuard {
    /// The core was handed a tick read at `now`.
    pub fn ticked(&mut self, now: Instant) {
        self.last_tick = Some(now);
    }

    /// When to wake the core, given the wakeup it asked for: that one, unless it is at or
    /// before the last tick, which should have served it; then a little after that tick.
    pub fn sleep_until(&mut self, wanted: Option<Instant>) -> Option<Instant> {
        let wanted = wanted?;
        let Some(last_tick) = self.last_tick.filter(|t| wanted <= *t) else {
            return Some(wanted);
        };
        if !self.warned {
            self.warned = true;
            log::error!(
                "the core asked to be woken again for a time a tick already served ({:?} \
                 before it); ticking at most every {}s from now on (a bug: please report it)",
                last_tick - wanted,
                STALE_WAKEUP_RETRY.as_secs()
            );
        }
        Some(last_tick + STALE_WAKEUP_RETRY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wakeup_after_the_last_tick_is_kept() {
        let t0 = Instant::now();
        let mut guard = WakeupGuard::default();
        assert_eq!(guard.sleep_until(None), None);
        assert_eq!(guard.sleep_until(Some(t0)), Some(t0), "no tick yet");
        guard.ticked(t0);
        let later = t0 + Duration::from_millis(1);
        assert_eq!(guard.sleep_until(Some(later)), Some(later));
        assert!(!guard.warned);
    }

    #[test]
    fn a_wakeup_a_tick_already_served_waits_and_is_logged_once() {
        let t0 = Instant::now();
        let mut guard = WakeupGuard::default();
        guard.ticked(t0 + Duration::from_secs(5));
        for stale in [t0, t0 + Duration::from_secs(5)] {
            assert_eq!(
                guard.sleep_until(Some(stale)),
                Some(t0 + Duration::from_secs(6))
            );
        }
        assert!(guard.warned);
        // However often the core repeats it, ticks come at most once per retry interval.
        let mut now = t0 + Duration::from_secs(5);
        let mut ticks = 0;
        while now < t0 + Duration::from_secs(65) {
            now = guard.sleep_until(Some(t0)).unwrap();
            guard.ticked(now);
            ticks += 1;
        }
        assert_eq!(ticks, 60);
    }
}
