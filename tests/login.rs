//! roomd logs in to a real Synapse as the configured device, tells systemd it is ready only
//! after the first sync, keeps the watchdog fed, and never logs its secrets.

use std::time::Duration;

use roomd_testbed::roomd::Login;
use roomd_testbed::{Roomd, RoomdConfig, Synapse};

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
/// Characters that JSON- and URL-encoding change, so an encoded leak would show too.
const PASSWORD: &str = "c0rrect \"horse\" b@ttery/st+ple&=ü";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn assert_no_secret(log: &str, secret: &str) {
    let json = serde_json::to_string(secret).unwrap();
    let forms = [
        secret.to_owned(),
        json.trim_matches('"').to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
    ];
    for form in forms {
        assert!(!log.contains(&form), "the log contains a secret ({form:?})");
    }
}

#[test]
fn password_login_signals_ready_after_first_sync_and_logs_no_secret() {
    let synapse = Synapse::start().expect("Synapse starts");
    runtime()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let dir = tempfile::tempdir().unwrap();

    // Trace level for every crate: the most a log could ever show.
    let mut roomd = Roomd::spawn(
        ROOMD.as_ref(),
        &config,
        dir.path(),
        &["-vvv"],
        &[("WATCHDOG_USEC", "2000000")],
    )
    .unwrap();
    assert!(
        roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)),
        "not in service; log:\n{}",
        roomd.log()
    );
    let notes = roomd.notifications();
    let ready_at = notes.iter().position(|n| n == "READY=1").unwrap();
    let in_service_at = notes.iter().position(|n| n == "STATUS=in service").unwrap();
    // READY as soon as roomd runs, so a slow homeserver cannot hold up the boot; "in
    // service" only after the first sync.
    assert!(ready_at < in_service_at, "{notes:?}");
    assert!(
        notes[ready_at..in_service_at]
            .iter()
            .any(|n| n == "STATUS=first sync"),
        "in service before the first sync finished: {notes:?}"
    );
    assert!(
        roomd.wait_for_notification("WATCHDOG=1", Duration::from_secs(5)),
        "no watchdog ping: {:?}",
        roomd.notifications()
    );

    let status = roomd.terminate().expect("stops on SIGTERM");
    assert!(status.success(), "{status}");
    let log = roomd.log();
    assert!(
        log.contains("matrix_sdk"),
        "matrix-sdk's tracing reaches the log:\n{log}"
    );
    assert!(log.contains("logged in"), "{log}");

    let tokens = synapse.access_tokens(&config.user_id()).unwrap();
    assert!(!tokens.is_empty(), "Synapse issued a token");
    assert_no_secret(&log, PASSWORD);
    for token in &tokens {
        assert_no_secret(&log, token);
    }
}

#[test]
fn access_token_login_uses_the_configured_device_and_logs_no_token() {
    let synapse = Synapse::start().expect("Synapse starts");
    let rt = runtime();
    rt.block_on(synapse.register("room", PASSWORD)).unwrap();
    let mut config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let token = rt
        .block_on(synapse.log_in("room", PASSWORD, &config.device_id))
        .unwrap();
    config.login = Login::AccessToken(token.clone());
    let dir = tempfile::tempdir().unwrap();

    let mut roomd = Roomd::spawn(ROOMD.as_ref(), &config, dir.path(), &["-vvv"], &[]).unwrap();
    assert!(
        roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)),
        "not in service; log:\n{}",
        roomd.log()
    );
    roomd.terminate();
    assert_no_secret(&roomd.log(), &token);
}
