//! One WebRTC call with one remote party, as the Matrix VoIP spec (version 1) runs it: invite,
//! answer, trickled candidates, select_answer, renegotiation, hangup and stream metadata. It
//! drives one media-engine peer and sends its signalling either to one device (MSC3401 mesh) or
//! into a room (1:1 calls).

use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::media::{Candidate, ConnectionState, MediaCommand, PeerId, SdpKind};
use super::voip::{self, Body, HangupReason, Message, Metadata, Outgoing, Routing, StreamState};
use super::{MatrixCommand, Output, Outputs};

/// How long our invite stands (matrix-js-sdk's CALL_TIMEOUT_MS).
pub const INVITE_LIFETIME: Duration = Duration::from_secs(60);
/// Local candidates are gathered for this long and sent together, to spare the homeserver.
pub const CANDIDATE_BATCH: Duration = Duration::from_millis(50);
/// How long a connection may stay disconnected before the call is given up.
pub const DISCONNECTED_GRACE: Duration = Duration::from_secs(15);
/// Bounds on what one call holds for the other side.
const MAX_QUEUED_CANDIDATES: usize = 64;
const MAX_EARLY_REMOTE_CANDIDATES: usize = 128;

/// Where a call's signalling goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// To-device messages to one device in an MSC3401 group call.
    Device {
        device_id: String,
        conf_id: String,
        sender_session_id: String,
        dest_session_id: String,
    },
    /// Room events in a 1:1 call.
    Room { room_id: OwnedRoomId },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Outbound,
    Inbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for the media engine's offer.
    CreatingOffer,
    /// Invite sent, waiting for an answer.
    Inviting,
    /// Waiting for the media engine's answer to the invite.
    Answering,
    /// Descriptions exchanged; the connection is being established.
    Connecting,
    Connected,
    Ended,
}

/// A renegotiation in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renegotiation {
    None,
    /// We asked the media engine for an offer (or sent it and wait for the answer).
    Offering,
    /// The other side offered; the media engine is answering.
    Answering,
}

#[derive(Debug)]
pub struct PeerCall {
    pub call_id: String,
    pub media: PeerId,
    pub remote_user: OwnedUserId,
    pub route: Route,
    pub direction: Direction,
    our_party: String,
    their_party: Option<String>,
    state: State,
    renegotiation: Renegotiation,
    seq_out: u64,
    our_streams: Metadata,
    their_streams: Metadata,
    local_candidates: Vec<Candidate>,
    flush_at: Option<Instant>,
    early_remote: Vec<Candidate>,
    remote_description: bool,
    invite_until: Option<Instant>,
    disconnected_since: Option<Instant>,
    /// Whether we have asked for an ICE restart since the connection last worked.
    restarted_ice: bool,
    /// Why it ended, for the log and status.
    pub ended_because: Option<String>,
}

impl PeerCall {
    #[allow(clippy::too_many_arguments)]
    fn new(
        call_id: String,
        remote_user: OwnedUserId,
        route: Route,
        direction: Direction,
        our_party: String,
        our_streams: Metadata,
        state: State,
    ) -> PeerCall {
        let device = match &route {
            Route::Device { device_id, .. } => device_id.as_str(),
            Route::Room { .. } => "room",
        };
        PeerCall {
            media: PeerId(format!("{remote_user}/{device}/{call_id}")),
            call_id,
            remote_user,
            route,
            direction,
            our_party,
            their_party: None,
            state,
            renegotiation: Renegotiation::None,
            seq_out: 0,
            our_streams,
            their_streams: Metadata::new(),
            local_candidates: Vec::new(),
            flush_at: None,
            early_remote: Vec::new(),
            remote_description: false,
            invite_until: None,
            disconnected_since: None,
            restarted_ice: false,
            ended_because: None,
        }
    }

    /// Places a call: the media engine makes an offer, which goes out as the invite.
    pub fn place(
        call_id: String,
        remote_user: OwnedUserId,
        route: Route,
        our_party: String,
        our_streams: Metadata,
        out: &mut Outputs,
    ) -> PeerCall {
        let call = PeerCall::new(
            call_id,
            remote_user,
            route,
            Direction::Outbound,
            our_party,
            our_streams,
            State::CreatingOffer,
        );
        log::info!("calling {} ({})", call.remote_user, call.call_id);
        out.push_back(Output::Media(MediaCommand::AddPeer {
            peer: call.media.clone(),
            remote_offer: None,
            stream_id: call.stream_id(),
        }));
        call
    }

    /// Answers an invite: the media engine answers the offer, which goes out as the answer.
    #[allow(clippy::too_many_arguments)]
    pub fn answer(
        invite: &Message,
        offer: &str,
        their_streams: &Metadata,
        remote_user: OwnedUserId,
        route: Route,
        our_party: String,
        our_streams: Metadata,
        out: &mut Outputs,
    ) -> PeerCall {
        let mut call = PeerCall::new(
            invite.call_id.clone(),
            remote_user,
            route,
            Direction::Inbound,
            our_party,
            our_streams,
            State::Answering,
        );
        call.their_party = invite.party_id.clone();
        call.their_streams = their_streams.clone();
        call.remote_description = true;
        log::info!("answering {} ({})", call.remote_user, call.call_id);
        out.push_back(Output::Media(MediaCommand::AddPeer {
            peer: call.media.clone(),
            remote_offer: Some(offer.to_owned()),
            stream_id: call.stream_id(),
        }));
        call
    }

    fn stream_id(&self) -> String {
        self.our_streams.keys().next().cloned().unwrap_or_default()
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn ended(&self) -> bool {
        self.state == State::Ended
    }

    /// Whether the call is still being set up by us (offer not yet answered).
    pub fn calling(&self) -> bool {
        self.direction == Direction::Outbound
            && matches!(self.state, State::CreatingOffer | State::Inviting)
    }

    pub fn remote_device(&self) -> Option<&str> {
        match &self.route {
            Route::Device { device_id, .. } => Some(device_id),
            Route::Room { .. } => None,
        }
    }

    pub fn remote_session(&self) -> Option<&str> {
        match &self.route {
            Route::Device {
                dest_session_id, ..
            } => Some(dest_session_id),
            Route::Room { .. } => None,
        }
    }

    /// What the other side says of its streams (mute state, for the display and status).
    pub fn their_streams(&self) -> &Metadata {
        &self.their_streams
    }

    /// Whether invite or answer has gone out, so the other side knows this call.
    fn known_to_them(&self) -> bool {
        !matches!(self.state, State::CreatingOffer | State::Answering)
    }

    fn send(&mut self, message: Outgoing, out: &mut Outputs) {
        let event_type = message.event_type().to_owned();
        let command = match &self.route {
            Route::Device {
                device_id,
                conf_id,
                sender_session_id,
                dest_session_id,
            } => {
                let routing = Routing {
                    conf_id: conf_id.clone(),
                    // Our party ID is our device ID, as matrix-js-sdk's is.
                    device_id: self.our_party.clone(),
                    sender_session_id: sender_session_id.clone(),
                    dest_session_id: dest_session_id.clone(),
                    seq: self.seq_out,
                };
                self.seq_out += 1;
                MatrixCommand::SendToDevice {
                    user_id: self.remote_user.clone(),
                    device_id: device_id.clone(),
                    event_type,
                    content: voip::content(
                        &message,
                        &self.call_id,
                        &self.our_party,
                        Some(&routing),
                    ),
                }
            }
            Route::Room { room_id } => MatrixCommand::SendEvent {
                room_id: room_id.clone(),
                event_type,
                content: voip::content(&message, &self.call_id, &self.our_party, None),
            },
        };
        out.push_back(Output::Matrix(command));
    }

    fn media(&self, command: MediaCommand, out: &mut Outputs) {
        out.push_back(Output::Media(command));
    }

    /// The media engine's offer or answer for this call.
    pub fn on_local_description(
        &mut self,
        now: Instant,
        kind: SdpKind,
        sdp: String,
        out: &mut Outputs,
    ) {
        log::debug!("{}: our {kind:?}:\n{sdp}", self.call_id);
        let metadata = self.our_streams.clone();
        match (self.state, kind, self.renegotiation) {
            (State::CreatingOffer, SdpKind::Offer, _) => {
                let invitee = Some(self.remote_user.clone());
                self.send(
                    Outgoing::Invite {
                        sdp,
                        lifetime_ms: INVITE_LIFETIME.as_millis() as u64,
                        invitee,
                        metadata,
                    },
                    out,
                );
                self.state = State::Inviting;
                self.invite_until = Some(now + INVITE_LIFETIME);
                self.schedule_flush(now);
            }
            (State::Answering, SdpKind::Answer, _) => {
                self.send(Outgoing::Answer { sdp, metadata }, out);
                self.state = State::Connecting;
                self.schedule_flush(now);
            }
            (State::Connecting | State::Connected, SdpKind::Answer, Renegotiation::Answering)
            | (State::Connecting | State::Connected, SdpKind::Offer, Renegotiation::Offering) => {
                if kind == SdpKind::Answer {
                    self.renegotiation = Renegotiation::None;
                }
                self.send(
                    Outgoing::Negotiate {
                        kind,
                        sdp,
                        lifetime_ms: INVITE_LIFETIME.as_millis() as u64,
                        metadata,
                    },
                    out,
                );
            }
            (state, kind, _) => {
                log::debug!(
                    "{}: an unexpected local {kind:?} in {state:?}",
                    self.call_id
                )
            }
        }
    }

    pub fn on_local_candidate(&mut self, now: Instant, candidate: Candidate, out: &mut Outputs) {
        if self.ended() {
            return;
        }
        if self.local_candidates.len() >= MAX_QUEUED_CANDIDATES {
            log::debug!("{}: dropping a local candidate: queue full", self.call_id);
            return;
        }
        self.local_candidates.push(candidate);
        if self.known_to_them() {
            self.schedule_flush(now);
        }
        let _ = out;
    }

    fn schedule_flush(&mut self, now: Instant) {
        if !self.local_candidates.is_empty() && self.flush_at.is_none() {
            self.flush_at = Some(now + CANDIDATE_BATCH);
        }
    }

    pub fn on_connection_state(&mut self, now: Instant, state: ConnectionState, out: &mut Outputs) {
        match state {
            ConnectionState::Connected => {
                self.disconnected_since = None;
                self.restarted_ice = false;
                if self.state == State::Connecting {
                    log::info!("connected to {} ({})", self.remote_user, self.call_id);
                    self.state = State::Connected;
                }
            }
            ConnectionState::Disconnected | ConnectionState::Failed => {
                self.disconnected_since.get_or_insert(now);
                // The caller offers the ICE restart; the callee answers it (VoIP spec).
                let can_restart = self.direction == Direction::Outbound
                    && self.state == State::Connected
                    && self.renegotiation == Renegotiation::None
                    && !self.restarted_ice;
                if can_restart {
                    log::warn!(
                        "lost the connection to {}; restarting ICE",
                        self.remote_user
                    );
                    self.restarted_ice = true;
                    self.renegotiation = Renegotiation::Offering;
                    self.media(
                        MediaCommand::RestartIce {
                            peer: self.media.clone(),
                        },
                        out,
                    );
                } else if state == ConnectionState::Failed && self.direction == Direction::Outbound
                {
                    log::warn!("the connection to {} failed", self.remote_user);
                    self.hang_up(HangupReason::IceFailed, out);
                }
            }
            _ => {}
        }
    }

    /// A message from the other side of this call, in order.
    pub fn on_message(&mut self, message: Message, out: &mut Outputs) {
        if self.ended() {
            return;
        }
        let party = message.party_id.clone();
        if party.as_deref() == Some(self.our_party.as_str())
            && self.direction == Direction::Outbound
            && matches!(message.body, Body::Invite { .. })
        {
            return; // our own invite, echoed back in the room
        }
        // Once a party is chosen, only it speaks for the other side.
        let from_other_party = matches!((&self.their_party, &party), (Some(t), Some(p)) if t != p);
        match message.body {
            Body::Answer { sdp, metadata } => {
                if self.direction != Direction::Outbound || self.state != State::Inviting {
                    return; // a duplicate, or an answer from a second device of theirs
                }
                self.their_party = party.clone();
                self.their_streams = metadata;
                if let Some(p) = party {
                    self.send(
                        Outgoing::SelectAnswer {
                            selected_party_id: p,
                        },
                        out,
                    );
                }
                self.media(
                    MediaCommand::RemoteDescription {
                        peer: self.media.clone(),
                        kind: SdpKind::Answer,
                        sdp,
                    },
                    out,
                );
                self.remote_description = true;
                for candidate in std::mem::take(&mut self.early_remote) {
                    self.media(
                        MediaCommand::RemoteCandidate {
                            peer: self.media.clone(),
                            candidate,
                        },
                        out,
                    );
                }
                self.state = State::Connecting;
                self.invite_until = None;
            }
            Body::Candidates(candidates) => {
                if from_other_party {
                    return;
                }
                for candidate in candidates {
                    if candidate.candidate.is_empty() {
                        continue; // end of candidates
                    }
                    if self.remote_description {
                        self.media(
                            MediaCommand::RemoteCandidate {
                                peer: self.media.clone(),
                                candidate,
                            },
                            out,
                        );
                    } else if self.early_remote.len() < MAX_EARLY_REMOTE_CANDIDATES {
                        self.early_remote.push(candidate);
                    }
                }
            }
            Body::SelectAnswer { selected_party_id } => {
                if self.direction == Direction::Inbound && selected_party_id != self.our_party {
                    log::info!("{}: answered elsewhere", self.call_id);
                    self.end("answered elsewhere", out);
                }
            }
            Body::Negotiate {
                kind,
                sdp,
                metadata,
            } => {
                if from_other_party || !matches!(self.state, State::Connecting | State::Connected) {
                    return;
                }
                if kind == SdpKind::Offer && self.renegotiation == Renegotiation::Offering {
                    // Both offered at once: the caller's offer wins, as matrix-js-sdk's
                    // "polite" callee does.
                    if self.direction == Direction::Outbound {
                        return;
                    }
                }
                if kind == SdpKind::Answer && self.renegotiation != Renegotiation::Offering {
                    return;
                }
                self.their_streams = metadata;
                self.renegotiation = match kind {
                    SdpKind::Offer => Renegotiation::Answering,
                    SdpKind::Answer => Renegotiation::None,
                };
                self.media(
                    MediaCommand::RemoteDescription {
                        peer: self.media.clone(),
                        kind,
                        sdp,
                    },
                    out,
                );
            }
            Body::Hangup { reason } => {
                if !from_other_party {
                    self.end(&format!("hung up by them ({reason})"), out);
                }
            }
            Body::Reject => {
                if self.direction == Direction::Outbound && self.state == State::Inviting {
                    self.end("rejected by them", out);
                }
            }
            Body::MetadataChanged(metadata) => {
                if !from_other_party {
                    self.their_streams = metadata;
                }
            }
            Body::Invite { .. } => {} // a repeated invite for a call we already have
        }
    }

    /// Our microphone or camera changed: tell the other side.
    pub fn set_our_streams(&mut self, streams: StreamState, out: &mut Outputs) {
        for s in self.our_streams.values_mut() {
            *s = streams;
        }
        if self.known_to_them() && !self.ended() {
            let metadata = self.our_streams.clone();
            self.send(Outgoing::MetadataChanged(metadata), out);
        }
    }

    /// Ends the call from our side, telling the other side why.
    pub fn hang_up(&mut self, reason: HangupReason, out: &mut Outputs) {
        if self.ended() {
            return;
        }
        match self.state {
            State::CreatingOffer => {}
            State::Answering => self.send(Outgoing::Reject, out),
            _ => self.send(Outgoing::Hangup(reason), out),
        }
        self.end(&format!("hung up by us ({})", reason.as_str()), out);
    }

    fn end(&mut self, why: &str, out: &mut Outputs) {
        log::info!(
            "call {} with {} ended: {why}",
            self.call_id,
            self.remote_user
        );
        self.state = State::Ended;
        self.ended_because = Some(why.to_owned());
        self.local_candidates.clear();
        self.flush_at = None;
        self.media(
            MediaCommand::RemovePeer {
                peer: self.media.clone(),
            },
            out,
        );
    }

    /// Sends batched candidates, and gives up on an unanswered invite or a lost connection.
    pub fn on_tick(&mut self, now: Instant, out: &mut Outputs) {
        if self.ended() {
            return;
        }
        if self.flush_at.is_some_and(|t| now >= t) {
            self.flush_at = None;
            let candidates = std::mem::take(&mut self.local_candidates);
            if !candidates.is_empty() {
                self.send(Outgoing::Candidates(candidates), out);
            }
        }
        if self.invite_until.is_some_and(|t| now >= t) && self.state == State::Inviting {
            log::warn!("{} did not answer in time", self.remote_user);
            self.hang_up(HangupReason::InviteTimeout, out);
        }
        if self
            .disconnected_since
            .is_some_and(|t| now >= t + DISCONNECTED_GRACE)
        {
            log::warn!("the connection to {} did not come back", self.remote_user);
            self.hang_up(HangupReason::IceFailed, out);
        }
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        if self.ended() {
            return None;
        }
        [
            self.flush_at,
            self.invite_until,
            self.disconnected_since.map(|t| t + DISCONNECTED_GRACE),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
