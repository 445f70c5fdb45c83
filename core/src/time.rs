use std::time::{Duration, Instant};

/// The current time, as the I/O layer read it: a monotonic instant for timers and the wall clock
/// for comparing with Matrix timestamps (expiry). Tests make both up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

impl Now {
    pub fn new(mono: Instant, unix_ms: u64) -> Self {
        Now { mono, unix_ms }
    }

    /// The same clock, `by` later.
    pub fn after(self, by: Duration) -> Now {
        Now {
            mono: self.mono + by,
            unix_ms: self.unix_ms.saturating_add(by.as_millis() as u64),
        }
    }

    /// The monotonic instant at which the wall clock reads `unix_ms` (now, if that has passed).
    pub fn instant_at(self, unix_ms: u64) -> Instant {
        self.mono + Duration::from_millis(unix_ms.saturating_sub(self.unix_ms))
    }
}
