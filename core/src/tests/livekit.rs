//! An Element Call session's LiveKit connection on a fake clock, against a scripted SFU: the
//! token, the join, our two tracks announced then offered on the publisher, the SFU's offer
//! answered on the subscriber, candidates both ways (held until their peer exists), pings, a
//! track mute for the microphone, rejoining with a fresh token when the link is lost (without a
//! new membership), leaving as the last one out, and a receive-only connection per other SFU.

use serde_json::json;

use super::*;
use crate::media::{
    Candidate, ConnectionState, MediaCommand, MediaEvent, MediaKind, PeerId, SdpKind, SfuRole,
};
use crate::rtc::signal::{
    Joined, Participant, ParticipantState, SignalRequest, SignalResponse, Target, TrackInfo,
    Trickle,
};
use crate::rtc::{ConnId, LiveKitCommand, LiveKitEvent, OpenIdToken, SfuAccess};

const ALICE: &str = "@alice:localhost";
const ZED: &str = "@zed:localhost";
const SVC: &str = "https://rtc.localhost/livekit/jwt";
const OTHER_SVC: &str = "https://rtc.other/livekit/jwt";
const SFU: &str = "ws://127.0.0.1:7880";

fn able() -> Settings {
    let mut s = settings(JoinPolicy::Auto, None);
    s.rooms.element_call = true;
    s.livekit_service_url = Some(SVC.to_owned());
    s
}

fn session_member(h: &mut Harness, user: &str, device: &str, transport: &str) -> Vec<Output> {
    let content = json!({
        "application": "m.call", "call_id": "", "scope": "m.room", "device_id": device,
        "expires": 14_400_000,
        "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
        "foci_preferred": [{"type": "livekit", "livekit_service_url": transport, "livekit_alias": ROOM}]
    });
    h.state(
        CALL_MEMBER,
        &format!("_{user}_{device}_m.call"),
        user,
        content,
    )
}

fn openid_requests(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Matrix(MatrixCommand::RequestOpenIdToken { request }) => Some(*request),
            _ => None,
        })
        .collect()
}

fn livekit(out: &[Output]) -> Vec<LiveKitCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::LiveKit(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn sent(out: &[Output]) -> Vec<SignalRequest> {
    livekit(out)
        .into_iter()
        .filter_map(|c| match c {
            LiveKitCommand::Send { request, .. } => Some(request),
            _ => None,
        })
        .collect()
}

fn media(out: &[Output]) -> Vec<MediaCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn openid() -> OpenIdToken {
    OpenIdToken {
        access_token: Secret::new("openid-secret".to_owned()),
        matrix_server_name: "localhost".to_owned(),
        expires_in_s: 3600,
    }
}

fn track(sid: &str, kind: MediaKind) -> TrackInfo {
    TrackInfo {
        sid: sid.to_owned(),
        kind,
        muted: false,
        mime_type: String::new(),
    }
}

fn join_response(others: Vec<Participant>) -> SignalResponse {
    SignalResponse::Join(Box::new(Joined {
        room: "RM_1".to_owned(),
        participant: Participant {
            sid: "PA_me".to_owned(),
            identity: "@room:localhost:ROOMD".to_owned(),
            state: ParticipantState::Joined,
            tracks: Vec::new(),
        },
        others,
        subscriber_primary: true,
        ping_interval_s: 10,
        ping_timeout_s: 20,
        server_version: "1.9.0-test".to_owned(),
    }))
}

fn alice_on_the_sfu() -> Participant {
    Participant {
        sid: "PA_alice".to_owned(),
        identity: "@alice:localhost:ALICEDEV".to_owned(),
        state: ParticipantState::Active,
        tracks: vec![
            track("TR_alice_mic", MediaKind::Audio),
            track("TR_alice_cam", MediaKind::Video),
        ],
    }
}

/// The test's SFU side of one connection.
struct Sfu {
    conn: ConnId,
}

impl Sfu {
    fn say(&self, h: &mut Harness, message: SignalResponse) -> Vec<Output> {
        h.feed(Input::LiveKit {
            conn: self.conn,
            event: LiveKitEvent::Message(message),
        })
    }
}

/// In Alice's session, through the token service, connected and joined: returns the SFU and
/// what the join made the core do.
fn joined(h: &mut Harness) -> (Sfu, Vec<Output>) {
    let out = session_member(h, ALICE, "ALICEDEV", SVC);
    // The connection starts while the membership is written, not after.
    let requests = openid_requests(&out);
    assert_eq!(requests.len(), 1, "one OpenID token asked for: {out:?}");
    h.homeserver_accepts(out);
    let out = h.feed(Input::OpenIdToken {
        request: requests[0],
        result: Ok(openid()),
    });
    let [
        LiveKitCommand::FetchToken {
            request,
            service_url,
            room_id,
            device_id,
            openid: token,
        },
    ] = &livekit(&out)[..]
    else {
        panic!("a token request: {out:?}");
    };
    assert_eq!(
        (service_url.as_str(), room_id.as_str(), device_id.as_str()),
        (SVC, ROOM, MY_DEVICE)
    );
    assert_eq!(token, &openid());
    let out = h.feed(Input::SfuToken {
        request: *request,
        result: Ok(SfuAccess {
            url: SFU.to_owned(),
            jwt: Secret::new("jwt".to_owned()),
        }),
    });
    let [LiveKitCommand::Connect { conn, url, .. }] = &livekit(&out)[..] else {
        panic!("a connect: {out:?}");
    };
    assert_eq!(url, SFU);
    let sfu = Sfu { conn: *conn };
    let out = sfu.say(h, join_response(vec![alice_on_the_sfu()]));
    (sfu, out)
}

#[test]
fn the_session_is_published_and_received_through_the_sfu() {
    let mut h = Harness::in_service_with(able(), &[ALICE]);
    let (sfu, out) = joined(&mut h);
    // Our two tracks are announced first.
    let announced = sent(&out);
    assert!(
        matches!(&announced[..], [
            SignalRequest::AddTrack { cid: a, kind: MediaKind::Audio, .. },
            SignalRequest::AddTrack { cid: v, kind: MediaKind::Video, width: 1280, height: 720, .. },
        ] if a == "roomd-microphone" && v == "roomd-camera"),
        "{announced:?}"
    );
    // A candidate for the publisher before it exists is held.
    let early = Trickle {
        target: Target::Publisher,
        candidate: "candidate:1 1 UDP 1 127.0.0.1 7882 typ host".to_owned(),
        sdp_mid: Some("0".to_owned()),
        sdp_m_line_index: Some(0),
    };
    let out = sfu.say(&mut h, SignalResponse::Trickle(early.clone()));
    assert!(media(&out).is_empty(), "{out:?}");
    // Once both are published the publisher peer is opened, and the held candidate follows.
    sfu.say(
        &mut h,
        SignalResponse::TrackPublished {
            cid: "roomd-microphone".to_owned(),
            track: track("TR_our_mic", MediaKind::Audio),
        },
    );
    let out = sfu.say(
        &mut h,
        SignalResponse::TrackPublished {
            cid: "roomd-camera".to_owned(),
            track: track("TR_our_cam", MediaKind::Video),
        },
    );
    let publisher = PeerId(format!("{}-publisher", sfu.conn));
    assert_eq!(
        media(&out),
        [
            MediaCommand::AddSfuPeer {
                peer: publisher.clone(),
                role: SfuRole::Publisher,
                remote_offer: None
            },
            MediaCommand::RemoteCandidate {
                peer: publisher.clone(),
                candidate: Candidate {
                    candidate: early.candidate.clone(),
                    sdp_m_line_index: 0,
                    sdp_mid: Some("0".to_owned()),
                }
            }
        ]
    );
    // Our offer goes to the SFU, its answer to the engine.
    let out = h.feed(Input::Media(MediaEvent::LocalDescription {
        peer: publisher.clone(),
        kind: SdpKind::Offer,
        sdp: "our offer".to_owned(),
    }));
    assert_eq!(sent(&out), [SignalRequest::Offer("our offer".to_owned())]);
    let out = sfu.say(&mut h, SignalResponse::Answer("sfu answer".to_owned()));
    assert_eq!(
        media(&out),
        [MediaCommand::RemoteDescription {
            peer: publisher.clone(),
            kind: SdpKind::Answer,
            sdp: "sfu answer".to_owned()
        }]
    );
    // The SFU's offer opens the subscriber; our answer goes back.
    let out = sfu.say(&mut h, SignalResponse::Offer("sfu offer".to_owned()));
    let subscriber = PeerId(format!("{}-subscriber", sfu.conn));
    assert_eq!(
        media(&out),
        [MediaCommand::AddSfuPeer {
            peer: subscriber.clone(),
            role: SfuRole::Subscriber,
            remote_offer: Some("sfu offer".to_owned())
        }]
    );
    let out = h.feed(Input::Media(MediaEvent::LocalDescription {
        peer: subscriber.clone(),
        kind: SdpKind::Answer,
        sdp: "our answer".to_owned(),
    }));
    assert_eq!(sent(&out), [SignalRequest::Answer("our answer".to_owned())]);
    // A renegotiation (a new track) goes to the same peer.
    let out = sfu.say(&mut h, SignalResponse::Offer("sfu offer 2".to_owned()));
    assert_eq!(
        media(&out),
        [MediaCommand::RemoteDescription {
            peer: subscriber.clone(),
            kind: SdpKind::Offer,
            sdp: "sfu offer 2".to_owned()
        }]
    );
    // Our candidates go out for the right connection.
    let out = h.feed(Input::Media(MediaEvent::LocalCandidate {
        peer: subscriber.clone(),
        candidate: Candidate {
            candidate: "candidate:2".to_owned(),
            sdp_m_line_index: 1,
            sdp_mid: Some("1".to_owned()),
        },
    }));
    assert_eq!(
        sent(&out),
        [SignalRequest::Trickle(Trickle {
            target: Target::Subscriber,
            candidate: "candidate:2".to_owned(),
            sdp_mid: Some("1".to_owned()),
            sdp_m_line_index: Some(1),
        })]
    );
    // The microphone's mute, once the engine confirms it, goes to the SFU as a track mute.
    h.feed(Input::Ctl {
        id: 1,
        request: CtlRequest::Mute,
    });
    let out = h.feed(Input::Media(MediaEvent::MicMuted(true)));
    assert_eq!(
        sent(&out),
        [SignalRequest::Mute {
            sid: "TR_our_mic".to_owned(),
            muted: true
        }]
    );
    // Pings every 10 s, nothing else.
    let out = h.advance(Duration::from_secs(10));
    assert!(
        matches!(&sent(&out)[..], [SignalRequest::Ping(_)]),
        "{out:?}"
    );
    let status = h.core.status(h.now);
    assert!(
        status.livekit_connections[0].contains("joined, 1 other participant(s)"),
        "{:?}",
        status.livekit_connections
    );

    // Alice leaves: we are the last one out, and leave the SFU too.
    let out = h.state(
        CALL_MEMBER,
        "_@alice:localhost_ALICEDEV_m.call",
        ALICE,
        json!({}),
    );
    assert_eq!(sent(&out), [SignalRequest::Leave]);
    assert!(livekit(&out).contains(&LiveKitCommand::Close { conn: sfu.conn }));
    let removed: Vec<_> = media(&out)
        .into_iter()
        .filter(|m| matches!(m, MediaCommand::RemovePeer { .. }))
        .collect();
    assert_eq!(
        removed,
        [
            MediaCommand::RemovePeer { peer: publisher },
            MediaCommand::RemovePeer { peer: subscriber }
        ]
    );
    h.homeserver_accepts(out);
    assert!(h.core.status(h.now).livekit_connections.is_empty());
}

/// Answers OpenID request `request` and the token request it leads to; returns the
/// connection the core then connects.
fn through_token_service(h: &mut Harness, request: u64) -> ConnId {
    let out = h.feed(Input::OpenIdToken {
        request,
        result: Ok(openid()),
    });
    let [LiveKitCommand::FetchToken { request, .. }] = &livekit(&out)[..] else {
        panic!("a token request: {out:?}");
    };
    let out = h.feed(Input::SfuToken {
        request: *request,
        result: Ok(SfuAccess {
            url: SFU.to_owned(),
            jwt: Secret::new("jwt".to_owned()),
        }),
    });
    let [LiveKitCommand::Connect { conn, .. }] = &livekit(&out)[..] else {
        panic!("a connect: {out:?}");
    };
    *conn
}

#[test]
fn a_lost_link_is_rejoined_with_a_fresh_token_and_no_new_membership() {
    let mut h = Harness::in_service_with(able(), &[ALICE]);
    let (sfu, _) = joined(&mut h);
    sfu.say(&mut h, SignalResponse::Offer("sfu offer".to_owned()));
    // The SFU goes quiet: a ping at 10 s, nothing back; at 20 s the link counts as lost.
    let quiet_from = h.now;
    let out = h.advance(Duration::from_secs(19));
    assert!(
        matches!(&sent(&out)[..], [SignalRequest::Ping(_)]),
        "{out:?}"
    );
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(h.now.mono - quiet_from.mono, Duration::from_secs(20));
    assert!(
        livekit(&out).contains(&LiveKitCommand::Close { conn: sfu.conn }),
        "{out:?}"
    );
    assert!(
        media(&out).contains(&MediaCommand::RemovePeer {
            peer: PeerId(format!("{}-subscriber", sfu.conn))
        }),
        "{out:?}"
    );
    // A second later: a fresh token, and nothing written to the room.
    let out = h.advance(Duration::from_secs(1));
    let requests = openid_requests(&out);
    assert_eq!(requests.len(), 1, "{out:?}");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    let conn = through_token_service(&mut h, requests[0]);
    let sfu = Sfu { conn };
    sfu.say(&mut h, join_response(vec![alice_on_the_sfu()]));
    let out = sfu.say(&mut h, SignalResponse::Offer("sfu offer".to_owned()));
    assert!(
        matches!(&media(&out)[..], [MediaCommand::AddSfuPeer { .. }]),
        "{out:?}"
    );

    // A peer connection that fails is the same.
    let out = h.feed(Input::Media(MediaEvent::ConnectionState {
        peer: PeerId(format!("{}-subscriber", sfu.conn)),
        state: ConnectionState::Failed,
    }));
    assert!(
        livekit(&out).contains(&LiveKitCommand::Close { conn: sfu.conn }),
        "{out:?}"
    );
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(openid_requests(&out).len(), 1, "{out:?}");
}

#[test]
fn a_closed_websocket_backs_off_and_a_fellow_on_another_sfu_is_received_there() {
    let mut h = Harness::in_service_with(able(), &[ALICE, ZED]);
    let (sfu, _) = joined(&mut h);
    // Zed publishes on another SFU: a receive-only connection for it, with its own token.
    let out = session_member(&mut h, ZED, "ZEDDEV", OTHER_SVC);
    let requests = openid_requests(&out);
    assert_eq!(requests.len(), 1, "{out:?}");
    let out = h.feed(Input::OpenIdToken {
        request: requests[0],
        result: Ok(openid()),
    });
    assert!(
        matches!(&livekit(&out)[..], [LiveKitCommand::FetchToken { service_url, .. }] if service_url == OTHER_SVC),
        "{out:?}"
    );
    let lines = h.core.status(h.now).livekit_connections;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].contains(&format!("{OTHER_SVC} (receiving)")),
        "{lines:?}"
    );

    // Our own SFU's WebSocket closes: rejoined after 1 s, then 2 s, then 4 s...
    let mut waits = Vec::new();
    for _ in 0..3 {
        let closed_at = h.now;
        h.feed(Input::LiveKit {
            conn: sfu.conn,
            event: LiveKitEvent::Closed {
                reason: "connection reset".to_owned(),
            },
        });
        let mut asked = Vec::new();
        while asked.is_empty() {
            let wake = h.core.next_wakeup(h.now).expect("a rejoin is due");
            asked = openid_requests(&h.advance(wake - h.now.mono));
        }
        waits.push((h.now.mono - closed_at.mono).as_secs());
        // Back in as far as the connect: it fails again.
        assert_eq!(through_token_service(&mut h, asked[0]), sfu.conn);
    }
    assert_eq!(waits, [1, 2, 4]);
}
