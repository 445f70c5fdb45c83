//! The browser visitor: matrix-js-sdk's own `GroupCall` and `MatrixCall` (the reference clients
//! for MSC3401 mesh calls and 1:1 calls) in a headless Chromium with a fake camera and
//! microphone, driven over JSON lines through `testbed/browser/driver.mjs`.
//!
//! `bash tools/setup.sh` installs Chromium, the npm packages and builds the page bundle; without
//! them [`Browser::start`] fails saying so. Each browser is its own process group (node, Chromium
//! and Chromium's children), closed gracefully on drop and then killed; it also dies with the
//! thread that started it (as the other test-bed servers do), so start it from a long-lived one.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::paths;
use crate::synapse::die_with_parent;

/// How long any one command may take unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long node and Chromium may take to start and load the page.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_LINES: usize = 4000;

type Reply = Result<Value, String>;

struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    ready: Mutex<Option<oneshot::Sender<Value>>>,
    log: Mutex<VecDeque<String>>,
    exited: Mutex<Option<String>>,
}

/// One browser visitor: a headless Chromium with one page running matrix-js-sdk.
pub struct Browser {
    name: String,
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    chromium_pid: u32,
}

/// What `login` answers.
#[derive(Debug, Clone)]
pub struct LoginInfo {
    pub user_id: String,
    pub device_id: String,
    /// The session id js-sdk puts in `m.call.member` devices and in `sender_session_id`.
    pub session_id: String,
}

/// One remote `CallFeed` as js-sdk sees it (mute states come from the peer's
/// `sdp_stream_metadata`).
#[derive(Debug, Clone)]
pub struct RemoteFeed {
    pub user_id: String,
    pub device_id: Option<String>,
    pub purpose: String,
    pub audio_muted: bool,
    pub video_muted: bool,
    pub stream_id: String,
    pub audio_tracks: u64,
    pub video_tracks: u64,
}

/// What one peer connection received over a measuring window, from `getStats` deltas.
#[derive(Debug, Clone)]
pub struct PeerMedia {
    pub user_id: Option<String>,
    pub device_id: Option<String>,
    pub call_id: String,
    pub call_state: String,
    pub window: Duration,
    /// Video frames decoded per second over the window.
    pub fps: f64,
    pub frames_decoded: u64,
    pub frame_width: u64,
    pub frame_height: u64,
    /// The video codec's MIME type (`video/H264`, `video/VP8`, ...).
    pub codec: Option<String>,
    pub video_packets: u64,
    /// RMS audio level over the window (0..1), from `totalAudioEnergy`/`totalSamplesDuration`.
    pub audio_level: f64,
    /// `audioLevel` at the end of the window.
    pub audio_level_now: f64,
    pub audio_codec: Option<String>,
    pub audio_packets: u64,
}

/// The files `tools/setup.sh` puts in place; an error naming the first one missing.
pub fn check_installed() -> anyhow::Result<()> {
    check_installed_for("page")
}

/// As [`check_installed`], for the page `bundle` (`page`: matrix-js-sdk; `livekit`:
/// livekit-client).
pub fn check_installed_for(bundle: &str) -> anyhow::Result<()> {
    let dir = browser_dir();
    let chromium = chromium_path();
    let needs = [
        (
            chromium.clone(),
            "Chromium (Debian package chromium)".to_owned(),
        ),
        (
            dir.join("node_modules/matrix-js-sdk/package.json"),
            "matrix-js-sdk (npm ci in testbed/browser)".to_owned(),
        ),
        (
            dir.join("node_modules/livekit-client/package.json"),
            "livekit-client (npm ci in testbed/browser)".to_owned(),
        ),
        (
            dir.join("node_modules/playwright-core/package.json"),
            "playwright-core (npm ci in testbed/browser)".to_owned(),
        ),
        (
            dir.join(format!("dist/{bundle}.bundle.js")),
            format!("the {bundle} page bundle (esbuild in testbed/browser)"),
        ),
    ];
    for (path, what) in needs {
        if !path.exists() {
            bail!(
                "the browser visitor is not installed: {what} is missing ({}); run \
                 `bash tools/setup.sh`",
                path.display()
            );
        }
    }
    let node = Command::new("node")
        .arg("--version")
        .output()
        .context("running `node --version` (Node.js is needed for the browser visitor)")?;
    if !node.status.success() {
        bail!("`node --version` failed: Node.js is needed for the browser visitor");
    }
    Ok(())
}

fn browser_dir() -> PathBuf {
    paths::repo_root().join("testbed/browser")
}

fn chromium_path() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

impl Browser {
    /// Starts node, Chromium and the page; `name` prefixes its log lines, which go to stderr
    /// (a test shows them when it fails).
    pub async fn start(name: &str) -> anyhow::Result<Browser> {
        Self::start_with_args(name, &[]).await
    }

    /// As [`Browser::start`], with its log kept (for [`Browser::log_tail`]) but not shown.
    pub async fn start_quiet(name: &str) -> anyhow::Result<Browser> {
        Self::launch(name, "page", &[], false).await
    }

    /// As [`Browser::start`], with more Chromium flags.
    pub async fn start_with_args(name: &str, chromium_args: &[&str]) -> anyhow::Result<Browser> {
        Self::launch(name, "page", chromium_args, true).await
    }

    /// A browser whose page runs `bundle` (`testbed/browser/dist/{bundle}.bundle.js`) instead
    /// of the matrix-js-sdk visitor; [`crate::livekit::LiveKitPage`] uses `livekit`.
    pub async fn start_bundle(name: &str, bundle: &str, echo: bool) -> anyhow::Result<Browser> {
        Self::launch(name, bundle, &[], echo).await
    }

    async fn launch(
        name: &str,
        bundle: &str,
        chromium_args: &[&str],
        echo: bool,
    ) -> anyhow::Result<Browser> {
        check_installed_for(bundle)?;
        let dir = browser_dir();
        let mut command = Command::new("node");
        command
            .arg(dir.join("driver.mjs"))
            .args(["--name", name, "--bundle", bundle, "--chromium"])
            .arg(chromium_path())
            .args(chromium_args.iter().flat_map(|a| ["--extra-arg", a]))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        die_with_parent(&mut command);
        let mut child = command.spawn().context("starting node driver.mjs")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");

        let (ready_tx, ready_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            ready: Mutex::new(Some(ready_tx)),
            log: Mutex::new(VecDeque::new()),
            exited: Mutex::new(None),
        });

        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("browser-{name}-stderr"))
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if echo {
                        // Shown by the test harness when a test fails.
                        eprintln!("{line}");
                    }
                    let mut log = s.log.lock().unwrap();
                    if log.len() == LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            })?;

        let s = shared.clone();
        std::thread::Builder::new()
            .name(format!("browser-{name}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                        eprintln!("browser: not a JSON line from the driver: {line}");
                        continue;
                    };
                    if msg["event"] == "ready" {
                        if let Some(tx) = s.ready.lock().unwrap().take() {
                            let _ = tx.send(msg);
                        }
                        continue;
                    }
                    let Some(id) = msg["id"].as_u64() else {
                        eprintln!("browser: a reply without an id: {line}");
                        continue;
                    };
                    let reply = match msg.get("error") {
                        Some(e) => Err(e.as_str().map_or_else(|| e.to_string(), str::to_owned)),
                        None => Ok(msg.get("ok").cloned().unwrap_or(Value::Null)),
                    };
                    if let Some(tx) = s.pending.lock().unwrap().remove(&id) {
                        let _ = tx.send(reply);
                    }
                }
                // The driver is gone: every waiting command fails now (dropping its sender).
                *s.exited.lock().unwrap() = Some("the driver's stdout closed".to_owned());
                s.pending.lock().unwrap().clear();
                s.ready.lock().unwrap().take();
            })?;

        let mut browser = Browser {
            name: name.to_owned(),
            child,
            stdin: Mutex::new(stdin),
            shared,
            next_id: AtomicU64::new(1),
            chromium_pid: 0,
        };
        let ready = match tokio::time::timeout(START_TIMEOUT, ready_rx).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(_)) => {
                // Let the stderr reader catch up with the driver's last words.
                for _ in 0..50 {
                    if let Ok(Some(_)) = browser.child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                std::thread::sleep(Duration::from_millis(50));
                bail!(
                    "browser {name}: the driver exited while starting; its log:\n{}",
                    browser.log_tail(60)
                )
            }
            Err(_) => bail!(
                "browser {name}: not ready within {START_TIMEOUT:?}; its log:\n{}",
                browser.log_tail(60)
            ),
        };
        browser.chromium_pid = ready["chromiumPid"].as_u64().unwrap_or(0) as u32;
        Ok(browser)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node driver's pid; it leads the browser's process group.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn chromium_pid(&self) -> u32 {
        self.chromium_pid
    }

    /// The last `n` lines of the page's console and the driver's notes.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.shared.log.lock().unwrap();
        let skip = log.len().saturating_sub(n);
        log.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs `window.visitor[cmd](args)` in the page (or a driver command), for up to `timeout`.
    pub async fn call(&self, cmd: &str, args: Value, timeout: Duration) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Some(why) = self.shared.exited.lock().unwrap().clone() {
            bail!("browser {}: {cmd}: {why}", self.name);
        }
        self.shared.pending.lock().unwrap().insert(id, tx);
        let line = json!({"id": id, "cmd": cmd, "args": args}).to_string() + "\n";
        {
            let mut stdin = self.stdin.lock().unwrap();
            let stdin = stdin
                .as_mut()
                .ok_or_else(|| anyhow!("browser {}: closed", self.name))?;
            if let Err(e) = stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()) {
                self.shared.pending.lock().unwrap().remove(&id);
                bail!("browser {}: {cmd}: writing to the driver: {e}", self.name);
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(anyhow!("browser {}: {cmd}: {e}", self.name)),
            Ok(Err(_)) => Err(anyhow!(
                "browser {}: {cmd}: the driver exited; its log:\n{}",
                self.name,
                self.log_tail(40)
            )),
            Err(_) => {
                self.shared.pending.lock().unwrap().remove(&id);
                Err(anyhow!(
                    "browser {}: {cmd}: no answer within {timeout:?}; its log:\n{}",
                    self.name,
                    self.log_tail(40)
                ))
            }
        }
    }

    /// Logs in with a password as `device_id`, starts the client and waits for its first sync.
    pub async fn login(
        &self,
        homeserver: &str,
        user: &str,
        password: &str,
        device_id: &str,
    ) -> anyhow::Result<LoginInfo> {
        let v = self
            .call(
                "login",
                json!({"homeserver": homeserver, "user": user, "password": password,
                       "deviceId": device_id, "timeoutMs": 20_000}),
                DEFAULT_TIMEOUT,
            )
            .await?;
        Ok(LoginInfo {
            user_id: str_of(&v, "userId"),
            device_id: str_of(&v, "deviceId"),
            session_id: str_of(&v, "sessionId"),
        })
    }

    /// Joins a room (accepting an invite) and waits until the client's sync shows it joined.
    pub async fn join_room(&self, room_id: &str) -> anyhow::Result<()> {
        self.call(
            "joinRoom",
            json!({"roomId": room_id, "timeoutMs": 20_000}),
            DEFAULT_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// Enters the room's group call, creating one (type video or voice, intent m.room) if the
    /// client knows of none. Returns the group call id.
    pub async fn enter_group_call(&self, room_id: &str, video: bool) -> anyhow::Result<String> {
        self.enter_group_call_with(json!({"roomId": room_id, "video": video}))
            .await
    }

    /// Enters the room's existing group call, waiting up to `wait` for the client to learn of
    /// it; never creates one. Returns the group call id.
    pub async fn join_existing_group_call(
        &self,
        room_id: &str,
        wait: Duration,
    ) -> anyhow::Result<String> {
        self.enter_group_call_with(json!({"roomId": room_id, "create": false,
                                          "waitMs": wait.as_millis() as u64}))
            .await
    }

    /// `enterGroupCall` with all its arguments: `roomId`, `video` (true), `create` (true),
    /// `waitMs` (0: how long to wait for an existing call first), `timeoutMs` (20000).
    pub async fn enter_group_call_with(&self, args: Value) -> anyhow::Result<String> {
        let extra = Duration::from_millis(
            args["waitMs"].as_u64().unwrap_or(0) + args["timeoutMs"].as_u64().unwrap_or(20_000),
        );
        let v = self
            .call("enterGroupCall", args, extra + Duration::from_secs(10))
            .await?;
        Ok(str_of(&v, "groupCallId"))
    }

    pub async fn leave_group_call(&self) -> anyhow::Result<()> {
        self.call("leaveGroupCall", json!({}), DEFAULT_TIMEOUT)
            .await?;
        Ok(())
    }

    pub async fn terminate_group_call(&self) -> anyhow::Result<()> {
        self.call("terminateGroupCall", json!({}), DEFAULT_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Places a 1:1 call in the room (room events, no device); returns its call id.
    pub async fn place_call(&self, room_id: &str, video: bool) -> anyhow::Result<String> {
        let v = self
            .call(
                "placeCall",
                json!({"roomId": room_id, "video": video}),
                DEFAULT_TIMEOUT,
            )
            .await?;
        Ok(str_of(&v, "callId"))
    }

    /// Waits up to `timeout` for an incoming 1:1 call (not a group call's) and answers it.
    /// Returns the call's state, as [`Browser::call_state`]'s `call`.
    pub async fn answer_incoming(&self, timeout: Duration) -> anyhow::Result<Value> {
        self.call(
            "answerIncoming",
            json!({"timeoutMs": timeout.as_millis() as u64}),
            timeout + Duration::from_secs(15),
        )
        .await
    }

    /// Hangs up the 1:1 call.
    pub async fn hangup(&self) -> anyhow::Result<Value> {
        self.call("hangup", json!({}), DEFAULT_TIMEOUT).await
    }

    /// `{call, ringing, groupCall: {groupCallId, state, micMuted, videoMuted, peers}}`, where
    /// `call` and each of `peers` is `{callId, state, direction, type, hangupReason, hangupParty,
    /// opponentUserId, opponentDeviceId, opponentSessionId, opponentPartyId, groupCallId,
    /// micMuted, videoMuted, iceConnectionState, connectionState}`.
    pub async fn call_state(&self) -> anyhow::Result<Value> {
        self.call("callState", json!({}), DEFAULT_TIMEOUT).await
    }

    /// Mutes the microphone in the group call (if entered) or else the 1:1 call; js-sdk sends
    /// `m.call.sdp_stream_metadata_changed` to every peer. Returns js-sdk's answer.
    pub async fn set_mic_muted(&self, muted: bool) -> anyhow::Result<bool> {
        let v = self
            .call("setMicMuted", json!({"muted": muted}), DEFAULT_TIMEOUT)
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    pub async fn set_video_muted(&self, muted: bool) -> anyhow::Result<bool> {
        let v = self
            .call("setVideoMuted", json!({"muted": muted}), DEFAULT_TIMEOUT)
            .await?;
        Ok(v.as_bool().unwrap_or(false))
    }

    pub async fn remote_feeds(&self) -> anyhow::Result<Vec<RemoteFeed>> {
        let v = self.call("remoteFeeds", json!({}), DEFAULT_TIMEOUT).await?;
        Ok(array(&v)
            .iter()
            .map(|f| RemoteFeed {
                user_id: str_of(f, "userId"),
                device_id: f["deviceId"].as_str().map(str::to_owned),
                purpose: str_of(f, "purpose"),
                audio_muted: f["audioMuted"].as_bool().unwrap_or(true),
                video_muted: f["videoMuted"].as_bool().unwrap_or(true),
                stream_id: str_of(f, "streamId"),
                audio_tracks: f["audioTracks"].as_u64().unwrap_or(0),
                video_tracks: f["videoTracks"].as_u64().unwrap_or(0),
            })
            .collect())
    }

    /// Polls the remote feeds until `done` holds for them, for up to `limit`. Returns them.
    pub async fn wait_for_feeds(
        &self,
        limit: Duration,
        done: impl Fn(&[RemoteFeed]) -> bool,
    ) -> anyhow::Result<Vec<RemoteFeed>> {
        let start = Instant::now();
        loop {
            let feeds = self.remote_feeds().await?;
            if done(&feeds) {
                return Ok(feeds);
            }
            if start.elapsed() >= limit {
                bail!(
                    "browser {}: remote feeds not as expected within {limit:?}: {feeds:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What each peer connection received over `window`.
    pub async fn measure(&self, window: Duration) -> anyhow::Result<Vec<PeerMedia>> {
        let v = self
            .call(
                "measure",
                json!({"windowMs": window.as_millis() as u64}),
                window + Duration::from_secs(20),
            )
            .await?;
        Ok(array(&v)
            .iter()
            .map(|m| PeerMedia {
                user_id: m["userId"].as_str().map(str::to_owned),
                device_id: m["deviceId"].as_str().map(str::to_owned),
                call_id: str_of(m, "callId"),
                call_state: str_of(m, "callState"),
                window: Duration::from_millis(m["windowMs"].as_u64().unwrap_or(0)),
                fps: m["fps"].as_f64().unwrap_or(0.0),
                frames_decoded: m["framesDecoded"].as_u64().unwrap_or(0),
                frame_width: m["frameWidth"].as_u64().unwrap_or(0),
                frame_height: m["frameHeight"].as_u64().unwrap_or(0),
                codec: m["codec"].as_str().map(str::to_owned),
                video_packets: m["videoPackets"].as_u64().unwrap_or(0),
                audio_level: m["audioLevel"].as_f64().unwrap_or(0.0),
                audio_level_now: m["audioLevelNow"].as_f64().unwrap_or(0.0),
                audio_codec: m["audioCodec"].as_str().map(str::to_owned),
                audio_packets: m["audioPackets"].as_u64().unwrap_or(0),
            })
            .collect())
    }

    /// When the first video frame from `user_id` was decoded here, polled every 20 ms.
    pub async fn first_frame(&self, user_id: &str, limit: Duration) -> anyhow::Result<SystemTime> {
        let v = self
            .call(
                "firstFrame",
                json!({"userId": user_id, "timeoutMs": limit.as_millis() as u64}),
                limit + Duration::from_secs(10),
            )
            .await?;
        let ms = v["atMs"]
            .as_u64()
            .ok_or_else(|| anyhow!("firstFrame answered {v}"))?;
        Ok(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// A PNG of the remote video of `user_id` (any remote video if `None`).
    pub async fn snapshot(&self, user_id: Option<&str>) -> anyhow::Result<Vec<u8>> {
        let v = self
            .call("snapshot", json!({"userId": user_id}), DEFAULT_TIMEOUT)
            .await?;
        let url = v["dataUrl"].as_str().unwrap_or_default();
        let b64 = url
            .strip_prefix("data:image/png;base64,")
            .ok_or_else(|| anyhow!("snapshot: not a PNG data URL"))?;
        base64_decode(b64)
    }

    /// Sends a raw (unencrypted) to-device message.
    pub async fn send_to_device(
        &self,
        event_type: &str,
        user_id: &str,
        device_id: &str,
        content: Value,
    ) -> anyhow::Result<()> {
        self.call(
            "sendToDevice",
            json!({"type": event_type, "userId": user_id, "deviceId": device_id,
                   "content": content}),
            DEFAULT_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// `{userId, deviceId, sessionId, syncState, groupCallId, groupCallState,
    /// participants: [{userId, deviceId, sessionId, screensharing}]}`.
    pub async fn info(&self) -> anyhow::Result<Value> {
        self.call("info", json!({}), DEFAULT_TIMEOUT).await
    }

    /// Every VoIP event this client sent (`dir: "out"`, with `userId`, `deviceId`, `toDevice`)
    /// or received (`dir: "in"`, with `sender`), with `type`, `ts` and `content`, from index
    /// `since` on.
    pub async fn call_events(&self, since: usize) -> anyhow::Result<Vec<Value>> {
        let v = self
            .call("callEvents", json!({"since": since}), DEFAULT_TIMEOUT)
            .await?;
        Ok(array(&v).to_vec())
    }

    /// Evaluates a JavaScript expression in the page (awaited if it is a promise) and returns
    /// its JSON value; `window.visitorState` holds the js-sdk client, group call and 1:1 call.
    pub async fn eval(&self, expression: &str) -> anyhow::Result<Value> {
        self.call("eval", json!({"expression": expression}), DEFAULT_TIMEOUT)
            .await
    }

    /// Closes the page and Chromium and waits for node to exit (also what dropping does).
    pub fn close(&mut self) {
        // EOF on stdin: the driver lets running commands finish (5 s at most), closes Chromium
        // and exits.
        self.stdin.lock().unwrap().take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (Chromium and its children inherit it) goes now.
        // SAFETY: killpg has no memory-safety preconditions; the group is the driver's own.
        unsafe {
            libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.close();
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => bail!("not base64: {:?}", c as char),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8hIQ==").unwrap(), b"hello!!");
        assert_eq!(base64_decode("AAEC").unwrap(), [0, 1, 2]);
    }
}
