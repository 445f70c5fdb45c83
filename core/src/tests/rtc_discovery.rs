//! Finding the LiveKit transport on a fake clock: the homeserver's RTC transports first, then
//! `.well-known`'s `rtc_foci`, then the config; asked once logged in and hourly after; failures
//! back off and keep what was found.

use std::time::Duration;

use serde_json::json;

use super::*;

fn asks(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Matrix(MatrixCommand::FetchRtcTransports) => Some("transports"),
            Output::Matrix(MatrixCommand::FetchWellKnownRtcFoci) => Some("well-known"),
            _ => None,
        })
        .collect()
}

fn livekit(url: &str) -> Value {
    json!({"type": "livekit", "livekit_service_url": url})
}

fn status(h: &Harness) -> String {
    h.core.status(h.now).livekit
}

#[test]
fn the_homeserver_transport_is_asked_for_once_logged_in_and_hourly() {
    let (mut h, out) = Harness::new(settings(JoinPolicy::Auto, None));
    assert!(asks(&out).is_empty(), "not before logging in: {out:?}");
    let out = h.feed(Input::LoggedIn(Ok(())));
    assert_eq!(asks(&out), ["transports"]);
    // Other kinds and broken entries are skipped; the first LiveKit one counts.
    let answer = vec![
        json!({"type": "mesh"}),
        json!({"type": "livekit"}),
        json!("junk"),
        livekit("https://rtc.localhost/jwt"),
        livekit("https://second.localhost/jwt"),
    ];
    let out = h.feed(Input::RtcTransports(Ok(answer)));
    assert!(asks(&out).is_empty(), "{out:?}");
    assert_eq!(
        status(&h),
        "https://rtc.localhost/jwt (from the homeserver; found from the homeserver)"
    );
    // Asked again an hour later, not before.
    let asked_at = h.now;
    let out = h.advance(Duration::from_secs(3599));
    assert!(asks(&out).is_empty(), "{out:?}");
    let out = h.advance(Duration::from_secs(1));
    assert_eq!(asks(&out), ["transports"]);
    assert_eq!(h.now.mono - asked_at.mono, Duration::from_secs(3600));
}

#[test]
fn without_the_endpoint_well_known_then_the_config_is_used() {
    let mut s = settings(JoinPolicy::Auto, None);
    s.livekit_service_url = Some("https://configured.localhost/jwt".to_owned());
    let (mut h, _) = Harness::new(s);
    assert_eq!(
        status(&h),
        "https://configured.localhost/jwt (from the config; not asked yet)"
    );
    h.feed(Input::LoggedIn(Ok(())));
    let out = h.feed(Input::RtcTransports(Err(fail(FailureKind::NotFound))));
    assert_eq!(asks(&out), ["well-known"]);
    h.feed(Input::WellKnownRtcFoci(Ok(vec![livekit(
        "https://wk.localhost/jwt",
    )])));
    assert!(status(&h).starts_with("https://wk.localhost/jwt (from .well-known;"));

    // An hour on, the homeserver lists none and .well-known neither: the config's.
    let out = h.advance(Duration::from_secs(3600));
    assert_eq!(asks(&out), ["transports"]);
    let out = h.feed(Input::RtcTransports(Ok(Vec::new())));
    assert_eq!(asks(&out), ["well-known"]);
    h.feed(Input::WellKnownRtcFoci(Ok(Vec::new())));
    assert_eq!(
        status(&h),
        "https://configured.localhost/jwt (from the config; the homeserver offers no LiveKit \
         transport)"
    );
}

#[test]
fn no_transport_anywhere_is_said_plainly() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::RtcTransports(Err(fail(FailureKind::Unsupported))));
    h.feed(Input::WellKnownRtcFoci(Err(fail(FailureKind::NotFound))));
    assert_eq!(
        status(&h),
        "none (the homeserver offers no LiveKit transport)"
    );
}

#[test]
fn failures_back_off_and_keep_what_was_found() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::RtcTransports(Ok(vec![livekit(
        "https://rtc.localhost/jwt",
    )])));
    h.advance(Duration::from_secs(3600));
    let mut waits = Vec::new();
    let mut at = h.now;
    for _ in 0..8 {
        h.feed(Input::RtcTransports(Err(fail(FailureKind::Other))));
        assert!(status(&h).starts_with("https://rtc.localhost/jwt (from the homeserver; failed"));
        let wake = h.core.next_wakeup(h.now).expect("a retry");
        let out = h.advance(wake - h.now.mono);
        assert_eq!(asks(&out), ["transports"]);
        waits.push((h.now.mono - at.mono).as_secs());
        at = h.now;
    }
    assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640]);
}

#[test]
fn a_lost_answer_is_asked_for_again() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    let asked_at = h.now;
    h.feed(Input::LoggedIn(Ok(())));
    assert_eq!(h.core.next_wakeup(h.now), None, "the answer wakes the core");
    // Syncs step the core: not asked again before two minutes, then asked again.
    h.run_until(asked_at.after(Duration::from_secs(119)));
    let out = h.feed(Input::Synced(Ok(())));
    assert!(asks(&out).is_empty(), "{out:?}");
    h.run_until(asked_at.after(Duration::from_secs(120)));
    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(asks(&out), ["transports"], "asked again after two minutes");
    // An answer nobody asked for changes nothing.
    h.feed(Input::WellKnownRtcFoci(Ok(vec![livekit(
        "https://wk.localhost/jwt",
    )])));
    assert_eq!(status(&h), "none (not asked yet)");
}
