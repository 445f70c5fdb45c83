//! A media engine that stops answering, end to end: roomd run as systemd runs it (the notify
//! socket, `WATCHDOG_USEC`), a real Synapse, and the engine's thread wedged on purpose by the
//! `ROOMD_TEST_WEDGE_MEDIA_AFTER_MS` test hook. The control socket keeps answering at once, the
//! status says the engine is not answering, and the watchdog pings stop, so systemd would
//! restart roomd.

use std::time::{Duration, Instant};

use roomd_testbed::{Roomd, RoomdConfig, Synapse};
use serde_json::Value;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const PASSWORD: &str = "room-password";
/// The wedge comes well after roomd is in service and its engine has reported.
const WEDGE_AFTER_MS: &str = "20000";
const NOT_ANSWERING: &str = "STATUS=in service; the media engine is not answering";

/// The status, and how long roomd took to answer it.
fn ask_status(roomd: &Roomd) -> (Value, Duration) {
    roomd.status_timed().expect("the control socket answers")
}

fn pings(roomd: &Roomd) -> usize {
    roomd
        .notifications()
        .iter()
        .filter(|n| *n == "WATCHDOG=1")
        .count()
}

#[test]
fn a_wedged_media_engine_is_reported_and_stops_the_watchdog() {
    let synapse = Synapse::start().expect("Synapse starts");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = Roomd::spawn(
        ROOMD.as_ref(),
        &config,
        dir.path(),
        &["-v"],
        &[
            ("WATCHDOG_USEC", "2000000"),
            ("ROOMD_TEST_WEDGE_MEDIA_AFTER_MS", WEDGE_AFTER_MS),
        ],
    )
    .unwrap();
    assert!(
        roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)),
        "not in service:\n{}",
        roomd.log()
    );

    // Healthy: the engine's figures are fresh and the watchdog is fed (every second: half of
    // WatchdogSec=2s).
    let healthy = Instant::now();
    loop {
        let (status, _) = ask_status(&roomd);
        if status["media"]["report_age_ms"]
            .as_u64()
            .is_some_and(|ms| ms < 2000)
        {
            assert!(status["media"]["not_answering_s"].is_null(), "{status}");
            break;
        }
        assert!(
            healthy.elapsed() < Duration::from_secs(10),
            "the engine never reported: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(roomd.wait_for_notification("WATCHDOG=1", Duration::from_secs(5)));

    // The hook wedges the engine's thread.
    assert!(
        roomd.wait_for_log("the media engine stops answering", Duration::from_secs(30)),
        "the hook did not fire:\n{}",
        roomd.log()
    );
    let wedged = Instant::now();
    let pings_at_wedge = pings(&roomd);

    // The control socket answers at once throughout (polled as often as the test bed does);
    // about ten seconds on, the status says the engine is not answering.
    let mut answers = Vec::new();
    let declared = loop {
        let (status, took) = ask_status(&roomd);
        answers.push(took);
        if status["media"]["not_answering_s"].is_u64() {
            break status;
        }
        assert!(
            wedged.elapsed() < Duration::from_secs(20),
            "never declared: {status}\n{}",
            roomd.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let after = wedged.elapsed();
    let slowest = answers.iter().max().copied().unwrap();
    println!(
        "declared {after:?} after the wedge; {} status answers, the slowest in {slowest:?}",
        answers.len()
    );
    assert!(
        (Duration::from_secs(8)..Duration::from_secs(13)).contains(&after),
        "declared {after:?} after the wedge"
    );
    assert!(
        slowest < Duration::from_millis(100),
        "a status took {slowest:?}"
    );
    assert_eq!(
        declared["service"],
        "in service; the media engine is not answering"
    );
    assert!(
        declared["media"]["report_age_ms"].as_u64() >= Some(8000),
        "the figures' age shows: {declared}"
    );
    assert!(
        pings(&roomd) > pings_at_wedge,
        "pinged while the engine was not yet overdue"
    );

    // systemd hears it: STATUS says so, and no ping comes after that, for longer than three
    // ping periods (systemd would kill roomd after two).
    assert!(
        roomd.wait_for_notification(NOT_ANSWERING, Duration::from_secs(2)),
        "{:?}",
        roomd.notifications()
    );
    let since = Instant::now();
    while since.elapsed() < Duration::from_secs(4) {
        let (_, took) = ask_status(&roomd);
        assert!(took < Duration::from_millis(100), "a status took {took:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let notes = roomd.notifications();
    let declared_at = notes.iter().position(|n| n == NOT_ANSWERING).unwrap();
    assert!(
        !notes[declared_at..].iter().any(|n| n == "WATCHDOG=1"),
        "pinged after the engine was declared wedged: {notes:?}"
    );
    let text = String::from_utf8_lossy(&roomd.ctl(&["status"]).stdout).into_owned();
    assert!(text.contains("media: NOT ANSWERING for"), "{text}");
    assert!(
        roomd.running(),
        "roomd itself stays up for systemd to restart"
    );

    // It still stops cleanly on SIGTERM, without waiting on the wedged engine for long.
    let stopped = roomd.terminate().expect("stops on SIGTERM");
    assert!(stopped.success(), "{stopped}\n{}", roomd.log());
}
