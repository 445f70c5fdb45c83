//! Puts one sender's to-device messages for one call back in `seq` order. To-device delivery is
//! unordered; a sender numbers its messages 0, 1, 2, ... per call. What is ahead of the next
//! expected number waits, within hard bounds: a sender that jumps too far ahead is refused (the
//! caller hangs up on it), and what waits behind a gap that stays open too long is dropped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How far ahead of the next expected message one may arrive.
pub const MAX_AHEAD: u64 = 32;
/// How long a gap may stay open before the sender is given up on.
pub const GAP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, PartialEq)]
pub enum Arrival<T> {
    /// These are next, in order (the one that arrived and any it released).
    Ready(Vec<T>),
    /// Held until the gap before it fills.
    Held,
    /// Already delivered, or already held.
    Duplicate,
    /// Further ahead than [`MAX_AHEAD`]: the sender is broken or hostile.
    TooFarAhead { seq: u64, expected: u64 },
}

#[derive(Debug)]
pub struct Reorder<T> {
    next: u64,
    held: BTreeMap<u64, T>,
    /// Since when the oldest open gap has been waiting.
    gap_since: Option<Instant>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder {
            next: 0,
            held: BTreeMap::new(),
            gap_since: None,
        }
    }
}

impl<T> Reorder<T> {
    pub fn arrive(&mut self, now: Instant, seq: u64, message: T) -> Arrival<T> {
        if seq < self.next || self.held.contains_key(&seq) {
            return Arrival::Duplicate;
        }
        if seq - self.next > MAX_AHEAD {
            return Arrival::TooFarAhead {
                seq,
                expected: self.next,
            };
        }
        if seq != self.next {
            self.held.insert(seq, message);
            self.gap_since.get_or_insert(now);
            return Arrival::Held;
        }
        let mut ready = vec![message];
        self.next += 1;
        while let Some(m) = self.held.remove(&self.next) {
            ready.push(m);
            self.next += 1;
        }
        self.gap_since = (!self.held.is_empty()).then_some(now);
        Arrival::Ready(ready)
    }

    /// Whether a gap has been open longer than [`GAP_TIMEOUT`].
    pub fn stalled(&self, now: Instant) -> bool {
        self.gap_since
            .is_some_and(|since| now.duration_since(since) >= GAP_TIMEOUT)
    }

    /// Drops what waits behind an open gap (it is not coming); returns how much.
    pub fn drop_held(&mut self) -> usize {
        self.gap_since = None;
        std::mem::take(&mut self.held).len()
    }

    /// When [`Reorder::stalled`] turns true, if a gap is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.gap_since.map(|since| since + GAP_TIMEOUT)
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_messages_come_out_in_order_once() {
        let t = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(r.arrive(t, 2, "c"), Arrival::Held);
        assert_eq!(r.arrive(t, 1, "b"), Arrival::Held);
        assert_eq!(r.arrive(t, 1, "b"), Arrival::Duplicate);
        assert_eq!(r.arrive(t, 0, "a"), Arrival::Ready(vec!["a", "b", "c"]));
        assert_eq!(r.arrive(t, 0, "a"), Arrival::Duplicate);
        assert_eq!(r.arrive(t, 3, "d"), Arrival::Ready(vec!["d"]));
        assert!(!r.stalled(t + GAP_TIMEOUT * 2));
    }

    #[test]
    fn a_far_jump_is_refused_and_a_gap_times_out() {
        let t = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(
            r.arrive(t, 1_000_000_000_000, "x"),
            Arrival::TooFarAhead {
                seq: 1_000_000_000_000,
                expected: 0
            }
        );
        assert_eq!(r.arrive(t, MAX_AHEAD, "y"), Arrival::Held);
        assert_eq!(r.held(), 1);
        assert!(!r.stalled(t + GAP_TIMEOUT / 2));
        assert!(r.stalled(t + GAP_TIMEOUT));
        assert_eq!(r.deadline(), Some(t + GAP_TIMEOUT));
        assert_eq!(r.drop_held(), 1);
        assert!(!r.stalled(t + GAP_TIMEOUT * 2));
        assert_eq!(r.arrive(t, 0, "a"), Arrival::Ready(vec!["a"]));
    }
}
