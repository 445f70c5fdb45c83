//! Mesh calls (MSC3401): one peer call per other device, placed by whichever side
//! matrix-js-sdk's `GroupCall` says places it, answered when the other side places it, and
//! hung up when the device leaves or comes back as a new session.

use ruma::UserId;

use super::{Calls, MAX_CALLS, Mesh};
use crate::own_call::Identity;
use crate::peer_call::{PeerCall, Route, State};
use crate::voip::{self, Body, HangupReason, Message, Outgoing};
use crate::{MatrixCommand, Now, Output, Outputs};

/// Who places the call between two devices in a mesh: matrix-js-sdk's `wantsOutgoingCall`.
pub fn we_call(me: &Identity, user: &UserId, device: &str) -> bool {
    user.as_str() >= me.user_id.as_str() && (user != me.user_id || device > me.device_id.as_str())
}

impl Calls {
    /// Brings the mesh calls in line with who is in them: places the calls that are ours to
    /// place, hangs up on devices that left (or came back as a new session), and on every
    /// device of a mesh we are no longer in.
    pub fn reconcile(&mut self, now: Now, meshes: Vec<Mesh>, out: &mut Outputs) {
        let wanted = |call: &PeerCall, meshes: &[Mesh]| match &call.route {
            Route::Device {
                device_id,
                conf_id,
                dest_session_id,
                ..
            } => meshes.iter().any(|m| {
                &m.conf_id == conf_id
                    && m.peers.iter().any(|p| {
                        p.user_id == call.remote_user
                            && &p.device_id == device_id
                            && &p.session_id == dest_session_id
                    })
            }),
            Route::Room { .. } => true,
        };
        for call in self.calls.values_mut() {
            if !call.ended() && !wanted(call, &meshes) {
                call.hang_up(HangupReason::UserHangup, out);
            }
        }
        self.retries
            .retain(|p, _| meshes.iter().any(|m| m.peers.iter().any(|q| q == p)));
        for mesh in &meshes {
            for peer in &mesh.peers {
                if (peer.user_id == self.me.user_id && peer.device_id == self.me.device_id.as_str())
                    || !we_call(&self.me, &peer.user_id, &peer.device_id)
                {
                    continue;
                }
                let has_call = self.live().any(|c| {
                    c.remote_user == peer.user_id
                        && c.remote_device() == Some(peer.device_id.as_str())
                        && c.remote_session() == Some(peer.session_id.as_str())
                });
                let connected = self.live().any(|c| {
                    c.remote_user == peer.user_id
                        && c.remote_device() == Some(peer.device_id.as_str())
                        && c.state() == State::Connected
                });
                let full = self.calls.len() >= MAX_CALLS;
                let retry = self.retries.entry(peer.clone()).or_default();
                if !retry.place_now(now.mono, has_call, connected, full) {
                    if full && !has_call {
                        log::warn!("not calling {}: too many calls", peer.user_id);
                    }
                    continue;
                }
                let call_id = self.new_call_id();
                let route = Route::Device {
                    device_id: peer.device_id.clone(),
                    conf_id: mesh.conf_id.clone(),
                    sender_session_id: self.me.session_id.clone(),
                    dest_session_id: peer.session_id.clone(),
                };
                let call = PeerCall::place(
                    call_id.clone(),
                    peer.user_id.clone(),
                    route,
                    self.me.device_id.to_string(),
                    self.our_streams(),
                    out,
                );
                self.calls.insert(call_id, call);
            }
        }
        self.meshes = meshes;
        self.forget_ended();
        self.release_early(now, out);
    }

    pub(super) fn dispatch_device(
        &mut self,
        now: Now,
        sender: &UserId,
        message: Message,
        out: &mut Outputs,
    ) {
        let routing = message.routing.clone().expect("checked by on_to_device");
        if let Some(call) = self.calls.get_mut(&message.call_id) {
            let same_device = call.remote_user == sender
                && call.remote_device() == Some(routing.device_id.as_str());
            if same_device {
                call.on_message(message, out);
            } else {
                log::warn!("{sender} sent signalling for a call that is not theirs; dropped");
            }
            return;
        }
        let Body::Invite {
            sdp,
            metadata,
            invitee,
            ..
        } = &message.body
        else {
            return log::debug!(
                "dropping a {} for unknown call {}",
                message.body.event_type(),
                message.call_id
            );
        };
        if invitee.as_ref().is_some_and(|i| i != &self.me.user_id) {
            return;
        }
        // The same device calling again (a new call ID) replaces its old call; if we are calling
        // it at the same moment, the lower call ID wins (glare, as the VoIP spec says).
        let existing: Vec<String> = self
            .live()
            .filter(|c| {
                c.remote_user == sender
                    && c.remote_device() == Some(routing.device_id.as_str())
                    && matches!(&c.route, Route::Device { conf_id, .. } if conf_id == &routing.conf_id)
            })
            .map(|c| c.call_id.clone())
            .collect();
        for id in existing {
            let call = self.calls.get_mut(&id).expect("listed above");
            if call.calling() && id < message.call_id {
                log::info!(
                    "glare with {sender}: our call {id} wins over {}",
                    message.call_id
                );
                self.refuse_device(&message, sender, HangupReason::UserHangup, out);
                return;
            }
            log::info!("{sender} replaced call {id} with {}", message.call_id);
            call.hang_up(HangupReason::UserHangup, out);
        }
        if self.live().count() >= MAX_CALLS {
            return self.refuse_device(&message, sender, HangupReason::UserBusy, out);
        }
        let route = Route::Device {
            device_id: routing.device_id.clone(),
            conf_id: routing.conf_id.clone(),
            sender_session_id: self.me.session_id.clone(),
            dest_session_id: routing.sender_session_id.clone(),
        };
        let call = PeerCall::answer(
            &message,
            sdp,
            metadata,
            sender.to_owned(),
            route,
            self.me.device_id.to_string(),
            self.our_streams(),
            out,
        );
        let _ = now;
        self.calls.insert(message.call_id.clone(), call);
    }

    /// Hangs up on a device's invite without taking it.
    fn refuse_device(
        &mut self,
        invite: &Message,
        sender: &UserId,
        reason: HangupReason,
        out: &mut Outputs,
    ) {
        let Some(routing) = &invite.routing else {
            return;
        };
        let reply = voip::Routing {
            conf_id: routing.conf_id.clone(),
            device_id: self.me.device_id.to_string(),
            sender_session_id: self.me.session_id.clone(),
            dest_session_id: routing.sender_session_id.clone(),
            seq: 0,
        };
        out.push_back(Output::Matrix(MatrixCommand::SendToDevice {
            user_id: sender.to_owned(),
            device_id: routing.device_id.clone(),
            event_type: voip::HANGUP.to_owned(),
            content: voip::content(
                &Outgoing::Hangup(reason),
                &invite.call_id,
                self.me.device_id.as_str(),
                Some(&reply),
            ),
        }));
        self.remember_ended(&invite.call_id);
    }
}
