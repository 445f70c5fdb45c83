//! Every peer call roomd has, and the rules for which ones it should have: in an MSC3401 mesh
//! call, one per other device, placed by whichever side matrix-js-sdk's `GroupCall` says
//! places it (mesh.rs); 1:1 calls placed to the device in a room it may answer in, and calls to
//! a conference focus (direct.rs). Incoming to-device signalling is checked (right session,
//! right sender, in order) before it reaches a call (gate.rs).

mod direct;
mod gate;
mod mesh;
mod retry;

pub use mesh::we_call;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::media::{Candidate, ConnectionState, PeerId, SdpKind};
use super::own_call::Identity;
use super::peer_call::{Direction, PeerCall, Route, State};
use super::reorder::Reorder;
use super::voip::{HangupReason, Message, Metadata, StreamState};
use super::{Now, Outputs};
use gate::{EarlySignal, MAX_ENDED_REMEMBERED};
use retry::{MAX_RETRIES, Retry};

/// The most calls at once; more is a flood.
const MAX_CALLS: usize = 16;
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
