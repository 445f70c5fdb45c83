//! The systemd unit and sysusers file, checked by systemd's own tools.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn systemd_tool(name: &str) -> Command {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{name} is missing: install Debian's systemd package (bash tools/setup.sh does)"
    );
    Command::new(name)
}

/// The unit as installed, with ExecStart pointing at the binary under test.
fn installed_unit(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo("systemd/roomd.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/roomd "));
    let unit = unit.replace("/usr/bin/roomd", env!("CARGO_BIN_EXE_roomd"));
    let path = dir.join("roomd.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let out = systemd_tool("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let about_us: Vec<&str> = err.lines().filter(|l| l.contains("roomd")).collect();
    assert!(out.status.success() && about_us.is_empty(), "{err}");
}

#[test]
fn the_unit_is_hardened_to_exposure_3_or_lower_and_still_reaches_the_devices() {
    let dir = tempfile::tempdir().unwrap();
    let unit = installed_unit(dir.path());
    let out = systemd_tool("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=30", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for roomd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure in:\n{report}"));
    assert!(out.status.success(), "above the threshold:\n{report}");
    assert!(exposure <= 3.0, "exposure {exposure}");

    let text = std::fs::read_to_string(repo("systemd/roomd.service")).unwrap();
    for line in [
        "DevicePolicy=closed",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-alsa rw",
        "DeviceAllow=char-gpiochip rw",
        "DeviceAllow=char-media rw",
        "DeviceAllow=char-dma_heap rw",
        "DeviceAllow=/dev/gpiomem rw",
        "SupplementaryGroups=audio video gpio",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "Type=notify",
        "WatchdogSec=",
    ] {
        assert!(text.lines().any(|l| l.starts_with(line)), "missing {line}");
    }
    assert!(
        !text.contains("PrivateDevices=yes"),
        "would hide the devices"
    );
}

#[test]
fn sysusers_creates_the_roomd_user_in_the_device_groups() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let out = systemd_tool("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo("systemd/roomd.sysusers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("roomd:") && l.contains(":/var/lib/roomd:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    for g in ["audio", "video", "gpio"] {
        let line = group
            .lines()
            .find(|l| l.starts_with(&format!("{g}:")))
            .unwrap_or_else(|| panic!("no {g} group in:\n{group}"));
        assert!(line.ends_with(":roomd") || line.contains("roomd"), "{line}");
    }
}

/// The unit's settings for one key, in order (`Key=value` lines, comments skipped).
fn settings(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .flat_map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

#[test]
fn roomd_waits_for_the_network_and_synchronised_time_but_boot_does_not_wait_for_roomd() {
    let text = std::fs::read_to_string(repo("systemd/roomd.service")).unwrap();
    let has = |key: &str, unit: &str| settings(&text, key).iter().any(|u| u == unit);

    // roomd starts after the network is online and the clock is synchronised (TLS needs it):
    // time-sync.target alone is reached unsynchronised unless systemd-time-wait-sync runs.
    assert!(has("Wants", "network-online.target") && has("After", "network-online.target"));
    assert!(has("After", "time-sync.target"));
    assert!(has("Wants", "systemd-time-wait-sync.service"));
    assert!(
        !has("Wants", "time-sync.target"),
        "systemd.special(7): consumers order after time-sync.target, they do not pull it in"
    );

    // multi-user.target would be ordered after a unit it Wants, and so wait for the network and
    // NTP; DefaultDependencies=no stops that, and the service defaults are restated.
    assert!(settings(&text, "DefaultDependencies") == ["no"]);
    assert!(has("Requires", "sysinit.target") && has("After", "sysinit.target"));
    assert!(has("After", "basic.target"));
    assert!(has("Conflicts", "shutdown.target") && has("Before", "shutdown.target"));
    assert!(settings(&text, "WantedBy") == ["multi-user.target"]);
    assert!(!has("Before", "multi-user.target"));

    // READY=1 comes as soon as roomd runs, not after login: a short start timeout.
    let timeout = settings(&text, "TimeoutStartSec");
    let timeout = humantime::parse_duration(&timeout.concat()).unwrap();
    assert!(
        timeout <= std::time::Duration::from_secs(120),
        "TimeoutStartSec {timeout:?}: READY=1 does not wait for the homeserver"
    );
}
