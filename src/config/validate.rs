//! Checks of meaning: values that parse but cannot work on the device.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::read::Spans;
use super::secret::{self, SecretError};
use super::{Config, Diagnostic, GpioBackend, LoginSecret, SecretSource};
use roomd_core::ice_uri::Scheme;

/// BCM GPIO numbers on the 40-pin header.
const HEADER_GPIOS: std::ops::RangeInclusive<u8> = 0..=27;
/// Header pins with a bus job a room device may need (board/raspberrypi/wiring.md): wiring a
/// button or LED there works, but rules out that bus.
const BUS_PINS: [(u8, &str); 15] = [
    (0, "ID_SD, the HAT ID EEPROM's I2C bus"),
    (1, "ID_SC, the HAT ID EEPROM's I2C bus"),
    (2, "I2C1 SDA"),
    (3, "I2C1 SCL"),
    (7, "SPI0 CE1"),
    (8, "SPI0 CE0"),
    (9, "SPI0 MISO"),
    (10, "SPI0 MOSI"),
    (11, "SPI0 SCLK"),
    (14, "UART TXD, the serial console"),
    (15, "UART RXD, the serial console"),
    (18, "I2S PCM_CLK, for audio HATs"),
    (19, "I2S PCM_FS, for audio HATs"),
    (20, "I2S PCM_DIN, for audio HATs"),
    (21, "I2S PCM_DOUT, for audio HATs"),
];
/// Room for the NUL in `sockaddr_un.sun_path`.
const MAX_SOCKET_PATH: usize = 107;
/// Frame widths the Pi 4's hardware encoder handles cleanly.
const V4L2_ENCODER_WIDTHS: [u32; 3] = [640, 1280, 1920];

pub(super) fn validate(c: &Config, spans: &Spans) -> Vec<Diagnostic> {
    let mut v = Validator {
        spans,
        out: Vec::new(),
    };
    v.matrix(c);
    v.rooms_and_calls(c);
    v.ice(c);
    v.media(c);
    v.volume(c);
    v.gpio(c);
    v.control(c);
    v.out
}

struct Validator<'a> {
    spans: &'a Spans,
    out: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error(&mut self, key: &str, message: impl std::fmt::Display) {
        let span = self.spans.get(key).cloned();
        self.out
            .push(Diagnostic::error(span, format!("{key}: {message}")));
    }

    fn warning(&mut self, key: &str, message: impl std::fmt::Display) {
        let span = self.spans.get(key).cloned();
        self.out
            .push(Diagnostic::warning(span, format!("{key}: {message}")));
    }

    fn matrix(&mut self, c: &Config) {
        let m = &c.matrix;
        match m.homeserver.scheme() {
            "http" | "https" if m.homeserver.host().is_some() => {}
            "http" | "https" => self.error("matrix.homeserver", "the URL has no host"),
            other => self.error(
                "matrix.homeserver",
                format!("must be an http or https URL, not {other}:"),
            ),
        }
        if m.user_id.server_name().as_str().ends_with("example.org") {
            self.warning(
                "matrix.user_id",
                "still the example account; set the room's own Matrix account",
            );
        }
        let id = m.device_id.as_str();
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
        {
            self.error(
                "matrix.device_id",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `-` or `.`",
            );
        }
        if m.display_name.trim().is_empty() {
            self.error("matrix.display_name", "must not be empty");
        }
        if !m.state_dir.is_absolute() {
            self.error("matrix.state_dir", "must be an absolute path");
        }
        self.login_secret(&m.login);
    }

    fn login_secret(&mut self, login: &LoginSecret) {
        let (source, what, kind) = match login {
            LoginSecret::Password(s) => (s, "password", "password"),
            LoginSecret::AccessToken(s) => (s, "access token", "access_token"),
        };
        self.secret_source(&format!("matrix.{kind}"), source, file_what(what));
    }

    /// A secret's file or systemd credential (`prefix_file` / `prefix_credential`) must exist
    /// and be private.
    fn secret_source(&mut self, prefix: &str, source: &SecretSource, what: &'static str) {
        match source {
            SecretSource::File(path) => {
                let key = format!("{prefix}_file");
                if !path.is_absolute() {
                    self.error(&key, "must be an absolute path");
                } else if let Err(e) = secret::check_permissions(what, path) {
                    self.error(&key, e);
                }
            }
            SecretSource::Credential(name) => {
                let key = format!("{prefix}_credential");
                if name.is_empty()
                    || name.len() > 255
                    || name.contains('/')
                    || name == "."
                    || name == ".."
                {
                    self.error(&key, "not a valid systemd credential name");
                    return;
                }
                match source.locate() {
                    Ok(path) => {
                        if let Err(e) = secret::check_permissions(what, &path) {
                            self.error(&key, e);
                        }
                    }
                    // Under systemd the service manager may hold the credential itself; the
                    // unit's start will say so if it does not.
                    Err(SecretError::CredentialNotFound { .. })
                        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() =>
                    {
                        self.warning(
                            &key,
                            format!(
                                "credential `{name}` is not in /etc/credstore, /run/credstore or \
                                 /usr/lib/credstore yet; create it with `install -m 600 \
                                 /dev/stdin /etc/credstore/{name}`"
                            ),
                        );
                    }
                    Err(e) => self.error(&key, e),
                }
            }
        }
    }

    fn rooms_and_calls(&mut self, c: &Config) {
        if c.rooms.serve.is_empty() {
            self.warning(
                "rooms.serve",
                "no rooms to serve; the device will only answer direct calls",
            );
        }
        let mut seen = HashSet::new();
        for room in &c.rooms.serve {
            if !seen.insert(room.as_str()) {
                self.error("rooms.serve", format!("`{room}` is listed twice"));
            }
        }
        if let Some(url) = &c.calls.livekit_service_url
            && !(matches!(url.scheme(), "http" | "https") && url.host().is_some())
        {
            self.error(
                "calls.livekit_service_url",
                "must be an http or https URL with a host",
            );
        }
        if c.calls.do_not_disturb_minutes > 24 * 60 {
            self.error(
                "calls.do_not_disturb_minutes",
                "must be at most 1440 (a day)",
            );
        }
    }

    fn ice(&mut self, c: &Config) {
        let ice = &c.ice;
        for (i, uri) in ice.stun_servers.iter().enumerate() {
            let key = format!("ice.stun_servers[{i}]");
            if uri.scheme != Scheme::Stun {
                self.error(
                    &key,
                    format!("`{uri}` is a TURN server: list it in turn_servers"),
                );
            } else if i == 1 {
                self.warning(
                    &key,
                    "only the first STUN server is used (webrtcbin takes one); the others are ignored",
                );
            }
        }
        for (i, uri) in ice.turn_servers.iter().enumerate() {
            if uri.scheme == Scheme::Stun {
                self.error(
                    &format!("ice.turn_servers[{i}]"),
                    format!("`{uri}` is a STUN server: list it in stun_servers"),
                );
            }
        }
        if ice.turn_servers.is_empty() {
            if !ice.turn_username.is_empty() {
                self.warning("ice.turn_username", "unused: turn_servers is empty");
            }
            if ice.turn_password.is_some() {
                self.warning("ice.turn_password", "unused: turn_servers is empty");
            }
        } else {
            if ice.turn_username.is_empty() {
                self.error(
                    "ice.turn_servers",
                    "TURN servers need a username: set ice.turn_username",
                );
            }
            if ice.turn_password.is_none() {
                self.error(
                    "ice.turn_servers",
                    "TURN servers need a password: set ice.turn_password_file or \
                     ice.turn_password_credential",
                );
            }
        }
        if let Some(source) = &ice.turn_password {
            self.secret_source("ice.turn_password", source, "TURN password file");
        }
    }

    fn media(&mut self, c: &Config) {
        let v = &c.video;
        for (key, value) in [("video.width", v.width), ("video.height", v.height)] {
            if !(16..=3840).contains(&value) || value % 2 != 0 {
                self.error(key, "must be an even number from 16 to 3840");
            }
        }
        if !(1..=60).contains(&v.framerate) {
            self.error("video.framerate", "must be from 1 to 60");
        }
        if !(100..=20_000).contains(&v.bitrate_kbps) {
            self.error("video.bitrate_kbps", "must be from 100 to 20000");
        }
        let encoder = v.encoder.as_str();
        if encoder.is_empty()
            || !encoder
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        {
            self.error(
                "video.encoder",
                "must be \"auto\" or a GStreamer element name such as x264enc",
            );
        }
        if encoder == "v4l2h264enc" && !V4L2_ENCODER_WIDTHS.contains(&v.width) {
            self.error(
                "video.width",
                "v4l2h264enc encodes cleanly only at widths 640, 1280 and 1920",
            );
        }
        if c.camera.source == super::CameraSource::V4l2 && !c.camera.device.is_absolute() {
            self.error(
                "camera.device",
                "must be an absolute path such as /dev/video0",
            );
        }
        for (key, device) in [
            ("microphone.device", &c.microphone.device),
            ("speaker.device", &c.speaker.device),
        ] {
            if device.trim().is_empty() {
                self.error(key, "must name an ALSA device, such as \"default\"");
            }
        }
    }

    fn volume(&mut self, c: &Config) {
        let s = &c.speaker;
        if s.volume_percent > 100 {
            self.error("speaker.volume_percent", "must be from 0 to 100");
        }
        if !(1..=50).contains(&s.volume_step_percent) {
            self.error("speaker.volume_step_percent", "must be from 1 to 50");
        }
        if s.mixer.trim().is_empty() {
            self.error(
                "speaker.mixer",
                "must name a mixer control, such as \"PCM\", or be \"auto\"",
            );
        }
    }

    fn gpio(&mut self, c: &Config) {
        let b = &c.buttons;
        if !(1..=1000).contains(&b.debounce_ms) {
            self.error("buttons.debounce_ms", "must be from 1 to 1000");
        }
        if b.long_press_ms <= b.debounce_ms || b.long_press_ms > 10_000 {
            self.error(
                "buttons.long_press_ms",
                "must be longer than debounce_ms and at most 10000",
            );
        }
        let mut pins: Vec<(&str, Option<u8>)> = Vec::new();
        if b.backend != GpioBackend::None {
            let p = &b.pins;
            pins.extend([
                ("buttons.pins.mute", p.mute),
                ("buttons.pins.hangup", p.hangup),
                ("buttons.pins.join", p.join),
                ("buttons.pins.volume_up", p.volume_up),
                ("buttons.pins.volume_down", p.volume_down),
            ]);
        }
        if c.leds.backend != GpioBackend::None {
            let p = &c.leds.pins;
            pins.extend([
                ("leds.pins.in_call", p.in_call),
                ("leds.pins.muted", p.muted),
                ("leds.pins.status", p.status),
            ]);
        }
        // Report the later use of a pin, pointing back at the first, in file order.
        let mut wired: Vec<(&str, u8)> = pins
            .into_iter()
            .filter_map(|(k, p)| Some((k, p?)))
            .collect();
        wired.sort_by_key(|(k, _)| self.spans.get(*k).map_or(usize::MAX, |s| s.start));
        let mut first_use: HashMap<u8, &str> = HashMap::new();
        for (key, pin) in wired {
            if !HEADER_GPIOS.contains(&pin) {
                self.error(key, format!("GPIO {pin} is not on the header (0 to 27)"));
            } else if let Some(first) = first_use.get(&pin) {
                self.error(key, format!("GPIO {pin} is already used by {first}"));
            } else {
                first_use.insert(pin, key);
                if let Some((_, job)) = BUS_PINS.iter().find(|(p, _)| *p == pin) {
                    self.warning(
                        key,
                        format!(
                            "GPIO {pin} is {job}; that bus cannot be used while it is wired \
                             here (free pins: board/raspberrypi/wiring.md)"
                        ),
                    );
                }
            }
        }
    }

    fn control(&mut self, c: &Config) {
        let socket = &c.control.socket;
        if !socket.is_absolute() {
            self.error("control.socket", "must be an absolute path");
        } else if socket.as_os_str().len() > MAX_SOCKET_PATH {
            self.error(
                "control.socket",
                format!("is longer than {MAX_SOCKET_PATH} bytes, the limit for a socket path"),
            );
        } else if socket.parent() == Some(Path::new("/")) {
            self.error(
                "control.socket",
                "must be inside a directory such as /run/roomd",
            );
        }
    }
}

fn file_what(what: &str) -> &'static str {
    if what == "password" {
        "password file"
    } else {
        "access token file"
    }
}
