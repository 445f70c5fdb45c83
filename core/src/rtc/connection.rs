//! One LiveKit connection, as a sans-IO machine: an OpenID token from the homeserver exchanged
//! at the transport's token service for the SFU's URL and a JWT (fresh for every connect, so
//! never stale), the signalling WebSocket, and LiveKit's two peer connections: the publisher,
//! which we offer (our one H.264 and one Opus track, announced with `add_track` first), and the
//! subscriber, which the SFU offers and we answer. Pings at the interval the join asks; a link
//! that goes quiet, a WebSocket that closes or a peer connection that fails is rejoined with a
//! fresh token after a backoff, without touching the Matrix membership.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use ruma::OwnedRoomId;

use super::signal::{
    Joined, Participant, ParticipantState, SignalRequest, SignalResponse, Target, TrackInfo,
    Trickle,
};
use crate::backoff::Backoff;
use crate::media::{Candidate, ConnectionState, MediaCommand, MediaKind, PeerId, SdpKind, SfuRole};
use crate::{MatrixCommand, MatrixFailure, Now, Output, Outputs, Secret};

/// A connect that has not brought `join` within this is given up.
const JOIN_BUDGET: Duration = Duration::from_secs(15);
/// A token request not answered within this is given up.
const TOKEN_BUDGET: Duration = Duration::from_secs(30);
/// Candidates for a peer connection that does not exist yet, held at most this many.
const MAX_EARLY_CANDIDATES: usize = 64;
/// Participants remembered per connection; more is a flood.
const MAX_PARTICIPANTS: usize = 256;
/// The track IDs we publish under (LiveKit's `cid`).
pub const AUDIO_CID: &str = "roomd-microphone";
pub const VIDEO_CID: &str = "roomd-camera";

/// A LiveKit connection, named by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sfu-{}", self.0)
    }
}

impl ConnId {
    pub fn peer(self, target: Target) -> PeerId {
        match target {
            Target::Publisher => PeerId(format!("{self}-publisher")),
            Target::Subscriber => PeerId(format!("{self}-subscriber")),
        }
    }
}

/// Whether we publish on a connection or only receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Publish,
    Subscribe,
}

/// An OpenID token from the homeserver (`/user/{userId}/openid/request_token`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIdToken {
    pub access_token: Secret,
    pub matrix_server_name: String,
    pub expires_in_s: u64,
}

/// What the token service hands out: the SFU's WebSocket URL and a JWT for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuAccess {
    pub url: String,
    pub jwt: Secret,
}

/// What the LiveKit I/O layer is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveKitCommand {
    /// `POST {service_url}/sfu/get` with the OpenID token; answer with `Input::SfuToken`.
    FetchToken {
        request: u64,
        service_url: String,
        room_id: OwnedRoomId,
        device_id: String,
        openid: OpenIdToken,
    },
    /// Open the signalling WebSocket to `url` with `jwt` (LiveKit's v0 dual-connection
    /// protocol); what happens comes back as `Input::LiveKit`.
    Connect {
        conn: ConnId,
        url: String,
        jwt: Secret,
    },
    Send {
        conn: ConnId,
        request: SignalRequest,
    },
    Close {
        conn: ConnId,
    },
}

/// What the LiveKit I/O layer reports about a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveKitEvent {
    Message(SignalResponse),
    /// The WebSocket closed or could not open.
    Closed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Not started: the next step asks for a token.
    New,
    /// Waiting for an OpenID token (request ID).
    OpenId(u64, Instant),
    /// Waiting for the token service (request ID).
    Token(u64, Instant),
    /// The WebSocket is opening; `join` is due by then.
    Connecting(Instant),
    Joined,
    /// Lost; trying again then.
    Waiting(Instant),
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publisher {
    /// Not started (a subscribe-only connection stays here).
    Idle,
    /// `add_track` sent for both tracks; waiting for `track_published`.
    AddingTracks,
    /// Asked the media engine for an offer.
    Offering,
    /// Offer sent; waiting for the SFU's answer.
    AwaitingAnswer,
    Negotiated,
}

#[derive(Debug)]
struct Ping {
    interval: Duration,
    timeout: Duration,
    next: Instant,
}

/// One LiveKit connection.
#[derive(Debug)]
pub struct Connection {
    pub id: ConnId,
    pub service_url: String,
    pub role: Role,
    room_id: OwnedRoomId,
    device_id: String,
    phase: Phase,
    publisher: Publisher,
    subscriber_up: bool,
    /// Our published tracks by cid: their SFU sid once published.
    published: BTreeMap<&'static str, Option<String>>,
    participants: BTreeMap<String, Participant>,
    early_candidates: VecDeque<Trickle>,
    ping: Option<Ping>,
    last_heard: Option<Instant>,
    backoff: Backoff,
    mic_muted: bool,
    /// Why the last connection ended, for status.
    last_failure: Option<String>,
}

fn media(command: MediaCommand, out: &mut Outputs) {
    out.push_back(Output::Media(command));
}

impl Connection {
    pub fn new(
        id: ConnId,
        service_url: String,
        role: Role,
        room_id: OwnedRoomId,
        device_id: String,
        mic_muted: bool,
    ) -> Self {
        Connection {
            id,
            service_url,
            role,
            room_id,
            device_id,
            phase: Phase::New,
            publisher: Publisher::Idle,
            subscriber_up: false,
            published: BTreeMap::new(),
            participants: BTreeMap::new(),
            early_candidates: VecDeque::new(),
            ping: None,
            last_heard: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            mic_muted,
            last_failure: None,
        }
    }
}

impl Connection {
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Whether the SFU has let us in and both sides are negotiated as far as they go.
    pub fn joined(&self) -> bool {
        self.phase == Phase::Joined
    }

    /// Starts or restarts what is due: a token request, a rejoin, a ping; gives up what took
    /// too long.
    pub fn on_tick(&mut self, now: Now, ids: &mut u64, out: &mut Outputs) {
        match self.phase {
            Phase::New => self.request_openid(now, ids, out),
            Phase::Waiting(at) if now.mono >= at => self.request_openid(now, ids, out),
            Phase::OpenId(_, deadline) | Phase::Token(_, deadline) if now.mono >= deadline => {
                self.lost(now, "the token request got no answer", out)
            }
            Phase::Connecting(deadline) if now.mono >= deadline => {
                self.lost(now, "the SFU did not answer the join", out)
            }
            Phase::Joined => {
                let quiet = self
                    .last_heard
                    .map(|t| now.mono.saturating_duration_since(t));
                let Some(ping) = &mut self.ping else { return };
                if quiet.is_some_and(|q| q >= ping.timeout) {
                    return self.lost(now, "the SFU stopped answering pings", out);
                }
                if now.mono >= ping.next {
                    ping.next = now.mono + ping.interval;
                    self.send(SignalRequest::Ping(now.unix_ms), out);
                }
            }
            _ => {}
        }
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Waiting(at) => Some(*at),
            Phase::OpenId(_, deadline) | Phase::Token(_, deadline) => Some(*deadline),
            Phase::Connecting(deadline) => Some(*deadline),
            Phase::Joined => {
                let ping = self.ping.as_ref()?;
                let timeout = self.last_heard.map(|t| t + ping.timeout);
                [Some(ping.next), timeout].into_iter().flatten().min()
            }
            Phase::New | Phase::Closed => None,
        }
    }

    fn request_openid(&mut self, now: Now, ids: &mut u64, out: &mut Outputs) {
        *ids += 1;
        self.phase = Phase::OpenId(*ids, now.mono + TOKEN_BUDGET);
        out.push_back(Output::Matrix(MatrixCommand::RequestOpenIdToken {
            request: *ids,
        }));
    }

    /// An OpenID token we asked for (or not: returns false).
    pub fn on_openid(
        &mut self,
        now: Now,
        request: u64,
        result: &Result<OpenIdToken, MatrixFailure>,
        ids: &mut u64,
        out: &mut Outputs,
    ) -> bool {
        if !matches!(self.phase, Phase::OpenId(r, _) if r == request) {
            return false;
        }
        match result {
            Ok(openid) => {
                *ids += 1;
                self.phase = Phase::Token(*ids, now.mono + TOKEN_BUDGET);
                out.push_back(Output::LiveKit(LiveKitCommand::FetchToken {
                    request: *ids,
                    service_url: self.service_url.clone(),
                    room_id: self.room_id.clone(),
                    device_id: self.device_id.clone(),
                    openid: openid.clone(),
                }));
            }
            Err(e) => self.lost(now, &format!("no OpenID token: {}", e.message), out),
        }
        true
    }

    /// The token service's answer to a request of ours (or not: returns false).
    pub fn on_token(
        &mut self,
        now: Now,
        request: u64,
        result: &Result<SfuAccess, String>,
        out: &mut Outputs,
    ) -> bool {
        if !matches!(self.phase, Phase::Token(r, _) if r == request) {
            return false;
        }
        match result {
            Ok(access) => {
                log::info!("{}: connecting to the SFU at {}", self.id, access.url);
                self.phase = Phase::Connecting(now.mono + JOIN_BUDGET);
                out.push_back(Output::LiveKit(LiveKitCommand::Connect {
                    conn: self.id,
                    url: access.url.clone(),
                    jwt: access.jwt.clone(),
                }));
            }
            Err(e) => self.lost(now, &format!("the token service refused: {e}"), out),
        }
        true
    }

    pub fn on_event(&mut self, now: Now, event: LiveKitEvent, out: &mut Outputs) {
        if matches!(self.phase, Phase::Closed | Phase::Waiting(_) | Phase::New) {
            return log::debug!("{}: late LiveKit event dropped", self.id);
        }
        match event {
            LiveKitEvent::Closed { reason } => self.lost(now, &reason, out),
            LiveKitEvent::Message(message) => {
                self.last_heard = Some(now.mono);
                self.on_message(now, message, out);
            }
        }
    }

    fn on_message(&mut self, now: Now, message: SignalResponse, out: &mut Outputs) {
        let joined = self.phase == Phase::Joined;
        match message {
            SignalResponse::Join(join) if !joined => self.on_join(now, *join, out),
            _ if !joined => {
                log::warn!("{}: {} before join; dropped", self.id, message.name());
            }
            SignalResponse::Join(_) => log::warn!("{}: a second join; dropped", self.id),
            SignalResponse::Offer(sdp) => {
                let peer = self.id.peer(Target::Subscriber);
                if self.subscriber_up {
                    media(
                        MediaCommand::RemoteDescription {
                            peer,
                            kind: SdpKind::Offer,
                            sdp,
                        },
                        out,
                    );
                } else {
                    self.subscriber_up = true;
                    media(
                        MediaCommand::AddSfuPeer {
                            peer,
                            role: SfuRole::Subscriber,
                            remote_offer: Some(sdp),
                        },
                        out,
                    );
                }
                self.release_candidates(Target::Subscriber, out);
            }
            SignalResponse::Answer(sdp) if self.publisher == Publisher::AwaitingAnswer => {
                self.publisher = Publisher::Negotiated;
                let peer = self.id.peer(Target::Publisher);
                media(
                    MediaCommand::RemoteDescription {
                        peer,
                        kind: SdpKind::Answer,
                        sdp,
                    },
                    out,
                );
            }
            SignalResponse::Answer(_) => {
                log::warn!("{}: an answer to no offer of ours; dropped", self.id);
            }
            SignalResponse::Trickle(t) => self.on_remote_candidate(t, out),
            SignalResponse::Update(participants) => {
                for p in participants {
                    self.update_participant(p);
                }
            }
            SignalResponse::TrackPublished { cid, track } => self.on_published(&cid, track, out),
            SignalResponse::Leave { reason, reconnect } => {
                let why = format!("the SFU ended the session ({reason})");
                if reconnect {
                    self.lost(now, &why, out);
                } else {
                    log::warn!("{}: {why}; not coming back", self.id);
                    self.close(out);
                }
            }
            SignalResponse::Mute { sid, muted } => {
                for p in self.participants.values_mut() {
                    for t in p.tracks.iter_mut().filter(|t| t.sid == sid) {
                        t.muted = muted;
                    }
                }
            }
            SignalResponse::Pong | SignalResponse::RefreshToken(_) | SignalResponse::Ignored(_) => {
            }
        }
    }

    fn on_join(&mut self, now: Now, join: Joined, out: &mut Outputs) {
        log::info!(
            "{}: in LiveKit room {} as {} ({} other participants; SFU {})",
            self.id,
            join.room,
            join.participant.identity,
            join.others.len(),
            join.server_version
        );
        self.phase = Phase::Joined;
        self.backoff.succeed();
        self.last_failure = None;
        self.ping = (join.ping_interval_s > 0 && join.ping_timeout_s > 0).then(|| Ping {
            interval: Duration::from_secs(join.ping_interval_s.into()),
            timeout: Duration::from_secs(join.ping_timeout_s.into()),
            next: now.mono + Duration::from_secs(join.ping_interval_s.into()),
        });
        for p in join.others {
            self.update_participant(p);
        }
        if self.role == Role::Publish {
            self.publisher = Publisher::AddingTracks;
            self.published = BTreeMap::from([(AUDIO_CID, None), (VIDEO_CID, None)]);
            let muted = self.mic_muted;
            self.send(
                SignalRequest::AddTrack {
                    cid: AUDIO_CID.to_owned(),
                    name: "microphone".to_owned(),
                    kind: MediaKind::Audio,
                    muted,
                    width: 0,
                    height: 0,
                },
                out,
            );
            self.send(
                SignalRequest::AddTrack {
                    cid: VIDEO_CID.to_owned(),
                    name: "camera".to_owned(),
                    kind: MediaKind::Video,
                    muted: false,
                    width: 1280,
                    height: 720,
                },
                out,
            );
        }
    }

    fn on_published(&mut self, cid: &str, track: TrackInfo, out: &mut Outputs) {
        let Some(slot) = self.published.iter_mut().find(|(c, _)| **c == cid) else {
            return log::warn!(
                "{}: track_published for {cid}, which we never added",
                self.id
            );
        };
        *slot.1 = Some(track.sid);
        if self.publisher == Publisher::AddingTracks && self.published.values().all(Option::is_some)
        {
            self.publisher = Publisher::Offering;
            media(
                MediaCommand::AddSfuPeer {
                    peer: self.id.peer(Target::Publisher),
                    role: SfuRole::Publisher,
                    remote_offer: None,
                },
                out,
            );
            self.release_candidates(Target::Publisher, out);
        }
    }

    fn update_participant(&mut self, p: Participant) {
        if p.state == ParticipantState::Disconnected {
            self.participants.remove(&p.sid);
        } else if self.participants.len() < MAX_PARTICIPANTS
            || self.participants.contains_key(&p.sid)
        {
            self.participants.insert(p.sid.clone(), p);
        }
    }

    fn on_remote_candidate(&mut self, t: Trickle, out: &mut Outputs) {
        let up = match t.target {
            Target::Publisher => {
                !matches!(self.publisher, Publisher::Idle | Publisher::AddingTracks)
            }
            Target::Subscriber => self.subscriber_up,
        };
        if up {
            media(
                MediaCommand::RemoteCandidate {
                    peer: self.id.peer(t.target),
                    candidate: candidate(&t),
                },
                out,
            );
        } else if self.early_candidates.len() < MAX_EARLY_CANDIDATES {
            self.early_candidates.push_back(t);
        }
    }

    fn release_candidates(&mut self, target: Target, out: &mut Outputs) {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early_candidates)
            .into_iter()
            .partition(|t| t.target == target);
        self.early_candidates = later.into();
        for t in now {
            self.on_remote_candidate(t, out);
        }
    }

    /// The media engine's description for one of our peers.
    pub fn on_local_description(
        &mut self,
        peer: &PeerId,
        kind: SdpKind,
        sdp: String,
        out: &mut Outputs,
    ) {
        match (self.target_of(peer), kind) {
            (Some(Target::Publisher), SdpKind::Offer) if self.publisher == Publisher::Offering => {
                self.publisher = Publisher::AwaitingAnswer;
                self.send(SignalRequest::Offer(sdp), out);
            }
            (Some(Target::Subscriber), SdpKind::Answer) => {
                self.send(SignalRequest::Answer(sdp), out)
            }
            (target, kind) => log::warn!(
                "{}: an unexpected local {kind:?} for {target:?}; dropped",
                self.id
            ),
        }
    }

    pub fn on_local_candidate(&mut self, peer: &PeerId, c: Candidate, out: &mut Outputs) {
        if let Some(target) = self.target_of(peer) {
            let trickle = Trickle {
                target,
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_m_line_index: Some(c.sdp_m_line_index),
            };
            self.send(SignalRequest::Trickle(trickle), out);
        }
    }

    pub fn on_connection_state(
        &mut self,
        now: Now,
        peer: &PeerId,
        state: ConnectionState,
        out: &mut Outputs,
    ) {
        if self.target_of(peer).is_some() && state == ConnectionState::Failed {
            self.lost(now, &format!("{peer} failed"), out);
        }
    }

    /// The media engine could not build or drive one of our peers.
    pub fn on_media_refused(&mut self, now: Now, peer: &PeerId, out: &mut Outputs) {
        if self.target_of(peer).is_some() {
            self.lost(now, &format!("the media engine refused {peer}"), out);
        }
    }

    pub fn owns(&self, peer: &PeerId) -> bool {
        self.target_of(peer).is_some()
    }

    fn target_of(&self, peer: &PeerId) -> Option<Target> {
        [Target::Publisher, Target::Subscriber]
            .into_iter()
            .find(|t| self.id.peer(*t) == *peer)
    }

    /// The microphone (as the media engine confirms it): the SFU is told as a track mute.
    pub fn set_mic_muted(&mut self, muted: bool, out: &mut Outputs) {
        self.mic_muted = muted;
        if let Some(Some(sid)) = self.published.get(AUDIO_CID).cloned()
            && self.phase == Phase::Joined
        {
            self.send(SignalRequest::Mute { sid, muted }, out);
        }
    }

    fn send(&self, request: SignalRequest, out: &mut Outputs) {
        out.push_back(Output::LiveKit(LiveKitCommand::Send {
            conn: self.id,
            request,
        }));
    }

    /// Tears the connection down and tries again after a backoff, with a fresh token.
    fn lost(&mut self, now: Now, why: &str, out: &mut Outputs) {
        let wait = self.backoff.fail();
        log::warn!(
            "{}: {why}; joining the SFU again in {}s",
            self.id,
            wait.as_secs()
        );
        self.last_failure = Some(why.to_owned());
        self.tear_down(out);
        self.phase = Phase::Waiting(now.mono + wait);
    }

    fn tear_down(&mut self, out: &mut Outputs) {
        if matches!(self.phase, Phase::Connecting(_) | Phase::Joined) {
            out.push_back(Output::LiveKit(LiveKitCommand::Close { conn: self.id }));
        }
        if self.publisher != Publisher::Idle && self.publisher != Publisher::AddingTracks {
            media(
                MediaCommand::RemovePeer {
                    peer: self.id.peer(Target::Publisher),
                },
                out,
            );
        }
        if self.subscriber_up {
            media(
                MediaCommand::RemovePeer {
                    peer: self.id.peer(Target::Subscriber),
                },
                out,
            );
        }
        self.publisher = Publisher::Idle;
        self.subscriber_up = false;
        self.published.clear();
        self.participants.clear();
        self.early_candidates.clear();
        self.ping = None;
        self.last_heard = None;
    }

    /// Leaves the SFU for good (our membership is gone, or the transport is no longer used).
    pub fn close(&mut self, out: &mut Outputs) {
        if self.phase == Phase::Joined {
            self.send(SignalRequest::Leave, out);
        }
        self.tear_down(out);
        self.phase = Phase::Closed;
    }

    /// The other participants the SFU knows, by identity, with their tracks.
    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    /// In a few words, for status.
    pub fn describe(&self) -> String {
        let state = match &self.phase {
            Phase::New => "starting".to_owned(),
            Phase::OpenId(..) | Phase::Token(..) => "getting a token".to_owned(),
            Phase::Connecting(_) => "connecting".to_owned(),
            Phase::Joined => format!("joined, {} other participant(s)", self.participants.len()),
            Phase::Waiting(_) => match &self.last_failure {
                Some(why) => format!("waiting to rejoin ({why})"),
                None => "waiting to rejoin".to_owned(),
            },
            Phase::Closed => "closed".to_owned(),
        };
        let role = match self.role {
            Role::Publish => "publishing and receiving",
            Role::Subscribe => "receiving",
        };
        format!("{} ({role}): {state}", self.service_url)
    }
}

fn candidate(t: &Trickle) -> Candidate {
    Candidate {
        candidate: t.candidate.clone(),
        sdp_m_line_index: t.sdp_m_line_index.unwrap_or(0),
        sdp_mid: t.sdp_mid.clone(),
    }
}
