//! The one file an admin provisions: its schema, its defaults and its checks.
//!
//! The defaults are written once, in `default.toml`, which is compiled in, printed by
//! `roomd print-config`, and parses to exactly [`Config::default`] (a test proves it).

mod diagnostic;
mod read;
mod secret;
mod validate;

use std::path::{Path, PathBuf};

use matrix_sdk::ruma::{
    OwnedDeviceId, OwnedRoomOrAliasId, OwnedUserId, device_id, owned_room_alias_id,
    owned_server_name, owned_user_id,
};
use serde::Deserialize;
use url::Url;

pub use diagnostic::{Diagnostic, Severity};
pub use roomd_core::ice_uri::IceUri;
pub use roomd_core::{JoinPolicy, Principal, Secret};
pub use secret::SecretError;

/// The compiled-in default configuration, fully commented.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

/// Where `roomd` looks for its config when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/roomd/roomd.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub matrix: MatrixConfig,
    pub rooms: RoomsConfig,
    pub calls: CallsConfig,
    pub ice: IceConfig,
    pub camera: CameraConfig,
    pub video: VideoConfig,
    pub microphone: MicrophoneConfig,
    pub speaker: SpeakerConfig,
    pub display: DisplayConfig,
    pub buttons: ButtonsConfig,
    pub leds: LedsConfig,
    pub control: ControlConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatrixConfig {
    pub homeserver: Url,
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
    pub display_name: String,
    pub login: LoginSecret,
    pub state_dir: PathBuf,
}

/// What the device logs in with, and where that secret is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginSecret {
    Password(SecretSource),
    AccessToken(SecretSource),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// A file only its owner may read.
    File(PathBuf),
    /// A systemd credential (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY`.
    Credential(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoomsConfig {
    pub serve: Vec<OwnedRoomOrAliasId>,
    pub invite_from: Vec<Principal>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CallsConfig {
    pub join: JoinPolicy,
    pub answer_direct_calls: bool,
    pub direct_call_from: Vec<Principal>,
    pub join_button_starts_call: bool,
    pub join_button_prefers_element_call: bool,
    pub do_not_disturb_minutes: u32,
    pub conference_focus: Option<OwnedUserId>,
    /// The LiveKit token service when the homeserver names none.
    pub livekit_service_url: Option<Url>,
}

/// STUN and TURN servers of the config's own, used besides the homeserver's TURN servers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IceConfig {
    pub stun_servers: Vec<IceUri>,
    pub turn_servers: Vec<IceUri>,
    pub turn_username: String,
    /// Where the password for `turn_servers` is kept.
    pub turn_password: Option<SecretSource>,
}

impl IceConfig {
    /// Reads the TURN password, if one is configured, and tells the logger never to print it.
    pub fn load_turn_password(&self) -> Result<Option<Secret>, SecretError> {
        let Some(source) = &self.turn_password else {
            return Ok(None);
        };
        let secret = source.read("TURN password file")?;
        crate::logging::redact(secret.expose());
        Ok(Some(secret))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    pub source: CameraSource,
    pub device: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CameraSource {
    Auto,
    V4l2,
    Libcamera,
    Test,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VideoConfig {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub bitrate_kbps: u32,
    /// `"auto"` or a GStreamer element name.
    pub encoder: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MicrophoneConfig {
    pub source: MicrophoneSource,
    pub device: String,
    pub echo_cancellation: bool,
    pub noise_suppression: NoiseSuppression,
    pub gain_control: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MicrophoneSource {
    Alsa,
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoiseSuppression {
    Off,
    Low,
    Moderate,
    High,
    VeryHigh,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpeakerConfig {
    pub sink: SpeakerSink,
    pub device: String,
    /// The ALSA simple mixer control for the volume, or "auto".
    pub mixer: String,
    pub volume_percent: u8,
    pub volume_step_percent: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpeakerSink {
    Alsa,
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DisplayConfig {
    pub sink: DisplaySink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisplaySink {
    Kms,
    Window,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpioBackend {
    Gpio,
    Simulated,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pull {
    Up,
    Down,
    Off,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ButtonsConfig {
    pub backend: GpioBackend,
    pub optional: bool,
    pub active_low: bool,
    pub pull: Pull,
    pub debounce_ms: u32,
    pub long_press_ms: u32,
    pub pins: ButtonPins,
}

/// BCM GPIO numbers; `None` means that button is not wired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ButtonPins {
    pub mute: Option<u8>,
    pub hangup: Option<u8>,
    pub join: Option<u8>,
    pub volume_up: Option<u8>,
    pub volume_down: Option<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LedsConfig {
    pub backend: GpioBackend,
    pub optional: bool,
    pub active_low: bool,
    pub pins: LedPins,
}

/// BCM GPIO numbers; `None` means that LED is not wired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedPins {
    pub in_call: Option<u8>,
    pub muted: Option<u8>,
    pub status: Option<u8>,
}

impl LedPins {
    /// Whether any LED is wired.
    pub fn any(&self) -> bool {
        self.in_call.or(self.muted).or(self.status).is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    pub socket: PathBuf,
}

impl Default for Config {
    /// Must equal what `default.toml` says; `default_toml_parses_to_defaults` checks it.
    fn default() -> Self {
        Config {
            matrix: MatrixConfig {
                homeserver: Url::parse("https://matrix.example.org").expect("valid URL"),
                user_id: owned_user_id!("@meeting-room:example.org"),
                device_id: device_id!("ROOMD").to_owned(),
                display_name: "Meeting Room".to_owned(),
                login: LoginSecret::Password(SecretSource::Credential(
                    "matrix-password".to_owned(),
                )),
                state_dir: PathBuf::from("/var/lib/roomd"),
            },
            rooms: RoomsConfig {
                serve: vec![owned_room_alias_id!("#meeting-room:example.org").into()],
                invite_from: vec![Principal::Server(owned_server_name!("example.org"))],
            },
            calls: CallsConfig {
                join: JoinPolicy::Auto,
                answer_direct_calls: true,
                join_button_starts_call: true,
                join_button_prefers_element_call: true,
                direct_call_from: vec![Principal::Server(owned_server_name!("example.org"))],
                do_not_disturb_minutes: 30,
                conference_focus: None,
                livekit_service_url: None,
            },
            ice: IceConfig::default(),
            camera: CameraConfig {
                source: CameraSource::Auto,
                device: PathBuf::from("/dev/video0"),
            },
            video: VideoConfig {
                width: 1280,
                height: 720,
                framerate: 30,
                bitrate_kbps: 1500,
                encoder: "auto".to_owned(),
            },
            microphone: MicrophoneConfig {
                source: MicrophoneSource::Alsa,
                device: "default".to_owned(),
                echo_cancellation: true,
                noise_suppression: NoiseSuppression::Moderate,
                gain_control: true,
            },
            speaker: SpeakerConfig {
                sink: SpeakerSink::Alsa,
                device: "default".to_owned(),
                mixer: "auto".to_owned(),
                volume_percent: 70,
                volume_step_percent: 5,
            },
            display: DisplayConfig {
                sink: DisplaySink::Kms,
            },
            buttons: ButtonsConfig {
                backend: GpioBackend::Gpio,
                optional: true,
                active_low: true,
                pull: Pull::Up,
                debounce_ms: 30,
                long_press_ms: 1500,
                pins: ButtonPins {
                    mute: Some(17),
                    hangup: Some(27),
                    join: Some(22),
                    volume_up: Some(23),
                    volume_down: Some(24),
                },
            },
            leds: LedsConfig {
                backend: GpioBackend::Gpio,
                optional: true,
                active_low: false,
                pins: LedPins {
                    in_call: Some(5),
                    muted: Some(6),
                    status: Some(26),
                },
            },
            control: ControlConfig {
                socket: PathBuf::from("/run/roomd/control.sock"),
            },
        }
    }
}

/// A config that parsed, with whatever warnings it earned.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// A config that did not parse or does not make sense; every problem found, in file order.
#[derive(Debug)]
pub struct Invalid {
    pub diagnostics: Vec<Diagnostic>,
}

impl Config {
    /// Parses and checks `text`, collecting every problem rather than stopping at the first.
    pub fn parse(text: &str) -> Result<Loaded, Invalid> {
        let (config, spans, mut diagnostics) = read::read(text);
        diagnostics.extend(validate::validate(&config, &spans));
        // A warning about a value that is already an error adds nothing.
        let error_spans: Vec<_> = diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error && d.span.is_some())
            .map(|d| d.span.clone())
            .collect();
        diagnostics.retain(|d| d.severity == Severity::Error || !error_spans.contains(&d.span));
        diagnostics.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
        if diagnostics.iter().any(|d| d.severity == Severity::Error) {
            Err(Invalid { diagnostics })
        } else {
            Ok(Loaded {
                config,
                warnings: diagnostics,
            })
        }
    }

    /// Reads and checks the file at `path`. On failure the diagnostics render as
    /// `PATH:LINE:COL: ...` with [`Diagnostic::render`].
    pub fn load(path: &Path) -> Result<(String, Loaded), (String, Invalid)> {
        match std::fs::read_to_string(path) {
            Ok(text) => match Config::parse(&text) {
                Ok(loaded) => Ok((text, loaded)),
                Err(invalid) => Err((text, invalid)),
            },
            Err(e) => Err((
                String::new(),
                Invalid {
                    diagnostics: vec![Diagnostic::error(None, format!("cannot read: {e}"))],
                },
            )),
        }
    }

    /// One line for the admin: who the device is and what it will do.
    pub fn summary(&self) -> String {
        let m = &self.matrix;
        let join = match self.calls.join {
            JoinPolicy::Auto => "joins calls automatically",
            JoinPolicy::WhenRung => "joins calls when rung",
            JoinPolicy::Never => "never joins calls",
        };
        let rooms = self.rooms.serve.len();
        format!(
            "{} (device {}) on {}, serving {} room{}, {}",
            m.user_id,
            m.device_id,
            m.homeserver,
            rooms,
            if rooms == 1 { "" } else { "s" },
            join
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_toml_parses_to_exactly_the_defaults() {
        let loaded = Config::parse(DEFAULT_TOML).expect("the default file is valid");
        assert_eq!(loaded.config, Config::default());
    }
}
