//! systemd's watchdog: pinged only while the loops it supervises keep reporting, so a wedged
//! sync gets roomd restarted rather than kept alive by a timer that proves nothing.

use std::time::{Duration, Instant};

use super::{Notify, Output, Outputs};

#[derive(Debug)]
pub struct Watchdog {
    /// Half of `WatchdogSec=`, as sd_watchdog_enabled(3) recommends.
    period: Duration,
    next_ping: Instant,
    withholding: bool,
}

impl Watchdog {
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Watchdog {
            period: timeout / 2,
            next_ping: now,
            withholding: false,
        }
    }

    pub fn next_wakeup(&self) -> Instant {
        self.next_ping
    }

    /// `stalled` names what stopped reporting, if anything did.
    pub fn on_tick(&mut self, now: Instant, stalled: Option<&str>, out: &mut Outputs) {
        if now < self.next_ping {
            return;
        }
        self.next_ping = now + self.period;
        match stalled {
            None => {
                if self.withholding {
                    log::info!("supervised loops report again; watchdog resumed");
                    self.withholding = false;
                }
                out.push_back(Output::Notify(Notify::Watchdog));
            }
            Some(what) => {
                if !self.withholding {
                    log::error!(
                        "{what} has stopped reporting; withholding the watchdog so systemd \
                         restarts roomd"
                    );
                    self.withholding = true;
                }
            }
        }
    }
}
