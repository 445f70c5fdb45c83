//! Rooms, call membership and the join policy, on a fake clock.

use std::time::Duration;

use ruma::owned_room_id;
use serde_json::json;

use super::*;
use crate::events::{RTC_MEMBER, RTC_NOTIFICATION};
use crate::status::SeatState;

const ALICE: &str = "@alice:localhost";
const BOB: &str = "@bob:localhost";

/// Alice starts mesh call `g1`; the device joins it (the homeserver accepting everything).
fn in_call_with_alice(join: JoinPolicy) -> (Harness, Vec<MatrixCommand>) {
    let mut h = Harness::in_service(join, &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    let commands = h.homeserver_accepts(out);
    (h, commands)
}

#[test]
fn joins_a_mesh_room_call_behind_a_delayed_leave() {
    let (mut h, commands) = in_call_with_alice(JoinPolicy::Auto);
    let writes = state_writes(&commands);
    assert_eq!(writes.len(), 2, "{commands:?}");
    // First the dead man's switch: `{}` in 20 s unless restarted.
    assert_eq!(writes[0], (ME.to_owned(), json!({}), true));
    let first_write = commands
        .iter()
        .find(|c| matches!(c, MatrixCommand::SendState { .. }));
    assert!(matches!(
        first_write,
        Some(MatrixCommand::SendState { delay_ms: Some(20_000), event_type, .. }) if event_type == CALL_MEMBER
    ));
    // Then the membership, in the MSC3401 shape the call uses.
    let (key, content, delayed) = &writes[1];
    assert_eq!((key.as_str(), *delayed), (ME, false));
    let call = &content["m.calls"][0];
    assert_eq!(call["m.call_id"], "g1");
    assert_eq!(call["m.devices"][0]["device_id"], MY_DEVICE);
    assert_eq!(call["m.devices"][0]["session_id"], "session-1");
    assert_eq!(
        call["m.devices"][0]["expires_ts"],
        json!(h.now.unix_ms + 3_600_000)
    );
    assert_eq!(h.seat(), SeatState::InCall);
    let mut who = h.participants();
    who.sort();
    assert_eq!(
        who,
        vec![format!("{ALICE} ALICEDEV"), format!("{ME} {MY_DEVICE}")]
    );

    // Alive: the leave is restarted every 5 s, nothing else happens.
    let commands = h.live_for(Duration::from_secs(30));
    let restarts = delayed_actions(&commands);
    assert_eq!(restarts.len(), 6, "{commands:?}");
    assert!(restarts.iter().all(|a| *a == DelayedAction::Restart));
    assert!(state_writes(&commands).is_empty());
}

#[test]
fn the_membership_is_refreshed_before_it_expires() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    let joined = h.now;
    let out = h.advance(Duration::from_secs(31 * 60));
    let writes = state_writes(&h.homeserver_accepts(out));
    assert_eq!(writes.len(), 1, "{writes:?}");
    let expires = writes[0].1["m.calls"][0]["m.devices"][0]["expires_ts"]
        .as_u64()
        .unwrap();
    // Refreshed half an hour in, to expire an hour after that.
    assert_eq!(expires, joined.unix_ms + (30 + 60) * 60 * 1000);
}

#[test]
fn leaves_when_the_last_other_participant_leaves() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    let out = h.state(CALL_MEMBER, ALICE, ALICE, json!({}));
    let commands = h.homeserver_accepts(out);
    assert_eq!(
        delayed_actions(&commands),
        vec![DelayedAction::Send],
        "{commands:?}"
    );
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn leaves_when_the_other_participant_expires() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let mut out = h.state(MESH_CALL, "g1", ALICE, json!({"m.intent": "m.room"}));
    out.extend(h.mesh_member(ALICE, "g1", "ALICEDEV", Duration::from_secs(90)));
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::InCall);
    // Alice's client dies: nothing more arrives, her membership simply lapses.
    let commands = h.live_for(Duration::from_secs(91));
    assert!(
        delayed_actions(&commands).contains(&DelayedAction::Send),
        "{commands:?}"
    );
    assert_eq!(h.seat(), SeatState::Idle);
    assert_eq!(h.participants(), Vec::<String>::new());
}

#[test]
fn a_hang_up_keeps_us_out_until_the_call_ends_or_someone_rings() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    let out = h.feed(Input::Ctl {
        id: 7,
        request: CtlRequest::Hangup { room: None },
    });
    assert!(
        matches!(&out[0], Output::Reply { id: 7, reply } if reply.ok),
        "{out:?}"
    );
    let commands = h.homeserver_accepts(out);
    assert_eq!(delayed_actions(&commands), vec![DelayedAction::Send]);
    assert_eq!(h.seat(), SeatState::LeftByHangUp);

    // Alice is still there, and Bob joins too: we stay out.
    h.member(BOB, "join");
    let out = h.mesh_member(BOB, "g1", "BOBDEV", Duration::from_secs(3600));
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    let out = h.advance(Duration::from_secs(60));
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(h.seat(), SeatState::LeftByHangUp);

    // Someone rings: we come back.
    let out = h.timeline(
        RTC_NOTIFICATION,
        BOB,
        json!({"notification_type": "ring", "lifetime": 30000}),
    );
    let commands = h.homeserver_accepts(out);
    assert_eq!(state_writes(&commands).len(), 2, "{commands:?}");
    assert_eq!(h.seat(), SeatState::InCall);
}

#[test]
fn after_a_hang_up_the_next_call_is_joined_again() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    let out = h.feed(Input::Ctl {
        id: 1,
        request: CtlRequest::Hangup {
            room: Some(ROOM.to_owned()),
        },
    });
    h.homeserver_accepts(out);
    // The call ends...
    h.homeserver_accepts_state(CALL_MEMBER, ALICE, ALICE, json!({}));
    assert_eq!(h.seat(), SeatState::Idle);
    // ...and a new one starts later: auto-join applies again.
    let out = h.mesh_call_with("g2", ALICE, "ALICEDEV");
    let commands = h.homeserver_accepts(out);
    assert_eq!(state_writes(&commands).len(), 2);
    assert_eq!(
        state_writes(&commands)[1].1["m.calls"][0]["m.call_id"],
        "g2"
    );
}

#[test]
fn hang_up_with_no_call_is_an_error_reply() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let out = h.feed(Input::Ctl {
        id: 3,
        request: CtlRequest::Hangup { room: None },
    });
    assert!(matches!(&out[0], Output::Reply { id: 3, reply } if !reply.ok));
}

#[test]
fn when_rung_waits_for_a_ring() {
    let mut h = Harness::in_service(JoinPolicy::WhenRung, &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(h.seat(), SeatState::Idle);
    let why = h.core.status(h.now).rooms[0].why.clone();
    assert!(why.contains("waits for a ring"), "{why}");

    // A ring from ourselves does not count; one from Alice does.
    let out = h.timeline(RTC_NOTIFICATION, ME, json!({"lifetime": 30000}));
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    let out = h.timeline(
        RTC_NOTIFICATION,
        ALICE,
        json!({"notification_type": "ring", "lifetime": 30000}),
    );
    assert_eq!(state_writes(&h.homeserver_accepts(out)).len(), 2);
    // Once in, the ring lapsing does not throw us out.
    let out = h.advance(Duration::from_secs(120));
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::InCall);
}

#[test]
fn never_means_never() {
    let mut h = Harness::in_service(JoinPolicy::Never, &[ALICE]);
    let mut out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    out.extend(h.timeline(RTC_NOTIFICATION, ALICE, json!({"lifetime": 30000})));
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(h.participants(), vec![format!("{ALICE} ALICEDEV")]);
}

#[test]
fn only_room_intent_calls_with_someone_else_in_them_are_joined() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    // A ringing-intent call is not the room's call.
    let mut out = h.state(MESH_CALL, "g1", ALICE, json!({"m.intent": "m.ring"}));
    out.extend(h.mesh_member(ALICE, "g1", "ALICEDEV", Duration::from_secs(3600)));
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    // A call event with nobody in it is not joined either.
    let out = h.state(MESH_CALL, "g2", ALICE, json!({"m.intent": "m.room"}));
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    // A terminated call is over.
    let out = h.state(
        MESH_CALL,
        "g1",
        ALICE,
        json!({"m.intent": "m.room", "m.terminated": "call_ended"}),
    );
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert_eq!(h.participants(), Vec::<String>::new());
}

#[test]
fn an_element_call_session_is_seen_but_not_joined_without_livekit() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let content = json!({
        "application": "m.call", "call_id": "", "scope": "m.room", "device_id": "ALICEDEV",
        "expires": 14_400_000, "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
        "foci_preferred": [{"type": "livekit", "livekit_service_url": "https://x", "livekit_alias": ROOM}]
    });
    let out = h.state(
        CALL_MEMBER,
        "_@alice:localhost_ALICEDEV_m.call",
        ALICE,
        content,
    );
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    let status = h.core.status(h.now);
    assert!(status.rooms[0].call_on);
    assert_eq!(h.participants(), vec![format!("{ALICE} ALICEDEV")]);
    assert!(
        status.rooms[0].why.contains("LiveKit"),
        "{}",
        status.rooms[0].why
    );

    // It ends with `{}`...
    h.state(
        CALL_MEMBER,
        "_@alice:localhost_ALICEDEV_m.call",
        ALICE,
        json!({}),
    );
    assert!(h.participants().is_empty());
}

#[test]
fn every_membership_shape_counts_and_expires_on_the_core_clock() {
    let mut h = Harness::in_service(JoinPolicy::Never, &[ALICE, BOB]);
    // 2024 `memberships` array, expiring in 60 s.
    h.state(
        CALL_MEMBER,
        ALICE,
        ALICE,
        json!({"memberships": [{
            "application": "m.call", "call_id": "", "scope": "m.room", "device_id": "A1",
            "expires": 60_000, "foci_active": [], "membershipID": "x"
        }]}),
    );
    // Sticky m.rtc.member, sticky for 10 minutes.
    h.feed(Input::Timeline(TimelineEvent {
        room_id: room_id(),
        event_type: RTC_MEMBER.to_owned(),
        sender: BOB.try_into().unwrap(),
        origin_server_ts: h.now.unix_ms,
        content: json!({"slot_id": "m.call#ROOM", "application": {"type": "m.call"},
            "member": {"user_id": BOB, "device_id": "B1", "id": "u"}, "msc4354_sticky_key": "k"}),
        sticky_duration_ms: Some(600_000),
    }));
    assert_eq!(h.participants().len(), 2);
    h.advance(Duration::from_secs(61));
    assert_eq!(h.participants(), vec![format!("{BOB} B1")]);
    h.advance(Duration::from_secs(600));
    assert!(h.participants().is_empty());
}

#[test]
fn garbage_and_forged_memberships_are_dropped_without_harm() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE, BOB]);
    h.mesh_call_with("g1", ALICE, "ALICEDEV");
    for (key, sender, content) in [
        (BOB, BOB, json!(null)),
        (BOB, BOB, json!({"m.calls": [{"m.call_id": "g1"}]})),
        (
            BOB,
            BOB,
            json!({"m.calls": [{"m.call_id": "g1", "m.devices": [{"device_id": 1}]}]}),
        ),
        (BOB, BOB, json!([[[[[[]]]]]])),
        (
            "_@alice:localhost_EVIL_m.call",
            BOB,
            json!({"application": "m.call", "call_id": "", "scope": "m.room",
            "device_id": "EVIL", "expires": 1_000_000, "focus_active": {"type": "livekit", "focus_selection": "x"}, "foci_preferred": []}),
        ),
        (
            "@carol:localhost",
            BOB,
            json!({"m.calls": [{"m.call_id": "g1", "m.devices": [{"device_id": "X", "session_id": "s", "expires_ts": 9_999_999_999_999u64}]}]}),
        ),
    ] {
        h.state(CALL_MEMBER, key, sender, content);
    }
    h.timeline(RTC_NOTIFICATION, BOB, json!("ring ring"));
    h.timeline(RTC_MEMBER, BOB, json!({"member": 5}));
    h.state(MESH_CALL, "", BOB, json!({"m.intent": "m.room"}));
    assert_eq!(h.participants(), vec![format!("{ALICE} ALICEDEV")]);
}

#[test]
fn memberships_of_people_not_in_the_room_do_not_count() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[]);
    // Mallory left the room but her membership event is still in state.
    let out = h.mesh_call_with("g1", "@mallory:localhost", "M");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    assert!(h.participants().is_empty());
    // Alice who left also stops counting.
    h.member(ALICE, "join");
    let out = h.mesh_member(ALICE, "g1", "A", Duration::from_secs(3600));
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::InCall);
    let out = h.member(ALICE, "leave");
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn without_delayed_events_the_membership_is_written_and_taken_back_directly() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    let Some(Output::Matrix(MatrixCommand::SendState { request, .. })) = out.last().cloned() else {
        panic!("{out:?}")
    };
    let out = h.feed(Input::StateSent {
        request,
        result: Err(fail(FailureKind::Unsupported)),
    });
    let commands = h.homeserver_accepts(out);
    let writes = state_writes(&commands);
    assert_eq!(writes.len(), 1);
    assert!(!writes[0].2 && writes[0].1["m.calls"].is_array());
    let out = h.advance(Duration::from_secs(30));
    assert!(
        delayed_actions(&h.homeserver_accepts(out)).is_empty(),
        "nothing to restart"
    );
    let out = h.state(CALL_MEMBER, ALICE, ALICE, json!({}));
    let writes = state_writes(&h.homeserver_accepts(out));
    assert_eq!(writes, vec![(ME.to_owned(), json!({}), false)]);
}

#[test]
fn a_lost_delayed_leave_is_scheduled_again() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    let out = h.advance(Duration::from_secs(5));
    let Some(Output::Matrix(MatrixCommand::UpdateDelayed { request, .. })) = out.last().cloned()
    else {
        panic!("{out:?}")
    };
    let out = h.feed(Input::DelayedUpdated {
        request,
        result: Err(fail(FailureKind::NotFound)),
    });
    let writes = state_writes(&h.homeserver_accepts(out));
    assert_eq!(
        writes.len(),
        2,
        "schedules a new leave, publishes again: {writes:?}"
    );
    assert!(writes[0].2);
    assert_eq!(h.seat(), SeatState::InCall);
}

#[test]
fn a_failed_join_is_retried_with_backoff() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    let Some(Output::Matrix(MatrixCommand::SendState { request, .. })) = out.last().cloned() else {
        panic!()
    };
    let out = h.feed(Input::StateSent {
        request,
        result: Err(fail(FailureKind::Other)),
    });
    assert!(
        out.iter().all(|o| !matches!(o, Output::Matrix(_))),
        "no instant retry"
    );
    let out = h.advance(Duration::from_secs(3));
    assert_eq!(state_writes(&h.homeserver_accepts(out)).len(), 2);
    assert_eq!(h.seat(), SeatState::InCall);
}

#[test]
fn invites_are_accepted_only_from_the_allow_list() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[]);
    let out = h.feed(Input::Invite(Invite {
        room_id: owned_room_id!("!spam:evil.example"),
        inviter: Some("@spammer:evil.example".try_into().unwrap()),
    }));
    assert!(joins(&out).is_empty());
    let out = h.feed(Input::Invite(Invite {
        room_id: owned_room_id!("!dm:friends.example"),
        inviter: Some("@friend:friends.example".try_into().unwrap()),
    }));
    assert_eq!(joins(&out).len(), 1);
    // The same invite seen again in the next sync is not joined twice.
    let out = h.feed(Input::Invite(Invite {
        room_id: owned_room_id!("!dm:friends.example"),
        inviter: Some("@friend:friends.example".try_into().unwrap()),
    }));
    assert!(joins(&out).is_empty());
}

#[test]
fn served_rooms_are_joined_after_the_first_sync_and_rejoined_after_a_kick() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    let out = h.feed(Input::Synced(Ok(())));
    let j = joins(&out);
    assert_eq!(j.len(), 1, "{out:?}");
    let out = out.clone();
    h.homeserver_accepts(out);
    h.member(ME, "join");
    assert!(h.core.status(h.now).rooms[0].joined);

    // Kicked: one rejoin after a backoff, not at once.
    let out = h.state(ROOM_MEMBER, ME, ALICE, json!({"membership": "leave"}));
    assert!(joins(&out).is_empty());
    let out = h.advance(Duration::from_secs(11));
    assert_eq!(joins(&out).len(), 1);
    h.homeserver_accepts(out);
    h.member(ME, "join");

    // Banned: no more attempts.
    h.state(ROOM_MEMBER, ME, ALICE, json!({"membership": "ban"}));
    let out = h.advance(Duration::from_secs(3600));
    assert!(joins(&out).is_empty());
}

#[test]
fn shutdown_takes_the_membership_back_then_exits() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    let out = h.feed(Input::Shutdown);
    assert!(out.contains(&Output::Notify(Notify::Stopping)));
    assert!(!out.contains(&Output::Exit), "not before the leave is sent");
    let Some(Output::Matrix(MatrixCommand::UpdateDelayed {
        request,
        action: DelayedAction::Send,
        ..
    })) = out.iter().find(|o| matches!(o, Output::Matrix(_))).cloned()
    else {
        panic!("{out:?}")
    };
    let out = h.feed(Input::DelayedUpdated {
        request,
        result: Ok(()),
    });
    assert!(out.contains(&Output::Exit));
}

#[test]
fn shutdown_does_not_wait_forever_for_the_homeserver() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    h.feed(Input::Shutdown);
    let out = h.advance(Duration::from_secs(6));
    assert!(out.contains(&Output::Exit));
}

#[test]
fn a_membership_removed_behind_our_back_is_published_again() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    // A previous run's delayed leave fires late and empties our state key.
    let commands = h.homeserver_accepts_state(CALL_MEMBER, ME, ME, json!({}));
    let writes = state_writes(&commands);
    assert_eq!(writes.len(), 1, "{commands:?}");
    assert_eq!(writes[0].1["m.calls"][0]["m.call_id"], "g1");
    assert_eq!(h.seat(), SeatState::InCall);
    assert!(h.participants().contains(&format!("{ME} {MY_DEVICE}")));
}

#[test]
fn an_invite_to_a_served_room_ends_the_wait_after_a_refused_join() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    let out = h.feed(Input::Synced(Ok(())));
    let Some(MatrixCommand::JoinRoom { request, .. }) = joins(&out).first().cloned().cloned()
    else {
        panic!("{out:?}")
    };
    // Invite-only: refused until someone invites the device.
    h.feed(Input::RoomJoined {
        request,
        result: Err(fail(FailureKind::Other)),
    });
    assert!(joins(&h.advance(Duration::from_secs(1))).is_empty());
    let mut out = h.feed(Input::Invite(Invite {
        room_id: room_id(),
        inviter: Some("@stranger:elsewhere.example".try_into().unwrap()),
    }));
    out.extend(h.feed(Input::Synced(Ok(()))));
    assert_eq!(
        joins(&out).len(),
        1,
        "joins at once, whoever invited: {out:?}"
    );
}

#[test]
fn a_replayed_kick_within_one_sync_is_not_a_kick() {
    let (mut h, _) = in_call_with_alice(JoinPolicy::Auto);
    // One sync carrying a room's recent history: a kick, the re-invite and the rejoin, which
    // ends where it began.
    let member = |membership: &str, sender: &str| {
        Input::State(StateEvent {
            room_id: room_id(),
            event_type: ROOM_MEMBER.to_owned(),
            state_key: ME.to_owned(),
            sender: sender.try_into().unwrap(),
            origin_server_ts: TS0,
            content: json!({"membership": membership}),
        })
    };
    h.feed(member("leave", ALICE));
    h.feed(member("invite", ALICE));
    h.feed(member("join", ME));
    let out = h.feed(Input::Synced(Ok(())));
    let commands = h.homeserver_accepts(out.clone());
    assert!(joins(&out).is_empty(), "{out:?}");
    assert!(
        state_writes(&commands).is_empty(),
        "the call was not dropped: {commands:?}"
    );
    assert_eq!(h.seat(), SeatState::InCall);
    let commands = h.live_for(Duration::from_secs(60));
    assert!(state_writes(&commands).is_empty(), "{commands:?}");
}
