//! Every peer call roomd has, and the rules for which ones it should have: in an MSC3401 mesh
//! call, one per other device, placed by whichever side matrix-js-sdk's `GroupCall` says
//! places it; 1:1 calls placed to the device in a room it may answer in. Incoming signalling
//! is checked (right session, right sender, in order) before it reaches a call.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};

use super::media::{Candidate, ConnectionState, PeerId, SdpKind};
use super::own_call::Identity;
use super::peer_call::{Direction, PeerCall, Route, State};
use super::reorder::{Arrival, Reorder};
use super::voip::{self, Body, HangupReason, Message, Metadata, Outgoing, StreamState};
use super::{MatrixCommand, Now, Output, Outputs};

/// The most calls at once; more is a flood.
const MAX_CALLS: usize = 16;
/// Reorder buffers kept for call IDs we may not know yet...
const MAX_REORDER_BUFFERS: usize = 64;
/// ...and of those, from any one user (devices times calls), so one member's flood of gapped
/// messages cannot hold the others' calls off.
const MAX_REORDER_BUFFERS_PER_SENDER: usize = 8;
/// Signalling addressed to our session that came before the sender's (or our own) call
/// membership: to-device messages can overtake the sync that brings the state. Held this long,
/// this many at most.
const EARLY_SIGNAL_WAIT: Duration = Duration::from_secs(10);
const MAX_EARLY_SIGNALS: usize = 32;
/// ...and this many from any one user, so one sender cannot crowd out a real caller's invite.
const MAX_EARLY_SIGNALS_PER_SENDER: usize = 8;

/// A to-device message waiting for the membership that makes it count.
#[derive(Debug)]
struct EarlySignal {
    until: Instant,
    sender: OwnedUserId,
    event_type: String,
    content: serde_json::Value,
}
/// Ended call IDs remembered, so late messages for them are dropped quietly.
const MAX_ENDED_REMEMBERED: usize = 256;
/// A callee that does not pick up (or a call that drops) is called again this often, this many
/// times (as `GroupCall`'s retry loop does).
const RETRY_AFTER: Duration = Duration::from_secs(3);
const MAX_RETRIES: u32 = 3;

/// One other device in a mesh call we are in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeshPeer {
    pub user_id: OwnedUserId,
    pub device_id: String,
    pub session_id: String,
}

/// A mesh call we are in, and who else is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mesh {
    pub room_id: OwnedRoomId,
    pub conf_id: String,
    pub peers: Vec<MeshPeer>,
}

/// Whether a 1:1 invite in a room may be answered, as the rooms' policy decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectAdmission {
    Answer,
    /// Refused with a hangup, for the log.
    Refuse(&'static str, HangupReason),
    /// Not ours to answer or refuse (another room, someone else's call): ignored.
    Ignore(&'static str),
}

/// A peer call, for `roomd ctl status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    pub call_id: String,
    pub peer: String,
    pub user_id: String,
    pub device_id: Option<String>,
    pub direction: super::peer_call::Direction,
    pub state: State,
    pub remote_audio_muted: bool,
    pub remote_video_muted: bool,
}

/// Placing a call again after it dropped, as `GroupCall`'s retry loop does.
#[derive(Debug, Default)]
struct Retry {
    attempts: u32,
    at: Option<Instant>,
}

impl Retry {
    /// Whether to place the call now (counting the attempt). `on`: a call is on; `connected`:
    /// it got through (the count starts again); `full`: no room for another call now.
    fn place_now(&mut self, now: Instant, on: bool, connected: bool, full: bool) -> bool {
        if connected {
            *self = Retry::default();
        }
        if on {
            // Nothing to place (perhaps they called us meanwhile): no timer either.
            self.at = None;
            return false;
        }
        if self.attempts > 0 && self.at.is_none() {
            // The last call just ended: call again after a pause.
            self.at = Some(now + RETRY_AFTER);
        }
        if self.at.is_some_and(|t| now < t) || self.attempts >= MAX_RETRIES {
            return false;
        }
        if full {
            self.at = Some(now + RETRY_AFTER);
            return false;
        }
        self.attempts += 1;
        self.at = None;
        true
    }
}

#[derive(Debug)]
pub struct Calls {
    me: Identity,
    stream_id: String,
    ours: StreamState,
    calls: BTreeMap<String, PeerCall>,
    meshes: Vec<Mesh>,
    /// By (sender, sender device, call ID).
    reorder: HashMap<(OwnedUserId, String, String), Reorder<Message>>,
    ended: VecDeque<String>,
    retries: HashMap<MeshPeer, Retry>,
    /// Calls to conference foci, by room and focus.
    focus_retries: HashMap<(OwnedRoomId, OwnedUserId), Retry>,
    early: VecDeque<EarlySignal>,
    next_call: u64,
}

/// Who places the call between two devices in a mesh: matrix-js-sdk's `wantsOutgoingCall`.
pub fn we_call(me: &Identity, user: &UserId, device: &str) -> bool {
    user.as_str() >= me.user_id.as_str() && (user != me.user_id || device > me.device_id.as_str())
}

impl Calls {
    pub fn new(me: Identity) -> Calls {
        Calls {
            stream_id: format!("roomd-{}", me.session_id),
            me,
            ours: StreamState {
                screenshare: false,
                audio_muted: false,
                video_muted: false,
            },
            calls: BTreeMap::new(),
            meshes: Vec::new(),
            reorder: HashMap::new(),
            ended: VecDeque::new(),
            retries: HashMap::new(),
            focus_retries: HashMap::new(),
            early: VecDeque::new(),
            next_call: 0,
        }
    }

    fn our_streams(&self) -> Metadata {
        Metadata::from([(self.stream_id.clone(), self.ours)])
    }

    fn new_call_id(&mut self) -> String {
        self.next_call += 1;
        // Unique across restarts (the session is random per process) and across calls.
        format!("{}{:06}", self.me.session_id, self.next_call)
    }

    fn live(&self) -> impl Iterator<Item = &PeerCall> {
        self.calls.values().filter(|c| !c.ended())
    }

    /// Whether someone's 1:1 call to the device is on (which keeps it out of group calls).
    pub fn direct_call_on(&self) -> bool {
        self.live()
            .any(|c| matches!(c.route, Route::Room { .. }) && c.direction == Direction::Inbound)
    }

    pub fn any_call_on(&self) -> bool {
        self.live().next().is_some()
    }

    fn forget_ended(&mut self) {
        let ended: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.ended())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            self.calls.remove(&id);
            self.reorder.retain(|(_, _, call), _| call != &id);
            if self.ended.len() >= MAX_ENDED_REMEMBERED {
                self.ended.pop_front();
            }
            self.ended.push_back(id);
        }
    }

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

    /// Feeds the early signalling whose membership has arrived; forgets what waited too long.
    fn release_early(&mut self, now: Now, out: &mut Outputs) {
        for early in std::mem::take(&mut self.early) {
            if now.mono >= early.until {
                log::warn!(
                    "dropping a {} from {}: its sender never joined our call",
                    early.event_type,
                    early.sender
                );
                continue;
            }
            let member = voip::parse(&early.event_type, &early.content)
                .ok()
                .and_then(|m| m.routing)
                .is_some_and(|r| self.is_member(&early.sender, &r));
            if member {
                self.on_to_device(now, &early.sender, &early.event_type, &early.content, out);
            } else {
                self.early.push_back(early);
            }
        }
    }

    /// Whether the routing names a device in a mesh call we are in.
    fn is_member(&self, sender: &UserId, routing: &voip::Routing) -> bool {
        self.meshes
            .iter()
            .filter(|m| m.conf_id == routing.conf_id)
            .flat_map(|m| &m.peers)
            .any(|p| {
                p.user_id == sender
                    && p.device_id == routing.device_id
                    && p.session_id == routing.sender_session_id
            })
    }

    fn hold_early(
        &mut self,
        now: Now,
        sender: &UserId,
        event_type: &str,
        content: &serde_json::Value,
    ) {
        if self.early.len() >= MAX_EARLY_SIGNALS {
            return log::warn!(
                "dropping a {event_type} from {sender}: not a member of our call, and too much \
                 signalling is already waiting for memberships"
            );
        }
        if self.early.iter().filter(|e| e.sender == sender).count() >= MAX_EARLY_SIGNALS_PER_SENDER
        {
            return log::warn!(
                "dropping a {event_type} from {sender}: not a member of our call, and too much of \
                 its signalling is already waiting for its membership"
            );
        }
        log::debug!("holding a {event_type} from {sender} until its membership arrives");
        self.early.push_back(EarlySignal {
            until: now.mono + EARLY_SIGNAL_WAIT,
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            content: content.clone(),
        });
    }

    /// A to-device `m.call.*` message.
    pub fn on_to_device(
        &mut self,
        now: Now,
        sender: &UserId,
        event_type: &str,
        content: &serde_json::Value,
        out: &mut Outputs,
    ) {
        let message = match voip::parse(event_type, content) {
            Ok(m) => m,
            Err(why) => {
                return log::warn!("dropping a {event_type} from {sender}: {why}");
            }
        };
        let Some(routing) = message.routing.clone() else {
            return log::warn!("dropping a to-device {event_type} from {sender}: no conf_id");
        };
        if routing.dest_session_id != self.me.session_id {
            return log::debug!("dropping a {event_type} from {sender} for another session");
        }
        if !self.is_member(sender, &routing) {
            // Addressed to this session, so meant for a call of ours: the membership that
            // makes it count may still be on its way.
            return self.hold_early(now, sender, event_type, content);
        }
        if self.ended.contains(&message.call_id) {
            return log::debug!("dropping a {event_type} for ended call {}", message.call_id);
        }
        let key = (
            sender.to_owned(),
            routing.device_id.clone(),
            message.call_id.clone(),
        );
        if !self.reorder.contains_key(&key) && self.reorder.len() >= MAX_REORDER_BUFFERS {
            // Keep only buffers of calls we have or that hold messages waiting for a gap.
            let calls = &self.calls;
            self.reorder
                .retain(|(_, _, id), r| calls.contains_key(id) || r.held() > 0);
        }
        if !self.reorder.contains_key(&key) && self.reorder.len() >= MAX_REORDER_BUFFERS {
            return log::warn!("dropping a {event_type} from {sender}: too many calls signalled");
        }
        if !self.reorder.contains_key(&key)
            && self.reorder.keys().filter(|k| *k.0 == *sender).count()
                >= MAX_REORDER_BUFFERS_PER_SENDER
        {
            return log::warn!("dropping a {event_type} from {sender}: too many of its calls open");
        }
        let call_id = message.call_id.clone();
        let arrival = self
            .reorder
            .entry(key)
            .or_default()
            .arrive(now.mono, routing.seq, message);
        match arrival {
            Arrival::Ready(messages) => {
                for m in messages {
                    self.dispatch_device(now, sender, m, out);
                }
            }
            Arrival::Held => log::debug!("holding {event_type} seq {} of {call_id}", routing.seq),
            Arrival::Duplicate => log::debug!("dropping a duplicate {event_type} of {call_id}"),
            Arrival::TooFarAhead { seq, expected } if !self.calls.contains_key(&call_id) => {
                log::warn!("dropping a {event_type} from {sender}: seq {seq}, expected {expected}");
            }
            Arrival::TooFarAhead { seq, expected } => {
                log::warn!(
                    "{sender} jumped to seq {seq} in call {call_id} (expected {expected}); hanging up"
                );
                self.hang_up_call(&call_id, HangupReason::UnknownError, out);
                self.forget_ended();
            }
        }
        // A buffer for a call we do not have, with nothing waiting in it, is not kept.
        let key = (
            sender.to_owned(),
            routing.device_id.clone(),
            call_id.clone(),
        );
        if !self.calls.contains_key(&call_id)
            && self.reorder.get(&key).is_some_and(|r| r.held() == 0)
        {
            self.reorder.remove(&key);
        }
    }

    fn dispatch_device(&mut self, now: Now, sender: &UserId, message: Message, out: &mut Outputs) {
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

    fn remember_ended(&mut self, call_id: &str) {
        if self.ended.len() >= MAX_ENDED_REMEMBERED {
            self.ended.pop_front();
        }
        self.ended.push_back(call_id.to_owned());
    }

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
            let ours = c_is_placed_direct(call);
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

    fn hang_up_call(&mut self, call_id: &str, reason: HangupReason, out: &mut Outputs) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.hang_up(reason, out);
        }
    }

    fn by_peer(&mut self, peer: &PeerId) -> Option<&mut PeerCall> {
        self.calls.values_mut().find(|c| &c.media == peer)
    }

    pub fn on_local_description(
        &mut self,
        now: Now,
        peer: &PeerId,
        kind: SdpKind,
        sdp: String,
        out: &mut Outputs,
    ) {
        if let Some(call) = self.by_peer(peer) {
            call.on_local_description(now.mono, kind, sdp, out);
        }
    }

    pub fn on_local_candidate(
        &mut self,
        now: Now,
        peer: &PeerId,
        candidate: Candidate,
        out: &mut Outputs,
    ) {
        if let Some(call) = self.by_peer(peer) {
            call.on_local_candidate(now.mono, candidate, out);
        }
    }

    pub fn on_connection_state(
        &mut self,
        now: Now,
        peer: &PeerId,
        state: ConnectionState,
        out: &mut Outputs,
    ) {
        if let Some(call) = self.by_peer(peer) {
            call.on_connection_state(now.mono, state, out);
        }
        self.forget_ended();
    }

    /// The media engine could not build or drive a peer: the call cannot go on.
    pub fn on_media_refused(&mut self, peer: &PeerId, out: &mut Outputs) {
        if let Some(call) = self.by_peer(peer) {
            call.hang_up(HangupReason::UserMediaFailed, out);
        }
        self.forget_ended();
    }

    /// The microphone or camera changed (as the media engine confirms).
    pub fn set_ours(
        &mut self,
        audio_muted: Option<bool>,
        video_muted: Option<bool>,
        out: &mut Outputs,
    ) {
        if let Some(m) = audio_muted {
            self.ours.audio_muted = m;
        }
        if let Some(m) = video_muted {
            self.ours.video_muted = m;
        }
        let ours = self.ours;
        for call in self.calls.values_mut() {
            call.set_our_streams(ours, out);
        }
    }

    pub fn on_tick(&mut self, now: Now, out: &mut Outputs) {
        for call in self.calls.values_mut() {
            call.on_tick(now.mono, out);
        }
        let calls = &self.calls;
        for ((sender, _, call_id), r) in self.reorder.iter_mut() {
            if r.stalled(now.mono) {
                let dropped = r.drop_held();
                log::warn!(
                    "{sender} left a gap in the signalling of call {call_id}; dropped the \
                     {dropped} message(s) waiting behind it"
                );
            }
        }
        self.reorder
            .retain(|(_, _, id), r| calls.contains_key(id) || r.held() > 0);
        self.forget_ended();
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        let calls = self.calls.values().filter_map(PeerCall::next_wakeup);
        let gaps = self.reorder.values().filter_map(Reorder::deadline);
        let retries = self
            .retries
            .values()
            .chain(self.focus_retries.values())
            .filter(|r| r.attempts < MAX_RETRIES)
            .filter_map(|r| r.at);
        calls.chain(gaps).chain(retries).min()
    }

    pub fn summary(&self) -> Vec<CallSummary> {
        self.live()
            .map(|c| CallSummary {
                call_id: c.call_id.clone(),
                peer: c.media.to_string(),
                user_id: c.remote_user.to_string(),
                device_id: c.remote_device().map(str::to_owned),
                direction: c.direction,
                state: c.state(),
                remote_audio_muted: c.their_streams().values().any(|s| s.audio_muted),
                remote_video_muted: c.their_streams().values().any(|s| s.video_muted),
            })
            .collect()
    }
}

/// A 1:1 call the device placed (to a conference focus).
fn c_is_placed_direct(call: &PeerCall) -> bool {
    call.direction == Direction::Outbound && matches!(call.route, Route::Room { .. })
}
