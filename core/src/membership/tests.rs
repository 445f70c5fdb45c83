use ruma::{owned_room_id, owned_user_id};
use serde_json::json;

use super::*;
use crate::events::{CALL_MEMBER, MESH_CALL, RTC_MEMBER, RTC_NOTIFY};

const TS: u64 = 1_759_000_000_000;

fn state(state_key: &str, sender: &str, content: Value) -> StateEvent {
    StateEvent {
        room_id: owned_room_id!("!room:localhost"),
        event_type: CALL_MEMBER.to_owned(),
        state_key: state_key.to_owned(),
        sender: sender.try_into().unwrap(),
        origin_server_ts: TS,
        content,
    }
}

fn element_call_content(device: &str) -> Value {
    // As Element Call sends it in its default (compatibility) mode.
    json!({
        "application": "m.call",
        "call_id": "",
        "scope": "m.room",
        "device_id": device,
        "membershipID": format!("@alice:localhost:{device}"),
        "expires": 14_400_000,
        "m.call.intent": "video",
        "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
        "foci_preferred": [{
            "type": "livekit",
            "livekit_service_url": "https://rtc.localhost/livekit/jwt",
            "livekit_alias": "!room:localhost"
        }]
    })
}

#[test]
fn element_call_session_membership_with_and_without_underscore() {
    for key in [
        "_@alice:localhost_ALICEDEV_m.call",
        "@alice:localhost_ALICEDEV_m.call",
    ] {
        let members = call_member(&state(
            key,
            "@alice:localhost",
            element_call_content("ALICEDEV"),
        ))
        .unwrap();
        assert_eq!(members.len(), 1);
        let m = &members[0];
        assert_eq!(m.user_id, "@alice:localhost");
        assert_eq!(m.device_id, "ALICEDEV");
        assert_eq!(m.call, CallId::room_call());
        assert_eq!(m.focus, "livekit");
        assert_eq!(m.shape, Shape::Session);
        assert_eq!(
            m.expires_at_ms,
            TS + 14_400_000,
            "origin_server_ts + expires"
        );
        assert_eq!(m.created_ms, TS, "joined when first sent");
        assert_eq!(
            m.transport.as_deref(),
            Some("https://rtc.localhost/livekit/jwt")
        );
        assert_eq!(m.focus_selection.as_deref(), Some("multi_sfu"));
    }
}

#[test]
fn created_ts_takes_precedence_over_origin_server_ts() {
    let mut content = element_call_content("D");
    content["created_ts"] = json!(TS - 1000);
    let m = call_member(&state(
        "_@alice:localhost_D_m.call",
        "@alice:localhost",
        content,
    ))
    .unwrap();
    assert_eq!(m[0].expires_at_ms, TS - 1000 + 14_400_000);
    assert_eq!(m[0].created_ms, TS - 1000);
}

#[test]
fn a_session_membership_for_someone_else_is_refused() {
    let e = call_member(&state(
        "_@bob:localhost_BOBDEV_m.call",
        "@mallory:localhost",
        element_call_content("BOBDEV"),
    ))
    .unwrap_err();
    assert!(e.contains("does not belong"), "{e}");
    // Nor may the content name another device than the state key.
    let e = call_member(&state(
        "_@alice:localhost_ALICEDEV_m.call",
        "@alice:localhost",
        element_call_content("OTHER"),
    ))
    .unwrap_err();
    assert!(e.contains("does not belong"), "{e}");
}

#[test]
fn the_2024_memberships_array() {
    let content = json!({"memberships": [{
        "application": "m.call", "call_id": "", "scope": "m.room", "device_id": "D1",
        "expires": 3_600_000, "foci_active": [{"type": "livekit", "livekit_service_url": "https://x", "livekit_alias": "a"}],
        "membershipID": "m1"
    }, {
        "application": "m.call", "call_id": "", "scope": "m.room", "device_id": "D2",
        "expires": 60_000, "created_ts": TS + 5, "foci_active": [], "membershipID": "m2"
    }]});
    let members = call_member(&state("@alice:localhost", "@alice:localhost", content)).unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.iter().all(|m| m.shape == Shape::Memberships));
    assert_eq!(members[0].expires_at_ms, TS + 3_600_000);
    assert_eq!(members[1].expires_at_ms, TS + 5 + 60_000);
    assert_eq!(members[1].focus, "unknown");
}

#[test]
fn the_msc3401_m_calls_array() {
    let content = json!({"m.calls": [{
        "m.call_id": "group1", "m.foci": [],
        "m.devices": [
            {"device_id": "D1", "session_id": "s1", "expires_ts": TS + 3_600_000, "feeds": [{"purpose": "m.usermedia"}]},
            {"device_id": "D2", "session_id": "s2", "expires_ts": TS + 10, "feeds": []}
        ]
    }]});
    let members = call_member(&state("@alice:localhost", "@alice:localhost", content)).unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].call, CallId::mesh("group1"));
    assert_eq!(members[0].session_id.as_deref(), Some("s1"));
    assert_eq!(members[1].expires_at_ms, TS + 10);
    assert!(
        members
            .iter()
            .all(|m| m.focus == "mesh" && m.shape == Shape::MeshCalls)
    );
}

#[test]
fn m_calls_under_someone_elses_state_key_is_refused() {
    let content = json!({"m.calls": []});
    assert!(call_member(&state("@bob:localhost", "@alice:localhost", content)).is_err());
}

#[test]
fn empty_content_is_a_leave_and_garbage_is_an_error() {
    assert_eq!(
        call_member(&state("@alice:localhost", "@alice:localhost", json!({}))).unwrap(),
        vec![]
    );
    let leave = json!({"leave_reason": "lost_connection"});
    assert!(
        call_member(&state(
            "_@alice:localhost_D_m.call",
            "@alice:localhost",
            leave
        ))
        .unwrap()
        .is_empty()
    );
    for garbage in [
        json!(null),
        json!([1, 2]),
        json!("m.call"),
        json!({"application": "m.call"}),
        json!({"m.calls": "nope"}),
        json!({"m.calls": [{"m.call_id": 5}]}),
        json!({"m.calls": [{"m.call_id": "g", "m.devices": [{"device_id": "", "session_id": "s", "expires_ts": 1}]}]}),
        json!({"memberships": [{"application": "m.call"}]}),
        json!({"device_id": "D", "expires": -1}),
        json!({"random": {"deeply": [{"nested": true}]}}),
    ] {
        assert!(
            call_member(&state(
                "@alice:localhost",
                "@alice:localhost",
                garbage.clone()
            ))
            .is_err(),
            "accepted {garbage}"
        );
    }
}

#[test]
fn a_membership_listing_too_many_devices_is_refused() {
    let devices: Vec<Value> = (0..100)
        .map(|i| json!({"device_id": format!("D{i}"), "session_id": "s", "expires_ts": TS}))
        .collect();
    let content = json!({"m.calls": [{"m.call_id": "g", "m.devices": devices}]});
    assert!(call_member(&state("@alice:localhost", "@alice:localhost", content)).is_err());
}

#[test]
fn msc3401_group_call_events() {
    let mut ev = state(
        "group1",
        "@alice:localhost",
        json!({"m.intent": "m.room", "m.type": "m.video"}),
    );
    ev.event_type = MESH_CALL.to_owned();
    let call = mesh_call(&ev).unwrap().unwrap();
    assert_eq!(call.intent, "m.room");
    assert!(!call.terminated);
    ev.content = json!({"m.intent": "m.room", "m.type": "m.video", "m.terminated": "call_ended"});
    assert!(mesh_call(&ev).unwrap().unwrap().terminated);
    ev.content = json!({});
    assert_eq!(mesh_call(&ev).unwrap(), None);
    ev.content = json!({"m.type": 3});
    assert!(mesh_call(&ev).is_err());
}

fn timeline(event_type: &str, sender: &str, content: Value) -> TimelineEvent {
    TimelineEvent {
        room_id: owned_room_id!("!room:localhost"),
        event_type: event_type.to_owned(),
        sender: sender.try_into().unwrap(),
        origin_server_ts: TS,
        content,
        sticky_duration_ms: Some(600_000),
    }
}

#[test]
fn sticky_rtc_member_join_and_leave() {
    let join = json!({
        "slot_id": "m.call#ROOM",
        "application": {"type": "m.call", "m.call.intent": "video"},
        "transports": {"published": [{"type": "livekit", "livekit_service_url": "https://x"}], "can_subscribe": ["livekit"]},
        "member": {"user_id": "@alice:localhost", "device_id": "DEV", "id": "uuid-1"},
        "versions": [],
        "msc4354_sticky_key": "key-1"
    });
    let (key, member) =
        rtc_member(&timeline(RTC_MEMBER, "@alice:localhost", join.clone())).unwrap();
    let member = member.unwrap();
    assert_eq!(key, "key-1");
    assert_eq!(member.call, CallId::room_call());
    assert_eq!(member.focus, "livekit");
    assert_eq!(member.expires_at_ms, TS + 600_000);
    assert_eq!(member.shape, Shape::RtcMember);

    let leave = json!({"slot_id": "m.call#ROOM", "msc4354_sticky_key": "key-1"});
    let (key, member) = rtc_member(&timeline(RTC_MEMBER, "@alice:localhost", leave)).unwrap();
    assert_eq!((key.as_str(), member), ("key-1", None));

    assert!(rtc_member(&timeline(RTC_MEMBER, "@mallory:localhost", join)).is_err());
}

#[test]
fn rings_last_their_lifetime_capped_at_two_minutes() {
    let ring = ring(&timeline(
        RTC_NOTIFICATION,
        "@alice:localhost",
        json!({"notification_type": "ring", "lifetime": 90_000, "sender_ts": TS, "m.mentions": {"room": true}}),
    ))
    .unwrap();
    assert_eq!(ring.call, CallId::room_call());
    assert_eq!(ring.until_ms, TS + 90_000);
    let long = super::ring(&timeline(
        RTC_NOTIFICATION,
        "@a:localhost",
        json!({"lifetime": 99_999_999}),
    ))
    .unwrap();
    assert_eq!(long.until_ms, TS + 120_000);
    let notify = super::ring(&timeline(
        RTC_NOTIFY,
        "@a:localhost",
        json!({"application": "m.call", "call_id": "", "notify_type": "ring"}),
    ))
    .unwrap();
    assert_eq!(notify.call, CallId::room_call());
    assert!(
        super::ring(&timeline(
            RTC_NOTIFY,
            "@a:localhost",
            json!({"call_id": ""})
        ))
        .is_err()
    );
    assert!(super::ring(&timeline(RTC_NOTIFY, "@a:localhost", json!(7))).is_err());
}

#[test]
fn session_membership_we_would_publish_reads_back_as_ours() {
    let me = crate::Identity {
        user_id: owned_user_id!("@room:localhost"),
        device_id: "ROOMD".into(),
        session_id: "s".to_owned(),
    };
    let room = owned_room_id!("!room:localhost");
    let first = crate::own_call::SessionPublish {
        transport: Some("https://rtc.localhost/livekit/jwt".to_owned()),
        created_ms: None,
        expires: std::time::Duration::from_secs(4 * 3600),
    };
    let (key, content) = crate::own_call::session_membership(&me, &room, &first);
    assert_eq!(key, "_@room:localhost_ROOMD_m.call");
    // Exactly as Element Call writes a first join.
    assert_eq!(
        content,
        json!({
            "application": "m.call",
            "call_id": "",
            "scope": "m.room",
            "device_id": "ROOMD",
            "membershipID": "@room:localhost:ROOMD",
            "expires": 14_400_000,
            "m.call.intent": "video",
            "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
            "foci_preferred": [{
                "type": "livekit",
                "livekit_service_url": "https://rtc.localhost/livekit/jwt",
                "livekit_alias": "!room:localhost"
            }]
        })
    );
    let members = call_member(&state(&key, "@room:localhost", content)).unwrap();
    assert_eq!(members[0].call, CallId::room_call());
    assert_eq!(members[0].device_id, "ROOMD");
    assert_eq!(members[0].created_ms, TS);

    // A refresh keeps the first join and grows the lifetime.
    let refresh = crate::own_call::SessionPublish {
        created_ms: Some(TS),
        expires: std::time::Duration::from_secs(8 * 3600),
        ..first
    };
    let (_, content) = crate::own_call::session_membership(&me, &room, &refresh);
    assert_eq!(content["created_ts"], TS);
    assert_eq!(content["expires"], 28_800_000);
    let mut later = state(&key, "@room:localhost", content);
    later.origin_server_ts = TS + 3 * 3_600_000;
    let members = call_member(&later).unwrap();
    assert_eq!(members[0].created_ms, TS);
    assert_eq!(members[0].expires_at_ms, TS + 28_800_000);
}
