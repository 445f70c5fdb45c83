//! roomd's LiveKit I/O layer against the test bed's LiveKit-protocol SFU and token service
//! (whose fidelity the real livekit-client proves in testbed/tests/livekit_sfu.rs), with a real
//! Synapse answering the token service's OpenID check: the token exchange, the WebSocket, the
//! protobuf frames both ways, and failures reported as the core expects them.

use std::time::Duration;

use matrix_sdk::ruma::OwnedRoomId;
use roomd::livekit::LiveKit;
use roomd_core::Input;
use roomd_core::Secret;
use roomd_core::media::MediaKind;
use roomd_core::rtc::signal::{SignalRequest, SignalResponse};
use roomd_core::rtc::{ConnId, LiveKitCommand, LiveKitEvent, OpenIdToken, SfuAccess};
use roomd_testbed::livekit::RtcBackend;
use serde_json::Value;
use tokio::sync::mpsc;

const ROOM: &str = "!meeting:localhost";
const PASSWORD: &str = "room-password";

/// An OpenID token for `user` from the backend's Synapse.
fn openid(rtc: &RtcBackend, user: &str, access_token: &str) -> OpenIdToken {
    let (code, body) = rtc
        .synapse
        .request(
            "POST",
            &format!("/_matrix/client/v3/user/{user}/openid/request_token"),
            access_token,
            "{}",
        )
        .expect("asking Synapse for an OpenID token");
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    OpenIdToken {
        access_token: Secret::new(v["access_token"].as_str().unwrap().to_owned()),
        matrix_server_name: v["matrix_server_name"].as_str().unwrap().to_owned(),
        expires_in_s: v["expires_in"].as_u64().unwrap(),
    }
}

/// The next input the layer reports, within 10 s.
async fn next(inputs: &mut mpsc::Receiver<Input>) -> Input {
    tokio::time::timeout(Duration::from_secs(10), inputs.recv())
        .await
        .expect("the LiveKit layer reported nothing in 10 s")
        .expect("the LiveKit layer's channel closed")
}

/// The next SFU message on `conn`, skipping what the SFU sends unasked (updates, offers).
async fn next_message(
    inputs: &mut mpsc::Receiver<Input>,
    conn: ConnId,
    wanted: impl Fn(&SignalResponse) -> bool,
) -> SignalResponse {
    for _ in 0..32 {
        match next(inputs).await {
            Input::LiveKit {
                conn: c,
                event: LiveKitEvent::Message(m),
            } if c == conn && wanted(&m) => return m,
            Input::LiveKit {
                event: LiveKitEvent::Closed { reason },
                ..
            } => panic!("the connection closed: {reason}"),
            _ => {}
        }
    }
    panic!("the wanted message never came");
}

async fn token(
    rtc: &RtcBackend,
    livekit: &mut LiveKit,
    inputs: &mut mpsc::Receiver<Input>,
    openid: OpenIdToken,
) -> Result<SfuAccess, String> {
    livekit.handle(LiveKitCommand::FetchToken {
        request: 1,
        service_url: rtc.tokens.url(),
        room_id: OwnedRoomId::try_from(ROOM).unwrap(),
        device_id: "ROOMD".to_owned(),
        openid,
    });
    match next(inputs).await {
        Input::SfuToken { request: 1, result } => result,
        other => panic!("not the token: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roomd_gets_a_token_and_speaks_livekit_with_the_sfu() {
    let rtc = tokio::task::block_in_place(RtcBackend::start).expect("the RTC test bed starts");
    rtc.synapse.register("room", PASSWORD).await.unwrap();
    let access_token = rtc.synapse.log_in("room", PASSWORD, "ROOMD").await.unwrap();
    let (tx, mut inputs) = mpsc::channel(64);
    let mut livekit = LiveKit::new(tx);

    // The token service checks the OpenID token with Synapse and names us as Element Call does.
    let openid = tokio::task::block_in_place(|| openid(&rtc, "@room:localhost", &access_token));
    let access = token(&rtc, &mut livekit, &mut inputs, openid)
        .await
        .expect("the token service hands out a token");
    assert_eq!(access.url, rtc.sfu.url());
    let issued = rtc.tokens.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].identity, "@room:localhost:ROOMD");

    // The SFU's first message is the join, with our identity and its ping settings.
    let conn = ConnId(1);
    livekit.handle(LiveKitCommand::Connect {
        conn,
        url: access.url.clone(),
        jwt: access.jwt.clone(),
    });
    let SignalResponse::Join(join) =
        next_message(&mut inputs, conn, |m| matches!(m, SignalResponse::Join(_))).await
    else {
        unreachable!()
    };
    assert_eq!(join.participant.identity, "@room:localhost:ROOMD");
    assert!(
        join.ping_interval_s > 0 && join.ping_timeout_s > join.ping_interval_s,
        "{join:?}"
    );
    assert!(!join.server_version.is_empty());

    // A track announced is published under our cid; a ping is answered.
    livekit.handle(LiveKitCommand::Send {
        conn,
        request: SignalRequest::AddTrack {
            cid: "roomd-microphone".to_owned(),
            name: "microphone".to_owned(),
            kind: MediaKind::Audio,
            muted: false,
            width: 0,
            height: 0,
        },
    });
    let published = next_message(&mut inputs, conn, |m| {
        matches!(m, SignalResponse::TrackPublished { .. })
    })
    .await;
    let SignalResponse::TrackPublished { cid, track } = published else {
        unreachable!()
    };
    assert_eq!(
        (cid.as_str(), track.kind),
        ("roomd-microphone", MediaKind::Audio)
    );
    assert!(track.sid.starts_with("TR_"), "{track:?}");
    livekit.handle(LiveKitCommand::Send {
        conn,
        request: SignalRequest::Ping(1),
    });
    next_message(&mut inputs, conn, |m| *m == SignalResponse::Pong).await;
    let stats = rtc.sfu.stats().await.unwrap();
    assert!(
        format!("{stats:?}").contains("@room:localhost:ROOMD"),
        "{stats:?}"
    );

    // Leaving takes us out of the SFU's room.
    livekit.handle(LiveKitCommand::Send {
        conn,
        request: SignalRequest::Leave,
    });
    livekit.handle(LiveKitCommand::Close { conn });
    let mut gone = false;
    for _ in 0..50 {
        let stats = rtc.sfu.stats().await.unwrap();
        if !format!("{stats:?}").contains("@room:localhost:ROOMD") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the SFU still lists roomd after it left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_and_a_refused_connection_are_reported() {
    let rtc = tokio::task::block_in_place(RtcBackend::start).expect("the RTC test bed starts");
    let (tx, mut inputs) = mpsc::channel(64);
    let mut livekit = LiveKit::new(tx);
    let forged = OpenIdToken {
        access_token: Secret::new("forged".to_owned()),
        matrix_server_name: "localhost".to_owned(),
        expires_in_s: 3600,
    };
    let why = token(&rtc, &mut livekit, &mut inputs, forged)
        .await
        .expect_err("a forged OpenID token is refused");
    assert!(
        why.contains("401") && why.contains("M_UNAUTHORIZED"),
        "{why}"
    );

    let conn = ConnId(2);
    livekit.handle(LiveKitCommand::Connect {
        conn,
        url: rtc.sfu.url(),
        jwt: Secret::new("not.a.jwt".to_owned()),
    });
    match next(&mut inputs).await {
        Input::LiveKit {
            conn: c,
            event: LiveKitEvent::Closed { reason },
        } => {
            assert_eq!(c, conn);
            assert!(reason.contains("401"), "{reason}");
            assert!(
                !reason.contains("not.a.jwt"),
                "the token is not in the reason: {reason}"
            );
        }
        other => panic!("not a close: {other:?}"),
    }
}
