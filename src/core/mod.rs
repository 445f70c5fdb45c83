//! Every decision roomd makes, as pure state machines. Inputs are values (a Matrix result, a
//! button press, the current time); outputs are commands for the I/O layers to carry out.
//! Nothing here reads a clock, touches the network or GStreamer, or spawns anything, so a test
//! can drive a whole scenario in microseconds on a clock it controls.

mod backoff;
mod session;
mod watchdog;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use backoff::Backoff;
pub use session::Phase;

/// Something that happened, reported by an I/O layer.
#[derive(Debug, Clone)]
pub enum Input {
    /// The result of a [`MatrixCommand::LogIn`].
    LoggedIn(Result<(), MatrixFailure>),
    /// The result of a [`MatrixCommand::Sync`].
    Synced(Result<(), MatrixFailure>),
    /// A wakeup the core asked for (see [`Core::next_wakeup`]) came due.
    Tick,
}

/// Why a homeserver request failed, as far as the core needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixFailure {
    /// The homeserver refused our credentials or session (wrong password, revoked token).
    pub unauthorized: bool,
    /// One line for the log, with no secret in it.
    pub message: String,
}

/// Something the core wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Matrix(MatrixCommand),
    Notify(Notify),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixCommand {
    /// Restore the saved session or log in; answer with [`Input::LoggedIn`].
    LogIn,
    /// Run one sync request; answer with [`Input::Synced`].
    Sync,
}

/// Messages for systemd's notify socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    Ready,
    Watchdog,
    Status(String),
}

pub(crate) type Outputs = VecDeque<Output>;

#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// systemd's `WatchdogSec=`, when the watchdog is on.
    pub watchdog_timeout: Option<Duration>,
}

#[derive(Debug)]
pub struct Core {
    session: session::Session,
    watchdog: Option<watchdog::Watchdog>,
    outputs: Outputs,
}

impl Core {
    pub fn new(now: Instant, settings: Settings) -> Self {
        let mut core = Core {
            session: session::Session::new(),
            watchdog: settings
                .watchdog_timeout
                .map(|t| watchdog::Watchdog::new(now, t)),
            outputs: VecDeque::new(),
        };
        core.session.start(now, &mut core.outputs);
        core
    }

    /// Feeds one input. Never fails: what cannot be used is logged and dropped.
    pub fn handle(&mut self, now: Instant, input: Input) {
        let out = &mut self.outputs;
        match input {
            Input::LoggedIn(result) => self.session.on_login(now, result, out),
            Input::Synced(result) => self.session.on_sync(now, result, out),
            Input::Tick => {}
        }
        // Every input is also a chance to act on whatever timers have come due.
        self.session.on_tick(now, out);
        if let Some(w) = &mut self.watchdog {
            let stalled = self.session.stalled(now).then_some("the Matrix sync loop");
            w.on_tick(now, stalled, out);
        }
    }

    /// The next command to carry out; drain after every [`Core::handle`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs an [`Input::Tick`], if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let watchdog = self.watchdog.as_ref().map(|w| w.next_wakeup());
        [self.session.next_wakeup(), watchdog]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn phase(&self) -> &Phase {
        self.session.phase()
    }

    pub fn in_service(&self) -> bool {
        self.session.in_service()
    }

    /// What the device is doing, in a few words.
    pub fn describe(&self) -> String {
        self.session.describe()
    }
}

#[cfg(test)]
mod tests;
