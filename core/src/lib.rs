//! roomd-core: every decision roomd makes, as pure state machines. Inputs are values (a Matrix
//! event, a request result, a control command, the current time); outputs are commands for the
//! I/O layers to carry out. Nothing here reads a clock, touches the network or GStreamer, or
//! spawns anything, so a test can drive a whole scenario in microseconds on a clock it controls.
//! The crate's dependencies keep it so: none of them does I/O.

mod backoff;
mod buttons;
pub mod calls;
pub mod ctl;
pub mod events;
pub mod ice;
pub mod ice_uri;
pub mod leds;
pub mod media;
mod media_health;
pub mod membership;
pub mod own_call;
pub mod panel;
pub mod peer_call;
mod policy;
mod principal;
pub mod reorder;
mod room;
mod rooms;
pub mod rtc;
mod secret;
mod session;
pub mod status;
mod time;
pub mod voip;
mod wakeup;
mod watchdog;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, OwnedRoomOrAliasId, OwnedUserId};
use serde_json::Value;

pub use backoff::Backoff;
pub use buttons::{Button, ButtonEdge};
pub use ctl::{CtlReply, CtlRequest};
pub use events::{Invite, StateEvent, TimelineEvent};
pub use leds::{Led, Pattern};
pub use own_call::Identity;
pub use panel::{PanelSettings, VolumeChange};
pub use policy::JoinPolicy;
pub use principal::Principal;
pub use rooms::RoomSettings;
pub use secret::Secret;
pub use session::Phase;
pub use status::Status;
pub use time::Now;
pub use wakeup::WakeupGuard;

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
    /// A to-device message of a type in [`voip::TYPES`] (decrypted if it came encrypted).
    /// Acted on at the sync's [`Input::Synced`], after the room state it refers to.
    ToDevice {
        sender: OwnedUserId,
        event_type: String,
        content: Value,
    },
    /// Something the media engine reports.
    Media(media::MediaEvent),
    /// A button's level changed (from the GPIO backend, or `roomd ctl press`).
    Button(ButtonEdge),
    /// The result of a [`MatrixCommand::FetchTurnServers`].
    TurnServers(Result<ice::TurnServers, MatrixFailure>),
    /// The result of a [`MatrixCommand::FetchRtcTransports`]: the `rtc_transports` objects.
    RtcTransports(Result<Vec<Value>, MatrixFailure>),
    /// The result of a [`MatrixCommand::FetchWellKnownRtcFoci`]: the `rtc_foci` objects (none
    /// when `.well-known` has no such key).
    WellKnownRtcFoci(Result<Vec<Value>, MatrixFailure>),
    /// The result of a [`MatrixCommand::RequestOpenIdToken`].
    OpenIdToken {
        request: u64,
        result: Result<rtc::OpenIdToken, MatrixFailure>,
    },
    /// The result of a [`rtc::LiveKitCommand::FetchToken`]: the SFU's URL and a JWT, or why
    /// not.
    SfuToken {
        request: u64,
        result: Result<rtc::SfuAccess, String>,
    },
    /// Something happened on a LiveKit connection.
    LiveKit {
        conn: rtc::ConnId,
        event: rtc::LiveKitEvent,
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
    Media(media::MediaCommand),
    LiveKit(rtc::LiveKitCommand),
    Notify(Notify),
    /// Light an LED or put it out.
    Led {
        led: Led,
        on: bool,
    },
    /// Set the speaker's volume (percent) and remember it across restarts.
    SetVolume(u8),
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
    /// Send a to-device message to one device, Olm-encrypted when the device has published
    /// keys. Messages are sent in the order given; failures are logged.
    SendToDevice {
        user_id: OwnedUserId,
        device_id: String,
        event_type: String,
        content: Value,
    },
    /// Send a room event, in order with the other sends.
    SendEvent {
        room_id: OwnedRoomId,
        event_type: String,
        content: Value,
    },
    /// Ask the homeserver for its TURN servers (`GET /voip/turnServer`); answer with
    /// [`Input::TurnServers`].
    FetchTurnServers,
    /// Ask the homeserver for its RTC transports (MSC4143 `GET .../rtc/transports`); answer with
    /// [`Input::RtcTransports`].
    FetchRtcTransports,
    /// Read `.well-known/matrix/client`'s `org.matrix.msc4143.rtc_foci`; answer with
    /// [`Input::WellKnownRtcFoci`].
    FetchWellKnownRtcFoci,
    /// Ask the homeserver for an OpenID token (`/user/{userId}/openid/request_token`), for a
    /// LiveKit token service; answer with [`Input::OpenIdToken`].
    RequestOpenIdToken { request: u64 },
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

/// Signalling held until the end of the sync that brought it; more is a flood.
const MAX_PENDING_SIGNALS: usize = 512;

/// Call signalling waiting for the sync's state to be applied.
#[derive(Debug, Clone)]
enum Signal {
    ToDevice {
        sender: OwnedUserId,
        event_type: String,
        content: Value,
    },
    Room(TimelineEvent),
}

/// How long a clean shutdown may spend taking our call memberships back.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct Settings {
    pub identity: Identity,
    pub rooms: RoomSettings,
    /// systemd's `WatchdogSec=`, when the watchdog is on.
    pub watchdog_timeout: Option<Duration>,
    /// STUN and TURN servers from the config.
    pub ice: ice::IceSettings,
    /// The LiveKit token service to publish on when the homeserver names none
    /// (`[calls] livekit_service_url`).
    pub livekit_service_url: Option<String>,
    pub panel: PanelSettings,
}

#[derive(Debug)]
pub struct Core {
    identity: Identity,
    session: session::Session,
    rooms: rooms::Rooms,
    calls: calls::Calls,
    signals: VecDeque<Signal>,
    /// What we last asked the microphone to be.
    mic_muted: bool,
    /// What the media engine last confirmed the microphone is (the muted LED shows this).
    mic_confirmed_muted: bool,
    /// Whether the media engine is up and answering, and its last report.
    media: media_health::MediaHealth,
    panel: panel::Panel,
    ice: ice::Ice,
    rtc: rtc::Discovery,
    /// The LiveKit connections of the Element Call sessions we are in.
    sessions: rtc::Sessions,
    watchdog: Option<watchdog::Watchdog>,
    /// The last STATUS line sent to systemd.
    announced: String,
    outputs: Outputs,
    /// The last request ID handed out; each command that expects a result gets a new one.
    request_ids: u64,
    /// The deadline for taking our call memberships back, once shutting down.
    shutting_down: Option<Instant>,
    exited: bool,
}

impl Core {
    pub fn new(now: Now, settings: Settings) -> Self {
        let mut outputs = VecDeque::new();
        let panel = panel::Panel::new(now.mono, settings.panel, &mut outputs);
        let device_id = settings.identity.device_id.to_string();
        let mut core = Core {
            identity: settings.identity.clone(),
            session: session::Session::new(),
            rooms: rooms::Rooms::new(settings.rooms, settings.identity.clone()),
            calls: calls::Calls::new(settings.identity),
            signals: VecDeque::new(),
            mic_muted: false,
            mic_confirmed_muted: false,
            media: media_health::MediaHealth::new(),
            panel,
            ice: ice::Ice::new(settings.ice),
            rtc: rtc::Discovery::new(settings.livekit_service_url),
            sessions: rtc::Sessions::new(device_id),
            watchdog: settings
                .watchdog_timeout
                .map(|t| watchdog::Watchdog::new(now.mono, t)),
            announced: String::new(),
            outputs,
            request_ids: 0,
            shutting_down: None,
            exited: false,
        };
        core.session.start(now.mono, &mut core.outputs);
        core.announce();
        core.show_panel(now);
        core
    }

    /// Feeds one input. Never fails: what cannot be used is logged and dropped.
    pub fn handle(&mut self, now: Now, input: Input) {
        let out = &mut self.outputs;
        let ids = &mut self.request_ids;
        match input {
            Input::LoggedIn(result) => self.session.on_login(now.mono, result, out),
            // A sync's events are decided on together, at its end (`Synced`): half a batch can
            // show a call membership before the m.room.member that makes it count.
            Input::State(ev) => return self.rooms.on_state(&ev),
            Input::Timeline(ev) if voip::TYPES.contains(&ev.event_type.as_str()) => {
                return self.hold_signal(Signal::Room(ev));
            }
            Input::Timeline(ev) => return self.rooms.on_timeline(&ev),
            Input::ToDevice {
                sender,
                event_type,
                content,
            } => {
                return self.hold_signal(Signal::ToDevice {
                    sender,
                    event_type,
                    content,
                });
            }
            Input::Media(event) => self.on_media(now, event),
            Input::Button(edge) => {
                if self.shutting_down.is_none() {
                    self.panel.on_edge(edge);
                }
            }
            Input::TurnServers(result) => self.ice.on_answer(now.mono, result),
            Input::RtcTransports(result) => self.rtc.on_transports(now.mono, result, out),
            Input::WellKnownRtcFoci(result) => self.rtc.on_well_known(now.mono, result),
            Input::OpenIdToken { request, result } => {
                if !self.sessions.on_openid(now, request, &result, ids, out) {
                    log::debug!("an OpenID token nobody asked for: {request}");
                }
            }
            Input::SfuToken { request, result } => {
                if !self.sessions.on_token(now, request, &result, out) {
                    log::debug!("a LiveKit token nobody asked for: {request}");
                }
            }
            Input::LiveKit { conn, event } => self.sessions.on_event(now, conn, event, out),
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

    fn hold_signal(&mut self, signal: Signal) {
        if self.signals.len() >= MAX_PENDING_SIGNALS {
            log::warn!("dropping call signalling: more than {MAX_PENDING_SIGNALS} in one sync");
            return;
        }
        self.signals.push_back(signal);
    }

    fn on_media(&mut self, now: Now, event: media::MediaEvent) {
        use media::MediaEvent as E;
        let out = &mut self.outputs;
        let sessions = &mut self.sessions;
        match event {
            E::LocalDescription { peer, kind, sdp } if sessions.owns(&peer) => {
                sessions.on_local_description(&peer, kind, sdp, out)
            }
            E::LocalDescription { peer, kind, sdp } => {
                self.calls.on_local_description(now, &peer, kind, sdp, out)
            }
            E::LocalCandidate { peer, candidate } if sessions.owns(&peer) => {
                sessions.on_local_candidate(&peer, candidate, out)
            }
            E::LocalCandidate { peer, candidate } => {
                self.calls.on_local_candidate(now, &peer, candidate, out)
            }
            E::ConnectionState { peer, state } if sessions.owns(&peer) => {
                log::debug!("media: {peer} is {state:?}");
                sessions.on_connection_state(now, &peer, state, out)
            }
            E::ConnectionState { peer, state } => {
                log::debug!("media: {peer} is {state:?}");
                self.calls.on_connection_state(now, &peer, state, out)
            }
            E::RemoteMedia { peer, kind } => log::info!("media: first {kind:?} from {peer}"),
            E::MicMuted(muted) => {
                let state = if muted { "silenced" } else { "live" };
                log::info!("media: microphone {state} (confirmed)");
                self.mic_confirmed_muted = muted;
                self.calls.set_ours(Some(muted), None, out);
                sessions.set_mic_muted(muted, out);
            }
            E::Started { encoder } => {
                log::info!("media engine up (video encoder {encoder})");
                self.media.on_started(now.mono, encoder);
            }
            E::Report { request, report } => self.media.on_report(now.mono, request, *report),
            E::Unavailable { reason } => {
                log::error!("media unavailable: {reason}");
                self.media.on_unavailable(reason);
            }
            E::CameraOff(off) => self.calls.set_ours(None, Some(off), out),
            E::CameraUnavailable { reason } => log::warn!("media: camera unavailable: {reason}"),
            E::Error { element, cause } => log::warn!("media: {element}: {cause}"),
            E::Refused {
                command,
                peer,
                reason,
            } => {
                log::warn!("media: could not {command}: {reason}");
                match peer {
                    Some(peer) if sessions.owns(&peer) => {
                        sessions.on_media_refused(now, &peer, out)
                    }
                    Some(peer) => self.calls.on_media_refused(&peer, out),
                    None => {}
                }
            }
        }
    }

    /// Call signalling from the last sync, now that its room state is applied.
    fn handle_signals(&mut self, now: Now) {
        let busy = self.calls.any_call_on();
        let do_not_disturb = self.panel.do_not_disturb_left(now.mono).is_some();
        while let Some(signal) = self.signals.pop_front() {
            let out = &mut self.outputs;
            match signal {
                Signal::ToDevice {
                    sender,
                    event_type,
                    content,
                } => self
                    .calls
                    .on_to_device(now, &sender, &event_type, &content, out),
                Signal::Room(ev) => {
                    let rooms = &self.rooms;
                    self.calls.on_room_event(
                        now,
                        &ev.room_id,
                        &ev.sender,
                        &ev.event_type,
                        &ev.content,
                        ev.origin_server_ts,
                        || match rooms.direct_admission(&ev.room_id, &ev.sender, busy) {
                            calls::DirectAdmission::Answer if do_not_disturb => {
                                calls::DirectAdmission::Refuse(
                                    "do not disturb (the hang-up button was held)",
                                    voip::HangupReason::UserBusy,
                                )
                            }
                            admission => admission,
                        },
                        out,
                    )
                }
            }
        }
    }

    /// Acts on whatever timers have come due and whatever the input changed.
    fn act(&mut self, now: Now) {
        if self.exited {
            return;
        }
        if let Some(deadline) = self.shutting_down {
            let out = &mut self.outputs;
            self.calls.on_tick(now, out);
            self.calls.reconcile(now, Vec::new(), out);
            self.calls.converge_focus(now, &[], out);
            self.calls.hang_up_direct(None, out);
            self.sessions.reconcile(&[], out);
            self.signals.clear();
            self.rooms.leave_calls(now, &mut self.request_ids, out);
            if self.rooms.out_of_calls() || now.mono >= deadline {
                if !self.rooms.out_of_calls() {
                    log::warn!("could not take every call membership back in time");
                }
                self.exited = true;
                out.push_back(Output::Exit);
            }
            self.show_panel(now);
            return;
        }
        for action in self.panel.actions(now.mono) {
            self.perform(now, action);
        }
        if self.panel.expire(now.mono) {
            log::info!("do-not-disturb is over");
        }
        self.session.on_tick(now.mono, &mut self.outputs);
        let logged_in = self.session.logged_in();
        self.ice.step(now.mono, logged_in, &mut self.outputs);
        self.rtc.step(now.mono, logged_in, &mut self.outputs);
        let stay_out = if self.panel.do_not_disturb_left(now.mono).is_some() {
            Some("do not disturb (the hang-up button was held)")
        } else if self.calls.direct_call_on() {
            Some("in a 1:1 call")
        } else {
            None
        };
        let in_service = self.session.in_service();
        let livekit = self.rtc.transport().map(|t| t.service_url.as_str());
        self.rooms.step(
            now,
            in_service,
            stay_out,
            livekit,
            &mut self.request_ids,
            &mut self.outputs,
        );
        // Timers first, so a call that just ended is placed again in the same step.
        self.calls.on_tick(now, &mut self.outputs);
        self.calls
            .reconcile(now, self.rooms.meshes(now), &mut self.outputs);
        self.calls
            .converge_focus(now, &self.rooms.focus_calls(), &mut self.outputs);
        let rooms = &self.rooms;
        self.calls
            .hang_up_departed(|room, user| rooms.is_joined(room, user), &mut self.outputs);
        self.sessions
            .reconcile(&self.rooms.sessions(now), &mut self.outputs);
        self.sessions
            .on_tick(now, &mut self.request_ids, &mut self.outputs);
        if in_service {
            self.handle_signals(now);
        }
        self.media.step(now.mono, &mut self.outputs);
        if let Some(w) = &mut self.watchdog {
            let stalled = if self.session.stalled(now.mono) {
                Some("the Matrix sync loop")
            } else if self.media.not_answering() {
                Some("the media engine")
            } else {
                None
            };
            w.on_tick(now.mono, stalled, &mut self.outputs);
        }
        self.announce();
        self.show_panel(now);
    }

    /// Tells systemd's STATUS what the device is doing, when that has changed.
    fn announce(&mut self) {
        let line = self.describe();
        if self.session.take_announcement() || line != self.announced {
            self.outputs
                .push_back(Output::Notify(Notify::Status(line.clone())));
            self.announced = line;
        }
    }

    /// Carries out what a button press asks for.
    fn perform(&mut self, now: Now, action: panel::Action) {
        use panel::Action as A;
        match action {
            A::ToggleMute => {
                self.set_mic_muted(!self.mic_muted);
            }
            A::HangUp => match self.hang_up(None) {
                Ok(done) => log::info!("hang-up button: {done}"),
                Err(why) => log::info!("hang-up button: {why}"),
            },
            A::DoNotDisturb => {
                let how_long = self.panel.start_do_not_disturb(now.mono);
                log::info!(
                    "hang-up button held: not joining any call for {} min",
                    how_long.as_secs() / 60
                );
            }
            A::Join => match self.join(now, None) {
                Ok(done) => log::info!("join button: {done}"),
                Err(why) => log::info!("join button: {why}"),
            },
            A::VolumeUp | A::VolumeDown => {
                let change = if action == A::VolumeUp {
                    VolumeChange::Up
                } else {
                    VolumeChange::Down
                };
                let volume = self.panel.change_volume(change, &mut self.outputs);
                log::info!("volume {volume}%");
            }
        }
    }

    fn hang_up(&mut self, room: Option<&str>) -> Result<String, String> {
        let direct = self.calls.hang_up_direct(None, &mut self.outputs);
        match self.rooms.hang_up(room) {
            Ok(message) => Ok(message),
            Err(_) if direct > 0 => Ok("hung up the 1:1 call".to_owned()),
            Err(why) => Err(why),
        }
    }

    /// Joins the call in `room` (or any served room), lifting a hang-up or do-not-disturb.
    fn join(&mut self, now: Now, room: Option<&str>) -> Result<String, String> {
        if self.panel.end_do_not_disturb() {
            log::info!("do-not-disturb ended by a join");
        }
        self.rooms
            .join(room, now, &mut self.request_ids, &mut self.outputs)
    }

    /// What the LEDs show now.
    fn show_panel(&mut self, now: Now) {
        let view = panel::View {
            stopping: self.shutting_down.is_some(),
            in_service: self.session.in_service(),
            error: self.session.login_refused()
                || self.media.unavailable()
                || self.media.not_answering(),
            in_call: self.rooms.in_call() || self.calls.direct_call_on(),
            call_waiting: self.rooms.call_waiting(now),
            mic_muted: self.mic_confirmed_muted,
        };
        self.panel.show(now.mono, &view, &mut self.outputs);
    }

    fn ctl(&mut self, now: Now, request: CtlRequest) -> CtlReply {
        match request {
            CtlRequest::Status => CtlReply::status(self.status(now)),
            CtlRequest::Hangup { room } => match self.hang_up(room.as_deref()) {
                Ok(done) => CtlReply::done(done),
                Err(why) => CtlReply::error(why),
            },
            CtlRequest::Join { room } => match self.join(now, room.as_deref()) {
                Ok(done) => CtlReply::done(done),
                Err(why) => CtlReply::error(why),
            },
            CtlRequest::Mute => self.set_mic_muted(true),
            CtlRequest::Unmute => self.set_mic_muted(false),
            CtlRequest::ToggleMute => self.set_mic_muted(!self.mic_muted),
            CtlRequest::Volume { change } => {
                let volume = match change {
                    Some(change) => self.panel.change_volume(change, &mut self.outputs),
                    None => self.panel.volume(),
                };
                CtlReply::done(format!("volume {volume}%"))
            }
            // The daemon hands presses to the button backend; they come back as edges.
            CtlRequest::Press { .. } => CtlReply::error("no button backend to press with"),
        }
    }

    fn set_mic_muted(&mut self, muted: bool) -> CtlReply {
        self.mic_muted = muted;
        log::info!("microphone {}", if muted { "muted" } else { "unmuted" });
        self.outputs
            .push_back(Output::Media(media::MediaCommand::SetMicMuted(muted)));
        CtlReply::done(if muted { "muted" } else { "unmuted" })
    }

    pub fn status(&self, now: Now) -> Status {
        Status {
            service: self.describe(),
            user_id: self.identity.user_id.to_string(),
            device_id: self.identity.device_id.to_string(),
            rooms: self.rooms.status(now),
            peer_calls: self.calls.summary(),
            mic_muted: self.mic_muted,
            panel: status::PanelStatus {
                leds: Led::ALL
                    .iter()
                    .map(|&led| (led, self.panel.pattern(led)))
                    .collect(),
                mic_muted_confirmed: self.mic_confirmed_muted,
                volume: self.panel.volume(),
                do_not_disturb_s: self
                    .panel
                    .do_not_disturb_left(now.mono)
                    .map(|left| left.as_secs()),
            },
            ice: self.ice.status(now.mono),
            livekit: self.rtc.describe(),
            livekit_connections: self.sessions.describe(),
            media: Some(self.media.status(now.mono)),
        }
    }

    /// The next command to carry out; drain after every [`Core::handle`].
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the core next needs an [`Input::Tick`], if ever; `now` is the time the daemon
    /// read after its last [`Core::handle`] (room timers are kept in wall-clock time).
    pub fn next_wakeup(&self, now: Now) -> Option<Instant> {
        if self.exited {
            return None;
        }
        if let Some(deadline) = self.shutting_down {
            // Shutting down, only the calls' timers and the deadline are acted on (see `act`);
            // waking for any other would spin the loop until exit.
            return [Some(deadline), self.calls.next_wakeup()]
                .into_iter()
                .flatten()
                .min();
        }
        let watchdog = self.watchdog.as_ref().map(|w| w.next_wakeup());
        [
            self.media.next_wakeup(),
            self.panel.next_wakeup(),
            self.session.next_wakeup(),
            watchdog,
            self.rooms.next_wakeup(now, self.session.in_service()),
            self.calls.next_wakeup(),
            self.sessions.next_wakeup(),
            self.ice.next_wakeup(),
            self.rtc.next_wakeup(self.session.logged_in()),
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

    /// What the device is doing, in a few words (systemd's STATUS, the first line of `roomd ctl
    /// status`).
    pub fn describe(&self) -> String {
        let session = self.session.describe();
        if self.media.not_answering() {
            format!("{session}; the media engine is not answering")
        } else {
            session
        }
    }
}

#[cfg(test)]
mod tests;
