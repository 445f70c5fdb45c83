//! Scenario tests: the core driven on a clock the test controls. The homeserver's answers are
//! played by the test (these are the core's own tests; interop is tested against Synapse).

mod calls;
mod hostile;
mod ice;
mod livekit;
mod media_engine;
mod panel;
mod peer_calls;
mod rtc_discovery;
mod session;
mod sessions;
mod status_text;
mod wakeups;

use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, owned_room_id, owned_server_name, owned_user_id};
use serde_json::{Value, json};

use super::events::{CALL_MEMBER, MESH_CALL, ROOM_ENCRYPTION, ROOM_MEMBER};
use super::*;
use crate::{JoinPolicy, Principal};

pub const TS0: u64 = 1_759_000_000_000;
pub const ROOM: &str = "!room:localhost";
pub const ME: &str = "@room:localhost";
pub const MY_DEVICE: &str = "ROOMD";

pub fn room_id() -> OwnedRoomId {
    owned_room_id!("!room:localhost")
}

pub fn settings(join: JoinPolicy, watchdog: Option<Duration>) -> Settings {
    Settings {
        identity: Identity {
            user_id: owned_user_id!("@room:localhost"),
            device_id: MY_DEVICE.into(),
            session_id: "session-1".to_owned(),
        },
        rooms: RoomSettings {
            serve: vec![room_id().into()],
            invite_from: vec![Principal::Server(owned_server_name!("friends.example"))],
            join,
            answer_direct_calls: true,
            start_calls: true,
            direct_call_from: vec![Principal::Server(owned_server_name!("localhost"))],
            conference_focus: None,
            element_call: false,
            start_sessions: true,
        },
        watchdog_timeout: watchdog,
        ice: Default::default(),
        livekit_service_url: None,
        panel: PanelSettings {
            debounce: DEBOUNCE,
            long_press: LONG_PRESS,
            do_not_disturb: Duration::from_secs(30 * 60),
            volume: 70,
            volume_step: 5,
            leds_wired: false,
        },
    }
}

pub const DEBOUNCE: Duration = Duration::from_millis(30);
pub const LONG_PRESS: Duration = Duration::from_millis(1500);

pub struct Harness {
    pub core: Core,
    pub now: Now,
    /// The fake homeserver's scheduled delayed events: ID -> (type, state key, content).
    delayed: std::collections::HashMap<String, (String, String, Value)>,
    delay_ids: u64,
    /// What the core output besides Matrix commands while the fake homeserver answered.
    pub stray: Vec<Output>,
}

impl Harness {
    pub fn new(settings: Settings) -> (Self, Vec<Output>) {
        let now = Now::new(Instant::now(), TS0);
        let mut h = Harness {
            core: Core::new(now, settings),
            now,
            delayed: Default::default(),
            delay_ids: 0,
            stray: Vec::new(),
        };
        let out = h.drain();
        (h, out)
    }

    /// Logged in, first sync done, in the served room with `others` joined too.
    pub fn in_service(join: JoinPolicy, others: &[&str]) -> Self {
        Harness::in_service_with(settings(join, None), others)
    }

    pub fn in_service_with(settings: Settings, others: &[&str]) -> Self {
        let (mut h, _) = Harness::new(settings);
        h.feed(Input::LoggedIn(Ok(())));
        h.member(ME, "join");
        for o in others {
            h.member(o, "join");
        }
        let out = h.feed(Input::Synced(Ok(())));
        assert!(h.core.in_service());
        assert!(
            joins(&out).is_empty(),
            "already joined, no join request: {out:?}"
        );
        h
    }

    pub fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    pub fn feed(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(self.now, input);
        self.drain()
    }

    /// `input` as the only event of a sync, which then completes.
    pub fn feed_synced(&mut self, input: Input) -> Vec<Output> {
        let mut out = self.feed(input);
        out.extend(self.feed(Input::Synced(Ok(()))));
        out
    }

    /// Advances the clock to `until`, ticking at every wakeup the core asks for on the way.
    pub fn run_until(&mut self, until: Now) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(wake) = self.core.next_wakeup(self.now).filter(|w| *w <= until.mono) {
            let by = wake.saturating_duration_since(self.now.mono);
            self.now = self.now.after(by);
            out.extend(self.feed(Input::Tick));
        }
        self.now = until;
        out
    }

    pub fn advance(&mut self, by: Duration) -> Vec<Output> {
        let until = self.now.after(by);
        self.run_until(until)
    }

    pub fn state(
        &mut self,
        event_type: &str,
        state_key: &str,
        sender: &str,
        content: Value,
    ) -> Vec<Output> {
        self.feed_synced(Input::State(StateEvent {
            room_id: room_id(),
            event_type: event_type.to_owned(),
            state_key: state_key.to_owned(),
            sender: sender.try_into().unwrap(),
            origin_server_ts: self.now.unix_ms,
            content,
        }))
    }

    pub fn member(&mut self, user: &str, membership: &str) -> Vec<Output> {
        self.state(ROOM_MEMBER, user, user, json!({"membership": membership}))
    }

    /// A sync delivering one timeline event.
    pub fn timeline(&mut self, event_type: &str, sender: &str, content: Value) -> Vec<Output> {
        self.feed_synced(Input::Timeline(TimelineEvent {
            room_id: room_id(),
            event_type: event_type.to_owned(),
            sender: sender.try_into().unwrap(),
            origin_server_ts: self.now.unix_ms,
            content,
            sticky_duration_ms: None,
        }))
    }

    /// An MSC3401 mesh call `id` with intent `m.room`, and `user`'s device in it.
    pub fn mesh_call_with(&mut self, id: &str, user: &str, device: &str) -> Vec<Output> {
        let mut out = self.state(
            MESH_CALL,
            id,
            user,
            json!({"m.intent": "m.room", "m.type": "m.video"}),
        );
        out.extend(self.mesh_member(user, id, device, Duration::from_secs(3600)));
        out
    }

    pub fn mesh_member(
        &mut self,
        user: &str,
        call: &str,
        device: &str,
        lasts: Duration,
    ) -> Vec<Output> {
        let expires = self.now.unix_ms + lasts.as_millis() as u64;
        self.state(
            CALL_MEMBER,
            user,
            user,
            json!({"m.calls": [{"m.call_id": call, "m.foci": [], "m.devices": [
                {"device_id": device, "session_id": "s", "expires_ts": expires, "feeds": []}
            ]}]}),
        )
    }

    /// Answers every state write and delayed-event update in `out` with success, echoing state
    /// writes back as a sync would; repeats for what those answers cause. Returns all commands.
    pub fn homeserver_accepts(&mut self, out: Vec<Output>) -> Vec<MatrixCommand> {
        let mut seen = Vec::new();
        let mut queue = out;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for o in queue {
                let Output::Matrix(cmd) = o else {
                    self.stray.push(o);
                    continue;
                };
                seen.push(cmd.clone());
                match cmd {
                    MatrixCommand::SendState {
                        request,
                        event_type,
                        state_key,
                        content,
                        delay_ms,
                        ..
                    } => {
                        let delay_id = delay_ms.map(|_| {
                            self.delay_ids += 1;
                            format!("delay-{}", self.delay_ids)
                        });
                        match &delay_id {
                            Some(id) => {
                                self.delayed
                                    .insert(id.clone(), (event_type, state_key, content));
                            }
                            None => next.extend(self.state(&event_type, &state_key, ME, content)),
                        }
                        next.extend(self.feed(Input::StateSent {
                            request,
                            result: Ok(delay_id),
                        }));
                    }
                    MatrixCommand::UpdateDelayed {
                        request,
                        delay_id,
                        action,
                    } => {
                        if action != DelayedAction::Restart
                            && let Some((t, k, c)) = self.delayed.remove(&delay_id)
                            && action == DelayedAction::Send
                        {
                            next.extend(self.state(&t, &k, ME, c));
                        }
                        next.extend(self.feed(Input::DelayedUpdated {
                            request,
                            result: Ok(()),
                        }));
                    }
                    MatrixCommand::JoinRoom { request, .. } => {
                        next.extend(self.feed(Input::RoomJoined {
                            request,
                            result: Ok(room_id()),
                        }));
                    }
                    _ => {}
                }
            }
            queue = next;
        }
        seen
    }

    /// Lets `by` pass with the homeserver answering every request as it comes.
    pub fn live_for(&mut self, by: Duration) -> Vec<MatrixCommand> {
        let until = self.now.after(by);
        let mut seen = Vec::new();
        while let Some(wake) = self.core.next_wakeup(self.now).filter(|w| *w <= until.mono) {
            let out = self.run_until(
                self.now
                    .after(wake.saturating_duration_since(self.now.mono)),
            );
            seen.extend(self.homeserver_accepts(out));
        }
        self.now = until;
        seen
    }

    pub fn homeserver_accepts_state(
        &mut self,
        event_type: &str,
        state_key: &str,
        sender: &str,
        content: Value,
    ) -> Vec<MatrixCommand> {
        let out = self.state(event_type, state_key, sender, content);
        self.homeserver_accepts(out)
    }

    pub fn seat(&mut self) -> status::SeatState {
        self.core.status(self.now).rooms[0].state
    }

    pub fn participants(&mut self) -> Vec<String> {
        self.core.status(self.now).rooms[0]
            .calls
            .iter()
            .flat_map(|c| {
                c.participants
                    .iter()
                    .map(|p| format!("{} {}", p.user_id, p.device_id))
            })
            .collect()
    }
}

pub fn joins(out: &[Output]) -> Vec<&MatrixCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Matrix(c @ MatrixCommand::JoinRoom { .. }) => Some(c),
            _ => None,
        })
        .collect()
}

/// The state writes among `commands`: (state key, content, delayed?).
pub fn state_writes(commands: &[MatrixCommand]) -> Vec<(String, Value, bool)> {
    commands
        .iter()
        .filter_map(|c| match c {
            MatrixCommand::SendState {
                state_key,
                content,
                delay_ms,
                ..
            } => Some((state_key.clone(), content.clone(), delay_ms.is_some())),
            _ => None,
        })
        .collect()
}

pub fn delayed_actions(commands: &[MatrixCommand]) -> Vec<DelayedAction> {
    commands
        .iter()
        .filter_map(|c| match c {
            MatrixCommand::UpdateDelayed { action, .. } => Some(*action),
            _ => None,
        })
        .collect()
}

pub fn fail(kind: FailureKind) -> MatrixFailure {
    MatrixFailure {
        kind,
        message: "boom".to_owned(),
    }
}
