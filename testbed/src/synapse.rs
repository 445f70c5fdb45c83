//! A real Synapse homeserver on 127.0.0.1, on a free port, in a temporary directory, killed when
//! dropped (or when the test process dies).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use matrix_sdk::Client;
use matrix_sdk::ruma::api::client::account::register;
use matrix_sdk::ruma::api::client::uiaa::{AuthData, Dummy};

use crate::paths;

/// The version `tools/setup.sh` installs.
pub const SYNAPSE_VERSION: &str = "1.163.2";
pub const SERVER_NAME: &str = "localhost";

pub struct Synapse {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Synapse {
    /// Starts a fresh homeserver and waits until it answers.
    pub fn start() -> anyhow::Result<Synapse> {
        Synapse::start_with("")
    }

    /// Like [`Synapse::start`], with `extra` appended to homeserver.yaml (top-level keys, such
    /// as `turn_uris`).
    pub fn start_with(extra: &str) -> anyhow::Result<Synapse> {
        Synapse::start_configured(|_port| extra.to_owned())
    }

    /// A homeserver that advertises `livekit_service_url` (a token service, such as
    /// `roomd_test_sfu::TokenService::url`) as its MatrixRTC transport, both ways Synapse
    /// 1.163 can: `GET /_matrix/client/unstable/org.matrix.msc4143/rtc/transports` (its
    /// `matrix_rtc.transports` config with `msc4143_enabled`; what Element Call 0.26 reads) and
    /// `.well-known/matrix/client` `org.matrix.msc4143.rtc_foci` (what older clients and
    /// matrix-sdk's `Client::rtc_foci` read; served once `public_baseurl` is set).
    pub fn start_with_rtc_transport(livekit_service_url: &str) -> anyhow::Result<Synapse> {
        Synapse::start_configured(|port| rtc_transport_yaml(port, livekit_service_url))
    }

    /// Like [`Synapse::start_with`], with the extra configuration made from the port.
    pub fn start_configured(extra: impl FnOnce(u16) -> String) -> anyhow::Result<Synapse> {
        let python = paths::testenv().join("synapse/bin/python");
        if !python.exists() {
            bail!(
                "Synapse is not installed ({} is missing): run `bash tools/setup.sh`, which \
                 installs matrix-synapse {SYNAPSE_VERSION} into .testenv/synapse",
                python.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("roomd-synapse-")
            .tempdir()?;
        let port = free_port()?;
        let config = dir.path().join("homeserver.yaml");
        let mut yaml = homeserver_yaml(dir.path(), port);
        yaml.push_str(&extra(port));
        std::fs::write(&config, yaml)?;
        let status = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config)
            .arg("--generate-keys")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("generating Synapse's signing key")?;
        if !status.success() {
            bail!("Synapse could not generate its keys ({status})");
        }
        let child = spawn(&python, dir.path())?;
        let mut synapse = Synapse { child, port, dir };
        synapse.wait_until_up(Duration::from_secs(60))?;
        Ok(synapse)
    }

    /// Starts the stopped homeserver again, on the same port with the same database.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let python = paths::testenv().join("synapse/bin/python");
        self.child = spawn(&python, self.dir.path())?;
        self.wait_until_up(Duration::from_secs(60))
    }

    fn wait_until_up(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "Synapse exited ({status}) while starting; its log:\n{}",
                    self.log_tail()
                );
            }
            if http_get_status(self.port, "/_matrix/client/versions") == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "Synapse did not answer within {limit:?}; its log:\n{}",
            self.log_tail()
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("synapse.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Creates an account. It is left logged out: whoever uses it logs in themselves.
    pub async fn register(&self, localpart: &str, password: &str) -> anyhow::Result<()> {
        let client = Client::builder().homeserver_url(self.url()).build().await?;
        let mut request = register::v3::Request::new();
        request.username = Some(localpart.to_owned());
        request.password = Some(password.to_owned());
        request.inhibit_login = true;
        request.auth = Some(AuthData::Dummy(Dummy::new()));
        client
            .matrix_auth()
            .register(request)
            .await
            .with_context(|| format!("registering @{localpart}:{SERVER_NAME}"))?;
        Ok(())
    }

    /// Logs in as `device_id` and returns the access token; the client is dropped, the
    /// token stays valid.
    pub async fn log_in(
        &self,
        localpart: &str,
        password: &str,
        device_id: &str,
    ) -> anyhow::Result<String> {
        let client = Client::builder().homeserver_url(self.url()).build().await?;
        let response = client
            .matrix_auth()
            .login_username(localpart, password)
            .device_id(device_id)
            .send()
            .await?;
        Ok(response.access_token)
    }

    /// The access tokens Synapse has issued to `user_id`, read from its database, so a test can
    /// look for them where they must not be.
    pub fn access_tokens(&self, user_id: &str) -> anyhow::Result<Vec<String>> {
        self.query("select token from access_tokens where user_id=?", user_id)
    }

    /// The display name of `user_id`, from Synapse's database.
    pub fn display_name(&self, user_id: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .query(
                "select displayname from profiles where full_user_id=?",
                user_id,
            )?
            .into_iter()
            .next())
    }

    /// The devices of `user_id` that have uploaded E2EE device keys.
    pub fn devices_with_keys(&self, user_id: &str) -> anyhow::Result<Vec<String>> {
        self.query(
            "select device_id from e2e_device_keys_json where user_id=?",
            user_id,
        )
    }

    /// The devices `user_id` has, from Synapse's database.
    pub fn devices(&self, user_id: &str) -> anyhow::Result<Vec<String>> {
        self.query("select device_id from devices where user_id=?", user_id)
    }

    /// One column of a query on Synapse's database with one parameter.
    fn query(&self, sql: &str, param: &str) -> anyhow::Result<Vec<String>> {
        let python = paths::testenv().join("synapse/bin/python");
        let db = self.dir.path().join("homeserver.db");
        let script = "import sqlite3,sys\n\
            c=sqlite3.connect(sys.argv[1])\n\
            for (v,) in c.execute(sys.argv[2],(sys.argv[3],)):\n    print(v)\n";
        let out = Command::new(python)
            .args(["-c", script])
            .arg(db)
            .arg(sql)
            .arg(param)
            .output()?;
        if !out.status.success() {
            bail!("querying Synapse: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Logs out the session of `access_token`, as an admin revoking a device's login would.
    pub async fn logout(&self, access_token: &str) -> anyhow::Result<()> {
        let (status, body) =
            self.request("POST", "/_matrix/client/v3/logout", access_token, "{}")?;
        anyhow::ensure!(status == 200, "logout: {status} {body}");
        Ok(())
    }

    /// A raw client-API request, for what matrix-sdk has no call for (sticky events, say).
    /// Returns the status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        access_token: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {access_token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        let status = reply
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("not an HTTP reply: {reply}"))?;
        let body = reply
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Ok((status, body))
    }

    /// Stops the homeserver (as a crash or an outage would look to roomd).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(python: &Path, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("synapse.log"))?;
    let mut command = Command::new(python);
    command
        .args(["-m", "synapse.app.homeserver", "-c"])
        .arg(dir.join("homeserver.yaml"))
        .current_dir(dir)
        .stdout(log.try_clone()?)
        .stderr(log);
    die_with_parent(&mut command);
    command.spawn().context("starting Synapse")
}

/// Kill the child when the test process dies, so no server outlives its test.
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// The `matrix_rtc` transport and the well-known `rtc_foci`, both naming one LiveKit service.
fn rtc_transport_yaml(port: u16, livekit_service_url: &str) -> String {
    let url = serde_json::to_string(livekit_service_url).expect("a string serialises");
    format!(
        r#"public_baseurl: "http://127.0.0.1:{port}/"
matrix_rtc:
  transports:
    - type: livekit
      livekit_service_url: {url}
extra_well_known_client_content:
  org.matrix.msc4143.rtc_foci:
    - type: livekit
      livekit_service_url: {url}
"#
    )
}

fn homeserver_yaml(dir: &Path, port: u16) -> String {
    let d = dir.display();
    let relaxed = "{per_second: 10000, burst_count: 100000}";
    format!(
        r#"server_name: "{SERVER_NAME}"
pid_file: "{d}/homeserver.pid"
listeners:
  - port: {port}
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: false
    resources:
      # openid: the federation API's /openid/userinfo alone, which a LiveKit token service
      # (lk-jwt-service, or roomd_test_sfu::TokenService) checks OpenID tokens with.
      - names: [client, openid]
        compress: false
database:
  name: sqlite3
  args:
    database: "{d}/homeserver.db"
media_store_path: "{d}/media_store"
signing_key_path: "{d}/signing.key"
macaroon_secret_key: "roomd-test-macaroon-secret"
form_secret: "roomd-test-form-secret"
registration_shared_secret: "roomd-test-registration-secret"
report_stats: false
trusted_key_servers: []
suppress_key_server_warning: true
enable_registration: true
enable_registration_without_verification: true
max_event_delay_duration: 24h
experimental_features:
  msc4140_max_delayed_events_per_user: 1000
  msc4143_enabled: true
  msc4222_enabled: true
  msc4354_enabled: true
rc_message: {relaxed}
rc_registration: {relaxed}
rc_login:
  address: {relaxed}
  account: {relaxed}
  failed_attempts: {relaxed}
rc_joins:
  local: {relaxed}
  remote: {relaxed}
rc_joins_per_room: {relaxed}
rc_invites:
  per_room: {relaxed}
  per_user: {relaxed}
  per_issuer: {relaxed}
rc_key_requests: {relaxed}
rc_delayed_event_mgmt: {relaxed}
rc_room_creation: {relaxed}
rc_presence:
  per_user: {relaxed}
"#
    )
}
