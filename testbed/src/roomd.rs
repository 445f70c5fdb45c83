//! roomd as a child process, with a config on test sources, its log captured and a systemd
//! notify socket the test can read.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::synapse::{SERVER_NAME, Synapse, die_with_parent};

/// The secret roomd logs in with.
#[derive(Clone)]
pub enum Login {
    Password(String),
    AccessToken(String),
}

/// A config for roomd with every device simulated: test pattern, test tone, no speaker, no
/// display, buttons and LEDs through the control socket.
#[derive(Clone)]
pub struct RoomdConfig {
    pub homeserver: String,
    pub localpart: String,
    pub device_id: String,
    pub display_name: String,
    pub login: Login,
    pub rooms: Vec<String>,
    pub invite_from: Vec<String>,
    /// `calls.conference_focus`, when set.
    pub conference_focus: Option<String>,
    /// `calls.livekit_service_url`, when set.
    pub livekit_service_url: Option<String>,
    /// Appended to roomd.toml: more sections, such as `[ice]`.
    pub extra_toml: String,
}

impl RoomdConfig {
    pub fn new(synapse: &Synapse, localpart: &str, password: &str) -> Self {
        RoomdConfig {
            homeserver: synapse.url(),
            localpart: localpart.to_owned(),
            device_id: "ROOMDTEST".to_owned(),
            display_name: "Meeting Room Test".to_owned(),
            login: Login::Password(password.to_owned()),
            rooms: Vec::new(),
            invite_from: vec![SERVER_NAME.to_owned()],
            conference_focus: None,
            livekit_service_url: None,
            extra_toml: String::new(),
        }
    }

    pub fn user_id(&self) -> String {
        format!("@{}:{SERVER_NAME}", self.localpart)
    }

    /// Writes the secret (mode 0600) and `roomd.toml` into `dir`; returns the config's path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let (key, secret) = match &self.login {
            Login::Password(p) => ("password_file", p),
            Login::AccessToken(t) => ("access_token_file", t),
        };
        let secret_path = dir.join("login-secret");
        std::fs::write(&secret_path, format!("{secret}\n"))?;
        std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600))?;
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            r#"[matrix]
homeserver = "{homeserver}"
user_id = "{user_id}"
device_id = "{device_id}"
display_name = "{display_name}"
{key} = "{secret_path}"
state_dir = "{state}"

[rooms]
serve = [{rooms}]
invite_from = [{invite_from}]

[calls]
direct_call_from = ["{SERVER_NAME}"]
{focus}
{livekit}

[camera]
source = "test"

[microphone]
source = "test"

[speaker]
sink = "null"

[display]
sink = "none"

[buttons]
backend = "simulated"

[leds]
backend = "simulated"

[control]
socket = "{socket}"
"#,
            homeserver = self.homeserver,
            user_id = self.user_id(),
            device_id = self.device_id,
            display_name = self.display_name,
            secret_path = secret_path.display(),
            state = dir.join("state").display(),
            rooms = list(&self.rooms),
            invite_from = list(&self.invite_from),
            socket = dir.join("control.sock").display(),
            focus = self
                .conference_focus
                .as_ref()
                .map_or(String::new(), |f| format!("conference_focus = {f:?}")),
            livekit = self
                .livekit_service_url
                .as_ref()
                .map_or(String::new(), |u| format!("livekit_service_url = {u:?}")),
        );
        let path = dir.join("roomd.toml");
        std::fs::write(&path, format!("{text}{}", self.extra_toml))?;
        Ok(path)
    }
}

/// A running roomd.
pub struct Roomd {
    child: Child,
    log: Arc<Mutex<String>>,
    notifications: Arc<Mutex<Vec<String>>>,
    stop_listening: Arc<AtomicBool>,
    dir: PathBuf,
    bin: PathBuf,
}

impl Roomd {
    /// Starts `bin run` on `config` in `dir` (which holds the state directory), as systemd
    /// would: with `NOTIFY_SOCKET` set, plus `env`.
    pub fn spawn(
        bin: &Path,
        config: &RoomdConfig,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Roomd> {
        let config_path = config.write(dir)?;
        Roomd::spawn_config(bin, &config_path, dir, args, env)
    }

    /// As [`Roomd::spawn`], on a config file already written (`roomd ctl` finds it only at
    /// `dir/roomd.toml`).
    pub fn spawn_config(
        bin: &Path,
        config_path: &Path,
        dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Roomd> {
        let socket_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&socket_path);
        let socket = UnixDatagram::bind(&socket_path).context("binding the notify socket")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;

        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(config_path)
            .args(args)
            .arg("run")
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        die_with_parent(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;

        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }

        let notifications = Arc::new(Mutex::new(Vec::new()));
        let stop_listening = Arc::new(AtomicBool::new(false));
        {
            let notifications = notifications.clone();
            let stop = stop_listening.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        notifications
                            .lock()
                            .unwrap()
                            .extend(text.lines().map(str::to_owned));
                    }
                }
            });
        }
        Ok(Roomd {
            child,
            log,
            notifications,
            stop_listening,
            dir: dir.to_owned(),
            bin: bin.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The roomd binary this runs.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Everything roomd has written to stdout and stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The notify messages received so far (`READY=1`, `WATCHDOG=1`, `STATUS=...`).
    pub fn notifications(&self) -> Vec<String> {
        self.notifications.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a notify message equal to `message`.
    pub fn wait_for_notification(&mut self, message: &str, limit: Duration) -> bool {
        self.wait_until(limit, |r| r.notifications().iter().any(|m| m == message))
    }

    /// Waits up to `limit` for a log line containing `needle`.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> bool {
        self.wait_until(limit, |r| r.log().contains(needle))
    }

    fn wait_until(&mut self, limit: Duration, done: impl Fn(&Roomd) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if done(self) {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200)); // let the log readers finish
                return done(self);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Runs `roomd ctl ARGS` against this roomd, as an admin would.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.bin)
            .arg("--config")
            .arg(self.dir.join("roomd.toml"))
            .arg("ctl")
            .args(args)
            .output()
            .expect("roomd ctl runs")
    }

    /// `roomd ctl status --json`, parsed.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let out = self.ctl(&["status", "--json"]);
        anyhow::ensure!(
            out.status.success(),
            "roomd ctl status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `{"command":"status"}` straight on the control socket (`dir/control.sock`, as
    /// [`RoomdConfig::write`] puts it): the status, and how long roomd took to answer, with no
    /// `roomd ctl` process start in the measurement.
    pub fn status_timed(&self) -> anyhow::Result<(serde_json::Value, Duration)> {
        let started = Instant::now();
        let mut stream = UnixStream::connect(self.dir.join("control.sock"))
            .context("connecting to the control socket")?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"{\"command\":\"status\"}\n")?;
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply)?;
        let took = started.elapsed();
        let reply: serde_json::Value = serde_json::from_str(&reply)?;
        anyhow::ensure!(reply["ok"] == true, "status refused: {reply}");
        Ok((reply["status"].clone(), took))
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, as `systemctl stop` sends; waits up to 20 s, then kills.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(20))
    }

    /// SIGKILL: a crash or a power cut.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for Roomd {
    fn drop(&mut self) {
        if self.running() {
            self.kill();
        }
        self.stop_listening.store(true, Ordering::Relaxed);
    }
}
