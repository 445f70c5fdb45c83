//! `roomd print-config`, `roomd check-config` and `roomd run` on good and bad config files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn roomd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roomd"))
        .args(args)
        .env_remove("ROOMD_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .expect("roomd runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn secret_file(dir: &Path, mode: u32) -> String {
    let p = dir.join("password");
    std::fs::write(&p, "correct horse\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.display().to_string()
}

#[test]
fn the_printed_default_config_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let printed = roomd(&["print-config"]);
    assert!(printed.status.success());
    let path = dir.path().join("x.toml");
    std::fs::write(&path, &printed.stdout).unwrap();

    let checked = roomd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked.stderr));
    let out = text(&checked.stdout);
    assert_eq!(out.lines().count(), 1, "one-line summary: {out}");
    assert!(
        out.contains(": OK: @meeting-room:example.org (device ROOMD)"),
        "{out}"
    );
}

#[test]
fn an_unknown_key_is_an_error_that_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "# line 1\n\
         [matrix]\n\
         homeserver = \"https://matrix.example.com\"\n\
         user_id = \"@room:example.com\"\n\
         password_file = \"{}\"\n\
         \n\
         homserver = \"https://typo.example.com\"\n",
        secret_file(dir.path(), 0o600)
    );
    let path = dir.path().join("x.toml");
    std::fs::write(&path, config).unwrap();

    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let expected = format!(
        "{}:7:1: error: unknown key `matrix.homserver`; did you mean `matrix.homeserver`?",
        path.display()
    );
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn a_password_file_others_can_read_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), 0o644);
    let path = dir.path().join("x.toml");
    std::fs::write(&path, format!("[matrix]\npassword_file = \"{secret}\"\n")).unwrap();

    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:2:17: error:", path.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "password file {secret} is mode 0644: it must not be readable or writable by group or others"
        )),
        "{err}"
    );

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = roomd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn every_error_is_reported_at_once_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[matrix]\n\
        homeserver = \"ftp://matrix.example.com\"\n\
        user_id = \"room-without-sigil\"\n\
        password_file = \"/nonexistent/roomd-password\"\n\
        [rooms]\n\
        serve = [\"!good:example.com\", \"not-a-room\"]\n\
        [video]\n\
        width = \"wide\"\n\
        [buttons.pins]\n\
        mute = 17\n\
        [leds.pins]\n\
        muted = 17\n\
        [calls]\n\
        join = \"sometimes\"\n\
        livekit_service_url = \"wss://rtc.example.com/jwt\"\n";
    let path = dir.path().join("x.toml");
    std::fs::write(&path, config).unwrap();

    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let p = path.display();
    for expected in [
        format!("{p}:2:14: error: matrix.homeserver: must be an http or https URL, not ftp:"),
        format!("{p}:3:11: error: matrix.user_id: `room-without-sigil`: leading sigil"),
        format!(
            "{p}:4:17: error: matrix.password_file: password file /nonexistent/roomd-password cannot be read"
        ),
        format!("{p}:6:31: error: rooms.serve[1]: `not-a-room`: leading sigil"),
        format!("{p}:8:9: error: video.width: invalid type: string \"wide\", expected u32"),
        format!("{p}:12:9: error: leds.pins.muted: GPIO 17 is already used by buttons.pins.mute"),
        format!(
            "{p}:14:8: error: calls.join: unknown variant `sometimes`, expected one of `auto`, `when-rung`, `never`"
        ),
        format!(
            "{p}:15:23: error: calls.livekit_service_url: must be an http or https URL with a host"
        ),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("8 errors found"), "{err}");
    assert!(
        !err.contains("warning: matrix.user_id"),
        "no warning on top of the error: {err}"
    );
}

#[test]
fn a_syntax_error_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.toml");
    std::fs::write(
        &path,
        "[matrix]\ndisplay_name = \"Room 4A\n[video]\nwidth = 640\n",
    )
    .unwrap();
    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
}

#[test]
fn run_refuses_an_invalid_config_with_the_same_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.toml");
    std::fs::write(&path, "[video]\nframerate = 0\n").unwrap();
    let checked = roomd(&["check-config", path.to_str().unwrap()]);
    let stderr = text(&checked.stderr);
    let message = stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap()
        .to_owned();
    assert!(
        message.contains(":2:13: error: video.framerate"),
        "{message}"
    );

    let ran = roomd(&["--config", path.to_str().unwrap(), "run"]);
    assert_eq!(ran.status.code(), Some(2));
    assert!(
        text(&ran.stderr).contains(&message),
        "{}",
        text(&ran.stderr)
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let out = roomd(&["check-config", "/nonexistent/roomd.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/roomd.toml: error: cannot read:"));
}

#[test]
fn the_board_config_checks_clean() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("board/raspberrypi/roomd.toml");
    let out = roomd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn ice_servers_are_checked_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let login = secret_file(dir.path(), 0o600);
    let turn = dir.path().join("turn-password");
    std::fs::write(&turn, "relay secret\n").unwrap();
    std::fs::set_permissions(&turn, std::fs::Permissions::from_mode(0o640)).unwrap();
    let config = format!(
        "[matrix]\n\
         homeserver = \"https://matrix.example.com\"\n\
         user_id = \"@room:example.com\"\n\
         password_file = \"{login}\"\n\
         [ice]\n\
         stun_servers = [\"stun:stun.example.com:3478\", \"https://stun.example.com\"]\n\
         turn_servers = [\"turn:turn.example.com?transport=sctp\", \"turn:u:p@turn.example.com\"]\n\
         turn_username = \"room\"\n\
         turn_password_file = \"{}\"\n",
        turn.display()
    );
    let path = dir.path().join("x.toml");
    std::fs::write(&path, config).unwrap();
    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let p = path.display();
    for expected in [
        format!(
            "{p}:6:47: error: ice.stun_servers[1]: `https://stun.example.com`: the scheme must be \
             stun, turn or turns, not https:"
        ),
        format!(
            "{p}:7:17: error: ice.turn_servers[0]: `turn:turn.example.com?transport=sctp`: \
             transport must be udp or tcp, not `sctp`"
        ),
        format!(
            "{p}:7:57: error: ice.turn_servers[1]: `turn:u:p@turn.example.com`: credentials do \
             not go in the URI"
        ),
        format!(
            "{p}:9:22: error: ice.turn_password_file: TURN password file {} is mode 0640",
            turn.display()
        ),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("relay secret"),
        "the password is never shown: {err}"
    );

    // Fixed, but with TURN servers and no password: said where the servers are.
    std::fs::set_permissions(&turn, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = format!(
        "[matrix]\n\
         homeserver = \"https://matrix.example.com\"\n\
         user_id = \"@room:example.com\"\n\
         password_file = \"{login}\"\n\
         [ice]\n\
         turn_servers = [\"turns:turn.example.com:5349\"]\n"
    );
    std::fs::write(&path, config).unwrap();
    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{p}:6:16: error: ice.turn_servers: TURN servers need a username"
        )),
        "{err}"
    );
    assert!(err.contains("TURN servers need a password"), "{err}");

    // And complete: clean.
    let config = format!(
        "[matrix]\n\
         homeserver = \"https://matrix.example.com\"\n\
         user_id = \"@room:example.com\"\n\
         password_file = \"{login}\"\n\
         [ice]\n\
         stun_servers = [\"stun:stun.example.com\"]\n\
         turn_servers = [\"turns:turn.example.com:5349\", \"turn:[2001:db8::1]?transport=udp\"]\n\
         turn_username = \"room\"\n\
         turn_password_file = \"{}\"\n",
        turn.display()
    );
    std::fs::write(&path, config).unwrap();
    let out = roomd(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_button_on_a_bus_pin_is_a_warning_that_names_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[matrix]\n\
         homeserver = \"https://matrix.example.com\"\n\
         user_id = \"@room:example.com\"\n\
         password_file = \"{}\"\n\
         [buttons.pins]\n\
         mute = 17\n\
         join = 18\n",
        secret_file(dir.path(), 0o600)
    );
    let path = dir.path().join("x.toml");
    std::fs::write(&path, config).unwrap();

    let out = roomd(&["check-config", path.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a warning, not an error: {err}");
    let expected = format!(
        "{}:7:8: warning: buttons.pins.join: GPIO 18 is I2S PCM_CLK, for audio HATs",
        path.display()
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    assert!(!err.contains("buttons.pins.mute"), "GPIO 17 is free: {err}");
}
