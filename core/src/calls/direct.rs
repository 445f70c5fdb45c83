//! 1:1 calls in rooms: answered (or refused) as the rooms' admission says, glare resolved by
//! the lower call ID, ended when the other party leaves; and the device's own 1:1 calls to a
//! conference focus, placed again a few times if they drop.

use ruma::{OwnedRoomId, OwnedUserId, UserId};

use super::{Calls, DirectAdmission, MAX_CALLS};
use crate::peer_call::{Direction, PeerCall, Route, State};
use crate::voip::{self, Body, HangupReason, Message, Outgoing};
use crate::{MatrixCommand, Now, Output, Outputs};

impl Calls {
    /// A room `m.call.*` event (a 1:1 call). `admission` is asked only for new invites.
    #[allow(clippy::too_many_arguments)]
    pub fn on_room_event(
        &mut self,
        now: Now,
        room_id: &OwnedRoomId,
        sender: &UserId,
        event_type: &str,
        content: &serde_json::Value,
        origin_server_ts: u64,
        admission: impl FnOnce() -> DirectAdmission,
        out: &mut Outputs,
    ) {
        let message = match voip::parse(event_type, content) {
            Ok(m) => m,
            Err(why) => return log::warn!("dropping a {event_type} from {sender}: {why}"),
        };
        if sender == self.me.user_id
            && message.party_id.as_deref() == Some(self.me.device_id.as_str())
        {
            return; // our own, echoed back
        }
        if let Some(call) = self.calls.get_mut(&message.call_id) {
            let ours = call.remote_user == sender
                && matches!(&call.route, Route::Room { room_id: r } if r == room_id);
            if ours {
                call.on_message(message, out);
                self.forget_ended();
            }
            return;
        }
        let Body::Invite {
            sdp,
            lifetime_ms,
            invitee,
            metadata,
        } = &message.body
        else {
            return;
        };
        if self.ended.contains(&message.call_id) {
            return;
        }
        if now.unix_ms.saturating_sub(origin_server_ts) > *lifetime_ms {
            return log::debug!("ignoring an expired invite from {sender}");
        }
        if invitee.as_ref().is_some_and(|i| i != &self.me.user_id) {
            return;
        }
        // Glare: we are calling the same user in the same room.
        let ours_calling: Option<String> = self
            .live()
            .find(|c| {
                c.calling()
                    && c.remote_user == sender
                    && matches!(&c.route, Route::Room { room_id: r } if r == room_id)
            })
            .map(|c| c.call_id.clone());
        if let Some(id) = ours_calling {
            if id < message.call_id {
                log::info!("glare with {sender}: our call {id} wins");
                self.refuse_room(room_id, &message, HangupReason::UserHangup, out);
                return;
            }
            log::info!("glare with {sender}: their call {} wins", message.call_id);
            self.hang_up_call(&id, HangupReason::UserHangup, out);
        } else {
            match admission() {
                DirectAdmission::Answer => {}
                DirectAdmission::Refuse(why, reason) => {
                    log::info!("refusing the call from {sender} in {room_id}: {why}");
                    self.refuse_room(room_id, &message, reason, out);
                    return;
                }
                DirectAdmission::Ignore(why) => {
                    return log::info!("ignoring the call from {sender} in {room_id}: {why}");
                }
            }
        }
        let call = PeerCall::answer(
            &message,
            sdp,
            metadata,
            sender.to_owned(),
            Route::Room {
                room_id: room_id.clone(),
            },
            self.me.device_id.to_string(),
            self.our_streams(),
            out,
        );
        self.calls.insert(message.call_id.clone(), call);
        self.forget_ended();
    }

    fn refuse_room(
        &mut self,
        room_id: &OwnedRoomId,
        invite: &Message,
        reason: HangupReason,
        out: &mut Outputs,
    ) {
        out.push_back(Output::Matrix(MatrixCommand::SendEvent {
            room_id: room_id.clone(),
            event_type: voip::HANGUP.to_owned(),
            content: voip::content(
                &Outgoing::Hangup(reason),
                &invite.call_id,
                self.me.device_id.as_str(),
                None,
            ),
        }));
        self.remember_ended(&invite.call_id);
    }

    /// Keeps a 1:1 call with each conference focus in `wanted` (placing it, and placing it
    /// again a few times if it drops), and hangs up the calls we placed to any other.
    pub fn converge_focus(
        &mut self,
        now: Now,
        wanted: &[(OwnedRoomId, OwnedUserId)],
        out: &mut Outputs,
    ) {
        let is_wanted = |c: &PeerCall| matches!(&c.route, Route::Room { room_id } if wanted.iter().any(|(r, u)| r == room_id && *u == c.remote_user));
        for call in self.calls.values_mut() {
            let ours = placed_direct(call);
            if ours && !call.ended() && !is_wanted(call) {
                call.hang_up(HangupReason::UserHangup, out);
            }
        }
        self.forget_ended();
        self.focus_retries.retain(|k, _| wanted.contains(k));
        for (room_id, focus) in wanted {
            let call = self.live().find(|c| {
                &c.remote_user == focus
                    && matches!(&c.route, Route::Room { room_id: r } if r == room_id)
            });
            let connected = call.is_some_and(|c| c.state() == State::Connected);
            let on = call.is_some();
            let full = self.calls.len() >= MAX_CALLS;
            let retry = self
                .focus_retries
                .entry((room_id.clone(), focus.clone()))
                .or_default();
            if !retry.place_now(now.mono, on, connected, full) {
                continue;
            }
            self.call_direct(room_id, focus, out);
        }
    }

    /// Places a 1:1 call to `user` in `room_id`.
    fn call_direct(&mut self, room_id: &OwnedRoomId, user: &UserId, out: &mut Outputs) {
        if self.calls.len() >= MAX_CALLS {
            return;
        }
        let call_id = self.new_call_id();
        let call = PeerCall::place(
            call_id.clone(),
            user.to_owned(),
            Route::Room {
                room_id: room_id.clone(),
            },
            self.me.device_id.to_string(),
            self.our_streams(),
            out,
        );
        self.calls.insert(call_id, call);
    }

    /// Ends the 1:1 calls whose other party has left the room.
    pub fn hang_up_departed(
        &mut self,
        joined: impl Fn(&OwnedRoomId, &UserId) -> bool,
        out: &mut Outputs,
    ) {
        for call in self.calls.values_mut() {
            if let Route::Room { room_id } = &call.route
                && !call.ended()
                && !joined(room_id, &call.remote_user)
            {
                log::info!("{} left {room_id}; ending the call", call.remote_user);
                call.hang_up(HangupReason::UserHangup, out);
            }
        }
        self.forget_ended();
    }

    /// Hangs up every 1:1 call in `room_id` (or everywhere).
    pub fn hang_up_direct(&mut self, room_id: Option<&OwnedRoomId>, out: &mut Outputs) -> usize {
        let ids: Vec<String> = self
            .live()
            .filter(|c| {
                matches!(&c.route, Route::Room { room_id: r } if room_id.is_none_or(|want| want == r))
            })
            .map(|c| c.call_id.clone())
            .collect();
        for id in &ids {
            self.hang_up_call(id, HangupReason::UserHangup, out);
        }
        self.forget_ended();
        ids.len()
    }
}

/// A 1:1 call the device placed (to a conference focus).
fn placed_direct(call: &PeerCall) -> bool {
    call.direction == Direction::Outbound && matches!(call.route, Route::Room { .. })
}
