//! A call the device started (the join button with no call on): the room's Element Call
//! session when the device can join those and the config prefers them, else an MSC3401 mesh
//! call (taken up if one is open); waiting for people, and ended when nobody came, when the last
//! one who came left, or when the device hung up alone in it.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Rooms, ServedRoom};
use crate::events::{MESH_CALL, RTC_NOTIFICATION};
use crate::membership::CallId;
use crate::policy::{self, Me, SessionAbility};
use crate::room::RoomState;
use crate::{MatrixCommand, Now, Output, Outputs};

/// How long a call the device started waits for someone to come.
const STARTED_CALL_WAIT: Duration = Duration::from_secs(120);

/// A call the device started (the join button with no call on), waiting for people.
#[derive(Debug, Clone)]
pub(super) struct Started {
    /// A mesh call (its group call ID) or the room's Element Call session.
    call: CallId,
    /// Nobody came by then: the call is ended.
    until_ms: u64,
    /// Someone came: the call is ended when the last of them leaves, as the last one out.
    someone_came: bool,
    /// The device hung up: the call is ended now if nobody else is in it, or left to them.
    hung_up: bool,
}

impl Started {
    pub(super) fn call(&self) -> &CallId {
        &self.call
    }

    /// When the call is ended for nobody having come, while nobody has.
    pub(super) fn deadline(&self, now: Now) -> Option<Instant> {
        (!self.someone_came).then(|| now.instant_at(self.until_ms))
    }

    /// The device hung up: the call ends now if nobody else is in it.
    pub(super) fn hang_up(&mut self) {
        self.hung_up = true;
    }
}

impl Rooms {
    /// Starts an MSC3401 mesh call with intent `m.room` in served room `i`: the room's members
    /// see a call to join, and the device waits in it for them. A call already open in the
    /// room, even with nobody in it, is taken up instead: matrix-js-sdk keeps to the one it
    /// knows and would never see a second.
    pub(super) fn start_call(
        &mut self,
        i: usize,
        now: Now,
        ids: &mut u64,
        out: &mut Outputs,
    ) -> String {
        let encrypted = self.served[i]
            .room_id
            .as_ref()
            .and_then(|id| self.states.get(id))
            .is_some_and(RoomState::encrypted);
        if self.settings.start_sessions && self.sessions == SessionAbility::Able && !encrypted {
            return self.start_session(i, now, out);
        }
        let served = &mut self.served[i];
        let room_id = served.room_id.clone().expect("a joined room has an ID");
        let open = self
            .states
            .get(&room_id)
            .and_then(|s| s.newest_open_mesh_call());
        let group_call_id = match open {
            Some(id) => {
                log::info!(
                    "join pressed with nobody in a call: taking up call {id} in {}",
                    served.configured
                );
                id.to_owned()
            }
            None => {
                *ids += 1;
                // Unique per run (the session ID) and per call.
                let id = format!("roomd-{}-{}", self.me.session_id, ids);
                log::info!(
                    "join pressed with no call on: starting call {id} in {}",
                    served.configured
                );
                out.push_back(Output::Matrix(MatrixCommand::SendState {
                    request: *ids,
                    room_id,
                    event_type: MESH_CALL.to_owned(),
                    state_key: id.clone(),
                    content: serde_json::json!({"m.intent": "m.room", "m.type": "m.video"}),
                    delay_ms: None,
                }));
                id
            }
        };
        served.hung_up = None;
        served.started = Some(Started {
            call: CallId::mesh(&group_call_id),
            until_ms: now.unix_ms + STARTED_CALL_WAIT.as_millis() as u64,
            someone_came: false,
            hung_up: false,
        });
        format!(
            "started a call in {}; waiting for people",
            served.configured
        )
    }

    /// Starts the room's Element Call session in served room `i`: joins it, and tells the room
    /// as Element Call's first joiner does (an `rtc.notification`, which clients show and which
    /// the members' devices may ring for).
    fn start_session(&mut self, i: usize, now: Now, out: &mut Outputs) -> String {
        let served = &mut self.served[i];
        let room_id = served.room_id.clone().expect("a joined room has an ID");
        log::info!(
            "join pressed with no call on: starting the Element Call session in {}",
            served.configured
        );
        out.push_back(Output::Matrix(MatrixCommand::SendEvent {
            room_id,
            event_type: RTC_NOTIFICATION.to_owned(),
            content: json!({
                "m.mentions": {"user_ids": [], "room": true},
                "notification_type": "notification",
                "sender_ts": now.unix_ms,
                "lifetime": 30_000,
                "m.call.intent": "video",
            }),
        }));
        served.hung_up = None;
        served.started = Some(Started {
            call: CallId::room_call(),
            until_ms: now.unix_ms + STARTED_CALL_WAIT.as_millis() as u64,
            someone_came: false,
            hung_up: false,
        });
        format!(
            "started the Element Call session in {}; waiting for people",
            served.configured
        )
    }

    /// Ends a call the device started when nobody came in time, when the last one who came
    /// has left, or when the device hung up alone in it: marks it terminated, as matrix-js-sdk
    /// does when the last one leaves. Hung up with others in it, the call is left to them.
    pub(super) fn end_started_call(
        served: &mut ServedRoom,
        state: &RoomState,
        me: &Me,
        now: Now,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        let Some(started) = &mut served.started else {
            return;
        };
        let call = started.call.clone();
        let others = policy::others_in(state, &call, me, now.unix_ms);
        started.someone_came |= others;
        let over = if started.someone_came {
            !others
        } else {
            now.unix_ms >= started.until_ms
        };
        if !over && !started.hung_up {
            return;
        }
        // A session ends as each of us leaves; a mesh call is marked terminated.
        if let (false, Some(room_id), CallId::Mesh { group_call_id }) =
            (others, served.room_id.clone(), &call)
        {
            let why = if started.someone_came {
                "everyone has left"
            } else if started.hung_up {
                "hung up alone in it"
            } else {
                "nobody came"
            };
            log::info!(
                "{why}: ending call {group_call_id} in {}",
                served.configured
            );
            // A call taken up keeps its own intent and type.
            let (intent, call_type) = state
                .mesh_call(group_call_id)
                .map_or(("m.room", Some("m.video")), |c| {
                    (c.intent.as_str(), c.call_type.as_deref())
                });
            let mut content = serde_json::json!({"m.intent": intent, "m.terminated": "call_ended"});
            if let Some(call_type) = call_type {
                content["m.type"] = call_type.into();
            }
            *ids += 1;
            out.push_back(Output::Matrix(MatrixCommand::SendState {
                request: *ids,
                room_id,
                event_type: MESH_CALL.to_owned(),
                state_key: group_call_id.clone(),
                content,
                delay_ms: None,
            }));
        }
        served.started = None;
    }
}
