//! A meeting for end-to-end tests: Synapse, a host who made the room, roomd serving it, and
//! visitors who come in headless Chromium.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use matrix_sdk::ruma::OwnedRoomId;
use serde_json::Value;

use crate::browser::{Browser, PeerMedia};
use crate::{Roomd, RoomdConfig, Synapse, Visitor};

const PASSWORD: &str = "room-password";
const CALL_MEMBER: &str = "org.matrix.msc3401.call.member";

/// A served room with roomd in it, and the people who may visit it.
pub struct Meeting {
    pub synapse: Synapse,
    pub host: Visitor,
    pub room_id: OwnedRoomId,
    pub config: RoomdConfig,
    pub roomd: Roomd,
    /// roomd's environment beyond what `Roomd::spawn` sets (test hooks), kept for restarts.
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Meeting {
    /// `visitors`: the localparts that will come in browsers, invited up front.
    pub async fn start(roomd: &Path, visitors: &[&str]) -> Meeting {
        Meeting::start_with(roomd, visitors, |_| {}).await
    }

    pub async fn start_with(
        roomd: &Path,
        visitors: &[&str],
        adjust: impl FnOnce(&mut RoomdConfig),
    ) -> Meeting {
        Meeting::start_with_env(roomd, visitors, adjust, &[]).await
    }

    /// As [`Meeting::start_with`], with roomd started with `env` too (its test hooks).
    pub async fn start_with_env(
        roomd: &Path,
        visitors: &[&str],
        adjust: impl FnOnce(&mut RoomdConfig),
        env: &[(&str, &str)],
    ) -> Meeting {
        let synapse = Synapse::start().unwrap();
        synapse.register("room", PASSWORD).await.unwrap();
        for v in visitors {
            synapse.register(v, &format!("{v}-password")).await.unwrap();
        }
        let host = Visitor::new(&synapse, "host", "HOSTDEV").await.unwrap();
        let config = RoomdConfig::new(&synapse, "room", PASSWORD);
        let mut invite: Vec<String> = visitors.iter().map(|v| format!("@{v}:localhost")).collect();
        invite.push(config.user_id());
        let invite: Vec<&str> = invite.iter().map(String::as_str).collect();
        let room_id = host.create_call_room("Meeting", &invite).await.unwrap();
        let mut config = config;
        config.rooms = vec![room_id.to_string()];
        adjust(&mut config);
        let dir = tempfile::tempdir().unwrap();
        let mut roomd = Roomd::spawn(roomd, &config, dir.path(), &["-v"], env).unwrap();
        assert!(
            roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)),
            "roomd never got ready:\n{}",
            roomd.log()
        );
        let meeting = Meeting {
            synapse,
            host,
            room_id,
            config,
            roomd,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        meeting
            .wait_for_status(Duration::from_secs(20), |s| s["rooms"][0]["joined"] == true)
            .unwrap_or_else(|| panic!("roomd did not join its room:\n{}", meeting.log()));
        meeting
    }

    /// A browser logged in as `localpart` and joined to the room.
    pub async fn visitor(&self, localpart: &str) -> Browser {
        let browser = Browser::start(localpart).await.unwrap();
        browser
            .login(
                &self.synapse.url(),
                localpart,
                &format!("{localpart}-password"),
                &format!("{}DEV", localpart.to_uppercase()),
            )
            .await
            .unwrap();
        browser.join_room(self.room_id.as_str()).await.unwrap();
        browser
    }

    /// Stops roomd as systemd would and starts it again on the same config and state.
    pub fn restart(&mut self) {
        self.roomd.terminate();
        let bin = self.roomd.bin().to_owned();
        let dir = self.roomd.dir().to_owned();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.roomd = Roomd::spawn(&bin, &self.config, &dir, &["-v"], &env).unwrap();
        assert!(
            self.roomd
                .wait_for_notification("STATUS=in service", Duration::from_secs(60)),
            "roomd did not come back:\n{}",
            self.roomd.log()
        );
    }

    pub fn log(&self) -> String {
        self.roomd.log()
    }

    /// The wall-clock stamp of the first line of roomd's log after byte `from` that contains
    /// `needle`, waiting up to `limit` for it (stamps are whole milliseconds).
    pub fn logged_at(&self, from: usize, needle: &str, limit: Duration) -> Option<SystemTime> {
        let start = Instant::now();
        loop {
            let log = self.log();
            if let Some(line) = log.get(from..)?.lines().find(|l| l.contains(needle)) {
                let stamp = line.split_whitespace().next().unwrap_or_default();
                return humantime::parse_rfc3339(stamp).ok();
            }
            if start.elapsed() >= limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn status(&self) -> Value {
        self.roomd.status().unwrap_or(Value::Null)
    }

    pub fn wait_for_status(
        &self,
        limit: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(status) = self.roomd.status()
                && done(&status)
            {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits up to `limit` for roomd to be in the room's call; panics with its log if not.
    pub fn wait_in_call(&self, limit: Duration) {
        self.wait_for_status(limit, |s| s["rooms"][0]["state"] == "in_call")
            .unwrap_or_else(|| panic!("roomd is not in the call:\n{}", self.log()));
    }

    /// Waits up to 20 s for `browser` to have a video track from roomd; panics with roomd's log
    /// if not.
    pub async fn wait_until_seen_by(&self, browser: &Browser) {
        let room_user = self.config.user_id();
        browser
            .wait_for_feeds(Duration::from_secs(20), |f| {
                f.iter()
                    .any(|f| f.user_id == room_user && f.video_tracks > 0)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", self.log()));
    }

    pub fn seat(&self) -> String {
        self.status()["rooms"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn ctl(&self, args: &[&str]) {
        let out = self.roomd.ctl(args);
        assert!(
            out.status.success(),
            "roomd ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn our_membership(&self) -> Option<Value> {
        self.host
            .state(&self.room_id, CALL_MEMBER, &self.config.user_id())
            .await
            .unwrap()
    }

    /// roomd's counters of what it decoded from each peer, over about `window`: (peer, video
    /// fps, audio buffers). The engine reports every second, so the rate is taken over the time
    /// between the two reports read, not the time between reading them.
    pub fn roomd_receives(&self, window: Duration) -> Vec<(String, f64, u64)> {
        let count = |s: &Value| -> (Instant, Vec<(String, u64, u64)>) {
            let age = Duration::from_millis(s["media"]["report_age_ms"].as_u64().unwrap_or(0));
            let reported = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
            let peers = s["media"]["peers"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            (
                                p["peer"].as_str().unwrap_or("").to_owned(),
                                p["video_frames_received"].as_u64().unwrap_or(0),
                                p["audio_buffers_received"].as_u64().unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (reported, peers)
        };
        let (from, before) = count(&self.status());
        std::thread::sleep(window);
        let (to, after) = count(&self.status());
        let span = to
            .saturating_duration_since(from)
            .max(Duration::from_millis(1));
        after
            .into_iter()
            .map(|(peer, v, a)| {
                let (v0, a0) = before
                    .iter()
                    .find(|b| b.0 == peer)
                    .map_or((0, 0), |b| (b.1, b.2));
                (
                    peer,
                    v.saturating_sub(v0) as f64 / span.as_secs_f64(),
                    a.saturating_sub(a0),
                )
            })
            .collect()
    }
}

pub fn from_roomd<'a>(measured: &'a [PeerMedia], room_user: &str) -> &'a PeerMedia {
    measured
        .iter()
        .find(|m| m.user_id.as_deref() == Some(room_user))
        .unwrap_or_else(|| panic!("the browser has no call with roomd: {measured:?}"))
}

/// Everything the browser received from roomd meets the Matrix spec's schemas.
pub async fn check_spec(browser: &Browser, room_user: &str) -> usize {
    let events = browser.call_events(0).await.unwrap();
    let mut checked = 0;
    for e in events {
        let received = e["dir"] == "in";
        let from_roomd = e["sender"] == room_user;
        let (Some(event_type), Some(content)) = (e["type"].as_str(), e.get("content")) else {
            continue;
        };
        if !received || !from_roomd || !event_type.starts_with("m.call.") {
            continue;
        }
        if let Err(errors) = roomd_conformance::validate_call_event(event_type, content) {
            panic!("roomd sent a {event_type} that does not meet the spec: {errors:?}\n{content}");
        }
        checked += 1;
    }
    checked
}
