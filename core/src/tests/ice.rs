//! ICE servers on a fake clock: the homeserver's TURN servers fetched once logged in, renewed
//! before their ttl, an empty answer or a missing endpoint meaning "no TURN" (and calls going on
//! without), failures backing off, the config's servers always there, and the media engine told
//! only when the set changes.

use std::time::Duration;

use super::*;
use crate::Secret;
use crate::ice::{IceSettings, TurnServers};
use crate::ice_uri::{IceServer, IceUri};
use crate::media::MediaCommand;

const ZED: &str = "@zed:localhost";
const HS_USER: &str = "1759003600:@room:localhost";

fn fetches(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Matrix(MatrixCommand::FetchTurnServers)))
        .count()
}

/// A server as the tests write it: its URI, and for TURN `(username, password)`.
fn describe(server: &IceServer) -> String {
    match &server.credentials {
        Some((user, password)) => format!("{} ({user}, {})", server.uri, password.expose()),
        None => server.uri.to_string(),
    }
}

/// Every SetIceServers in `out`, as (stun, turn).
fn ice_sets(out: &[Output]) -> Vec<(Vec<String>, Vec<String>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(MediaCommand::SetIceServers { servers }) => Some(
                servers
                    .iter()
                    .partition::<Vec<&IceServer>, _>(|s| s.credentials.is_none()),
            ),
            _ => None,
        })
        .map(|(stun, turn)| {
            (
                stun.into_iter().map(describe).collect(),
                turn.into_iter().map(describe).collect(),
            )
        })
        .collect()
}

fn offer(password: &str, ttl_s: u64) -> TurnServers {
    TurnServers {
        uris: vec![
            "turn:turn.localhost:3478?transport=udp".to_owned(),
            "turns:turn.localhost:5349?transport=tcp".to_owned(),
        ],
        username: HS_USER.to_owned(),
        password: Secret::new(password.to_owned()),
        ttl_s,
    }
}

fn hs_turn(password: &str) -> Vec<String> {
    vec![
        format!("turn:turn.localhost:3478?transport=udp ({HS_USER}, {password})"),
        format!("turns:turn.localhost:5349?transport=tcp ({HS_USER}, {password})"),
    ]
}

fn with_config_servers() -> Settings {
    let mut s = settings(JoinPolicy::Auto, None);
    s.ice = IceSettings {
        stun: vec![IceUri::parse("stun:stun.example.org:3478").unwrap()],
        turn: vec![IceUri::parse("turn:relay.example.org?transport=tcp").unwrap()],
        turn_username: "room".to_owned(),
        turn_password: Some(Secret::new("p@ss:word".to_owned())),
    };
    s
}

const CONFIG_STUN: &str = "stun:stun.example.org:3478";
const CONFIG_TURN: &str = "turn:relay.example.org?transport=tcp (room, p@ss:word)";

/// Logged in and in service; returns what logging in put out.
fn logged_in(settings: Settings) -> (Harness, Vec<Output>) {
    let (mut h, _) = Harness::new(settings);
    let mut out = h.feed(Input::LoggedIn(Ok(())));
    out.extend(h.feed(Input::Synced(Ok(()))));
    assert!(h.core.in_service());
    (h, out)
}

#[test]
fn the_homeserver_is_asked_once_logged_in_and_not_before() {
    let (mut h, out) = Harness::new(settings(JoinPolicy::Auto, None));
    assert_eq!(fetches(&out), 0, "not before login: {out:?}");
    let out = h.feed(Input::LoggedIn(Err(fail(FailureKind::Other))));
    assert_eq!(fetches(&out), 0);
    let wake = h.core.next_wakeup(h.now).unwrap();
    assert!(wake > h.now.mono, "no busy wakeup while logged out");
    let out = h.advance(wake - h.now.mono);
    assert_eq!(fetches(&out), 0, "the login retry, no fetch: {out:?}");

    // Asked along with the first sync, so the servers are there before the first call.
    let out = h.feed(Input::LoggedIn(Ok(())));
    assert_eq!(fetches(&out), 1, "{out:?}");
    assert!(
        ice_sets(&out).is_empty(),
        "nothing configured, nothing to say"
    );
    // One request at a time.
    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(fetches(&out), 0);
    assert_eq!(fetches(&h.advance(Duration::from_secs(60))), 0);
}

#[test]
fn the_homeserver_servers_go_to_media_and_are_renewed_before_their_ttl() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    let out = h.feed(Input::TurnServers(Ok(offer("pw1", 3600))));
    assert_eq!(ice_sets(&out), vec![(vec![], hs_turn("pw1"))]);
    let status = h.core.status(h.now).ice;
    assert_eq!(
        status.turn,
        vec![
            "turn:turn.localhost:3478?transport=udp",
            "turns:turn.localhost:5349?transport=tcp"
        ]
    );
    assert_eq!(status.turn_expires_in_s, Some(3600));

    // Renewed at 90% of the ttl, not before.
    let out = h.advance(Duration::from_secs(3239));
    assert_eq!(fetches(&out), 0, "{out:?}");
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(fetches(&out), 1);
    assert!(
        ice_sets(&out).is_empty(),
        "the old ones are good until renewed"
    );

    // New credentials: media is told; the same ones again: it is not.
    let out = h.feed(Input::TurnServers(Ok(offer("pw2", 3600))));
    assert_eq!(ice_sets(&out), vec![(vec![], hs_turn("pw2"))]);
    h.advance(Duration::from_secs(3240));
    let out = h.feed(Input::TurnServers(Ok(offer("pw2", 3600))));
    assert!(ice_sets(&out).is_empty(), "unchanged: {out:?}");
    assert_eq!(h.core.status(h.now).ice.turn_expires_in_s, Some(3600));
}

#[test]
fn a_tiny_ttl_does_not_make_a_busy_loop() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    h.feed(Input::TurnServers(Ok(offer("pw", 0))));
    let mut asked = 0;
    for _ in 0..10 {
        let out = h.advance(Duration::from_secs(60));
        asked += fetches(&out);
        h.feed(Input::TurnServers(Ok(offer("pw", 0))));
    }
    assert_eq!(asked, 10, "once a minute at most");
}

#[test]
fn an_endless_ttl_is_capped_and_renewed_within_a_day() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    h.feed(Input::TurnServers(Ok(offer("pw", u64::MAX))));
    let expires = h.core.status(h.now).ice.turn_expires_in_s;
    assert_eq!(expires, Some(7 * 24 * 3600), "capped at a week");
    let out = h.advance(Duration::from_secs(24 * 3600));
    assert_eq!(fetches(&out), 1, "asked again after a day: {out:?}");
}

#[test]
fn an_empty_answer_means_no_turn_and_calls_go_on_without() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    h.member(ME, "join");
    h.member(ZED, "join");
    h.feed(Input::Synced(Ok(())));
    // Synapse without turn_uris answers `{}`.
    let out = h.feed(Input::TurnServers(Ok(TurnServers::none())));
    assert!(ice_sets(&out).is_empty(), "{out:?}");
    let status = h.core.status(h.now).ice;
    assert!(status.turn.is_empty() && status.turn_expires_in_s.is_none());
    assert!(status.homeserver.contains("no TURN"), "{status:?}");

    // A call is placed as ever, with no ICE servers at all.
    let out = h.mesh_call_with("g1", ZED, "ZEDDEV");
    h.homeserver_accepts(out);
    let mut all = std::mem::take(&mut h.stray);
    all.extend(h.feed(Input::Tick));
    assert!(
        all.iter()
            .any(|o| matches!(o, Output::Media(MediaCommand::AddPeer { .. }))),
        "{all:?}"
    );
    assert!(ice_sets(&all).is_empty());

    // Asked again rarely: once in the next hour.
    let mut asked = 0;
    for _ in 0..59 {
        asked += fetches(&h.advance(Duration::from_secs(60)));
    }
    assert_eq!(asked, 0);
    asked += fetches(&h.advance(Duration::from_secs(61)));
    assert_eq!(asked, 1);
}

#[test]
fn a_missing_endpoint_is_no_turn_too() {
    for kind in [FailureKind::NotFound, FailureKind::Unsupported] {
        let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
        h.feed(Input::TurnServers(Err(fail(kind))));
        assert_eq!(fetches(&h.advance(Duration::from_secs(3599))), 0);
        assert_eq!(fetches(&h.advance(Duration::from_secs(1))), 1);
        assert!(h.core.in_service(), "a homeserver without TURN is fine");
    }
}

#[test]
fn failures_back_off_and_the_last_good_servers_last_until_they_expire() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    h.feed(Input::TurnServers(Ok(offer("pw", 600))));
    let offered_at = h.now;
    // Renewal at 540 s fails, and keeps failing.
    let mut waits = Vec::new();
    let mut cleared = None;
    let mut at = h.now;
    while h.now.mono < offered_at.mono + Duration::from_secs(3600) {
        let wake = h.core.next_wakeup(h.now).expect("a retry is due");
        let out = h.advance(wake - h.now.mono);
        if !ice_sets(&out).is_empty() {
            cleared.get_or_insert((h.now.mono - offered_at.mono, ice_sets(&out)));
        }
        if fetches(&out) == 1 {
            waits.push((h.now.mono - at.mono).as_secs());
            at = h.now;
            h.feed(Input::TurnServers(Err(fail(FailureKind::Other))));
        }
    }
    // Renewed at 90% of 600 s...
    // Then 5 s doubling to a 15 min cap: 11 requests in the hour, not hundreds.
    assert_eq!(waits, [540, 5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
    // The credentials are dropped when they expire, not at the first failure.
    let (when, sets) = cleared.expect("expired servers are taken away");
    assert_eq!(when, Duration::from_secs(600));
    assert_eq!(sets, vec![(vec![], vec![])]);
    assert!(h.core.status(h.now).ice.homeserver.contains("failed"));

    // Back: the backoff starts over.
    let wake = h.core.next_wakeup(h.now).unwrap();
    h.advance(wake - h.now.mono);
    let out = h.feed(Input::TurnServers(Ok(offer("pw", 600))));
    assert_eq!(ice_sets(&out), vec![(vec![], hs_turn("pw"))]);
}

#[test]
fn a_lost_answer_does_not_stop_the_renewals() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    assert_eq!(
        h.core.next_wakeup(h.now),
        None,
        "waiting for the answer, nothing else"
    );
    // The answer to the first fetch never comes; syncs go on.
    h.advance(Duration::from_secs(119));
    assert_eq!(fetches(&h.feed(Input::Synced(Ok(())))), 0);
    h.advance(Duration::from_secs(1));
    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(fetches(&out), 1, "asked again after 120 s: {out:?}");
}

#[test]
fn the_config_servers_are_always_there() {
    let (mut h, out) = logged_in(with_config_servers());
    assert_eq!(
        ice_sets(&out),
        vec![(vec![CONFIG_STUN.to_owned()], vec![CONFIG_TURN.to_owned()])],
        "the config's servers at once, before the homeserver answers"
    );
    let out = h.feed(Input::TurnServers(Ok(offer("pw", 600))));
    let mut turn = vec![CONFIG_TURN.to_owned()];
    turn.extend(hs_turn("pw"));
    assert_eq!(ice_sets(&out), vec![(vec![CONFIG_STUN.to_owned()], turn)]);
    let status = h.core.status(h.now).ice;
    assert_eq!(status.stun, vec!["stun:stun.example.org:3478"]);
    assert_eq!(status.turn[0], "turn:relay.example.org?transport=tcp");
    assert_eq!(status.turn.len(), 3);

    // The homeserver's expire with nothing new: the config's stay.
    h.advance(Duration::from_secs(540));
    h.feed(Input::TurnServers(Err(fail(FailureKind::Other))));
    let out = h.advance(Duration::from_secs(60));
    assert_eq!(
        ice_sets(&out),
        vec![(vec![CONFIG_STUN.to_owned()], vec![CONFIG_TURN.to_owned()])]
    );
    // The retry in flight meanwhile gets "none": still the config's, nothing to tell media.
    let out = h.feed(Input::TurnServers(Ok(TurnServers::none())));
    assert!(ice_sets(&out).is_empty());
}

#[test]
fn the_homeserver_stun_uris_and_bad_uris() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    let mut answer = offer("pw", 600);
    answer.uris = vec![
        "stun:stun.localhost".to_owned(),
        "turn:turn.localhost?transport=sctp".to_owned(),
        "not a uri".to_owned(),
        "turn:turn.localhost".to_owned(),
    ];
    let out = h.feed(Input::TurnServers(Ok(answer)));
    assert_eq!(
        ice_sets(&out),
        vec![(
            vec!["stun:stun.localhost".to_owned()],
            vec![format!("turn:turn.localhost ({HS_USER}, pw)")]
        )]
    );
}

#[test]
fn status_never_shows_credentials() {
    let (mut h, _) = logged_in(with_config_servers());
    h.feed(Input::TurnServers(Ok(offer("hs-secret", 600))));
    let status = h.core.status(h.now);
    let json = serde_json::to_string(&status).unwrap();
    let text = status.render();
    for shown in [json, text] {
        for secret in ["hs-secret", "p@ss", "p%40ss", "1759003600", "room:p"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("turn.localhost:3478"), "{shown}");
    }
    let debug = format!("{:?}", offer("hs-secret", 600));
    assert!(!debug.contains("hs-secret"), "{debug}");
}

#[test]
fn nothing_is_fetched_while_shutting_down() {
    let (mut h, _) = logged_in(settings(JoinPolicy::Auto, None));
    h.feed(Input::TurnServers(Err(fail(FailureKind::Other))));
    let out = h.feed(Input::Shutdown);
    assert!(out.contains(&Output::Exit), "{out:?}");
    assert_eq!(h.core.next_wakeup(h.now), None);
}
