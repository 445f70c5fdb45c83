//! `roomd media-check`: what the admin needs to know about this box's media before a call does.
//! The cameras and sound devices found, the encoder the probe chose (and why the others were
//! refused), any GStreamer element that is missing with the package that provides it, and
//! whether the configured devices can work.

use std::fmt::Write as _;

use serde::Serialize;
use v4l::video::Capture;

use super::devices::VideoFormat;
use super::encoder::{self, Choice};
use crate::config::{CameraSource, Config, DisplaySink, MicrophoneSource, SpeakerSink};

#[derive(Debug, Serialize)]
pub struct Report {
    pub cameras: Vec<CameraInfo>,
    pub alsa_capture: Vec<AlsaDevice>,
    pub alsa_playback: Vec<AlsaDevice>,
    pub encoder: Option<Choice>,
    pub encoder_error: Option<String>,
    pub missing_elements: Vec<MissingElement>,
    /// Why the configured devices cannot work; empty when they can.
    pub problems: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CameraInfo {
    pub device: String,
    pub name: String,
    pub formats: Vec<String>,
    pub can_capture: bool,
}

#[derive(Debug, Serialize)]
pub struct AlsaDevice {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct MissingElement {
    pub element: String,
    pub needed_for: String,
    pub package: String,
}

/// Elements every call needs, whatever the devices.
const ALWAYS: &[(&str, &str)] = &[
    ("webrtcbin", "WebRTC peer connections"),
    ("nicesrc", "ICE (network) for WebRTC"),
    ("nicesink", "ICE (network) for WebRTC"),
    ("rtph264pay", "sending video"),
    ("rtpopuspay", "sending audio"),
    ("opusenc", "encoding the microphone"),
    ("opusdec", "decoding remote audio"),
    ("h264parse", "sending and receiving video"),
    ("avdec_h264", "decoding remote video"),
    ("decodebin", "decoding remote media"),
    ("webrtcdsp", "echo cancellation and noise suppression"),
    ("webrtcechoprobe", "echo cancellation"),
    ("audiomixer", "mixing remote audio"),
    ("input-selector", "the camera-unavailable picture"),
    ("textoverlay", "the camera-unavailable picture"),
];

pub fn check(config: &Config) -> Report {
    let _ = gst::init();
    let mut problems = Vec::new();

    let mut needed: Vec<(&str, String)> = ALWAYS
        .iter()
        .map(|(e, why)| (*e, (*why).to_owned()))
        .collect();
    match config.camera.source {
        CameraSource::V4l2 => needed.push(("v4l2src", "the V4L2 camera".to_owned())),
        CameraSource::Libcamera => needed.push(("libcamerasrc", "the camera module".to_owned())),
        CameraSource::Auto | CameraSource::Test => {}
    }
    if config.microphone.source == MicrophoneSource::Alsa {
        needed.push(("alsasrc", "the ALSA microphone".to_owned()));
    }
    if config.speaker.sink == SpeakerSink::Alsa {
        needed.push(("alsasink", "the ALSA speaker".to_owned()));
    }
    match config.display.sink {
        DisplaySink::Kms => {
            needed.push(("kmssink", "the HDMI display".to_owned()));
            needed.push(("compositor", "the display's grid".to_owned()));
        }
        DisplaySink::Window => needed.push(("compositor", "the display's grid".to_owned())),
        DisplaySink::None => {}
    }
    let missing_elements: Vec<MissingElement> = needed
        .into_iter()
        .filter(|(e, _)| gst::ElementFactory::find(e).is_none())
        .map(|(e, why)| MissingElement {
            element: e.to_owned(),
            needed_for: why,
            package: encoder::package_of(e).to_owned(),
        })
        .collect();
    for m in &missing_elements {
        problems.push(format!(
            "GStreamer element {} is missing ({}; needed for {})",
            m.element, m.package, m.needed_for
        ));
    }

    let cameras = cameras();
    let device = config.camera.device.display().to_string();
    let usable = |c: &CameraInfo| c.can_capture && !c.formats.is_empty();
    match config.camera.source {
        CameraSource::V4l2 => match cameras.iter().find(|c| c.device == device) {
            None => problems.push(format!("camera {device} does not exist (camera.device)")),
            Some(c) if !usable(c) => {
                problems.push(format!("{device} is not a camera roomd can capture from"))
            }
            Some(_) => {}
        },
        CameraSource::Auto => {
            let v4l2 = cameras.iter().any(|c| c.device == device && usable(c));
            if !v4l2 && gst::ElementFactory::find("libcamerasrc").is_none() {
                problems.push(format!(
                    "no camera: {device} is not there and libcamera is not installed \
                     (calls will show \"camera unavailable\")"
                ));
            }
        }
        CameraSource::Libcamera | CameraSource::Test => {}
    }

    let alsa_capture = alsa_devices(alsa::Direction::Capture);
    let alsa_playback = alsa_devices(alsa::Direction::Playback);
    if config.microphone.source == MicrophoneSource::Alsa
        && let Err(e) = open_pcm(&config.microphone.device, alsa::Direction::Capture)
    {
        problems.push(format!(
            "the microphone {:?} cannot be opened: {e} (microphone.device)",
            config.microphone.device
        ));
    }
    if config.speaker.sink == SpeakerSink::Alsa
        && let Err(e) = open_pcm(&config.speaker.device, alsa::Direction::Playback)
    {
        problems.push(format!(
            "the speaker {:?} cannot be opened: {e} (speaker.device)",
            config.speaker.device
        ));
    }

    let format = VideoFormat {
        width: config.video.width,
        height: config.video.height,
        framerate: config.video.framerate,
    };
    let (encoder, encoder_error) =
        match encoder::probe(&config.video.encoder, format, config.video.bitrate_kbps) {
            Ok(choice) => (Some(choice), None),
            Err(e) => {
                problems.push(format!("{e:#}"));
                (None, Some(format!("{e:#}")))
            }
        };

    Report {
        cameras,
        alsa_capture,
        alsa_playback,
        encoder,
        encoder_error,
        missing_elements,
        problems,
    }
}

fn cameras() -> Vec<CameraInfo> {
    let mut nodes = v4l::context::enum_devices();
    nodes.sort_by_key(|n| n.index());
    nodes
        .into_iter()
        .map(|node| {
            let device = node.path().display().to_string();
            let name = node.name().unwrap_or_else(|| "?".to_owned());
            let opened = v4l::Device::with_path(node.path());
            let can_capture = opened.as_ref().is_ok_and(|d| {
                d.query_caps().is_ok_and(|c| {
                    c.capabilities
                        .contains(v4l::capability::Flags::VIDEO_CAPTURE)
                })
            });
            let formats = opened
                .ok()
                .and_then(|d| d.enum_formats().ok())
                .unwrap_or_default()
                .into_iter()
                .map(|f| format!("{} ({})", f.fourcc, f.description))
                .collect();
            CameraInfo {
                device,
                name,
                formats,
                can_capture,
            }
        })
        .collect()
}

fn alsa_devices(direction: alsa::Direction) -> Vec<AlsaDevice> {
    let Ok(hints) = alsa::device_name::HintIter::new_str(None, "pcm") else {
        return Vec::new();
    };
    hints
        .filter(|h| h.direction.is_none_or(|d| d == direction))
        .filter_map(|h| {
            Some(AlsaDevice {
                name: h.name?,
                description: h.desc.unwrap_or_default().replace('\n', " "),
            })
        })
        .collect()
}

fn open_pcm(device: &str, direction: alsa::Direction) -> Result<(), alsa::Error> {
    alsa::PCM::new(device, direction, true).map(|_| ())
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Cameras (V4L2):");
        if self.cameras.is_empty() {
            let _ = writeln!(out, "  none found");
        }
        for c in &self.cameras {
            let _ = writeln!(
                out,
                "  {} {}{}: {}",
                c.device,
                c.name,
                if c.can_capture {
                    ""
                } else {
                    " (cannot capture)"
                },
                if c.formats.is_empty() {
                    "no formats".to_owned()
                } else {
                    c.formats.join(", ")
                }
            );
        }
        for (title, devices) in [
            ("ALSA capture devices", &self.alsa_capture),
            ("ALSA playback devices", &self.alsa_playback),
        ] {
            let _ = writeln!(out, "{title}:");
            if devices.is_empty() {
                let _ = writeln!(out, "  none found");
            }
            for d in devices {
                let _ = writeln!(out, "  {} ({})", d.name, d.description);
            }
        }
        let _ = writeln!(out, "Video encoder:");
        match (&self.encoder, &self.encoder_error) {
            (Some(choice), _) => {
                let _ = writeln!(out, "  chosen: {}", choice.element);
                for r in &choice.refused {
                    let _ = writeln!(out, "  refused {}: {}", r.element, r.reason);
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "  none: {e}");
            }
            (None, None) => {}
        }
        if !self.missing_elements.is_empty() {
            let _ = writeln!(out, "Missing GStreamer elements:");
            for m in &self.missing_elements {
                let _ = writeln!(out, "  {} for {}: {}", m.element, m.needed_for, m.package);
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "OK: the configured devices can work");
        } else {
            let _ = writeln!(out, "Problems:");
            for p in &self.problems {
                let _ = writeln!(out, "  {p}");
            }
        }
        out
    }
}
