//! Every decision roomd makes, as pure state machines. Inputs are values (a Matrix event, a
//! request result, a control command, the current time); outputs are commands for the I/O
//! layers to carry out. Nothing here reads a clock, touches the network or GStreamer, or spawns
//! anything, so a test can drive a whole scenario in microseconds on a clock it controls.

mod backoff;
pub mod ctl;
pub mod events;
pub mod media;
pub mod membership;
pub mod own_call;
mod policy;
mod room;
mod rooms;
mod session;
pub mod status;
mod time;
mod watchdog;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use matrix_sdk::ruma::{OwnedRoomId, OwnedRoomOrAliasId};
use serde_json::Value;

pub use backoff::Backoff;
pub use ctl::{CtlReply, CtlRequest};
pub use events::{Invite, StateEvent, TimelineEvent};
pub use own_call::Identity;
pub use rooms::RoomSettings;
pub use session::Phase;
pub use status::Status;
pub use time::Now;

/// Something that happened, reported by an I/O layer.
#[derive(Debug, Clone)]
pub enum Input {
    /// The result of a [`MatrixCommand::LogIn`].
    LoggedIn(Result<(), MatrixFailure>),
    /// A state event from a sync, in order. Acted on at the sync's [`Input::Synced`].
    State(StateEvent),
    /// A timeline event of a type in [`events::TIMELINE_TYPES`], in order.
    Timeline(TimelineEvent),
    Invite(Invite),
    /// The end of a [`MatrixCommand::Sync`]: its events have all been fed.
    Synced(Result<(), MatrixFailure>),
    /// The result of a [`MatrixCommand::JoinRoom`].
    RoomJoined {
        request: u64,
        result: Result<OwnedRoomId, MatrixFailure>,
    },
    /// The result of a [`MatrixCommand::SendState`]: the delay ID for a delayed event.
    StateSent {
        request: u64,
        result: Result<Option<String>, MatrixFailure>,
    },
    /// The result of a [`MatrixCommand::UpdateDelayed`].
    DelayedUpdated {
        request: u64,
        result: Result<(), MatrixFailure>,
    },
    /// A control-socket request; answered with [`Output::Reply`] carrying the same `id`.
    Ctl {
        id: u64,
        request: CtlRequest,
    },
    /// SIGTERM: take our call memberships back, then stop.
    Shutdown,
    /// A wakeup the core asked for (see [`Core::next_wakeup`]) came due.
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The homeserver refused our credentials or session (wrong password, revoked token).
    Unauthorized,
    /// The thing addressed does not exist (e.g. a delayed event that already fired).
    NotFound,
    /// The homeserver does not implement what was asked (e.g. MSC4140).
    Unsupported,
    Other,
}

/// Why a homeserver request failed, as far as the core needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixFailure {
    pub kind: FailureKind,
    /// One line for the log, with no secret in it.
    pub message: String,
}

/// Something the core wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Matrix(MatrixCommand),
    Notify(Notify),
    Reply {
        id: u64,
        reply: CtlReply,
    },
    /// Shutdown is complete; the daemon may exit.
    Exit,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MatrixCommand {
    /// Restore the saved session, or log in if there is none (or `fresh`: discard it first).
    /// Answer with [`Input::LoggedIn`].
    LogIn { fresh: bool },
    /// Run one sync request (`full_state`: the whole state of every room, as after a start);
    /// feed its events, then [`Input::Synced`].
    Sync { full_state: bool },
    /// Join a room by ID or alias (also how an invite is accepted).
    JoinRoom {
        request: u64,
        room: OwnedRoomOrAliasId,
    },
    /// Write a state event, or schedule it `delay_ms` from now (MSC4140).
    SendState {
        request: u64,
        room_id: OwnedRoomId,
        event_type: String,
        state_key: String,
        content: Value,
        delay_ms: Option<u64>,
    },
    UpdateDelayed {
        request: u64,
        delay_id: String,
        action: DelayedAction,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayedAction {
    Restart,
    Send,
    Cancel,
}

/// Messages for systemd's notify socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    Ready,
    Watchdog,
    Status(String),
    Stopping,
}

pub(crate) type Outputs = VecDeque<Output>;

/// How long a clean shutdown may spend taking our call memberships back.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    pub identity: Identity,
    pub rooms: RoomSettings,
    /// systemd's `WatchdogSec=`, when the watchdog is on.
    pub watchdog_timeout: Option<Duration>,
}

#[derive(Debug)]
pub struct Core {
    identity: Identity,
    session: session::Session,
    rooms: rooms::Rooms,
    watchdog: Option<watchdog::Watchdog>,
    outputs: Outputs,
    /// The last request ID handed out; each command that expects a result gets a new one.
    request_ids: u64,
    /// The deadline for taking our call memberships back, once shutting down.
    shutting_down: Option<Instant>,
    exited: bool,
    last_now: Now,
}

impl Core {
    pub fn new(now: Now, settings: Settings) -> Self {
        let mut core = Core {
            identity: settings.identity.clone(),
            session: session::Session::new(),
            rooms: rooms::Rooms::new(settings.rooms, settings.identity),
            watchdog: settings
                .watchdog_timeout
                .map(|t| watchdog::Watchdog::new(now.mono, t)),
            outputs: VecDeque::new(),
            request_ids: 0,
            shutting_down: None,
            exited: false,
            last_now: now,
        };
        core.session.start(now.mono, &mut core.outputs);
        core
    }

    /// Feeds one input. Never fails: what cannot be used is logged and dropped.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.last_now = now;
        let out = &mut self.outputs;
        let ids = &mut self.request_ids;
        match input {
            Input::LoggedIn(result) => self.session.on_login(now.mono, result, out),
            // A sync's events are decided on together, at its end (`Synced`): half a batch can
            // show a call membership before the m.room.member that makes it count.
            Input::State(ev) => return self.rooms.on_state(&ev),
            Input::Timeline(ev) => return self.rooms.on_timeline(&ev),
            Input::Invite(invite) => {
                if self.shutting_down.is_none() {
                    self.rooms.on_invite(&invite, ids, out);
                }
            }
            Input::Synced(result) => self.session.on_sync(now.mono, result, out),
            Input::RoomJoined { request, result } => {
                if !self.rooms.on_joined(now, request, &result) {
                    log::debug!("a join result nobody asked for: {request}");
                }
            }
            Input::StateSent { request, result } => {
                self.rooms.on_state_sent(now, request, result, ids, out)
            }
            Input::DelayedUpdated { request, result } => self
                .rooms
                .on_delayed_updated(now, request, result, ids, out),
            Input::Ctl { id, request } => {
                let reply = self.ctl(now, request);
                self.outputs.push_back(Output::Reply { id, reply });
            }
            Input::Shutdown => {
                if self.shutting_down.is_none() {
                    log::info!("shutting down: leaving calls");
                    self.outputs.push_back(Output::Notify(Notify::Stopping));
                    self.shutting_down = Some(now.mono + SHUTDOWN_GRACE);
                }
            }
            Input::Tick => {}
        }
        self.act(now);
    }

    /// Acts on whatever timers have come due and whatever the input changed.
    fn act(&mut self, now: Now) {
        let out = &mut self.outputs;
        let ids = &mut self.request_ids;
        if self.exited {
            return;
        }
        if let Some(deadline) = self.shutting_down {
            self.rooms.leave_calls(now, ids, out);
            if self.rooms.out_of_calls() || now.mono >= deadline {
                if !self.rooms.out_of_calls() {
                    log::warn!("could not take every call membership back in time");
                }
                self.exited = true;
                out.push_back(Output::Exit);
            }
            return;
        }
        self.session.on_tick(now.mono, out);
        self.rooms.step(now, self.session.in_service(), ids, out);
        if let Some(w) = &mut self.watchdog {
            let stalled = self
                .session
                .stalled(now.mono)
                .then_some("the Matrix sync loop");
            w.on_tick(now.mono, stalled, out);
        }
    }

    fn ctl(&mut self, now: Now, request: CtlRequest) -> CtlReply {
        match request {
            CtlRequest::Status => CtlReply::status(self.status(now)),
            CtlRequest::Hangup { room } => match self.rooms.hang_up(room.as_deref()) {
                Ok(message) => CtlReply::done(message),
                Err(why) => CtlReply::error(why),
            },
        }
    }

    pub fn status(&self, now: Now) -> Status {
        Status {
            service: self.session.describe(),
            user_id: self.identity.user_id.to_string(),
            device_id: self.identity.device_id.to_string(),
            rooms: self.rooms.status(now),
            media: None,
        }
    }

    /// The next command to carry out; drain after every [`Core::handle`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs an [`Input::Tick`], if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.exited {
            return None;
        }
        let watchdog = self.watchdog.as_ref().map(|w| w.next_wakeup());
        [
            self.session.next_wakeup(),
            watchdog,
            self.rooms.next_wakeup(self.last_now),
            self.shutting_down,
        ]
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
