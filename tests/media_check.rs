//! `roomd media-check` on this machine: no camera, no sound card, no V4L2 encoder.

use std::process::{Command, Output};

fn media_check(config: &str, json: bool) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roomd.toml");
    std::fs::write(&path, config).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_roomd"));
    c.arg("--config").arg(&path).arg("media-check");
    if json {
        c.arg("--json");
    }
    c.output().unwrap()
}

const SIMULATED: &str = "[camera]\nsource = \"test\"\n[microphone]\nsource = \"test\"\n\
    [speaker]\nsink = \"null\"\n[display]\nsink = \"none\"\n";

#[test]
fn names_x264enc_and_why_v4l2h264enc_is_absent() {
    let out = media_check(SIMULATED, false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("chosen: x264enc"), "{text}");
    assert!(
        text.contains("refused v4l2h264enc: not installed (registered only where a V4L2 H.264 encoder device exists"),
        "{text}"
    );
    assert!(
        text.contains("OK: the configured devices can work"),
        "{text}"
    );
}

#[test]
fn missing_devices_are_named_and_fail_the_check() {
    // The defaults: a V4L2 camera at /dev/video0, ALSA "default" in and out, HDMI.
    let out = media_check("", false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("no camera: /dev/video0 is not there"),
        "{text}"
    );
    assert!(
        text.contains("the microphone \"default\" cannot be opened"),
        "{text}"
    );
    assert!(
        text.contains("the speaker \"default\" cannot be opened"),
        "{text}"
    );
}

#[test]
fn json_report() {
    let out = media_check(SIMULATED, true);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["encoder"]["element"], "x264enc");
    assert_eq!(report["encoder"]["refused"][0]["element"], "v4l2h264enc");
    assert_eq!(report["problems"], serde_json::json!([]));
    assert!(
        report["cameras"].as_array().unwrap().is_empty(),
        "no /dev/video* here"
    );
}
