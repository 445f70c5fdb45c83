//! roomd as a Matrix device against a real Synapse: its session survives restarts, it serves its
//! room, sees every call membership shape, joins a mesh room call behind a delayed leave that
//! outlives a SIGKILL, and takes invites only from its allow list.

use std::time::{Duration, Instant};

use matrix_sdk::ruma::OwnedRoomId;
use roomd_testbed::{Roomd, RoomdConfig, Synapse, Visitor};
use serde_json::Value;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const PASSWORD: &str = "room-password";
const CALL_MEMBER: &str = "org.matrix.msc3401.call.member";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn start(config: &RoomdConfig, dir: &std::path::Path) -> Roomd {
    let mut roomd = Roomd::spawn(ROOMD.as_ref(), config, dir, &["-v"], &[]).unwrap();
    assert!(
        roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)),
        "roomd never got ready; log:\n{}",
        roomd.log()
    );
    roomd
}

/// Polls `roomd ctl status --json` until `done` holds; returns how long that took.
fn wait_for_status(
    roomd: &Roomd,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(status) = roomd.status()
            && done(&status)
        {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn lists(status: &Value, user: &str, device: &str) -> bool {
    status["rooms"][0]["calls"].as_array().is_some_and(|calls| {
        calls.iter().any(|c| {
            c["participants"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["user_id"] == user && p["device_id"] == device)
            })
        })
    })
}

/// A meeting room served by roomd: Synapse, the room's account, a visitor who created the room
/// (with call state open to everyone, as Element Call does) and invited the device, and roomd
/// running and joined to it.
struct Meeting {
    rt: tokio::runtime::Runtime,
    visitor: Visitor,
    config: RoomdConfig,
    room_id: OwnedRoomId,
    roomd: Roomd,
    _dir: tempfile::TempDir,
    synapse: Synapse,
}

impl Meeting {
    /// `alias`: serve the room by `#alias:localhost` rather than by its ID.
    fn start(alias: Option<&str>) -> Meeting {
        let synapse = Synapse::start().unwrap();
        let rt = runtime();
        rt.block_on(synapse.register("room", PASSWORD)).unwrap();
        let visitor = rt
            .block_on(Visitor::new(&synapse, "visitor", "VISITORDEV"))
            .unwrap();
        let mut config = RoomdConfig::new(&synapse, "room", PASSWORD);
        let room_id = rt
            .block_on(visitor.create_call_room_with_alias("Meeting", alias, &[&config.user_id()]))
            .unwrap();
        config.rooms = vec![match alias {
            Some(a) => format!("#{a}:localhost"),
            None => room_id.to_string(),
        }];
        let dir = tempfile::tempdir().unwrap();
        let roomd = start(&config, dir.path());
        assert!(
            wait_for_status(&roomd, Duration::from_secs(20), |s| s["rooms"][0]["joined"]
                == true)
            .is_some(),
            "roomd did not join its room: {}",
            roomd.log()
        );
        Meeting {
            rt,
            visitor,
            config,
            room_id,
            roomd,
            _dir: dir,
            synapse,
        }
    }

    fn room_user(&self) -> String {
        self.config.user_id()
    }

    fn set_state(&self, event_type: &str, key: &str, content: Value) {
        self.rt
            .block_on(
                self.visitor
                    .set_state(&self.room_id, event_type, key, content),
            )
            .unwrap();
    }

    fn join_mesh_call(&self, id: &str) {
        self.rt
            .block_on(self.visitor.join_mesh_call(&self.room_id, id))
            .unwrap();
    }

    /// roomd's own call membership in the room, as the visitor sees it.
    fn our_membership(&self) -> Option<Value> {
        let key = self.room_user();
        self.rt
            .block_on(self.visitor.state(&self.room_id, CALL_MEMBER, &key))
            .unwrap()
    }

    /// Waits until roomd's membership satisfies `done`; returns how long that took.
    fn wait_for_our_membership(
        &self,
        limit: Duration,
        done: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Duration> {
        let key = self.room_user();
        self.rt
            .block_on(
                self.visitor
                    .wait_for_state(&self.room_id, CALL_MEMBER, &key, limit, done),
            )
            .unwrap()
    }

    fn wait_for_seat(&self, state: &str, limit: Duration) {
        assert!(
            wait_for_status(&self.roomd, limit, |s| s["rooms"][0]["state"] == state).is_some(),
            "never {state}: {}",
            self.roomd.log()
        );
    }
}

fn emptied(c: Option<&Value>) -> bool {
    c.is_some_and(|c| c.as_object().is_some_and(|o| o.is_empty()))
}

/// A fresh Synapse with the room's account, and a config for roomd to log in with.
fn room_account() -> (Synapse, RoomdConfig) {
    let synapse = Synapse::start().unwrap();
    runtime()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    (synapse, config)
}

#[test]
fn a_restart_restores_the_session_without_a_new_login() {
    let (synapse, config) = room_account();
    let dir = tempfile::tempdir().unwrap();

    let mut first = start(&config, dir.path());
    assert!(first.log().contains("logged in"), "{}", first.log());
    first.terminate().unwrap();
    let user = config.user_id();
    assert_eq!(
        synapse.devices(&user).unwrap(),
        vec![config.device_id.clone()]
    );
    let tokens = synapse.access_tokens(&user).unwrap();
    assert_eq!(tokens.len(), 1);
    let session = dir.path().join("state/session.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&session).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the saved session is private");

    assert_eq!(
        synapse.devices_with_keys(&user).unwrap(),
        vec![config.device_id.clone()],
        "E2EE keys uploaded"
    );
    assert_eq!(
        synapse.display_name(&user).unwrap().as_deref(),
        Some(config.display_name.as_str())
    );

    let mut second = start(&config, dir.path());
    assert!(
        second.log().contains("restoring the saved session"),
        "{}",
        second.log()
    );
    second.terminate().unwrap();
    assert_eq!(
        synapse.devices(&user).unwrap(),
        vec![config.device_id.clone()]
    );
    assert_eq!(
        synapse.access_tokens(&user).unwrap(),
        tokens,
        "no new login"
    );
}

#[test]
fn a_revoked_session_is_replaced_by_a_fresh_login() {
    let synapse = Synapse::start().unwrap();
    let rt = runtime();
    rt.block_on(synapse.register("room", PASSWORD)).unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    start(&config, dir.path()).terminate();

    // The admin logs the device out elsewhere: the saved token is dead.
    let session: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/session.json")).unwrap(),
    )
    .unwrap();
    rt.block_on(synapse.logout(session["access_token"].as_str().unwrap()))
        .unwrap();

    let mut roomd = start(&config, dir.path());
    let log = roomd.log();
    assert!(log.contains("no longer accepts our session"), "{log}");
    roomd.terminate();
    assert_eq!(synapse.devices(&config.user_id()).unwrap().len(), 1);
}

#[test]
fn a_wrong_password_is_one_clear_line_and_a_slow_retry() {
    let synapse = Synapse::start().unwrap();
    runtime()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let config = RoomdConfig::new(&synapse, "room", "not-the-password");
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = Roomd::spawn(ROOMD.as_ref(), &config, dir.path(), &[], &[]).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    assert!(roomd.running(), "no crash loop: {}", roomd.log());
    let log = roomd.log();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("login failed")).collect();
    // 2 s, then 4 s: at most three attempts in eight seconds.
    assert!((1..=3).contains(&failures.len()), "{log}");
    assert!(
        failures[0].contains("Invalid username or password"),
        "{}",
        failures[0]
    );
    assert!(
        !roomd
            .notifications()
            .contains(&"STATUS=in service".to_owned())
    );
    roomd.terminate();
}

#[test]
fn an_unreachable_homeserver_is_retried_slowly_and_a_restarted_one_is_synced_again() {
    let mut synapse = Synapse::start().unwrap();
    runtime()
        .block_on(synapse.register("room", PASSWORD))
        .unwrap();
    let config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = start(&config, dir.path());

    synapse.stop();
    assert!(
        roomd.wait_for_log("sync failed", Duration::from_secs(40)),
        "{}",
        roomd.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    assert!(roomd.running());
    let failures = roomd.log().matches("sync failed").count();
    assert!(failures <= 4, "backs off: {failures} failures in ~5 s");
    synapse.restart().unwrap();
    assert!(
        roomd.wait_for_log("sync recovered", Duration::from_secs(90)),
        "{}",
        roomd.log()
    );
    roomd.terminate();

    // Never reachable at all: login is retried, slowly, without a crash.
    let mut unreachable = config.clone();
    let port = roomd_testbed::synapse::free_port().unwrap();
    unreachable.homeserver = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = Roomd::spawn(ROOMD.as_ref(), &unreachable, dir.path(), &[], &[]).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert!(roomd.running());
    let log = roomd.log();
    let failures = log.matches("login failed").count();
    assert!((1..=3).contains(&failures), "{log}");
    roomd.terminate();
}

#[test]
fn sees_every_call_and_joins_the_mesh_call_behind_a_delayed_leave_that_outlives_sigkill() {
    let mut m = Meeting::start(None);
    let visitor = m.visitor.user_id();

    // Element Call's session membership: listed within 2 s, not joined (no LiveKit yet).
    let (key, content) = m.visitor.element_call_membership(&m.room_id);
    m.set_state(CALL_MEMBER, &key, content);
    let took = wait_for_status(&m.roomd, Duration::from_secs(2), |s| {
        lists(s, &visitor, "VISITORDEV")
    });
    assert!(
        took.is_some(),
        "EC membership not listed in 2 s: {}",
        m.roomd.log()
    );
    let status = m.roomd.status().unwrap();
    assert_eq!(status["rooms"][0]["state"], "idle", "{status}");
    m.set_state(CALL_MEMBER, &key, serde_json::json!({}));

    // An MSC3401 mesh call: listed within 2 s, and roomd joins it.
    m.join_mesh_call("group-call-1");
    let took = wait_for_status(&m.roomd, Duration::from_secs(2), |s| {
        lists(s, &visitor, "VISITORDEV")
    });
    assert!(
        took.is_some(),
        "mesh membership not listed in 2 s: {}",
        m.roomd.log()
    );
    let joined = m.wait_for_our_membership(Duration::from_secs(10), |c| {
        c.is_some_and(|c| c["m.calls"][0]["m.call_id"] == "group-call-1")
    });
    assert!(
        joined.is_some(),
        "roomd did not publish its membership: {}",
        m.roomd.log()
    );
    let ours = m.our_membership().unwrap();
    assert_eq!(
        ours["m.calls"][0]["m.devices"][0]["device_id"],
        m.config.device_id.as_str()
    );
    m.wait_for_seat("in_call", Duration::from_secs(5));

    // Killed: the homeserver's delayed leave removes the membership within 20 s + 5 s.
    std::thread::sleep(Duration::from_secs(6)); // at least one restart of the delayed leave
    m.roomd.kill();
    let killed_at = Instant::now();
    let gone = m.wait_for_our_membership(Duration::from_secs(25), emptied);
    assert!(
        gone.is_some(),
        "membership still there {:?} after the kill",
        killed_at.elapsed()
    );
    assert!(
        killed_at.elapsed() > Duration::from_secs(12),
        "the leave came from the delay, not from a clean exit"
    );
}

#[test]
fn sticky_rtc_members_are_seen() {
    let mut m = Meeting::start(None);
    let visitor = m.visitor.user_id();
    m.visitor
        .join_call_sticky(&m.synapse, &m.room_id, 600_000)
        .unwrap();
    let took = wait_for_status(&m.roomd, Duration::from_secs(2), |s| {
        lists(s, &visitor, "VISITORDEV")
    });
    assert!(
        took.is_some(),
        "sticky rtc member not listed in 2 s: {}",
        m.roomd.log()
    );
    let status = m.roomd.status().unwrap();
    let p = &status["rooms"][0]["calls"][0]["participants"][0];
    assert_eq!(p["shape"], "rtc_member");
    let expires = p["expires_in_s"].as_u64().unwrap();
    assert!(
        (590..=600).contains(&expires),
        "the sticky duration sets the expiry: {expires}"
    );
    m.roomd.terminate();
}

#[test]
fn kicked_from_the_served_room_it_comes_back_when_invited_again() {
    let mut m = Meeting::start(None);
    let room_user = m.room_user();
    m.rt.block_on(m.visitor.kick(&m.room_id, &room_user))
        .unwrap();
    assert!(
        m.roomd
            .wait_for_log("removed from served room", Duration::from_secs(10)),
        "{}",
        m.roomd.log()
    );
    assert!(m.roomd.running());
    m.rt.block_on(m.visitor.invite(&m.room_id, &room_user))
        .unwrap();
    assert!(
        wait_for_status(
            &m.roomd,
            Duration::from_secs(10),
            |s| s["rooms"][0]["joined"] == true
        )
        .is_some(),
        "{}",
        m.roomd.log()
    );
    assert!(
        m.rt.block_on(m.visitor.is_joined(&m.room_id, &room_user))
            .unwrap()
    );
    m.roomd.terminate();
}

#[test]
fn a_clean_stop_takes_the_membership_back_at_once() {
    let mut m = Meeting::start(None);
    m.join_mesh_call("g");
    m.wait_for_seat("in_call", Duration::from_secs(15));
    let stopped = m.roomd.terminate().expect("stops");
    assert!(stopped.success());
    assert_eq!(
        m.our_membership(),
        Some(serde_json::json!({})),
        "left before exiting"
    );
    assert!(m.roomd.notifications().contains(&"STOPPING=1".to_owned()));
}

#[test]
fn last_one_out_and_hang_up() {
    // Served by alias: roomd resolves it when it joins.
    let mut m = Meeting::start(Some("meeting"));
    m.join_mesh_call("g");
    m.wait_for_seat("in_call", Duration::from_secs(15));
    // The visitor leaves: roomd, the last one, leaves too.
    m.set_state(CALL_MEMBER, &m.visitor.user_id(), serde_json::json!({}));
    let left = m.wait_for_our_membership(Duration::from_secs(10), emptied);
    assert!(left.is_some(), "{}", m.roomd.log());

    // A new call: roomd joins; a hang-up takes it out and keeps it out.
    m.join_mesh_call("g2");
    m.wait_for_seat("in_call", Duration::from_secs(15));
    let out = m.roomd.ctl(&["hangup"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    m.wait_for_seat("left_by_hang_up", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        m.roomd.status().unwrap()["rooms"][0]["state"],
        "left_by_hang_up"
    );
    assert_eq!(m.our_membership(), Some(serde_json::json!({})));
    m.roomd.terminate();
}

#[test]
fn invites_are_taken_only_from_the_allow_list() {
    let synapse = Synapse::start().unwrap();
    let rt = runtime();
    rt.block_on(synapse.register("room", PASSWORD)).unwrap();
    let friend = rt
        .block_on(Visitor::new(&synapse, "friend", "FRIENDDEV"))
        .unwrap();
    let stranger = rt
        .block_on(Visitor::new(&synapse, "stranger", "STRANGERDEV"))
        .unwrap();
    let mut config = RoomdConfig::new(&synapse, "room", PASSWORD);
    config.invite_from = vec![friend.user_id()];
    let room_user = config.user_id();
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = start(&config, dir.path());

    let strangers_room = rt
        .block_on(stranger.create_call_room("Spam", &[&room_user]))
        .unwrap();
    let friends_room = rt
        .block_on(friend.create_call_room("Friends", &[&room_user]))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !rt
            .block_on(friend.is_joined(&friends_room, &room_user))
            .unwrap()
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        rt.block_on(friend.is_joined(&friends_room, &room_user))
            .unwrap(),
        "the friend's invite was not taken: {}",
        roomd.log()
    );
    assert!(
        !rt.block_on(stranger.is_joined(&strangers_room, &room_user))
            .unwrap(),
        "a stranger's invite was taken"
    );
    assert!(
        roomd.log().contains("ignoring the invite"),
        "{}",
        roomd.log()
    );
    roomd.terminate();
}

#[test]
fn ctl_against_a_stopped_daemon_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("roomd.toml");
    let socket = dir.path().join("control.sock");
    std::fs::write(
        &config,
        format!("[control]\nsocket = \"{}\"\n", socket.display()),
    )
    .unwrap();
    let out = std::process::Command::new(ROOMD)
        .arg("--config")
        .arg(&config)
        .args(["ctl", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("roomd is not running"), "{err}");
}

#[test]
fn the_control_socket_is_private_bounded_and_strict() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixStream;

    let (_synapse, config) = room_account();
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = start(&config, dir.path());
    let socket = dir.path().join("control.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660, "root and the roomd group only");

    let ask = |line: &[u8]| -> Value {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.write_all(line).unwrap();
        let mut reply = String::new();
        BufReader::new(s).read_line(&mut reply).unwrap();
        serde_json::from_str(&reply).unwrap()
    };
    let reply = ask(b"{\"command\":\"status\"}\n");
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["status"]["user_id"], config.user_id());
    assert_eq!(reply["status"]["service"], "in service");
    for bad in [
        &b"{\"command\":\"self-destruct\"}\n"[..],
        b"not json\n",
        b"{\"room\":\"x\"}\n",
    ] {
        let reply = ask(bad);
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["error"].as_str().unwrap().contains("not a request"),
            "{reply}"
        );
    }
    let mut huge = vec![b' '; 100_000];
    huge.push(b'\n');
    let reply = ask(&huge);
    assert_eq!(reply["ok"], false);
    assert!(
        reply["error"].as_str().unwrap().contains("longer than"),
        "{reply}"
    );
    // Still answering after all that.
    assert_eq!(ask(b"{\"command\":\"status\"}\n")["ok"], true);

    // The media engine's part: the encoder it probed, and (once calls have media) per-peer
    // statistics.
    let media = wait_for_status(&roomd, Duration::from_secs(10), |s| {
        s["media"]["encoder"] == "x264enc" && s["media"]["peers"] == serde_json::json!([])
    });
    assert!(media.is_some(), "{}", roomd.status().unwrap());

    let human = roomd.ctl(&["status"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("in service"), "{text}");
    roomd.terminate();
    assert!(!socket.exists(), "the socket is removed on exit");
}
