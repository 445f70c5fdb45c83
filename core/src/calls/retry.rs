//! Placing a call again after it dropped, as `GroupCall`'s retry loop does: for mesh peers and
//! conference foci alike.

use std::time::{Duration, Instant};

/// A callee that does not pick up (or a call that drops) is called again this often, this many
/// times (as `GroupCall`'s retry loop does).
const RETRY_AFTER: Duration = Duration::from_secs(3);
pub(super) const MAX_RETRIES: u32 = 3;

/// Placing a call again after it dropped, as `GroupCall`'s retry loop does.
#[derive(Debug, Default)]
pub(super) struct Retry {
    pub(super) attempts: u32,
    pub(super) at: Option<Instant>,
}

impl Retry {
    /// Whether to place the call now (counting the attempt). `on`: a call is on; `connected`:
    /// it got through (the count starts again); `full`: no room for another call now.
    pub(super) fn place_now(
        &mut self,
        now: Instant,
        on: bool,
        connected: bool,
        full: bool,
    ) -> bool {
        if connected {
            *self = Retry::default();
        }
        if on {
            // Nothing to place (perhaps they called us meanwhile): no timer either.
            self.at = None;
            return false;
        }
        if self.attempts > 0 && self.at.is_none() {
            // The last call just ended: call again after a pause.
            self.at = Some(now + RETRY_AFTER);
        }
        if self.at.is_some_and(|t| now < t) || self.attempts >= MAX_RETRIES {
            return false;
        }
        if full {
            self.at = Some(now + RETRY_AFTER);
            return false;
        }
        self.attempts += 1;
        self.at = None;
        true
    }
}
