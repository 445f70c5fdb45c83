//! Random, hostile room events against the whole core: whatever arrives, nothing panics and the
//! genuine participant stays listed. Deterministic (seeded), so a failure reproduces.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::*;
use crate::events::{CALL_NOTIFY_UNSTABLE, RTC_MEMBER, RTC_NOTIFICATION, RTC_NOTIFY};

/// Field names the parsers look for, so random content often looks nearly right.
const KEYS: &[&str] = &[
    "m.calls",
    "m.call_id",
    "m.devices",
    "m.foci",
    "device_id",
    "session_id",
    "expires_ts",
    "feeds",
    "application",
    "call_id",
    "scope",
    "expires",
    "created_ts",
    "focus_active",
    "foci_preferred",
    "type",
    "focus_selection",
    "memberships",
    "membershipID",
    "leave_reason",
    "m.intent",
    "m.type",
    "m.terminated",
    "slot_id",
    "member",
    "user_id",
    "id",
    "msc4354_sticky_key",
    "transports",
    "published",
    "lifetime",
    "notification_type",
    "membership",
];
const STRINGS: &[&str] = &[
    "",
    "m.call",
    "m.room",
    "m.user",
    "livekit",
    "g1",
    "ROOMD",
    "@room:localhost",
    "@alice:localhost",
    "_@alice:localhost_A_m.call",
    "m.call#ROOM",
    "join",
    "leave",
    "\u{0}",
    "🙂",
    "m.ring",
];

fn value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..if depth == 0 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => match rng.random_range(0..4) {
            0 => json!(rng.random::<i64>()),
            1 => json!(u64::MAX),
            2 => json!(rng.random_range(0..100_000_000_000_000u64)),
            _ => json!(-1.5e300),
        },
        3 | 4 => json!(STRINGS[rng.random_range(0..STRINGS.len())]),
        5 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| value(rng, depth - 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.random_range(0..6) {
                let k = KEYS[rng.random_range(0..KEYS.len())];
                m.insert(k.to_owned(), value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

#[test]
fn ten_thousand_hostile_events_do_no_harm() {
    let mut rng = StdRng::seed_from_u64(0x700d);
    let mut h = Harness::in_service(
        JoinPolicy::Auto,
        &["@alice:localhost", "@mallory:localhost"],
    );
    let out = h.mesh_call_with("g1", "@alice:localhost", "ALICEDEV");
    h.homeserver_accepts(out);
    let state_types = [CALL_MEMBER, MESH_CALL, RTC_MEMBER, "m.room.member"];
    let timeline_types = [
        RTC_MEMBER,
        RTC_NOTIFICATION,
        RTC_NOTIFY,
        CALL_NOTIFY_UNSTABLE,
    ];
    let keys = [
        "@mallory:localhost",
        "_@mallory:localhost_M_m.call",
        "g2",
        "",
        "@nobody",
    ];
    let mut fed = 0;
    for i in 0..10_000 {
        let content = value(&mut rng, 4);
        let out = if i % 2 == 0 {
            let t = state_types[rng.random_range(0..state_types.len())];
            // Mallory may write anything to her own keys, but not make herself leave the room
            // or end Alice's call (the homeserver's power levels stop that in a real room).
            let key = keys[rng.random_range(0..keys.len())];
            if t == "m.room.member" && key != "@nobody" || t == MESH_CALL && key == "g1" {
                continue;
            }
            h.state(t, key, "@mallory:localhost", content)
        } else {
            let t = timeline_types[rng.random_range(0..timeline_types.len())];
            h.timeline(t, "@mallory:localhost", content)
        };
        fed += 1;
        h.homeserver_accepts(out);
        if i % 500 == 0 {
            h.live_for(std::time::Duration::from_secs(1));
        }
    }
    assert!(fed > 8_000, "only {fed} events fed");
    let who = h.participants();
    assert!(
        who.contains(&"@alice:localhost ALICEDEV".to_owned()),
        "{who:?}"
    );
}
