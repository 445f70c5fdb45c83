//! Scenario tests: the core driven on a clock the test controls.

use std::time::{Duration, Instant};

use super::*;

struct Harness {
    core: Core,
    now: Instant,
}

impl Harness {
    fn new(watchdog: Option<Duration>) -> (Self, Vec<Output>) {
        let now = Instant::now();
        let mut h = Harness {
            core: Core::new(
                now,
                Settings {
                    watchdog_timeout: watchdog,
                },
            ),
            now,
        };
        let out = h.drain();
        (h, out)
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.core.poll_output()).collect()
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(self.now, input);
        self.drain()
    }

    /// Advances the clock to `until`, ticking at every wakeup the core asks for on the way.
    fn run_until(&mut self, until: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(wake) = self.core.next_wakeup().filter(|w| *w <= until) {
            self.now = self.now.max(wake);
            out.extend(self.feed(Input::Tick));
        }
        self.now = until;
        out
    }
}

fn fail(unauthorized: bool) -> MatrixFailure {
    MatrixFailure {
        unauthorized,
        message: "boom".to_owned(),
    }
}

fn count(out: &[Output], wanted: &Output) -> usize {
    out.iter().filter(|o| *o == wanted).count()
}

const LOG_IN: Output = Output::Matrix(MatrixCommand::LogIn);
const SYNC: Output = Output::Matrix(MatrixCommand::Sync);
const READY: Output = Output::Notify(Notify::Ready);
const PING: Output = Output::Notify(Notify::Watchdog);

#[test]
fn ready_only_after_login_and_the_first_sync() {
    let (mut h, out) = Harness::new(None);
    assert_eq!(count(&out, &LOG_IN), 1);
    assert_eq!(count(&out, &READY), 0);

    let out = h.feed(Input::LoggedIn(Ok(())));
    assert_eq!(count(&out, &SYNC), 1);
    assert_eq!(count(&out, &READY), 0);
    assert!(!h.core.in_service());

    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(count(&out, &READY), 1);
    assert_eq!(count(&out, &SYNC), 1, "the next sync starts at once");
    assert!(h.core.in_service());

    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(count(&out, &READY), 0, "READY is sent once");
}

#[test]
fn failed_logins_back_off_instead_of_hammering_the_server() {
    let (mut h, _) = Harness::new(None);
    let start = h.now;
    let mut attempts = 1;
    // Every login fails for an hour.
    while h.now < start + Duration::from_secs(3600) {
        let out = h.feed(Input::LoggedIn(Err(fail(true))));
        assert_eq!(count(&out, &LOG_IN), 0, "no immediate retry");
        let wake = h.core.next_wakeup().expect("a retry is scheduled");
        assert!(wake > h.now);
        let out = h.run_until(wake);
        assert_eq!(count(&out, &LOG_IN), 1);
        attempts += 1;
    }
    // 2 s doubling to a 5 min cap: about 18 attempts in an hour, not thousands.
    assert!((10..=25).contains(&attempts), "{attempts} attempts");
    assert!(!h.core.in_service());
    assert!(h.core.describe().contains("boom"), "{}", h.core.describe());
}

#[test]
fn sync_failures_back_off_and_recover_without_logging_in_again() {
    let (mut h, _) = Harness::new(None);
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    let mut waits = Vec::new();
    for _ in 0..10 {
        let out = h.feed(Input::Synced(Err(fail(false))));
        assert!(out.iter().all(|o| *o != SYNC && *o != LOG_IN));
        let wake = h.core.next_wakeup().unwrap();
        waits.push((wake - h.now).as_secs());
        let out = h.run_until(wake);
        assert_eq!(count(&out, &SYNC), 1);
        assert_eq!(count(&out, &LOG_IN), 0);
    }
    assert_eq!(&waits[..4], &[1, 2, 4, 8]);
    assert_eq!(*waits.last().unwrap(), 60, "capped at a minute");
    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(count(&out, &READY), 0, "READY is not sent again");
    assert!(h.core.in_service());
}

#[test]
fn a_revoked_session_leads_back_to_login() {
    let (mut h, _) = Harness::new(None);
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    h.feed(Input::Synced(Err(fail(true))));
    assert!(matches!(h.core.phase(), Phase::WaitingToLogIn { .. }));
    let wake = h.core.next_wakeup().unwrap();
    let out = h.run_until(wake);
    assert_eq!(count(&out, &LOG_IN), 1);
}

#[test]
fn watchdog_pings_while_sync_reports_and_stops_when_it_wedges() {
    let timeout = Duration::from_secs(60);
    let (mut h, out) = Harness::new(Some(timeout));
    assert_eq!(count(&out, &PING), 0);
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));

    // Healthy: sync answers every 30 s; pings come every 30 s (half the timeout).
    let start = h.now;
    let mut pings = 0;
    for _ in 0..10 {
        let t = h.now + Duration::from_secs(30);
        pings += count(&h.run_until(t), &PING);
        pings += count(&h.feed(Input::Synced(Ok(()))), &PING);
    }
    assert!(pings >= 9, "{pings} pings in {:?}", h.now - start);

    // Wedged: the sync request never returns. Pings stop once it is overdue (a sync may take
    // two minutes), so systemd's watchdog fires within the timeout after that.
    let wedged_at = h.now;
    let mut last_ping = None;
    while h.now < wedged_at + Duration::from_secs(600) {
        let wake = h.core.next_wakeup().expect("the watchdog keeps checking");
        if count(&h.run_until(wake), &PING) > 0 {
            last_ping = Some(wake - wedged_at);
        }
    }
    let last_ping = last_ping.expect("pinged while the sync was not yet overdue");
    assert!(
        last_ping <= Duration::from_secs(120),
        "kept pinging a wedged sync for {last_ping:?}"
    );

    // It resumes once the sync reports again.
    let mut out = h.feed(Input::Synced(Ok(())));
    out.extend(h.run_until(h.now + timeout));
    assert!(count(&out, &PING) >= 1);
}
