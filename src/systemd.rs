//! systemd's notify protocol: readiness, status and the watchdog. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

use roomd_core::Notify;

/// `WatchdogSec=` of our unit, if the watchdog is on for this process.
pub fn watchdog_timeout() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

pub fn notify(message: &Notify) {
    let state = match message {
        Notify::Ready => NotifyState::Ready,
        Notify::Watchdog => NotifyState::Watchdog,
        Notify::Status(text) => NotifyState::Status(text),
        Notify::Stopping => NotifyState::Stopping,
    };
    if let Err(e) = sd_notify::notify(&[state]) {
        log::warn!("cannot notify systemd ({message:?}): {e}");
    }
}
