//! What `roomd ctl status` shows: a snapshot of the core, as plain serializable values.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use super::leds::{Led, Pattern};
use super::media::{ConnectionState, PeerStats};
use super::membership::{CallId, Member, Shape};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `in service`, or why not.
    pub service: String,
    pub user_id: String,
    pub device_id: String,
    pub rooms: Vec<RoomStatus>,
    /// Every peer call on: with whom, how far along, and what they say of their mute state.
    #[serde(default)]
    pub peer_calls: Vec<super::calls::CallSummary>,
    /// Whether we asked for the microphone to be muted (the media section says if it is).
    #[serde(default)]
    pub mic_muted: bool,
    /// The LEDs, the volume and do-not-disturb.
    #[serde(default)]
    pub panel: PanelStatus,
    /// The STUN and TURN servers new peer connections get.
    #[serde(default)]
    pub ice: IceStatus,
    /// The LiveKit transport for Element Call sessions, and where it came from.
    #[serde(default)]
    pub livekit: String,
    /// The LiveKit connections of the sessions we are in, a line each.
    #[serde(default)]
    pub livekit_connections: Vec<String>,
    /// The media engine's side: its last report, and whether it still answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaStatus>,
}

/// The room's panel as people see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PanelStatus {
    /// What each LED shows.
    pub leds: BTreeMap<Led, Pattern>,
    /// What the media engine last confirmed of the microphone (what the muted LED shows).
    pub mic_muted_confirmed: bool,
    /// The speaker volume, percent.
    pub volume: u8,
    /// Seconds of do-not-disturb left, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_disturb_s: Option<u64>,
}

/// The ICE servers in use, without credentials.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IceStatus {
    /// STUN servers, the config's first (webrtcbin uses the first one).
    pub stun: Vec<String>,
    /// TURN servers: the config's, then the homeserver's.
    pub turn: Vec<String>,
    /// When the homeserver's TURN credentials expire (they are renewed before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_expires_in_s: Option<u64>,
    /// What the homeserver's TURN endpoint last said.
    #[serde(default)]
    pub homeserver: String,
}

impl IceStatus {
    /// `STUN a; TURN b, c`, or `none`.
    pub fn servers(&self) -> String {
        let mut parts = Vec::new();
        if !self.stun.is_empty() {
            parts.push(format!("STUN {}", self.stun.join(", ")));
        }
        if !self.turn.is_empty() {
            parts.push(format!("TURN {}", self.turn.join(", ")));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaStatus {
    /// The H.264 encoder in use.
    pub encoder: Option<String>,
    /// Why the media engine is not available, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub mic_muted: bool,
    pub camera_off: bool,
    /// Video encoders running: one per call, however many peers (encode once).
    #[serde(default)]
    pub video_encoders: u32,
    pub peers: Vec<PeerStats>,
    /// The ICE servers the engine gives new peer connections, without credentials.
    #[serde(default)]
    pub ice_servers: Vec<String>,
    /// How old the figures above are: when the engine last reported, in ms (none before its
    /// first report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_age_ms: Option<u64>,
    /// Set when the engine is not answering: for how long (s) a request has gone unanswered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_answering_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoomStatus {
    /// The room as configured (ID or alias).
    pub room: String,
    pub room_id: Option<String>,
    pub joined: bool,
    pub call_on: bool,
    pub calls: Vec<CallStatus>,
    /// Our own part in the room's call.
    pub state: SeatState,
    /// Why we are (or are not) in a call.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStatus {
    pub call: CallId,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub user_id: String,
    pub device_id: String,
    pub focus: String,
    pub shape: Shape,
    pub expires_in_s: u64,
}

impl Participant {
    pub fn new(m: &Member, now_ms: u64) -> Self {
        Participant {
            user_id: m.user_id.to_string(),
            device_id: m.device_id.clone(),
            focus: m.focus.clone(),
            shape: m.shape,
            expires_in_s: m.expires_at_ms.saturating_sub(now_ms) / 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Idle,
    Joining,
    InCall,
    Leaving,
    LeftByHangUp,
}

impl Status {
    /// The human-readable form of `roomd ctl status`.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} (device {}): {}\n",
            self.user_id, self.device_id, self.service
        );
        if let Some(m) = &self.media {
            let age = match m.report_age_ms {
                Some(ms) => format!("figures {:.1} s old", ms as f64 / 1000.0),
                None => "no figures yet".to_owned(),
            };
            match (&m.encoder, &m.unavailable, m.not_answering_s) {
                (_, Some(why), _) => out.push_str(&format!("media: unavailable: {why}\n")),
                (_, None, Some(silent)) => {
                    out.push_str(&format!("media: NOT ANSWERING for {silent} s ({age})\n"))
                }
                (encoder, None, None) => out.push_str(&format!(
                    "media: {}{}{} ({age})\n",
                    encoder.as_deref().unwrap_or("no encoder"),
                    if m.mic_muted {
                        ", microphone muted"
                    } else {
                        ""
                    },
                    if m.camera_off { ", camera off" } else { "" }
                )),
            }
            for p in &m.peers {
                out.push_str(&format!(
                    "  peer {}: {}, {} frames sent, {} received, {} packets lost\n",
                    p.peer,
                    p.state
                        .map_or("not connected yet", ConnectionState::describe),
                    p.video_frames_sent,
                    p.video_frames_received,
                    p.packets_lost
                ));
            }
        }
        let leds: Vec<String> = self
            .panel
            .leds
            .iter()
            .map(|(led, pattern)| format!("{} {}", led.name(), pattern.name()))
            .collect();
        out.push_str(&format!(
            "panel: volume {}%{}; LEDs: {}\n",
            self.panel.volume,
            match self.panel.do_not_disturb_s {
                Some(s) => format!("; do not disturb for {} min more", s.div_ceil(60)),
                None => String::new(),
            },
            leds.join(", ")
        ));
        out.push_str(&format!(
            "ice: {} (homeserver: {})\n",
            self.ice.servers(),
            self.ice.homeserver
        ));
        out.push_str(&format!("livekit: {}\n", self.livekit));
        for line in &self.livekit_connections {
            out.push_str(&format!("  {line}\n"));
        }
        for r in &self.rooms {
            let id = match r.room_id.as_deref() {
                Some(id) if id != r.room => format!(" ({id})"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "room {}{id}{}\n",
                r.room,
                if r.joined { "" } else { ": not joined" }
            ));
            let state = match r.state {
                SeatState::Idle => "idle",
                SeatState::Joining => "joining",
                SeatState::InCall => "in call",
                SeatState::Leaving => "leaving",
                SeatState::LeftByHangUp => "left by hang-up",
            };
            out.push_str(&format!("  us: {state} ({})\n", r.why));
            if r.calls.is_empty() {
                out.push_str("  no call\n");
            }
            for c in &r.calls {
                out.push_str(&format!("  call: {}\n", c.call));
                for p in &c.participants {
                    out.push_str(&format!(
                        "    {} {} via {} (expires in {}s)\n",
                        p.user_id, p.device_id, p.focus, p.expires_in_s
                    ));
                }
            }
        }
        out
    }
}
