//! What the core tells the media engine and what the engine reports back: plain values, so the
//! call logic can be tested without GStreamer and the engine without Matrix.

use serde::{Deserialize, Serialize};

use crate::ice_uri::IceServer;

/// One remote device's peer connection, named by the call layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerId(pub String);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    Offer,
    Answer,
}

/// An ICE candidate as WebRTC and Matrix carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub candidate: String,
    pub sdp_m_line_index: u32,
    pub sdp_mid: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Open a peer connection. With `remote_offer`, answer it; without, make an offer.
    AddPeer {
        peer: PeerId,
        remote_offer: Option<String>,
        /// The stream ID (msid) our tracks carry, which `sdp_stream_metadata` describes.
        stream_id: String,
    },
    /// Offer again with new ICE credentials (the connection was lost).
    RestartIce {
        peer: PeerId,
    },
    /// The remote's answer to our offer (or a renegotiation's description).
    RemoteDescription {
        peer: PeerId,
        kind: SdpKind,
        sdp: String,
    },
    RemoteCandidate {
        peer: PeerId,
        candidate: Candidate,
    },
    RemovePeer {
        peer: PeerId,
    },
    /// Open one of a LiveKit connection's two peer connections: the publisher (we offer our
    /// H.264 and Opus tracks, send only) or the subscriber (answering `remote_offer`, receive
    /// only, with the SFU's data channels). Later descriptions and candidates come as for any
    /// peer.
    AddSfuPeer {
        peer: PeerId,
        role: SfuRole,
        remote_offer: Option<String>,
    },
    /// Silence the microphone before the encoder (or bring it back).
    SetMicMuted(bool),
    /// Send a "camera off" picture instead of the camera (or the camera again).
    SetCameraOff(bool),
    /// The ICE servers for peer connections made from now on, STUN then TURN. Connections
    /// already made keep theirs. Never log the engine's forms of these: TURN entries hold
    /// passwords.
    SetIceServers {
        servers: Vec<IceServer>,
    },
    /// Answer with [`MediaEvent::Report`] carrying the same `request`. Queued behind every
    /// command before it, so the answer also says the engine has carried those out.
    Report {
        request: u64,
    },
}

/// Which of a LiveKit connection's peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SfuRole {
    Publisher,
    Subscriber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
}

impl ConnectionState {
    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            ConnectionState::New => "new",
            ConnectionState::Connecting => "connecting",
            ConnectionState::Connected => "connected",
            ConnectionState::Disconnected => "disconnected",
            ConnectionState::Failed => "failed",
            ConnectionState::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    LocalDescription {
        peer: PeerId,
        kind: SdpKind,
        sdp: String,
    },
    LocalCandidate {
        peer: PeerId,
        candidate: Candidate,
    },
    ConnectionState {
        peer: PeerId,
        state: ConnectionState,
    },
    /// The first decoded frame (or audio buffer) of a remote's media.
    RemoteMedia {
        peer: PeerId,
        kind: MediaKind,
    },
    /// The microphone really is silenced (or live again): a buffer has passed since.
    MicMuted(bool),
    CameraOff(bool),
    /// The engine is up, with this H.264 encoder; it answers [`MediaCommand::Report`] from now on.
    Started {
        encoder: String,
    },
    /// The answer to [`MediaCommand::Report`]: what the engine is doing and its statistics.
    Report {
        request: u64,
        report: Box<EngineReport>,
    },
    /// The engine could not start (no usable encoder, a broken pipeline): no call can be set up.
    Unavailable {
        reason: String,
    },
    /// The camera failed; the peers see a "camera unavailable" picture instead.
    CameraUnavailable {
        reason: String,
    },
    /// Something in the pipeline failed: which element and why.
    Error {
        element: String,
        cause: String,
    },
    /// A command that could not be carried out (unknown peer, unreadable SDP).
    Refused {
        command: String,
        /// The peer the command was for, if it was for one.
        peer: Option<PeerId>,
        reason: String,
    },
}

/// What the media engine says of itself when asked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    /// The H.264 encoder in use.
    pub encoder: String,
    pub mic_muted: bool,
    pub camera_off: bool,
    /// Video encoders running: one per call, however many peers (encode once).
    pub video_encoders: u32,
    pub peers: Vec<PeerStats>,
    /// The ICE servers the engine gives new peer connections, without credentials.
    pub ice_servers: Vec<String>,
}

/// Per-peer counters, as webrtcbin and the engine's own probes report them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    pub peer: String,
    pub state: Option<ConnectionState>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub video_frames_sent: u64,
    pub video_frames_received: u64,
    pub audio_buffers_received: u64,
    pub packets_lost: i64,
    pub round_trip_time_s: Option<f64>,
    /// How old the byte, loss and round-trip figures are (webrtcbin's own statistics, collected
    /// every second); none before the first collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webrtc_stats_age_ms: Option<u64>,
}
