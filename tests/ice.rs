//! ICE servers against a real Synapse: roomd fetches the homeserver's TURN servers (Synapse's
//! `turn_uris` with a shared secret, so the credentials are Synapse's own time-limited ones),
//! adds the config's STUN and TURN servers, hands them all to the media engine, and shows them in
//! `roomd ctl status` without a credential; neither password ever reaches the log. A Synapse
//! without TURN answers `{}`, and roomd carries on without.
//!
//! There is no TURN server on this machine (and no network), so no call is relayed here; the
//! media tests prove that webrtcbin gets the servers and libnice the decoded credentials.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roomd_testbed::{Roomd, RoomdConfig, Synapse};
use serde_json::Value;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const PASSWORD: &str = "room-password";
const TURN_SECRET: &str = "roomd-test-turn-secret";
const CONFIG_TURN_PASSWORD: &str = "config+turn/pass=word";

fn unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn start(config: &RoomdConfig, dir: &std::path::Path) -> Roomd {
    // -vvv: every library's trace lines too, request and response bodies included.
    let mut roomd = Roomd::spawn(ROOMD.as_ref(), config, dir, &["-vvv"], &[]).unwrap();
    assert!(
        roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)),
        "roomd never got ready; log:\n{}",
        roomd.log()
    );
    roomd
}

fn wait_for_status(roomd: &Roomd, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        if let Ok(status) = roomd.status() {
            if done(&status) {
                return status;
            }
            last = status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "status never got there: {last:#}\nlog:\n{}",
        roomd
            .log()
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The TURN passwords Synapse can have handed `user` for expiries in `expiries` (its
/// `base64(HMAC-SHA1(secret, "expiry:user"))`), computed with Synapse's own Python.
fn synapse_turn_passwords(user: &str, expiries: std::ops::RangeInclusive<u64>) -> Vec<String> {
    let python = roomd_testbed::paths::testenv().join("synapse/bin/python");
    let script = "import base64,hashlib,hmac,sys\n\
        s,u,a,b=sys.argv[1:]\n\
        for e in range(int(a),int(b)+1):\n    \
        print(base64.b64encode(hmac.new(s.encode(),f'{e}:{u}'.encode(),hashlib.sha1).digest()).decode())";
    let out = Command::new(python)
        .args(["-c", script, TURN_SECRET, user])
        .arg(expiries.start().to_string())
        .arg(expiries.end().to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_homeserver_turn_servers_and_the_config_servers_reach_media_without_a_secret_shown() {
    let synapse = Synapse::start_with(&format!(
        "turn_uris:\n\
         \x20 - \"turn:turn.localhost:3478?transport=udp\"\n\
         \x20 - \"turns:turn.localhost:5349?transport=tcp\"\n\
         turn_shared_secret: \"{TURN_SECRET}\"\n\
         turn_user_lifetime: 1h\n"
    ))
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(synapse.register("room", PASSWORD)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let turn_password = dir.path().join("turn-password");
    std::fs::write(&turn_password, format!("{CONFIG_TURN_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&turn_password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut config = RoomdConfig::new(&synapse, "room", PASSWORD);
    config.extra_toml = format!(
        "\n[ice]\n\
         stun_servers = [\"stun:stun.localhost:3478\"]\n\
         turn_servers = [\"turn:relay.localhost?transport=tcp\"]\n\
         turn_username = \"room-relay\"\n\
         turn_password_file = \"{}\"\n",
        turn_password.display()
    );
    let started_s = unix_s();
    let roomd = start(&config, dir.path());

    let hs_turn = [
        "turn:turn.localhost:3478?transport=udp",
        "turns:turn.localhost:5349?transport=tcp",
    ];
    let status = wait_for_status(&roomd, Duration::from_secs(20), |s| {
        strings(&s["ice"]["turn"]).len() == 3 && strings(&s["media"]["ice_servers"]).len() == 4
    });
    let ice = &status["ice"];
    assert_eq!(strings(&ice["stun"]), ["stun:stun.localhost:3478"]);
    assert_eq!(
        strings(&ice["turn"]),
        ["turn:relay.localhost?transport=tcp", hs_turn[0], hs_turn[1]]
    );
    let expires = ice["turn_expires_in_s"].as_u64().expect("an expiry");
    assert!((3500..=3600).contains(&expires), "{ice}");
    assert!(
        ice["homeserver"]
            .as_str()
            .unwrap()
            .starts_with("2 TURN server(s); renewed in "),
        "{ice}"
    );
    // What the media engine gives the next webrtcbin, credentials cut out.
    assert_eq!(
        strings(&status["media"]["ice_servers"]),
        [
            "stun:stun.localhost:3478",
            "turn:relay.localhost?transport=tcp",
            hs_turn[0],
            hs_turn[1]
        ]
    );
    let text = roomd.ctl(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("ice: STUN stun:stun.localhost:3478; TURN turn:relay.localhost"),
        "{text}"
    );
    // What Synapse hands out, asked the same way, for the check below to be checked.
    let token = rt
        .block_on(synapse.log_in("room", PASSWORD, "CHECKDEV"))
        .unwrap();
    let (code, body) = synapse
        .request("GET", "/_matrix/client/v3/voip/turnServer", &token, "")
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let finished_s = unix_s();

    // No password in the log (at trace level) or the status, in any spelling.
    let user = config.user_id();
    let mut secrets = synapse_turn_passwords(&user, started_s + 3600 - 2..=finished_s + 3600 + 2);
    assert!(
        secrets.iter().any(|s| answer["password"] == s.as_str()),
        "the passwords are computed as Synapse does: {answer}"
    );
    secrets.push(CONFIG_TURN_PASSWORD.to_owned());
    let escaped: Vec<String> = secrets
        .iter()
        .map(|s| roomd::percent::encode_userinfo(s))
        .collect();
    let log = roomd.log();
    let shown = format!("{log}\n{status}\n{text}");
    for secret in secrets.iter().chain(&escaped) {
        assert!(!shown.contains(secret.as_str()), "{secret} was shown");
    }
    assert!(
        log.contains("get_turn_server_info"),
        "the request was made (and traced): {}",
        log.lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn a_homeserver_without_turn_answers_empty_and_roomd_goes_on() {
    let synapse = Synapse::start().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(synapse.register("room", PASSWORD)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let roomd = start(&config, dir.path());
    let status = wait_for_status(&roomd, Duration::from_secs(20), |s| {
        s["ice"]["homeserver"]
            .as_str()
            .is_some_and(|h| h.starts_with("no TURN"))
    });
    assert_eq!(status["service"], "in service");
    assert!(strings(&status["ice"]["turn"]).is_empty(), "{status}");
    assert!(status["ice"]["turn_expires_in_s"].is_null(), "{status}");
    assert!(
        status["ice"]["homeserver"]
            .as_str()
            .unwrap()
            .contains("asking again in 3"),
        "once an hour: {status}"
    );
    let log = roomd.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN  roomd") && l.contains("TURN"))
        .collect();
    assert!(warnings.is_empty(), "nothing to warn about: {warnings:#?}");
}
