//! LiveKit's protobufs (`livekit_rtc.proto`) to and from the core's signalling values.

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use roomd_core::Secret;
use roomd_core::media::MediaKind;
use roomd_core::rtc::signal::{
    Joined, Participant, ParticipantState, SignalRequest, SignalResponse, Target, TrackInfo,
    Trickle,
};
use serde::{Deserialize, Serialize};

/// The JSON `RTCIceCandidateInit` LiveKit carries in `candidateInit`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CandidateInit {
    candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sdp_m_line_index: Option<u32>,
}

fn target(t: i32) -> Target {
    if t == proto::SignalTarget::Subscriber as i32 {
        Target::Subscriber
    } else {
        Target::Publisher
    }
}

fn kind(t: i32) -> MediaKind {
    if t == proto::TrackType::Video as i32 {
        MediaKind::Video
    } else {
        MediaKind::Audio
    }
}

fn track(t: proto::TrackInfo) -> TrackInfo {
    TrackInfo {
        kind: kind(t.r#type),
        sid: t.sid,
        muted: t.muted,
        mime_type: t.mime_type,
    }
}

fn participant(p: proto::ParticipantInfo) -> Participant {
    use proto::participant_info::State;
    let state = match State::try_from(p.state) {
        Ok(State::Joining) => ParticipantState::Joining,
        Ok(State::Joined) => ParticipantState::Joined,
        Ok(State::Active) => ParticipantState::Active,
        Ok(State::Disconnected) | Err(_) => ParticipantState::Disconnected,
    };
    Participant {
        sid: p.sid,
        identity: p.identity,
        state,
        tracks: p.tracks.into_iter().map(track).collect(),
    }
}

/// The core's view of what the SFU sent; `Err` for a message it cannot read.
pub fn response(message: proto::SignalResponse) -> Result<SignalResponse, String> {
    let Some(message) = message.message else {
        return Err("an empty signal response".to_owned());
    };
    Ok(match message {
        Resp::Join(j) => {
            let ours = j
                .participant
                .map(participant)
                .ok_or("a join without our participant")?;
            let server_version = j
                .server_info
                .map(|s| s.version)
                .filter(|v| !v.is_empty())
                .unwrap_or(j.server_version);
            SignalResponse::Join(Box::new(Joined {
                room: j.room.map(|r| r.name).unwrap_or_default(),
                participant: ours,
                others: j.other_participants.into_iter().map(participant).collect(),
                subscriber_primary: j.subscriber_primary,
                ping_interval_s: u32::try_from(j.ping_interval).unwrap_or(0),
                ping_timeout_s: u32::try_from(j.ping_timeout).unwrap_or(0),
                server_version,
            }))
        }
        Resp::Answer(d) => SignalResponse::Answer(d.sdp),
        Resp::Offer(d) => SignalResponse::Offer(d.sdp),
        Resp::Trickle(t) => {
            let init: CandidateInit = serde_json::from_str(&t.candidate_init)
                .map_err(|e| format!("an unreadable candidate: {e}"))?;
            SignalResponse::Trickle(Trickle {
                target: target(t.target),
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_m_line_index: init.sdp_m_line_index,
            })
        }
        Resp::Update(u) => {
            SignalResponse::Update(u.participants.into_iter().map(participant).collect())
        }
        Resp::TrackPublished(t) => SignalResponse::TrackPublished {
            cid: t.cid,
            track: t
                .track
                .map(track)
                .ok_or("track_published without a track")?,
        },
        Resp::Leave(l) => {
            use proto::leave_request::Action;
            let reconnect = l.can_reconnect
                || matches!(
                    Action::try_from(l.action),
                    Ok(Action::Reconnect | Action::Resume)
                );
            SignalResponse::Leave {
                reason: proto::DisconnectReason::try_from(l.reason)
                    .map_or_else(|_| l.reason.to_string(), |r| r.as_str_name().to_owned()),
                reconnect,
            }
        }
        Resp::Mute(m) => SignalResponse::Mute {
            sid: m.sid,
            muted: m.muted,
        },
        Resp::Pong(_) | Resp::PongResp(_) => SignalResponse::Pong,
        Resp::RefreshToken(t) => SignalResponse::RefreshToken(Secret::new(t)),
        Resp::SpeakersChanged(_) => SignalResponse::Ignored("speakers_changed"),
        Resp::ConnectionQuality(_) => SignalResponse::Ignored("connection_quality"),
        Resp::RoomUpdate(_) => SignalResponse::Ignored("room_update"),
        Resp::StreamStateUpdate(_) => SignalResponse::Ignored("stream_state_update"),
        Resp::SubscribedQualityUpdate(_) => SignalResponse::Ignored("subscribed_quality_update"),
        _ => SignalResponse::Ignored("other"),
    })
}

/// The protobuf for what the core sends.
pub fn request(request: SignalRequest) -> proto::SignalRequest {
    let sdp = |kind: &str, sdp: String| proto::SessionDescription {
        r#type: kind.to_owned(),
        sdp,
        ..Default::default()
    };
    let message = match request {
        SignalRequest::Offer(s) => Req::Offer(sdp("offer", s)),
        SignalRequest::Answer(s) => Req::Answer(sdp("answer", s)),
        SignalRequest::Trickle(t) => {
            let init = CandidateInit {
                candidate: t.candidate,
                sdp_mid: t.sdp_mid,
                sdp_m_line_index: t.sdp_m_line_index,
            };
            Req::Trickle(proto::TrickleRequest {
                candidate_init: serde_json::to_string(&init).expect("a candidate serializes"),
                target: match t.target {
                    Target::Publisher => proto::SignalTarget::Publisher as i32,
                    Target::Subscriber => proto::SignalTarget::Subscriber as i32,
                },
                r#final: false,
            })
        }
        SignalRequest::AddTrack {
            cid,
            name,
            kind,
            muted,
            width,
            height,
        } => Req::AddTrack(proto::AddTrackRequest {
            cid,
            name,
            r#type: match kind {
                MediaKind::Audio => proto::TrackType::Audio as i32,
                MediaKind::Video => proto::TrackType::Video as i32,
            },
            source: match kind {
                MediaKind::Audio => proto::TrackSource::Microphone as i32,
                MediaKind::Video => proto::TrackSource::Camera as i32,
            },
            width,
            height,
            muted,
            // RED would wrap our Opus in a payload webrtcbin does not send.
            disable_red: true,
            ..Default::default()
        }),
        SignalRequest::Mute { sid, muted } => Req::Mute(proto::MuteTrackRequest { sid, muted }),
        SignalRequest::Ping(ms) => Req::PingReq(proto::Ping {
            timestamp: i64::try_from(ms).unwrap_or(i64::MAX),
            rtt: 0,
        }),
        SignalRequest::Leave => Req::Leave(proto::LeaveRequest {
            can_reconnect: false,
            reason: proto::DisconnectReason::ClientInitiated as i32,
            action: proto::leave_request::Action::Disconnect as i32,
            ..Default::default()
        }),
    };
    proto::SignalRequest {
        message: Some(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_trickle_round_trips_through_the_protobuf() {
        let t = Trickle {
            target: Target::Subscriber,
            candidate: "candidate:1 1 UDP 2122260223 127.0.0.1 40000 typ host".to_owned(),
            sdp_mid: Some("0".to_owned()),
            sdp_m_line_index: Some(0),
        };
        let bytes = request(SignalRequest::Trickle(t.clone())).encode_to_vec();
        let Some(Req::Trickle(sent)) = proto::SignalRequest::decode(&bytes[..]).unwrap().message
        else {
            panic!("not a trickle");
        };
        assert!(
            sent.candidate_init.contains("\"sdpMLineIndex\":0"),
            "{}",
            sent.candidate_init
        );
        let back = response(proto::SignalResponse {
            message: Some(Resp::Trickle(sent)),
        })
        .unwrap();
        assert_eq!(back, SignalResponse::Trickle(t));
    }

    #[test]
    fn a_join_takes_the_server_version_and_ping_settings() {
        let join = proto::JoinResponse {
            participant: Some(proto::ParticipantInfo {
                sid: "PA_1".to_owned(),
                identity: "@room:localhost:ROOMD".to_owned(),
                ..Default::default()
            }),
            server_info: Some(proto::ServerInfo {
                version: "1.9.0".to_owned(),
                protocol: 17,
                ..Default::default()
            }),
            ping_interval: 10,
            ping_timeout: 20,
            subscriber_primary: true,
            ..Default::default()
        };
        let SignalResponse::Join(j) = response(proto::SignalResponse {
            message: Some(Resp::Join(join)),
        })
        .unwrap() else {
            panic!("not a join");
        };
        assert_eq!(
            (
                j.server_version.as_str(),
                j.ping_interval_s,
                j.ping_timeout_s
            ),
            ("1.9.0", 10, 20)
        );
        assert!(j.subscriber_primary);
        assert!(response(proto::SignalResponse { message: None }).is_err());
    }
}
