//! Who gets in: invites to rooms, accepted from the allow list, and 1:1 calls placed to the
//! device, answered in a served room or a two-person room from the members the config allows.

use ruma::{OwnedRoomId, RoomId, UserId};

use super::{JoinAttempt, Rooms};
use crate::calls::DirectAdmission;
use crate::events::Invite;
use crate::room::OwnMembership;
use crate::voip::HangupReason;
use crate::{MatrixCommand, MatrixFailure, Output, Outputs};

/// Invites remembered (so each is logged once) before the memory is cleared.
const MAX_INVITES_REMEMBERED: usize = 1000;

impl Rooms {
    pub fn on_invite(&mut self, invite: &Invite, ids: &mut u64, out: &mut Outputs) {
        let inviter = invite
            .inviter
            .as_ref()
            .map_or_else(|| "an unknown sender".to_owned(), |u| u.to_string());
        if let Some(room) = self
            .served
            .iter_mut()
            .find(|r| r.room_id.as_ref() == Some(&invite.room_id))
        {
            // Joining a served room is the served-room logic's job; it retries until it lands.
            // The invite may be what a refused join was waiting for: try again now.
            log::info!("invited to served room {} by {inviter}", invite.room_id);
            if matches!(room.join, JoinAttempt::Waiting(_)) {
                room.join = JoinAttempt::Idle;
            }
            return;
        }
        if self.invites_seen.contains_key(&invite.room_id) {
            return;
        }
        let allowed = invite
            .inviter
            .as_ref()
            .is_some_and(|u| self.settings.invite_from.iter().any(|p| p.matches(u)));
        let accept = allowed;
        if self.invites_seen.len() >= MAX_INVITES_REMEMBERED {
            // Spam invites must not grow memory without bound; forgetting only re-logs them.
            self.invites_seen.clear();
        }
        self.invites_seen.insert(invite.room_id.clone(), accept);
        if !accept {
            log::warn!(
                "ignoring the invite to {} from {inviter}: not in rooms.invite_from",
                invite.room_id
            );
            return;
        }
        log::info!("accepting the invite to {} from {inviter}", invite.room_id);
        *ids += 1;
        self.invite_joins.insert(*ids, invite.room_id.clone());
        out.push_back(Output::Matrix(MatrixCommand::JoinRoom {
            request: *ids,
            room: invite.room_id.clone().into(),
        }));
    }

    /// The result of the join that accepted an invite. Returns false if `request` was not one.
    pub(super) fn on_invite_joined(
        &mut self,
        request: u64,
        result: &Result<OwnedRoomId, MatrixFailure>,
    ) -> bool {
        let Some(room_id) = self.invite_joins.remove(&request) else {
            return false;
        };
        match result {
            Ok(_) => log::info!("joined {room_id}"),
            Err(e) => {
                log::warn!("could not accept the invite to {room_id}: {}", e.message);
                // A later invite to the same room gets another chance.
                self.invites_seen.remove(&room_id);
            }
        }
        true
    }

    /// Whether a 1:1 call placed to us by `sender` in `room_id` is answered: in a served room,
    /// or a two-person room, from a joined member the config allows, when not in another call.
    pub fn direct_admission(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        busy: bool,
    ) -> DirectAdmission {
        let Some(state) = self.states.get(room_id) else {
            return DirectAdmission::Ignore("not a room the device is in");
        };
        let served = self
            .served
            .iter()
            .any(|r| r.room_id.as_deref() == Some(room_id) && r.own == OwnMembership::Joined);
        if !served && state.joined_count() != 2 {
            return DirectAdmission::Ignore("neither a served room nor a direct chat");
        }
        if !state.is_joined(sender) {
            return DirectAdmission::Ignore("the caller is not a joined member");
        }
        if !self.settings.answer_direct_calls {
            return DirectAdmission::Refuse(
                "calls.answer_direct_calls is off",
                HangupReason::UserBusy,
            );
        }
        if !self
            .settings
            .direct_call_from
            .iter()
            .any(|p| p.matches(sender))
        {
            return DirectAdmission::Refuse(
                "the caller is not in calls.direct_call_from",
                HangupReason::UserBusy,
            );
        }
        if busy
            || self
                .served
                .iter()
                .any(|r| r.own_call.as_ref().is_some_and(|c| c.current().is_some()))
        {
            return DirectAdmission::Refuse("already in a call", HangupReason::UserBusy);
        }
        DirectAdmission::Answer
    }
}
