//! The room's buttons and LEDs end to end, through the simulated backend (`roomd ctl press`
//! feeds the same edge queue as the GPIO backend): a real roomd, a real Synapse, a visitor in
//! headless Chromium. And what happens where there is no GPIO, or no roomd.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use roomd_core::events::MESH_CALL;
use roomd_testbed::Roomd;
use roomd_testbed::meeting::{Meeting, from_roomd};

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");

/// Browser tests are heavy (Chromium, x264 at 720p): one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buttons_mute_hang_up_for_a_while_and_join_again() {
    let _serial = SERIAL.lock().await;
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice"]).await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    meeting.wait_in_call(Duration::from_secs(10));
    meeting.wait_until_seen_by(&alice).await;
    assert_eq!(meeting.status()["panel"]["leds"]["in-call"], "on");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loud = alice.measure(Duration::from_secs(2)).await.unwrap();
    let level = from_roomd(&loud, &room_user).audio_level;
    assert!(level > 0.01, "before the press alice hears {level}");

    // The mute button: alice hears silence and sees the mute; the LED lights once the media
    // engine has confirmed the microphone is silenced, not at the press.
    let log_before = meeting.log().len();
    meeting.ctl(&["press", "mute"]);
    alice
        .wait_for_feeds(Duration::from_secs(3), |f| {
            f.iter().any(|f| f.user_id == room_user && f.audio_muted)
        })
        .await
        .unwrap();
    let quiet = alice.measure(Duration::from_secs(2)).await.unwrap();
    let level = from_roomd(&quiet, &room_user).audio_level;
    assert!(
        level < 0.001,
        "muted by the button, yet alice hears {level}"
    );
    let status = meeting.status();
    assert_eq!(status["panel"]["leds"]["muted"], "on", "{status}");
    assert_eq!(status["panel"]["mic_muted_confirmed"], true);
    let log = meeting.log()[log_before..].to_owned();
    let pressed = log
        .find("button mute: Press")
        .expect("the press in the log");
    let confirmed = log
        .find("microphone silenced (confirmed)")
        .expect("the engine's confirmation");
    let lit = log.find("simulated LED muted on").expect("the LED lit");
    assert!(pressed < confirmed && confirmed < lit, "{log}");

    // Pressed again: live again.
    meeting.ctl(&["press", "mute"]);
    alice
        .wait_for_feeds(Duration::from_secs(3), |f| {
            f.iter().any(|f| f.user_id == room_user && !f.audio_muted)
        })
        .await
        .unwrap();
    meeting
        .wait_for_status(Duration::from_secs(3), |s| {
            s["panel"]["leds"]["muted"] == "off"
        })
        .expect("the muted LED goes out");

    // A long press on hang-up: roomd leaves and stays out of the next call too.
    meeting.ctl(&["press", "hangup", "--long"]);
    meeting
        .wait_for_status(Duration::from_secs(5), |s| {
            s["panel"]["do_not_disturb_s"].as_u64() > Some(0) && s["rooms"][0]["state"] != "in_call"
        })
        .unwrap_or_else(|| panic!("no do-not-disturb:\n{}", meeting.log()));
    alice.leave_group_call().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = meeting.status();
    assert_eq!(status["rooms"][0]["state"], "idle", "{status}");
    assert!(
        status["rooms"][0]["why"]
            .as_str()
            .unwrap_or("")
            .contains("do not disturb"),
        "{status}"
    );
    assert_eq!(status["panel"]["leds"]["status"], "do-not-disturb");
    let minutes = status["panel"]["do_not_disturb_s"].as_u64().unwrap() / 60;
    assert!(minutes >= 29, "configured 30 min, {minutes} left");

    // The join button ends it and takes the call.
    meeting.ctl(&["press", "join"]);
    meeting.wait_in_call(Duration::from_secs(5));
    meeting.wait_until_seen_by(&alice).await;
    assert!(meeting.status()["panel"]["do_not_disturb_s"].is_null());

    // The volume buttons: bounded, and remembered across a restart.
    meeting.ctl(&["volume", "95"]);
    meeting.ctl(&["press", "volume_up"]);
    meeting
        .wait_for_status(Duration::from_secs(3), |s| s["panel"]["volume"] == 100)
        .expect("volume 100");
    meeting.ctl(&["press", "volume_up"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(meeting.status()["panel"]["volume"], 100, "bounded");
    meeting.ctl(&["press", "volume_down"]);
    meeting
        .wait_for_status(Duration::from_secs(3), |s| s["panel"]["volume"] == 95)
        .expect("volume 95");
    let mut meeting = meeting;
    meeting.restart();
    assert_eq!(meeting.status()["panel"]["volume"], 95);
}

fn roomd_config_without_homeserver(dir: &std::path::Path, buttons: &str) -> std::path::PathBuf {
    let text = format!(
        r#"[matrix]
homeserver = "http://127.0.0.1:9"
user_id = "@room:localhost"
password_file = "{secret}"
state_dir = "{state}"
[rooms]
serve = ["!room:localhost"]
[camera]
source = "test"
[microphone]
source = "test"
[speaker]
sink = "null"
[display]
sink = "none"
{buttons}
[leds]
backend = "none"
[control]
socket = "{socket}"
"#,
        secret = dir.join("secret").display(),
        state = dir.join("state").display(),
        socket = dir.join("control.sock").display(),
    );
    std::fs::write(dir.join("secret"), "x\n").unwrap();
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = dir.join("roomd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// This machine has no GPIO header (nor does CI's): the error names the key to change.
#[test]
fn without_a_gpio_header_roomd_says_which_key_to_change_and_carries_on_if_optional() {
    let dir = tempfile::tempdir().unwrap();
    let config = roomd_config_without_homeserver(
        dir.path(),
        "[buttons]\nbackend = \"gpio\"\noptional = false\n",
    );
    let out = Command::new(ROOMD)
        .args(["--config", config.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started without GPIO: {stderr}");
    assert!(
        stderr.contains("cannot open the GPIO header")
            && stderr.contains("buttons.backend = \"simulated\" or \"none\""),
        "{stderr}"
    );

    let config = roomd_config_without_homeserver(
        dir.path(),
        "[buttons]\nbackend = \"gpio\"\noptional = true\n",
    );
    let mut roomd = Roomd::spawn_config(ROOMD.as_ref(), &config, dir.path(), &[], &[]).unwrap();
    assert!(
        roomd.wait_for_log("carrying on without buttons", Duration::from_secs(10)),
        "{}",
        roomd.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(roomd.running(), "{}", roomd.log());
    let errors = roomd.log().matches("cannot open the GPIO header").count();
    assert_eq!(errors, 1, "one clear error: {}", roomd.log());
    // The socket still answers, and a press goes nowhere harmful.
    let out = roomd.ctl(&["press", "mute"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    roomd.terminate();
}

#[test]
fn ctl_against_a_stopped_roomd_says_so_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let config = roomd_config_without_homeserver(dir.path(), "");
    for args in [
        &["status"][..],
        &["press", "mute"],
        &["volume", "up"],
        &["join"],
    ] {
        let out = Command::new(ROOMD)
            .args(["--config", config.to_str().unwrap(), "ctl"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "ctl {args:?} succeeded");
        assert!(
            stderr.contains("roomd is not running") && stderr.contains("control.sock"),
            "ctl {args:?}: {stderr}"
        );
    }
}

#[test]
fn ctl_rejects_unknown_buttons_and_volumes_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let config = roomd_config_without_homeserver(dir.path(), "");
    let out = Command::new(ROOMD)
        .args([
            "--config",
            config.to_str().unwrap(),
            "ctl",
            "press",
            "eject",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no button `eject`") && stderr.contains("volume_up"),
        "{stderr}"
    );
    let out = Command::new(ROOMD)
        .args(["--config", config.to_str().unwrap(), "ctl", "volume", "150"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_button_with_no_call_on_starts_one_that_a_visitor_joins() {
    let _serial = SERIAL.lock().await;
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice"]).await;
    let room_user = meeting.config.user_id();
    let alice = meeting.visitor("alice").await;
    meeting.ctl(&["press", "join"]);
    meeting.wait_in_call(Duration::from_secs(10));

    // Alice's matrix-js-sdk sees the room's call and enters it, without making its own.
    let call_id = alice
        .join_existing_group_call(meeting.room_id.as_str(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    assert!(call_id.starts_with("roomd-"), "{call_id}");
    meeting.wait_until_seen_by(&alice).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (measured, received) = tokio::join!(alice.measure(Duration::from_secs(4)), async {
        tokio::task::block_in_place(|| meeting.roomd_receives(Duration::from_secs(4)))
    });
    let m = from_roomd(&measured.unwrap(), &room_user).clone();
    assert!(m.fps >= 15.0, "alice sees roomd at {} fps", m.fps);
    assert!(
        m.audio_level > 0.01,
        "alice hears roomd at {}",
        m.audio_level
    );
    assert!(
        received.len() == 1 && received[0].1 >= 5.0,
        "roomd decodes alice: {received:?}"
    );

    // Alice leaves: roomd, last one out, leaves and ends the call, so nobody is left waiting
    // in it and the next call starts afresh.
    alice.leave_group_call().await.unwrap();
    tokio::task::block_in_place(|| {
        meeting.wait_for_status(Duration::from_secs(20), |s| {
            s["rooms"][0]["state"] == "idle"
        })
    })
    .unwrap_or_else(|| panic!("roomd stayed in the call:\n{}", meeting.log()));
    let mut call = serde_json::Value::Null;
    for _ in 0..100 {
        call = meeting
            .host
            .state(&meeting.room_id, MESH_CALL, &call_id)
            .await
            .unwrap()
            .expect("the call's state event");
        if !call["m.terminated"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(call["m.terminated"], "call_ended", "{call}");
}
