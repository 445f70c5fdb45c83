//! The device's Matrix session: log in, keep a sync going, retry with backoff, and say when the
//! device is in service.

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::{FailureKind, MatrixCommand, MatrixFailure, Notify, Output, Outputs};

/// The longest a login attempt may take before the session counts as stalled.
const LOGIN_BUDGET: Duration = Duration::from_secs(120);
/// The longest one sync request (a 30 s long poll plus a slow answer) may take.
const SYNC_BUDGET: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    NotStarted,
    LoggingIn,
    WaitingToLogIn { until: Instant },
    Syncing,
    WaitingToSync { until: Instant },
}

#[derive(Debug)]
pub struct Session {
    phase: Phase,
    login_backoff: Backoff,
    sync_backoff: Backoff,
    first_sync_done: bool,
    /// When the I/O layer must next report, or the session is stalled.
    report_due: Option<Instant>,
    last_failure: Option<String>,
    /// The homeserver refused our credentials last time (not just unreachable).
    refused: bool,
    /// The next login must not reuse the saved session (the homeserver refused it).
    fresh_login: bool,
    /// The next sync must fetch the whole state (the first of this run or after a login).
    full_state: bool,
    /// The description changed in a way systemd's STATUS should hear (see `take_announcement`).
    announce: bool,
}

impl Session {
    pub fn new() -> Self {
        Session {
            phase: Phase::NotStarted,
            login_backoff: Backoff::new(Duration::from_secs(2), Duration::from_secs(300)),
            sync_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            first_sync_done: false,
            report_due: None,
            last_failure: None,
            refused: false,
            fresh_login: false,
            full_state: true,
            announce: false,
        }
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn in_service(&self) -> bool {
        self.first_sync_done && self.phase == Phase::Syncing
    }

    /// Whether a login succeeded and its session is still accepted (a sync may be failing).
    pub fn logged_in(&self) -> bool {
        matches!(self.phase, Phase::Syncing | Phase::WaitingToSync { .. })
    }

    /// Whether the homeserver is refusing our login (a wrong password, a revoked token).
    pub fn login_refused(&self) -> bool {
        self.refused && !self.logged_in()
    }

    /// Whether the I/O layer has gone quiet for longer than any request may take.
    pub fn stalled(&self, now: Instant) -> bool {
        self.report_due.is_some_and(|due| now > due)
    }

    /// Why the device is not (yet) in service, for status displays.
    pub fn describe(&self) -> String {
        let reason = self
            .last_failure
            .as_deref()
            .map(|f| format!(" after: {f}"))
            .unwrap_or_default();
        match &self.phase {
            Phase::NotStarted => "starting".to_owned(),
            Phase::LoggingIn => format!("logging in{reason}"),
            Phase::WaitingToLogIn { .. } => format!("waiting to retry login{reason}"),
            Phase::Syncing if self.first_sync_done => "in service".to_owned(),
            Phase::Syncing => "first sync".to_owned(),
            Phase::WaitingToSync { .. } => format!("waiting to retry sync{reason}"),
        }
    }

    /// Starts logging in. systemd hears READY now: the device is running, and a homeserver
    /// that is down or slow must not hold up the boot; STATUS says when it is in service.
    pub fn start(&mut self, now: Instant, out: &mut Outputs) {
        if self.phase == Phase::NotStarted {
            out.push_back(Output::Notify(Notify::Ready));
            self.log_in(now, out);
        }
    }

    fn log_in(&mut self, now: Instant, out: &mut Outputs) {
        self.phase = Phase::LoggingIn;
        self.report_due = Some(now + LOGIN_BUDGET);
        out.push_back(Output::Matrix(MatrixCommand::LogIn {
            fresh: self.fresh_login,
        }));
        self.status();
    }

    fn sync(&mut self, now: Instant, out: &mut Outputs) {
        self.phase = Phase::Syncing;
        self.report_due = Some(now + SYNC_BUDGET);
        out.push_back(Output::Matrix(MatrixCommand::Sync {
            full_state: self.full_state,
        }));
    }

    pub fn on_login(&mut self, now: Instant, result: Result<(), MatrixFailure>, out: &mut Outputs) {
        if self.phase != Phase::LoggingIn {
            log::debug!("ignoring a login result in phase {:?}", self.phase);
            return;
        }
        match result {
            Ok(()) => {
                self.login_backoff.succeed();
                self.last_failure = None;
                self.refused = false;
                self.fresh_login = false;
                self.full_state = true;
                log::info!("logged in; starting to sync");
                self.sync(now, out);
                self.status();
            }
            Err(failure) => {
                let wait = self.login_backoff.fail();
                log::error!(
                    "login failed: {}; retrying in {}s",
                    failure.message,
                    wait.as_secs()
                );
                self.wait(now, wait, failure, true);
            }
        }
    }

    pub fn on_sync(&mut self, now: Instant, result: Result<(), MatrixFailure>, out: &mut Outputs) {
        if self.phase != Phase::Syncing {
            log::debug!("ignoring a sync result in phase {:?}", self.phase);
            return;
        }
        match result {
            Ok(()) => {
                self.full_state = false;
                let recovered = self.sync_backoff.failures() > 0;
                self.sync_backoff.succeed();
                self.last_failure = None;
                if !self.first_sync_done {
                    self.first_sync_done = true;
                    log::info!("first sync done; in service");
                    self.status();
                } else if recovered {
                    log::info!("sync recovered");
                    self.status();
                }
                self.sync(now, out);
            }
            Err(failure) if failure.kind == FailureKind::Unauthorized => {
                self.fresh_login = true;
                log::error!(
                    "the homeserver no longer accepts our session ({}); logging in again",
                    failure.message
                );
                let wait = self.login_backoff.fail();
                self.wait(now, wait, failure, true);
            }
            Err(failure) => {
                let wait = self.sync_backoff.fail();
                log::warn!(
                    "sync failed: {}; retrying in {}s",
                    failure.message,
                    wait.as_secs()
                );
                self.wait(now, wait, failure, false);
            }
        }
    }

    fn wait(&mut self, now: Instant, wait: Duration, failure: MatrixFailure, login: bool) {
        let until = now + wait;
        self.phase = if login {
            Phase::WaitingToLogIn { until }
        } else {
            Phase::WaitingToSync { until }
        };
        self.report_due = None;
        self.refused = failure.kind == FailureKind::Unauthorized;
        self.last_failure = Some(failure.message);
        self.status();
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        match self.phase {
            Phase::WaitingToLogIn { until } | Phase::WaitingToSync { until } => Some(until),
            _ => None,
        }
    }

    pub fn on_tick(&mut self, now: Instant, out: &mut Outputs) {
        match self.phase {
            Phase::WaitingToLogIn { until } if now >= until => self.log_in(now, out),
            Phase::WaitingToSync { until } if now >= until => self.sync(now, out),
            _ => {}
        }
    }

    /// STATUS is sent by the core, which adds what else is wrong (see `Core::describe`).
    fn status(&mut self) {
        self.announce = true;
    }

    /// Whether the session has something new to announce since the last call.
    pub fn take_announcement(&mut self) -> bool {
        std::mem::take(&mut self.announce)
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}
