//! The media engine's supervision: the core asks it for a report every second, shows the last
//! one with its age, and withholds the watchdog from an engine that stops answering.

use std::time::Duration;

use super::*;
use crate::media::{ConnectionState, EngineReport, MediaCommand, MediaEvent, PeerStats};

/// The time each output came, from `origin`, with the output.
type Timeline = Vec<(Duration, Output)>;

fn report(frames: u64) -> EngineReport {
    EngineReport {
        encoder: "x264enc".to_owned(),
        mic_muted: false,
        camera_off: false,
        video_encoders: 1,
        peers: vec![PeerStats {
            peer: "@alice:localhost/ALICEDEV/c1".to_owned(),
            state: Some(ConnectionState::Connected),
            video_frames_sent: frames,
            ..Default::default()
        }],
        ice_servers: Vec::new(),
    }
}

fn report_requests(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(MediaCommand::Report { request }) => Some(*request),
            _ => None,
        })
        .collect()
}

/// Runs the core for `span`, waking it whenever it asks. The engine answers every report
/// request at once while `answering`; the homeserver answers a sync every 30 s. Everything the
/// core outputs is kept with its time from `origin`.
fn live(
    h: &mut Harness,
    origin: Instant,
    span: Duration,
    answering: bool,
    seen: &mut Timeline,
) -> Vec<u64> {
    let until = h.now.after(span);
    let mut unanswered = Vec::new();
    let mut last_sync = h.now.mono;
    while let Some(wake) = h.core.next_wakeup(h.now).filter(|w| *w <= until.mono) {
        h.now = h.now.after(wake - h.now.mono);
        let mut out = h.feed(Input::Tick);
        if h.now.mono >= last_sync + Duration::from_secs(30) {
            last_sync = h.now.mono;
            out.extend(h.feed(Input::Synced(Ok(()))));
        }
        for request in report_requests(&out) {
            if answering {
                out.extend(h.feed(Input::Media(MediaEvent::Report {
                    request,
                    report: Box::new(report(request)),
                })));
            } else {
                unanswered.push(request);
            }
        }
        let at = h.now.mono - origin;
        seen.extend(out.into_iter().map(|o| (at, o)));
    }
    h.now = until;
    unanswered
}

fn is_report_request(o: &Output) -> bool {
    matches!(o, Output::Media(MediaCommand::Report { .. }))
}

fn times(seen: &Timeline, pred: impl Fn(&Output) -> bool) -> Vec<Duration> {
    seen.iter()
        .filter(|(_, o)| pred(o))
        .map(|(t, _)| *t)
        .collect()
}

fn secs(s: &[u64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs(*s)).collect()
}

fn is_ping(o: &Output) -> bool {
    *o == Output::Notify(Notify::Watchdog)
}

fn statuses(seen: &Timeline) -> Vec<(Duration, String)> {
    seen.iter()
        .filter_map(|(t, o)| match o {
            Output::Notify(Notify::Status(s)) => Some((*t, s.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn watchdog_pings_while_the_media_engine_answers_and_stops_when_it_wedges() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, Some(Duration::from_secs(60))));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    let origin = h.now.mono;
    let out = h.feed(Input::Media(MediaEvent::Started {
        encoder: "x264enc".to_owned(),
    }));
    assert_eq!(
        report_requests(&out),
        [1],
        "the first report is asked for at once"
    );
    h.feed(Input::Media(MediaEvent::Report {
        request: 1,
        report: Box::new(report(1)),
    }));

    // Healthy for 45 s: a report every second, a watchdog ping every 30 s (half the timeout;
    // the first came at the login).
    let mut seen = Timeline::new();
    live(&mut h, origin, Duration::from_secs(45), true, &mut seen);
    let requests = times(&seen, is_report_request);
    assert_eq!(requests, secs(&(1..=45).collect::<Vec<_>>()));
    assert_eq!(times(&seen, is_ping), secs(&[30]));
    assert!(statuses(&seen).is_empty(), "STATUS stays \"in service\"");
    assert_eq!(h.core.describe(), "in service");

    // Wedged: the engine took request 47 (sent at 46 s) and never answers. At 56 s, ten seconds
    // on, it is declared not answering: STATUS says so and the 60 s ping is withheld, so
    // systemd restarts roomd by 90 s. No more requests pile up in its queue meanwhile.
    let mut seen = Timeline::new();
    let unanswered = live(&mut h, origin, Duration::from_secs(55), false, &mut seen);
    assert_eq!(unanswered, [47], "one request in flight, not one a second");
    assert_eq!(
        statuses(&seen),
        [(
            Duration::from_secs(56),
            "in service; the media engine is not answering".to_owned()
        )]
    );
    assert!(
        times(&seen, is_ping).is_empty(),
        "no ping after the engine wedged"
    );
    let status = h.core.status(h.now);
    assert_eq!(
        status.service,
        "in service; the media engine is not answering"
    );
    let media = status.media.clone().expect("the engine's part");
    assert_eq!(
        media.not_answering_s,
        Some(54),
        "unanswered since 46 s; now 100 s"
    );
    assert_eq!(
        media.report_age_ms,
        Some(55_000),
        "the last report came at 45 s"
    );
    assert_eq!(
        media.peers[0].video_frames_sent, 46,
        "the last figures are kept"
    );
    assert!(
        status
            .render()
            .contains("media: NOT ANSWERING for 54 s (figures 55.0 s old)"),
        "{}",
        status.render()
    );
    assert_eq!(
        status.panel.leds[&Led::Status],
        Pattern::Error,
        "the status LED calls for the admin"
    );

    // It answers again at 100 s: STATUS is back at once, pings from the next check (120 s),
    // reports every second again.
    let out = h.feed(Input::Media(MediaEvent::Report {
        request: 47,
        report: Box::new(report(47)),
    }));
    assert!(
        out.contains(&Output::Notify(Notify::Status("in service".to_owned()))),
        "{out:?}"
    );
    assert_eq!(
        report_requests(&out),
        [48],
        "and the next report is due at once"
    );
    h.feed(Input::Media(MediaEvent::Report {
        request: 48,
        report: Box::new(report(48)),
    }));
    let mut seen = Timeline::new();
    live(&mut h, origin, Duration::from_secs(25), true, &mut seen);
    assert_eq!(times(&seen, is_ping), secs(&[120]));
    assert_eq!(
        times(&seen, is_report_request),
        secs(&(101..=125).collect::<Vec<_>>())
    );
    let status = h.core.status(h.now);
    assert_eq!(status.media.unwrap().not_answering_s, None);
    assert_ne!(status.panel.leds[&Led::Status], Pattern::Error);
}

#[test]
fn a_slow_answer_within_the_limit_is_not_a_wedge() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, Some(Duration::from_secs(60))));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    let mut request = report_requests(&h.feed(Input::Media(MediaEvent::Started {
        encoder: "x264enc".to_owned(),
    })))[0];
    let mut pings = 0;
    // Every answer takes 9.9 s, for over two minutes.
    for _ in 0..13 {
        let out = h.advance(Duration::from_millis(9_900));
        pings += out.iter().filter(|o| is_ping(o)).count();
        assert!(
            report_requests(&out).is_empty(),
            "no second request while one is in flight"
        );
        let out = h.feed(Input::Media(MediaEvent::Report {
            request,
            report: Box::new(report(request)),
        }));
        request = report_requests(&out)[0];
        h.feed(Input::Synced(Ok(())));
    }
    assert_eq!(pings, 4, "pinged every 30 s throughout");
    assert_eq!(h.core.describe(), "in service");
}

#[test]
fn status_shows_the_last_report_and_its_age() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    let media = h.core.status(h.now).media.unwrap();
    assert_eq!(media.unavailable.as_deref(), Some("starting"));

    let request = report_requests(&h.feed(Input::Media(MediaEvent::Started {
        encoder: "x264enc".to_owned(),
    })))[0];
    let media = h.core.status(h.now).media.unwrap();
    assert_eq!(
        (
            media.encoder.as_deref(),
            media.unavailable,
            media.report_age_ms
        ),
        (Some("x264enc"), None, None),
        "up, no figures yet"
    );

    h.feed(Input::Media(MediaEvent::Report {
        request,
        report: Box::new(report(300)),
    }));
    h.advance(Duration::from_millis(400));
    let status = h.core.status(h.now);
    let media = status.media.clone().unwrap();
    assert_eq!(media.report_age_ms, Some(400));
    assert_eq!(media.video_encoders, 1);
    assert_eq!(media.peers, report(300).peers);
    assert!(
        status
            .render()
            .contains("media: x264enc (figures 0.4 s old)"),
        "{}",
        status.render()
    );
}

#[test]
fn an_engine_that_could_not_start_is_not_asked_for_reports() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, Some(Duration::from_secs(60))));
    h.feed(Input::LoggedIn(Ok(())));
    h.feed(Input::Synced(Ok(())));
    let out = h.feed(Input::Media(MediaEvent::Unavailable {
        reason: "no H.264 encoder".to_owned(),
    }));
    assert!(report_requests(&out).is_empty());
    let mut out = Vec::new();
    for _ in 0..4 {
        out.extend(h.advance(Duration::from_secs(30)));
        out.extend(h.feed(Input::Synced(Ok(()))));
    }
    assert!(report_requests(&out).is_empty());
    assert_eq!(out.iter().filter(|o| is_ping(o)).count(), 4, "still pinged");
    let media = h.core.status(h.now).media.unwrap();
    assert_eq!(media.unavailable.as_deref(), Some("no H.264 encoder"));
}
