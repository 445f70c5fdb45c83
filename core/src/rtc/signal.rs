//! LiveKit's signalling messages as the core needs them: plain values the LiveKit I/O layer
//! translates to and from the `livekit_rtc.proto` protobufs (SignalRequest / SignalResponse).
//! Only what roomd acts on is here; the I/O layer reports anything else as `Ignored`.

use crate::Secret;
use crate::media::MediaKind;

/// Which of the two peer connections a message is about (LiveKit's `SignalTarget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Ours: we offer, the SFU answers; it carries what we send.
    Publisher,
    /// The SFU's: it offers, we answer; it carries what we receive.
    Subscriber,
}

/// An ICE candidate as LiveKit trickles it (`candidateInit`, a JSON `RTCIceCandidateInit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trickle {
    pub target: Target,
    pub candidate: String,
    pub sdp_mid: Option<String>,
    pub sdp_m_line_index: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantState {
    Joining,
    Joined,
    Active,
    Disconnected,
}

/// A published track (`TrackInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// `TR_...`
    pub sid: String,
    pub kind: MediaKind,
    pub muted: bool,
    /// `video/VP8`, `video/H264`, `audio/opus`, ...
    pub mime_type: String,
}

/// A participant (`ParticipantInfo`): for Element Call, identity `@user:server:DEVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// `PA_...`
    pub sid: String,
    pub identity: String,
    pub state: ParticipantState,
    pub tracks: Vec<TrackInfo>,
}

/// The SFU's first message (`JoinResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub room: String,
    pub participant: Participant,
    pub others: Vec<Participant>,
    /// The SFU offers the subscriber connection first (and right away).
    pub subscriber_primary: bool,
    /// Ping every this many seconds; no answer for `ping_timeout_s` means the link is gone
    /// (both 0: no pings).
    pub ping_interval_s: u32,
    pub ping_timeout_s: u32,
    pub server_version: String,
}

/// What the SFU sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalResponse {
    Join(Box<Joined>),
    /// The SFU's answer to our publisher offer.
    Answer(String),
    /// The SFU's offer for the subscriber connection (first or renegotiated).
    Offer(String),
    Trickle(Trickle),
    Update(Vec<Participant>),
    /// A track we asked to publish (`AddTrack`, by our `cid`) is accepted.
    TrackPublished {
        cid: String,
        track: TrackInfo,
    },
    /// The SFU ends the session; `reconnect`: it asks the client to come back.
    Leave {
        reason: String,
        reconnect: bool,
    },
    /// A track's mute changed, as the SFU tells it.
    Mute {
        sid: String,
        muted: bool,
    },
    Pong,
    /// A fresh token for reconnecting.
    RefreshToken(Secret),
    /// Something roomd does not act on (speakers changed, connection quality, ...).
    Ignored(&'static str),
}

/// What roomd sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalRequest {
    Offer(String),
    Answer(String),
    Trickle(Trickle),
    /// Ask to publish a track; the SFU answers `TrackPublished` with the same `cid`.
    AddTrack {
        cid: String,
        name: String,
        kind: MediaKind,
        muted: bool,
        width: u32,
        height: u32,
    },
    Mute {
        sid: String,
        muted: bool,
    },
    /// `ping_req` with our wall clock, in ms.
    Ping(u64),
    Leave,
}

impl SignalResponse {
    /// The kind of message, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            SignalResponse::Join(_) => "join",
            SignalResponse::Answer(_) => "answer",
            SignalResponse::Offer(_) => "offer",
            SignalResponse::Trickle(_) => "trickle",
            SignalResponse::Update(_) => "update",
            SignalResponse::TrackPublished { .. } => "track_published",
            SignalResponse::Leave { .. } => "leave",
            SignalResponse::Mute { .. } => "mute",
            SignalResponse::Pong => "pong",
            SignalResponse::RefreshToken(_) => "refresh_token",
            SignalResponse::Ignored(name) => name,
        }
    }
}
