//! Calls end to end: a real roomd process, a real Synapse, and visitors in headless Chromium
//! running matrix-js-sdk (GroupCall for MSC3401 mesh calls, MatrixCall for 1:1 calls). Media is
//! checked where it lands: what the browser decodes from roomd, and roomd's own counters of
//! what it decodes from the browser. Every m.call.* event the browser received from roomd is
//! checked against the Matrix spec's schemas.

use std::time::{Duration, Instant, SystemTime};

use roomd_testbed::browser::Browser;
use roomd_testbed::meeting::{Meeting, check_spec, from_roomd};
use serde_json::Value;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");

/// Browser tests are heavy (Chromium, x264 at 720p): one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_starts_a_room_call_and_roomd_joins_with_picture_and_sound_both_ways() {
    let _serial = SERIAL.lock().await;
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice"]).await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;

    // Alice starts the room's call: roomd joins within 2 s.
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    let joined = meeting
        .wait_for_status(Duration::from_secs(10), |s| {
            s["rooms"][0]["state"] == "in_call"
        })
        .unwrap_or_else(|| panic!("roomd did not join:\n{}", meeting.log()));
    println!(
        "roomd joined {} ms after the call started",
        joined.as_millis()
    );
    assert!(joined <= Duration::from_secs(2), "joined after {joined:?}");

    // Media both ways.
    alice
        .wait_for_feeds(Duration::from_secs(20), |f| {
            f.iter()
                .any(|f| f.user_id == room_user && f.video_tracks > 0)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (measured, received) = tokio::join!(alice.measure(Duration::from_secs(10)), async {
        tokio::task::block_in_place(|| meeting.roomd_receives(Duration::from_secs(10)))
    });
    let measured = measured.unwrap();
    let m = from_roomd(&measured, &room_user);
    println!("alice decodes roomd: {m:?}");
    println!("roomd decodes: {received:?}");
    assert!(m.fps >= 20.0, "alice sees roomd at {} fps", m.fps);
    assert_eq!(m.codec.as_deref(), Some("video/H264"));
    assert!(
        m.audio_level > 0.01,
        "alice hears roomd at {}",
        m.audio_level
    );
    assert_eq!(received.len(), 1, "one peer: {received:?}");
    assert!(
        received[0].1 >= 10.0,
        "roomd decodes alice at {} fps",
        received[0].1
    );
    assert!(
        received[0].2 >= 20,
        "roomd decodes alice's audio: {received:?}"
    );

    // Mute: alice sees it in the metadata and hears silence; unmute brings both back.
    meeting.ctl(&["mute"]);
    alice
        .wait_for_feeds(Duration::from_secs(3), |f| {
            f.iter().any(|f| f.user_id == room_user && f.audio_muted)
        })
        .await
        .unwrap();
    let quiet = alice.measure(Duration::from_secs(2)).await.unwrap();
    let level = from_roomd(&quiet, &room_user).audio_level;
    assert!(level < 0.001, "muted, yet alice hears {level}");
    meeting.ctl(&["unmute"]);
    alice
        .wait_for_feeds(Duration::from_secs(3), |f| {
            f.iter().any(|f| f.user_id == room_user && !f.audio_muted)
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loud = alice.measure(Duration::from_secs(2)).await.unwrap();
    let level = from_roomd(&loud, &room_user).audio_level;
    assert!(level > 0.01, "unmuted, yet alice hears {level}");

    // Hang-up: roomd leaves and stays out while the call goes on.
    meeting.ctl(&["hangup"]);
    assert!(
        meeting
            .wait_for_status(Duration::from_secs(5), |s| s["rooms"][0]["state"]
                == "left_by_hang_up")
            .is_some(),
        "{}",
        meeting.log()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(meeting.seat(), "left_by_hang_up");
    let gone = meeting.our_membership().await;
    assert!(
        gone.as_ref()
            .is_none_or(|m| m["m.calls"].as_array().is_none_or(|c| c.is_empty())),
        "still a member: {gone:?}"
    );

    // The call ends and a new one starts: roomd is back.
    alice.leave_group_call().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    meeting
        .wait_for_status(Duration::from_secs(10), |s| {
            s["rooms"][0]["state"] == "in_call"
        })
        .unwrap_or_else(|| panic!("roomd did not rejoin:\n{}", meeting.log()));
    alice
        .wait_for_feeds(Duration::from_secs(20), |f| {
            f.iter()
                .any(|f| f.user_id == room_user && f.video_tracks > 0)
        })
        .await
        .unwrap();

    // Alice leaves: roomd leaves within 2 s.
    alice.leave_group_call().await.unwrap();
    let left = meeting
        .wait_for_status(Duration::from_secs(10), |s| {
            s["rooms"][0]["state"] == "idle"
        })
        .unwrap_or_else(|| panic!("roomd stayed:\n{}", meeting.log()));
    println!("roomd left {} ms after the last visitor", left.as_millis());
    assert!(left <= Duration::from_secs(2), "left after {left:?}");

    let checked = check_spec(&alice, &room_user).await;
    assert!(
        checked >= 3,
        "too few m.call.* events seen from roomd: {checked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_visitors_and_roomd_all_exchange_media_on_one_encoder() {
    let _serial = SERIAL.lock().await;
    // Alice sorts before the room's account and calls it; roomd calls Zed.
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice", "zed"]).await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;
    let zed = meeting.visitor("zed").await;
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    zed.join_existing_group_call(meeting.room_id.as_str(), Duration::from_secs(10))
        .await
        .unwrap();
    for (b, other) in [(&alice, "@zed:localhost"), (&zed, "@alice:localhost")] {
        b.wait_for_feeds(Duration::from_secs(30), |f| {
            [room_user.as_str(), other]
                .iter()
                .all(|u| f.iter().any(|f| f.user_id == *u && f.video_tracks > 0))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(5);
    let (a, z, received) = tokio::join!(alice.measure(window), zed.measure(window), async {
        tokio::task::block_in_place(|| meeting.roomd_receives(window))
    });
    for (name, measured) in [("alice", a.unwrap()), ("zed", z.unwrap())] {
        println!("{name} decodes: {measured:?}");
        assert_eq!(measured.len(), 2, "{name} has two peers: {measured:?}");
        for m in &measured {
            assert!(
                m.fps >= 10.0,
                "{name} sees {:?} at {} fps",
                m.user_id,
                m.fps
            );
            assert!(
                m.audio_level > 0.001,
                "{name} hears {:?} at {}",
                m.user_id,
                m.audio_level
            );
        }
    }
    println!("roomd decodes: {received:?}");
    assert_eq!(received.len(), 2, "{received:?}");
    for (peer, fps, audio) in &received {
        assert!(
            // Chromium's fake microphone beeps; Opus DTX sends little between beeps.
            *fps >= 10.0 && *audio >= 10,
            "roomd from {peer}: {fps} fps, {audio} audio"
        );
    }
    let status = meeting.status();
    assert_eq!(status["media"]["video_encoders"], 1, "{status}");
    assert!(check_spec(&zed, &room_user).await >= 2);
}

/// How long roomd's webrtcbin for alice holds each of its descriptions in the slow-peer test.
const ALICE_HELD: Duration = Duration::from_secs(25);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_peer_connection_holds_up_neither_the_other_visitor_nor_the_status() {
    let _serial = SERIAL.lock().await;
    // A test hook makes roomd's webrtcbin for alice hold every description for 25 s, on its
    // own thread. Alice sorts first and calls roomd, whose answer is held; roomd calls zed.
    let hold = format!("{},@alice:localhost/", ALICE_HELD.as_millis());
    let meeting = Meeting::start_with_env(
        ROOMD.as_ref(),
        &["alice", "zed"],
        |_| {},
        &[("ROOMD_TEST_SLOW_PEER", &hold)],
    )
    .await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;
    let zed = meeting.visitor("zed").await;
    let log_from = meeting.log().len();
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    meeting.wait_in_call(Duration::from_secs(10));
    let held_since = tokio::task::block_in_place(|| {
        meeting.logged_at(
            log_from,
            "test hook: holding @alice:localhost/",
            Duration::from_secs(20),
        )
    })
    .unwrap_or_else(|| panic!("roomd's answer to alice is not held:\n{}", meeting.log()));

    // Zed comes in and gets roomd's picture while alice's connection is still held.
    zed.join_existing_group_call(meeting.room_id.as_str(), Duration::from_secs(10))
        .await
        .unwrap();
    meeting.wait_until_seen_by(&zed).await;
    let zed_sees_roomd = SystemTime::now();
    let alice_feeds = alice.remote_feeds().await.unwrap();
    println!(
        "zed sees roomd {:?} into alice's hold",
        zed_sees_roomd
            .duration_since(held_since)
            .unwrap_or_default()
    );
    assert!(
        zed_sees_roomd < held_since + ALICE_HELD,
        "zed only got roomd after alice's hold"
    );
    assert!(
        !alice_feeds
            .iter()
            .any(|f| f.user_id == room_user && f.video_tracks > 0),
        "alice already has roomd, so nothing was held: {alice_feeds:?}"
    );

    // The control socket answers at once meanwhile, from an engine that still reports.
    let (status, slowest) = tokio::task::block_in_place(|| {
        let mut slowest = Duration::ZERO;
        let mut status = Value::Null;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(3) {
            let (s, took) = meeting.roomd.status_timed().unwrap();
            (status, slowest) = (s, slowest.max(took));
            std::thread::sleep(Duration::from_millis(50));
        }
        (status, slowest)
    });
    println!("status answered within {slowest:?} while alice was held");
    assert!(
        slowest < Duration::from_millis(100),
        "a status took {slowest:?}"
    );
    assert!(
        status["media"]["report_age_ms"].as_u64() < Some(2000)
            && status["media"]["not_answering_s"].is_null(),
        "{status}"
    );

    // After the hold alice gets roomd too, and roomd decodes both visitors.
    alice
        .wait_for_feeds(ALICE_HELD + Duration::from_secs(20), |f| {
            f.iter()
                .any(|f| f.user_id == room_user && f.video_tracks > 0)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    let received = tokio::task::block_in_place(|| meeting.roomd_receives(Duration::from_secs(3)));
    println!("roomd decodes: {received:?}");
    assert_eq!(received.len(), 2, "{received:?}");
    for (peer, fps, _) in &received {
        assert!(*fps >= 10.0, "roomd decodes {peer} at {fps} fps");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_to_one_call_is_answered_and_hung_up_from_either_side() {
    let _serial = SERIAL.lock().await;
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice"]).await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;

    for roomd_hangs_up in [true, false] {
        alice
            .place_call(meeting.room_id.as_str(), true)
            .await
            .unwrap();
        alice
            .wait_for_feeds(Duration::from_secs(20), |f| {
                f.iter()
                    .any(|f| f.user_id == room_user && f.video_tracks > 0)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (measured, received) = tokio::join!(alice.measure(Duration::from_secs(3)), async {
            tokio::task::block_in_place(|| meeting.roomd_receives(Duration::from_secs(3)))
        });
        let m = from_roomd(measured.as_ref().unwrap(), &room_user).clone();
        assert!(m.fps >= 15.0 && m.audio_level > 0.01, "{m:?}");
        assert!(received.len() == 1 && received[0].1 >= 10.0, "{received:?}");
        if roomd_hangs_up {
            meeting.ctl(&["hangup"]);
        } else {
            alice.hangup().await.unwrap();
        }
        let start = Instant::now();
        loop {
            let state = alice.call_state().await.unwrap();
            let peers = meeting.status()["peer_calls"]
                .as_array()
                .map_or(0, Vec::len);
            let ended = state["call"].is_null() || state["call"]["state"] == "ended";
            if ended && peers == 0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "not hung up: {state} / {}",
                meeting.status()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(check_spec(&alice, &room_user).await >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_focus_and_roomd_calling_each_other_at_once_keep_one_call() {
    let _serial = SERIAL.lock().await;
    // The focus is a browser: it joins the room and calls roomd at once, while roomd, seeing
    // the focus arrive, calls it.
    let meeting = Meeting::start_with(ROOMD.as_ref(), &["conf"], |c| {
        c.conference_focus = Some("@conf:localhost".to_owned())
    })
    .await;
    let room_user = meeting.config.user_id();
    let conf = Browser::start("conf").await.unwrap();
    conf.login(&meeting.synapse.url(), "conf", "conf-password", "CONFDEV")
        .await
        .unwrap();
    conf.join_room(meeting.room_id.as_str()).await.unwrap();
    conf.call(
        "placeCall",
        serde_json::json!({"roomId": meeting.room_id.as_str(), "video": true, "invitee": room_user}),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    conf.wait_for_feeds(Duration::from_secs(20), |f| {
        f.iter()
            .any(|f| f.user_id == room_user && f.video_tracks > 0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (measured, received) = tokio::join!(conf.measure(Duration::from_secs(3)), async {
        tokio::task::block_in_place(|| meeting.roomd_receives(Duration::from_secs(3)))
    });
    let m = from_roomd(measured.as_ref().unwrap(), &room_user).clone();
    println!("the focus decodes roomd: {m:?}; roomd decodes: {received:?}");
    assert!(m.fps >= 15.0 && m.audio_level > 0.01, "{m:?}");
    assert_eq!(received.len(), 1, "one call survives: {received:?}");
    assert!(received[0].1 >= 10.0, "{received:?}");
    let calls = meeting.status()["peer_calls"].clone();
    assert_eq!(calls.as_array().map(Vec::len), Some(1), "{calls}");
    let log = meeting.log();
    assert!(
        log.contains("glare with @conf:localhost"),
        "both sides were to invite at once:\n{log}"
    );
    assert!(check_spec(&conf, &room_user).await >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signalling_from_a_visitor_is_dropped_and_the_call_goes_on() {
    let _serial = SERIAL.lock().await;
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice"]).await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;
    let conf_id = alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    alice
        .wait_for_feeds(Duration::from_secs(20), |f| {
            f.iter()
                .any(|f| f.user_id == room_user && f.video_tracks > 0)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));

    // What a forger needs: our session, the live call, and how far Alice's numbering got.
    let ours = meeting.our_membership().await.unwrap();
    let roomd_session = ours["m.calls"][0]["m.devices"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let info = alice.info().await.unwrap();
    let alice_session = info["sessionId"].as_str().unwrap().to_owned();
    let sent: Vec<Value> = alice
        .call_events(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["dir"] == "out" && e["toDevice"] == true)
        .collect();
    let live = sent[0]["content"]["call_id"].as_str().unwrap().to_owned();
    let last_seq = sent
        .iter()
        .filter(|e| e["content"]["call_id"] == live.as_str())
        .filter_map(|e| e["content"]["seq"].as_u64())
        .max()
        .unwrap();
    let envelope = |call_id: &str, seq: u64, body: Value| {
        let mut c = serde_json::json!({
            "call_id": call_id, "party_id": "ALICEDEV", "version": "1",
            "conf_id": conf_id, "device_id": "ALICEDEV",
            "sender_session_id": alice_session, "dest_session_id": roomd_session, "seq": seq,
        });
        c.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        c
    };
    let candidate = serde_json::json!({"candidates": [
        {"candidate": "candidate:1 1 udp 1 192.0.2.99 9 typ host", "sdpMLineIndex": 0, "sdpMid": "0"}
    ]});
    let garbage_invite = serde_json::json!({"lifetime": 60000,
        "offer": {"type": "offer", "sdp": "this is not SDP \u{0}"}});
    let hostile = [
        // Duplicates of what Alice already sent in the live call.
        ("m.call.candidates", envelope(&live, 0, candidate.clone())),
        (
            "m.call.candidates",
            envelope(&live, last_seq, candidate.clone()),
        ),
        // A gap in the live call (within the bound): waits, then is dropped.
        (
            "m.call.candidates",
            envelope(&live, last_seq + 5, candidate.clone()),
        ),
        // Out of order and far ahead, in calls that do not exist.
        (
            "m.call.candidates",
            envelope("forged-1", 1, candidate.clone()),
        ),
        (
            "m.call.candidates",
            envelope("forged-1", 0, candidate.clone()),
        ),
        (
            "m.call.hangup",
            envelope(
                "forged-2",
                1_000_000_000_000,
                serde_json::json!({"reason": "user_hangup"}),
            ),
        ),
        // Garbage SDP in a new call from the same device: refused before it replaces the call.
        ("m.call.invite", envelope("forged-3", 0, garbage_invite)),
        // Malformed contents.
        (
            "m.call.invite",
            serde_json::json!({"call_id": 5, "seq": "x"}),
        ),
        (
            "m.call.answer",
            serde_json::json!({"call_id": [1], "answer": "x", "seq": -1}),
        ),
        ("m.call.hangup", envelope("", 0, serde_json::json!({}))),
        (
            "m.call.select_answer",
            envelope(
                "forged-4",
                0,
                serde_json::json!({"selected_party_id": "nobody"}),
            ),
        ),
    ];
    for (event_type, content) in hostile {
        alice
            .send_to_device(event_type, &room_user, &meeting.config.device_id, content)
            .await
            .unwrap();
    }
    // Past the gap timeout, the call still carries picture and sound both ways.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (measured, received) = tokio::join!(alice.measure(Duration::from_secs(3)), async {
        tokio::task::block_in_place(|| meeting.roomd_receives(Duration::from_secs(3)))
    });
    let m = from_roomd(measured.as_ref().unwrap(), &room_user).clone();
    assert_eq!(m.call_id, live, "the same call");
    assert!(m.fps >= 20.0 && m.audio_level > 0.01, "{m:?}");
    assert!(received.len() == 1 && received[0].1 >= 10.0, "{received:?}");
    let log = meeting.log();
    assert!(
        log.contains("dropping"),
        "nothing logged as dropped:\n{log}"
    );
    assert!(log.contains("left a gap"), "{log}");
    assert!(meeting.status()["rooms"][0]["state"] == "in_call");
}
