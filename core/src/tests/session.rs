//! Login, sync, readiness and the watchdog.

use std::time::Duration;

use super::*;

fn count(out: &[Output], pred: impl Fn(&Output) -> bool) -> usize {
    out.iter().filter(|o| pred(o)).count()
}

fn is_login(o: &Output) -> bool {
    matches!(o, Output::Matrix(MatrixCommand::LogIn { .. }))
}

fn is_sync(o: &Output) -> bool {
    matches!(o, Output::Matrix(MatrixCommand::Sync { .. }))
}

fn is_ready(o: &Output) -> bool {
    *o == Output::Notify(Notify::Ready)
}

fn is_ping(o: &Output) -> bool {
    *o == Output::Notify(Notify::Watchdog)
}

fn is_in_service(o: &Output) -> bool {
    *o == Output::Notify(Notify::Status("in service".to_owned()))
}

#[test]
fn ready_at_start_and_in_service_only_after_login_and_the_first_sync() {
    let (mut h, out) = Harness::new(settings(JoinPolicy::Auto, None));
    assert_eq!(count(&out, is_login), 1);
    assert_eq!(
        count(&out, is_ready),
        1,
        "a slow homeserver must not hold up the boot"
    );
    assert_eq!(count(&out, is_in_service), 0);

    let out = h.feed(Input::LoggedIn(Ok(())));
    assert!(out.contains(&Output::Matrix(MatrixCommand::Sync { full_state: true })));
    assert_eq!(count(&out, is_in_service), 0);
    assert!(!h.core.in_service());
    assert_eq!(h.core.describe(), "first sync");

    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(count(&out, is_in_service), 1);
    assert_eq!(count(&out, is_ready), 0);
    assert!(
        out.contains(&Output::Matrix(MatrixCommand::Sync { full_state: false })),
        "the next sync starts at once and is incremental"
    );
    assert!(h.core.in_service());

    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(count(&out, is_ready), 0, "READY is sent once");
}

#[test]
fn failed_logins_back_off_instead_of_hammering_the_server() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    let start = h.now;
    let mut attempts = 1;
    // Every login fails for an hour.
    while h.now.mono < start.mono + Duration::from_secs(3600) {
        let out = h.feed(Input::LoggedIn(Err(fail(FailureKind::Unauthorized))));
        assert_eq!(count(&out, is_login), 0, "no immediate retry");
        let wake = h.core.next_wakeup(h.now).expect("a retry is scheduled");
        assert!(wake > h.now.mono);
        let out = h.advance(wake - h.now.mono);
        assert_eq!(count(&out, is_login), 1);
        attempts += 1;
    }
    // 2 s doubling to a 5 min cap: the first login, 8 retries in the first 510 s, then one
    // every 300 s (11 more start within the hour): 20, not thousands.
    assert_eq!(attempts, 20, "{attempts} attempts");
    h.feed(Input::LoggedIn(Err(fail(FailureKind::Unauthorized))));
    assert!(!h.core.in_service());
    assert!(h.core.describe().contains("boom"), "{}", h.core.describe());
}

#[test]
fn sync_failures_back_off_and_recover_without_logging_in_again() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    let mut waits = Vec::new();
    for _ in 0..10 {
        let out = h.feed(Input::Synced(Err(fail(FailureKind::Other))));
        assert_eq!(count(&out, is_sync) + count(&out, is_login), 0);
        let wake = h.core.next_wakeup(h.now).unwrap();
        waits.push((wake - h.now.mono).as_secs());
        let out = h.advance(wake - h.now.mono);
        assert_eq!(count(&out, is_sync), 1);
        assert_eq!(count(&out, is_login), 0);
    }
    assert_eq!(&waits[..4], &[1, 2, 4, 8]);
    assert_eq!(*waits.last().unwrap(), 60, "capped at a minute");
    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(count(&out, is_ready), 0, "READY is not sent again");
    assert!(h.core.in_service());
}

#[test]
fn a_revoked_session_leads_to_a_fresh_login_and_a_full_sync() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    h.feed(Input::Synced(Err(fail(FailureKind::Unauthorized))));
    assert!(matches!(h.core.phase(), Phase::WaitingToLogIn { .. }));
    let wake = h.core.next_wakeup(h.now).unwrap();
    let out = h.advance(wake - h.now.mono);
    assert!(out.contains(&Output::Matrix(MatrixCommand::LogIn { fresh: true })));
    let out = h.feed(Input::LoggedIn(Ok(())));
    assert!(out.contains(&Output::Matrix(MatrixCommand::Sync { full_state: true })));
}

#[test]
fn watchdog_pings_while_sync_reports_and_stops_when_it_wedges() {
    let timeout = Duration::from_secs(60);
    let (mut h, out) = Harness::new(settings(JoinPolicy::Auto, Some(timeout)));
    assert_eq!(count(&out, is_ping), 0);
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));

    // Healthy: sync answers every 30 s; pings come every 30 s (half the timeout).
    let mut pings = 0;
    for _ in 0..10 {
        pings += count(&h.advance(Duration::from_secs(30)), is_ping);
        pings += count(&h.feed(Input::Synced(Ok(()))), is_ping);
    }
    assert_eq!(pings, 10, "{pings} pings in 5 minutes");

    // Wedged: the sync request never returns. Pings stop once it is overdue (a sync may take
    // two minutes), so systemd's watchdog fires within the timeout after that.
    let wedged_at = h.now;
    let mut last_ping = None;
    while h.now.mono < wedged_at.mono + Duration::from_secs(600) {
        let wake = h
            .core
            .next_wakeup(h.now)
            .expect("the watchdog keeps checking");
        if count(&h.advance(wake - h.now.mono), is_ping) > 0 {
            last_ping = Some(wake - wedged_at.mono);
        }
    }
    let last_ping = last_ping.expect("pinged while the sync was not yet overdue");
    assert_eq!(
        last_ping,
        Duration::from_secs(120),
        "pinged a wedged sync until {last_ping:?} after it wedged"
    );

    // It resumes once the sync reports again.
    let mut out = h.feed(Input::Synced(Ok(())));
    out.extend(h.advance(timeout));
    assert_eq!(
        count(&out, is_ping),
        2,
        "at once, then half a timeout later"
    );
}
