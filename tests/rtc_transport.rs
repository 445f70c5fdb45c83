//! roomd finds the LiveKit transport Element Call would use, from a real Synapse: its MSC4143
//! `/rtc/transports` (Synapse's `matrix_rtc` config), else the config's `livekit_service_url`,
//! and says which in `roomd ctl status`.

use std::time::{Duration, Instant};

use roomd_testbed::{Roomd, RoomdConfig, Synapse};

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const PASSWORD: &str = "room-password";

/// roomd on `synapse`; returns its status's `livekit` line once it says something other than
/// "not asked yet", within 30 s.
fn livekit_line(synapse: &Synapse, configured: Option<&str>) -> String {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let mut config = RoomdConfig::new(synapse, "room", PASSWORD);
    config.livekit_service_url = configured.map(str::to_owned);
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = Roomd::spawn(ROOMD.as_ref(), &config, dir.path(), &[], &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let line = roomd
            .status()
            .ok()
            .and_then(|s| s["livekit"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if !line.is_empty() && !line.contains("not asked yet") || Instant::now() > deadline {
            break line;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    roomd.terminate();
    line
}

#[test]
fn the_homeservers_rtc_transport_is_found() {
    let service = "http://127.0.0.1:9/livekit/jwt";
    let synapse = Synapse::start_with_rtc_transport(service).expect("Synapse starts");
    let line = livekit_line(&synapse, None);
    assert_eq!(
        line,
        format!("{service} (from the homeserver; found from the homeserver)")
    );
}

#[test]
fn without_one_the_configured_transport_is_used_and_said() {
    let synapse = Synapse::start().expect("Synapse starts");
    let line = livekit_line(&synapse, Some("https://rtc.example.org/livekit/jwt"));
    assert_eq!(
        line,
        "https://rtc.example.org/livekit/jwt (from the config; the homeserver offers no \
         LiveKit transport)"
    );
}
