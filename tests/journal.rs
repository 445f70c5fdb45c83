//! Started the way systemd starts it (stderr on a journal stream named by JOURNAL_STREAM), roomd
//! logs to the journal, matrix-sdk's lines with it, and no secret reaches it. The journal is a
//! stand-in on the real socket path, inside a private mount namespace.

use std::path::Path;
use std::process::Command;

use roomd_testbed::{RoomdConfig, Synapse};
use serde_json::Value;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const PASSWORD: &str = "journal \"test\" pässword";

#[test]
fn under_systemd_roomd_logs_to_the_journal_without_secrets() {
    let can_unshare = Command::new("unshare")
        .args(["--mount", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        can_unshare,
        "this test needs `unshare --mount` (util-linux) and root, to give roomd a private \
         /run/systemd/journal/socket"
    );
    let synapse = Synapse::start().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let config_path = config.write(dir.path()).unwrap();
    let stderr_path = dir.path().join("stderr");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_journald.py");

    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /run/systemd && exec \"$0\" \"$@\"")
        .arg("python3")
        .arg(&script)
        .arg(&stderr_path)
        .args(["first sync done", "60", "--", ROOMD, "--config"])
        .arg(&config_path)
        .args(["-vvv", "run"])
        .env_remove("NOTIFY_SOCKET")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\nroomd's stderr:\n{stderr}",
        String::from_utf8_lossy(&out.stderr)
    );

    let messages: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["MESSAGE"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("logged in")),
        "{messages:#?}"
    );
    assert!(messages.iter().any(|m| m.contains("first sync done")));
    let odd: Vec<&Value> = entries
        .iter()
        .filter(|e| e["SYSLOG_IDENTIFIER"] != "roomd" || !e["PRIORITY"].is_string())
        .collect();
    assert!(
        odd.is_empty(),
        "entries without identifier or priority: {odd:#?}"
    );
    assert!(
        entries.iter().any(|e| e["TARGET"]
            .as_str()
            .is_some_and(|t| t.starts_with("matrix_sdk"))),
        "matrix-sdk's tracing reaches the journal"
    );
    assert!(
        !stderr.contains("logged in"),
        "the log went to stderr too:\n{stderr}"
    );

    let mut secrets = vec![PASSWORD.to_owned()];
    secrets.extend(synapse.access_tokens(&config.user_id()).unwrap());
    assert_eq!(secrets.len(), 2, "one password, one token");
    for entry in &entries {
        for value in entry.as_object().unwrap().values() {
            let value = value.as_str().unwrap_or_default();
            for secret in &secrets {
                assert!(
                    !value.contains(secret.as_str()),
                    "a secret reached the journal"
                );
            }
        }
    }
}
