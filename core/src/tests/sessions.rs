//! Element Call sessions (MatrixRTC through LiveKit) as calls like the others, on a fake clock:
//! joined by the same policy once the device can and knows a transport, never in an encrypted
//! room (not yet), Element Call first when a mesh call is on too, always saying why.

use serde_json::json;

use super::*;
use crate::events::RTC_NOTIFICATION;
use crate::status::SeatState;

const ALICE: &str = "@alice:localhost";
const BOB: &str = "@bob:localhost";
const SVC: &str = "https://rtc.localhost/livekit/jwt";

fn able(join: JoinPolicy) -> Settings {
    let mut s = settings(join, None);
    s.rooms.element_call = true;
    s.livekit_service_url = Some(SVC.to_owned());
    s
}

/// `user`'s device in the room's Element Call session, as Element Call writes it.
fn session_member(h: &mut Harness, user: &str, device: &str) -> Vec<Output> {
    let content = json!({
        "application": "m.call", "call_id": "", "scope": "m.room", "device_id": device,
        "membershipID": format!("{user}:{device}"), "expires": 14_400_000,
        "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
        "foci_preferred": [{"type": "livekit", "livekit_service_url": SVC, "livekit_alias": ROOM}]
    });
    h.state(
        CALL_MEMBER,
        &format!("_{user}_{device}_m.call"),
        user,
        content,
    )
}

fn session_leave(h: &mut Harness, user: &str, device: &str) -> Vec<Output> {
    h.state(
        CALL_MEMBER,
        &format!("_{user}_{device}_m.call"),
        user,
        json!({}),
    )
}

fn why(h: &Harness) -> String {
    h.core.status(h.now).rooms[0].why.clone()
}

#[test]
fn a_session_is_joined_like_any_call_and_left_as_the_last_one_out() {
    let mut h = Harness::in_service_with(able(JoinPolicy::Auto), &[ALICE]);
    let out = session_member(&mut h, ALICE, "ALICEDEV");
    let commands = h.homeserver_accepts(out);
    let writes = state_writes(&commands);
    assert_eq!(writes.len(), 2, "{writes:?}");
    let (key, content, delayed) = &writes[0];
    assert_eq!(
        (key.as_str(), content, *delayed),
        ("_@room:localhost_ROOMD_m.call", &json!({}), true)
    );
    let (key, content, delayed) = &writes[1];
    assert_eq!(
        (key.as_str(), *delayed),
        ("_@room:localhost_ROOMD_m.call", false)
    );
    assert_eq!(content["foci_preferred"][0]["livekit_service_url"], SVC);
    assert_eq!(content["membershipID"], "@room:localhost:ROOMD");
    assert_eq!(h.seat(), SeatState::InCall);
    assert_eq!(
        h.participants(),
        vec![
            format!("{ALICE} ALICEDEV"),
            "@room:localhost ROOMD".to_owned()
        ]
    );
    // Restarted on Element Call's 4 s.
    let restarts = delayed_actions(&h.live_for(Duration::from_secs(40)));
    assert_eq!(restarts, vec![DelayedAction::Restart; 10]);

    let out = session_leave(&mut h, ALICE, "ALICEDEV");
    let commands = h.homeserver_accepts(out);
    assert_eq!(delayed_actions(&commands), [DelayedAction::Send]);
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn without_a_livekit_path_or_transport_the_session_is_seen_and_the_reason_given() {
    // The daemon says the media engine cannot join sessions.
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let out = session_member(&mut h, ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(
        why(&h),
        "the room's call uses a LiveKit focus, which roomd cannot join yet"
    );

    // It can, but no transport is known to publish on.
    let mut s = able(JoinPolicy::Auto);
    s.livekit_service_url = None;
    let mut h = Harness::in_service_with(s, &[ALICE]);
    let out = session_member(&mut h, ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert!(why(&h).contains("needs a LiveKit transport"), "{}", why(&h));
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn an_encrypted_rooms_session_is_not_joined_and_status_says_why() {
    let mut h = Harness::in_service_with(able(JoinPolicy::Auto), &[ALICE]);
    h.state(
        ROOM_ENCRYPTION,
        "",
        ALICE,
        json!({"algorithm": "m.megolm.v1.aes-sha2"}),
    );
    let out = session_member(&mut h, ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert!(why(&h).contains("encrypts its media"), "{}", why(&h));
    // The join button cannot force it either.
    let out = h.feed(Input::Ctl {
        id: 1,
        request: CtlRequest::Join { room: None },
    });
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn with_a_mesh_call_on_too_the_session_comes_first_and_status_says_so() {
    let mut h = Harness::in_service_with(able(JoinPolicy::Auto), &[ALICE, BOB]);
    // Both seen in one sync, as after a restart.
    let state = |event_type: &str, key: &str, sender: &str, content| {
        Input::State(StateEvent {
            room_id: room_id(),
            event_type: event_type.to_owned(),
            state_key: key.to_owned(),
            sender: sender.try_into().unwrap(),
            origin_server_ts: TS0,
            content,
        })
    };
    h.feed(state(
        MESH_CALL,
        "g1",
        BOB,
        json!({"m.intent": "m.room", "m.type": "m.video"}),
    ));
    h.feed(state(
        CALL_MEMBER,
        BOB,
        BOB,
        json!({"m.calls": [{"m.call_id": "g1", "m.foci": [], "m.devices": [
            {"device_id": "BOBDEV", "session_id": "s", "expires_ts": TS0 + 3_600_000, "feeds": []}
        ]}]}),
    ));
    h.feed(state(
        CALL_MEMBER,
        "_@alice:localhost_ALICEDEV_m.call",
        ALICE,
        json!({
            "application": "m.call", "call_id": "", "scope": "m.room", "device_id": "ALICEDEV",
            "expires": 14_400_000,
            "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
            "foci_preferred": [{"type": "livekit", "livekit_service_url": SVC, "livekit_alias": ROOM}]
        }),
    ));
    let out = h.feed(Input::Synced(Ok(())));
    let writes = state_writes(&h.homeserver_accepts(out));
    assert!(
        writes
            .iter()
            .all(|(key, _, _)| key == "_@room:localhost_ROOMD_m.call"),
        "only the session membership: {writes:?}"
    );
    assert_eq!(
        why(&h),
        "in the room's Element Call session (a mesh call is on too; Element Call first)"
    );
}

#[test]
fn a_ring_makes_a_when_rung_room_join_the_session() {
    let mut h = Harness::in_service_with(able(JoinPolicy::WhenRung), &[ALICE]);
    let out = session_member(&mut h, ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(why(&h), "a call is on; the join policy waits for a ring");
    // Element Call's ring, under both names it goes by.
    for ring in [RTC_NOTIFICATION, "m.rtc.notification"] {
        let mut h = Harness::in_service_with(able(JoinPolicy::WhenRung), &[ALICE]);
        let out = session_member(&mut h, ALICE, "ALICEDEV");
        h.homeserver_accepts(out);
        let content = json!({
            "m.mentions": {"user_ids": [], "room": true}, "notification_type": "ring",
            "sender_ts": h.now.unix_ms, "lifetime": 90_000, "m.call.intent": "video"
        });
        let out = h.timeline(ring, ALICE, content);
        let writes = state_writes(&h.homeserver_accepts(out));
        assert_eq!(writes.len(), 2, "{ring}: {writes:?}");
        assert_eq!(h.seat(), SeatState::InCall, "{ring}");
    }
}

fn press_join(h: &mut Harness) -> Vec<Output> {
    h.feed(Input::Ctl {
        id: 7,
        request: CtlRequest::Join { room: None },
    })
}

#[test]
fn join_with_no_call_on_starts_an_element_call_session_and_leaves_it_when_nobody_comes() {
    let mut h = Harness::in_service_with(able(JoinPolicy::Auto), &[ALICE]);
    let out = press_join(&mut h);
    // The room is told, as Element Call's first joiner tells it; no mesh call is made.
    let notices: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Matrix(MatrixCommand::SendEvent {
                event_type,
                content,
                ..
            }) => Some((event_type.clone(), content.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "{out:?}");
    assert_eq!(notices[0].0, RTC_NOTIFICATION);
    assert_eq!(notices[0].1["m.mentions"]["room"], true);
    let writes = state_writes(&h.homeserver_accepts(out));
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert!(
        writes
            .iter()
            .all(|(key, _, _)| key == "_@room:localhost_ROOMD_m.call")
    );
    assert_eq!(h.seat(), SeatState::InCall);
    assert_eq!(why(&h), "started the room's call; waiting for people");

    // Nobody comes in two minutes: roomd leaves.
    let started = h.now;
    let commands = h.live_for(Duration::from_secs(119));
    assert!(!delayed_actions(&commands).contains(&DelayedAction::Send));
    let commands = h.live_for(Duration::from_secs(1));
    assert!(
        delayed_actions(&commands).contains(&DelayedAction::Send),
        "{commands:?}"
    );
    assert_eq!(h.now.mono - started.mono, Duration::from_secs(120));
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn a_started_session_is_left_as_the_last_one_out_and_mesh_is_started_where_sessions_cannot_be() {
    let mut h = Harness::in_service_with(able(JoinPolicy::Auto), &[ALICE]);
    let out = press_join(&mut h);
    h.homeserver_accepts(out);
    let out = session_member(&mut h, ALICE, "ALICEDEV");
    h.homeserver_accepts(out);
    h.live_for(Duration::from_secs(300));
    assert_eq!(
        h.seat(),
        SeatState::InCall,
        "Alice came: no two-minute limit"
    );
    let out = session_leave(&mut h, ALICE, "ALICEDEV");
    let commands = h.homeserver_accepts(out);
    assert_eq!(delayed_actions(&commands), [DelayedAction::Send]);
    assert_eq!(h.seat(), SeatState::Idle);

    // Without a transport, the join button starts a mesh call instead.
    let mut s = able(JoinPolicy::Auto);
    s.livekit_service_url = None;
    let mut h = Harness::in_service_with(s, &[ALICE]);
    let out = press_join(&mut h);
    let writes = state_writes(&h.homeserver_accepts(out));
    assert!(
        writes
            .iter()
            .any(|(key, content, _)| key.starts_with("roomd-") && content["m.intent"] == "m.room"),
        "{writes:?}"
    );
}
