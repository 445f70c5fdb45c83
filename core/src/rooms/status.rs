//! The rooms' part of `roomd ctl status`.

use super::Rooms;
use crate::Now;
use crate::own_call::Phase as CallPhase;
use crate::room::OwnMembership;
use crate::status::{CallStatus, Participant, RoomStatus, SeatState};

impl Rooms {
    pub fn status(&self, now: Now) -> Vec<RoomStatus> {
        self.served
            .iter()
            .map(|room| {
                let state = room.room_id.as_ref().and_then(|id| self.states.get(id));
                let calls: Vec<CallStatus> = state
                    .map(|s| {
                        s.calls(now.unix_ms)
                            .into_iter()
                            .map(|(call, members)| CallStatus {
                                call,
                                participants: members
                                    .into_iter()
                                    .map(|m| Participant::new(m, now.unix_ms))
                                    .collect(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let seat = match room.own_call.as_ref().map(|c| c.phase()) {
                    _ if room.focus.is_some() => SeatState::InCall,
                    Some(CallPhase::Joining(_)) => SeatState::Joining,
                    Some(CallPhase::In(_)) => SeatState::InCall,
                    Some(CallPhase::Leaving(_)) => SeatState::Leaving,
                    _ if room.hung_up.is_some() => SeatState::LeftByHangUp,
                    _ => SeatState::Idle,
                };
                RoomStatus {
                    room: room.configured.to_string(),
                    room_id: room.room_id.as_ref().map(|id| id.to_string()),
                    joined: room.own == OwnMembership::Joined,
                    call_on: !calls.is_empty(),
                    calls,
                    state: seat,
                    why: room
                        .decision
                        .as_ref()
                        .map_or(String::new(), |d| d.why.to_owned()),
                }
            })
            .collect()
    }
}
