//! The browser visitor itself, against a real Synapse: two headless Chromiums running
//! matrix-js-sdk's GroupCall meet in an MSC3401 mesh call, see and hear each other, and see each
//! other's mute. This proves the test peer that roomd's interop tests rely on.
//!
//! Needs `bash tools/setup.sh` (Chromium, the npm packages, the page bundle); without them the
//! test fails saying so.

use std::time::{Duration, Instant};

use roomd_testbed::browser::{self, Browser, PeerMedia};
use roomd_testbed::{Synapse, Visitor};

const ALICE: &str = "@alice:localhost";
const BOB: &str = "@bob:localhost";

/// Four Chromiums at once would starve two cores: the tests take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Synapse, a room whose creator (a Rust visitor) opened call state to everyone and invited
/// alice and bob, and two browsers logged in as them and joined to it.
async fn two_browsers_in_a_room() -> (Synapse, Visitor, String, Browser, Browser) {
    browser::check_installed().unwrap_or_else(|e| panic!("{e:#}"));
    let synapse = Synapse::start().unwrap();
    let host = Visitor::new(&synapse, "host", "HOSTDEV").await.unwrap();
    synapse.register("alice", "alice-password").await.unwrap();
    synapse.register("bob", "bob-password").await.unwrap();
    let room = host
        .create_call_room("Browser call", &[ALICE, BOB])
        .await
        .unwrap()
        .to_string();
    let (alice, bob) = tokio::try_join!(Browser::start("alice"), Browser::start("bob")).unwrap();
    let hs = synapse.url();
    let (a, b) = tokio::try_join!(
        alice.login(&hs, "alice", "alice-password", "ALICEDEV"),
        bob.login(&hs, "bob", "bob-password", "BOBDEV"),
    )
    .unwrap();
    assert_eq!(
        (a.user_id.as_str(), a.device_id.as_str()),
        (ALICE, "ALICEDEV")
    );
    assert_eq!((b.user_id.as_str(), b.device_id.as_str()), (BOB, "BOBDEV"));
    assert!(!a.session_id.is_empty() && a.session_id != b.session_id);
    tokio::try_join!(alice.join_room(&room), bob.join_room(&room)).unwrap();
    (synapse, host, room, alice, bob)
}

/// Real media: decoded video at a useful rate, audible audio.
fn assert_media(who: &str, m: &PeerMedia) {
    assert_eq!(m.call_state, "connected", "{who}: {m:?}");
    assert!(m.fps >= 15.0, "{who} decodes {:.1} fps: {m:?}", m.fps);
    assert!(m.frame_width > 0 && m.frame_height > 0, "{who}: {m:?}");
    assert!(
        m.audio_level > 0.01,
        "{who} hears level {:.4}: {m:?}",
        m.audio_level
    );
}

fn from<'a>(media: &'a [PeerMedia], user: &str) -> &'a PeerMedia {
    media
        .iter()
        .find(|m| m.user_id.as_deref() == Some(user))
        .unwrap_or_else(|| panic!("no peer connection with {user}: {media:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_meet_in_a_mesh_group_call() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let start = Instant::now();
    let (_synapse, _host, room, alice, bob) = two_browsers_in_a_room().await;
    let room = room.as_str();

    // Alice starts the call; Bob enters the one he learns of (never a second one).
    let call_id = alice.enter_group_call(room, true).await.unwrap();
    let joined = bob
        .join_existing_group_call(room, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(joined, call_id);
    // Group-call signalling goes out as plain to-device messages (js-sdk 43 cannot encrypt it).
    let e2e = alice
        .eval("window.visitorState.client.getUseE2eForGroupCall()")
        .await
        .unwrap();
    assert_eq!(e2e, false);
    eprintln!("both entered {call_id} after {:?}", start.elapsed());

    // Each sees the other's usermedia feed, unmuted.
    let limit = Duration::from_secs(15);
    let has = |user: &'static str| {
        move |feeds: &[browser::RemoteFeed]| {
            feeds.iter().any(|f| {
                f.user_id == user
                    && f.purpose == "m.usermedia"
                    && f.video_tracks > 0
                    && f.audio_tracks > 0
                    && !f.audio_muted
                    && !f.video_muted
            })
        }
    };
    let (fa, fb) = tokio::try_join!(
        alice.wait_for_feeds(limit, has(BOB)),
        bob.wait_for_feeds(limit, has(ALICE))
    )
    .unwrap();
    assert_eq!(fa[0].device_id.as_deref(), Some("BOBDEV"));
    assert_eq!(fb[0].device_id.as_deref(), Some("ALICEDEV"));
    eprintln!("feeds after {:?}", start.elapsed());

    // Real media both ways: decoded video at a useful rate, audible audio.
    let window = Duration::from_secs(5);
    let (ma, mb) = tokio::try_join!(alice.measure(window), bob.measure(window)).unwrap();
    eprintln!("alice receives: {ma:?}\nbob receives: {mb:?}");
    assert_media("alice", from(&ma, BOB));
    assert_media("bob", from(&mb, ALICE));
    let png = bob.snapshot(Some(ALICE)).await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "not a PNG"
    );
    // For the README: what Bob's browser shows of Alice's fake camera.
    if let Some(path) = std::env::var_os("ROOMD_BROWSER_SNAPSHOT") {
        std::fs::write(path, &png).unwrap();
    }

    // Alice mutes: Bob's feed of her says so (sdp_stream_metadata_changed) within 3 s.
    assert!(alice.set_mic_muted(true).await.unwrap());
    let muted = Instant::now();
    bob.wait_for_feeds(Duration::from_secs(3), |feeds| {
        feeds
            .iter()
            .any(|f| f.user_id == ALICE && f.audio_muted && !f.video_muted)
    })
    .await
    .unwrap();
    eprintln!("bob saw alice muted after {:?}", muted.elapsed());
    let events = alice.call_events(0).await.unwrap();
    assert!(
        events.iter().any(|e| e["dir"] == "out"
            && e["type"] == "m.call.sdp_stream_metadata_changed"
            && e["toDevice"] == true),
        "alice sent no metadata change: {events:?}"
    );

    // Leaving hangs up: Bob loses Alice's feed.
    alice.leave_group_call().await.unwrap();
    bob.wait_for_feeds(Duration::from_secs(10), |feeds| feeds.is_empty())
        .await
        .unwrap();

    eprintln!("done after {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_in_a_one_to_one_call() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (_synapse, _host, room, alice, bob) = two_browsers_in_a_room().await;

    // A 1:1 call is signalled with room events; Bob answers it.
    let call_id = alice.place_call(&room, true).await.unwrap();
    let answered = bob.answer_incoming(Duration::from_secs(15)).await.unwrap();
    assert_eq!(answered["callId"], call_id.as_str());
    let limit = Duration::from_secs(15);
    let (fa, fb) = tokio::try_join!(
        alice.wait_for_feeds(limit, |f| f
            .iter()
            .any(|f| f.user_id == BOB && f.video_tracks > 0)),
        bob.wait_for_feeds(limit, |f| f
            .iter()
            .any(|f| f.user_id == ALICE && f.video_tracks > 0)),
    )
    .unwrap();
    assert!(!fa[0].audio_muted && !fb[0].audio_muted);

    let window = Duration::from_secs(3);
    let (ma, mb) = tokio::try_join!(alice.measure(window), bob.measure(window)).unwrap();
    eprintln!("alice receives: {ma:?}\nbob receives: {mb:?}");
    assert_media("alice", from(&ma, BOB));
    assert_media("bob", from(&mb, ALICE));
    let events = bob.call_events(0).await.unwrap();
    assert!(
        events.iter().any(|e| e["dir"] == "in"
            && e["type"] == "m.call.invite"
            && e["toDevice"] == false
            && e["content"]["call_id"] == call_id.as_str()),
        "bob got no invite in the room: {events:?}"
    );

    // Bob mutes his camera; then hangs up, and Alice's call ends.
    assert!(bob.set_video_muted(true).await.unwrap());
    alice
        .wait_for_feeds(Duration::from_secs(3), |f| {
            f.iter().any(|f| f.user_id == BOB && f.video_muted)
        })
        .await
        .unwrap();
    bob.hangup().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = alice.call_state().await.unwrap();
        if state["call"]["state"] == "ended" {
            assert_eq!(state["call"]["hangupParty"], "remote", "{state}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alice's call did not end: {state}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
