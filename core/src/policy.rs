//! Which call, if any, the device should be in for one room, given who is in the room's calls,
//! the configured join policy, rings and a hang-up.

use ruma::UserId;
use serde::Deserialize;

use super::membership::{CallId, Member};
use super::room::RoomState;

/// When the device joins a room's call (`[calls] join`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JoinPolicy {
    /// Join a room's call whenever someone else is in it.
    Auto,
    /// Join only when someone rings the room.
    WhenRung,
    Never,
}

/// Who we are in the room's calls, and whether we can take part in Element Call sessions.
#[derive(Debug, Clone)]
pub struct Me<'a> {
    pub user_id: &'a UserId,
    pub device_id: &'a str,
    pub sessions: SessionAbility,
}

/// Whether the device can take part in Element Call sessions (MatrixRTC through LiveKit) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAbility {
    /// The media engine has no LiveKit path.
    Unsupported,
    /// No LiveKit transport is known to publish on.
    NoTransport,
    Able,
}

impl Me<'_> {
    pub fn is(&self, m: &Member) -> bool {
        m.user_id == self.user_id && m.device_id == self.device_id
    }
}

/// A hang-up: stay out of `call` until it ends or someone rings again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HungUp {
    pub call: CallId,
    /// The latest ring we knew of when hanging up; a later one lifts the hang-up.
    pub ring_seen: Option<u64>,
}

/// The decision, with a reason for status displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub call: Option<CallId>,
    pub why: &'static str,
}

/// A call the device can take part in: an MSC3401 mesh call with intent `m.room`, or the
/// room's Element Call session when the device can join those and the room does not encrypt
/// (per-participant media encryption is not there yet).
fn joinable(room: &RoomState, call: &CallId, me: &Me) -> bool {
    match call {
        CallId::Mesh { group_call_id } => room
            .mesh_call(group_call_id)
            .is_some_and(|c| c.intent == "m.room" && !c.terminated),
        CallId::Rtc { .. } => {
            *call == CallId::room_call() && me.sessions == SessionAbility::Able && !room.encrypted()
        }
        CallId::Focus { .. } => false,
    }
}

/// Why the room's Element Call session cannot be joined, when it cannot.
fn session_obstacle(room: &RoomState, me: &Me) -> &'static str {
    match me.sessions {
        SessionAbility::Unsupported => {
            "the room's call uses a LiveKit focus, which roomd cannot join yet"
        }
        SessionAbility::NoTransport => {
            "the room's Element Call session needs a LiveKit transport to publish on; the \
             homeserver names none (calls.livekit_service_url sets one)"
        }
        SessionAbility::Able if room.encrypted() => {
            "the room's Element Call session encrypts its media end to end, which roomd cannot \
             do yet: staying out"
        }
        SessionAbility::Able => "the room's call is not one roomd can join",
    }
}

/// Whether anyone but us is live in `call`.
pub fn others_in(room: &RoomState, call: &CallId, me: &Me, now_ms: u64) -> bool {
    room.members(now_ms).any(|m| &m.call == call && !me.is(m))
}

/// Whether anyone but us is in any call in the room, joinable by us or not.
pub fn others_in_any_call(room: &RoomState, me: &Me, now_ms: u64) -> bool {
    room.members(now_ms).any(|m| !me.is(m))
}

/// Lifts a hang-up once its call has ended or someone has rung since.
pub fn hang_up_lapsed(room: &RoomState, h: &HungUp, me: &Me, now_ms: u64) -> bool {
    let over = match &h.call {
        // A focus conference lasts while the focus is in the room.
        CallId::Focus { user_id } => {
            UserId::parse(user_id.as_str()).is_ok_and(|u| !room.is_joined(&u))
        }
        call => !others_in(room, call, me, now_ms),
    };
    over || room.latest_ring(me.user_id) > h.ring_seen
}

/// Whether the room has a call we could join with someone else in it (not the hung-up one).
pub fn waiting_call(room: &RoomState, me: &Me, hung_up: Option<&HungUp>, now_ms: u64) -> bool {
    room.calls(now_ms).iter().any(|(call, members)| {
        joinable(room, call, me)
            && members.iter().any(|m| !me.is(m))
            && hung_up.is_none_or(|h| &h.call != call)
    })
}

/// Whether to join the conference held by `focus` (joined to the room). `asked`: someone
/// pressed join, which stands in for a ring.
pub fn decide_focus(
    room: &RoomState,
    policy: JoinPolicy,
    me: &Me,
    focus: &UserId,
    hung_up: Option<&HungUp>,
    asked: bool,
    now_ms: u64,
) -> Decision {
    let call = CallId::Focus {
        user_id: focus.to_string(),
    };
    if policy == JoinPolicy::Never {
        return Decision {
            call: None,
            why: "join policy is never",
        };
    }
    if hung_up.is_some_and(|h| h.call == call) {
        return Decision {
            call: None,
            why: "hung up; waiting for the conference to end or a ring",
        };
    }
    if policy == JoinPolicy::WhenRung && !asked && !room.rung(me.user_id, now_ms) {
        return Decision {
            call: None,
            why: "the conference focus is here; the join policy waits for a ring",
        };
    }
    Decision {
        call: Some(call),
        why: "in the conference through its focus",
    }
}

/// Which call to be in. `asked`: someone pressed join, which stands in for a ring.
pub fn decide(
    room: &RoomState,
    policy: JoinPolicy,
    me: &Me,
    current: Option<&CallId>,
    hung_up: Option<&HungUp>,
    asked: bool,
    now_ms: u64,
) -> Decision {
    if policy == JoinPolicy::Never {
        return Decision {
            call: None,
            why: "join policy is never",
        };
    }
    // Stay in the current call while anyone else is in it.
    if let Some(call) = current
        && joinable(room, call, me)
        && others_in(room, call, me, now_ms)
        && hung_up.is_none_or(|h| &h.call != call)
    {
        let another = room.calls(now_ms).iter().any(|(other, members)| {
            other != call && joinable(room, other, me) && members.iter().any(|m| !me.is(m))
        });
        let why = match call {
            CallId::Rtc { .. } if another => {
                "in the room's Element Call session (a mesh call is on too; Element Call first)"
            }
            _ if another => {
                "in the room's mesh call (an Element Call session is on too; staying in the \
                 call already joined)"
            }
            _ => "in the room's call",
        };
        return Decision {
            call: Some(call.clone()),
            why,
        };
    }
    let calls = room.calls(now_ms);
    let mut candidates = calls
        .iter()
        .filter(|(call, members)| joinable(room, call, me) && members.iter().any(|m| !me.is(m)))
        .map(|(call, _)| call)
        .filter(|call| hung_up.is_none_or(|h| &h.call != *call));
    let Some(candidate) = candidates.next() else {
        let why = if current.is_some() {
            "everyone else left"
        } else if hung_up.is_some() {
            "hung up; waiting for the call to end or a ring"
        } else if calls.keys().any(|c| matches!(c, CallId::Rtc { .. })) {
            session_obstacle(room, me)
        } else {
            "no call with anyone in it"
        };
        return Decision { call: None, why };
    };
    if policy == JoinPolicy::WhenRung && !asked && !room.rung(me.user_id, now_ms) {
        return Decision {
            call: None,
            why: "a call is on; the join policy waits for a ring",
        };
    }
    let both = candidate == &CallId::room_call() && candidates.next().is_some();
    Decision {
        call: Some(candidate.clone()),
        why: if both {
            "joining the room's Element Call session (a mesh call is on too; Element Call first)"
        } else {
            "joining the room's call"
        },
    }
}
