//! The hardware, behind small traits: each device builds the GStreamer bin that stands for it.
//! Every device has a simulated twin that is always compiled, so the whole engine runs here.

use std::path::PathBuf;

use anyhow::Context;
use gst::prelude::*;

use crate::config::{self, Config};

/// The video size and rate the engine sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
}

/// A camera: a bin with one `src` pad giving raw video (any format; the engine converts).
pub trait Camera: Send + Sync {
    fn name(&self) -> String;
    fn build(&self, format: VideoFormat) -> anyhow::Result<gst::Bin>;
}

/// A microphone: a bin with one `src` pad giving raw audio.
pub trait Microphone: Send + Sync {
    fn name(&self) -> String;
    fn build(&self) -> anyhow::Result<gst::Bin>;
}

/// A speaker: a bin with one `sink` pad taking raw audio.
pub trait Speaker: Send + Sync {
    fn name(&self) -> String;
    fn build(&self) -> anyhow::Result<gst::Bin>;
}

/// A display: a bin with one `sink` pad taking raw video, or none at all (headless).
pub trait Display: Send + Sync {
    fn name(&self) -> String;
    fn build(&self) -> anyhow::Result<Option<gst::Bin>>;
}

fn bin(description: &str, name: &str) -> anyhow::Result<gst::Bin> {
    let bin = gst::parse::bin_from_description(description, true)
        .with_context(|| format!("building `{description}`"))?;
    bin.set_property("name", name);
    Ok(bin)
}

/// A V4L2 camera (UVC webcams: raw or MJPEG, whichever the camera offers at the size).
pub struct V4l2Camera {
    pub device: PathBuf,
}

impl Camera for V4l2Camera {
    fn name(&self) -> String {
        format!("V4L2 camera {}", self.device.display())
    }

    fn build(&self, f: VideoFormat) -> anyhow::Result<gst::Bin> {
        // decodebin takes raw or MJPEG alike.
        bin(
            &format!(
                "v4l2src device={} ! capsfilter caps=\"image/jpeg,width={w},height={h};\
                 video/x-raw,width={w},height={h}\" ! decodebin",
                self.device.display(),
                w = f.width,
                h = f.height
            ),
            "camera",
        )
    }
}

/// A Raspberry Pi camera module through libcamera.
pub struct LibCamera;

impl Camera for LibCamera {
    fn name(&self) -> String {
        "libcamera camera".to_owned()
    }

    fn build(&self, f: VideoFormat) -> anyhow::Result<gst::Bin> {
        bin(
            &format!(
                "libcamerasrc ! video/x-raw,width={},height={},format=NV12",
                f.width, f.height
            ),
            "camera",
        )
    }
}

/// A moving test pattern with a running clock: the simulated camera.
pub struct TestPattern;

impl Camera for TestPattern {
    fn name(&self) -> String {
        "test pattern".to_owned()
    }

    fn build(&self, f: VideoFormat) -> anyhow::Result<gst::Bin> {
        bin(
            &format!(
                "videotestsrc is-live=true pattern=ball ! video/x-raw,width={},height={},\
                 framerate={}/1 ! clockoverlay halignment=right valignment=bottom",
                f.width, f.height, f.framerate
            ),
            "camera",
        )
    }
}

/// An ALSA capture device.
pub struct AlsaMicrophone {
    pub device: String,
}

impl Microphone for AlsaMicrophone {
    fn name(&self) -> String {
        format!("ALSA capture {}", self.device)
    }

    fn build(&self) -> anyhow::Result<gst::Bin> {
        // 40 ms of buffer in 10 ms periods: conversation, not the 200 ms default.
        bin(
            &format!(
                "alsasrc device={:?} buffer-time=40000 latency-time=10000",
                self.device
            ),
            "microphone",
        )
    }
}

/// A 440 Hz tone: the simulated microphone.
pub struct TestTone;

impl Microphone for TestTone {
    fn name(&self) -> String {
        "test tone".to_owned()
    }

    fn build(&self) -> anyhow::Result<gst::Bin> {
        bin(
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 samplesperbuffer=480",
            "microphone",
        )
    }
}

pub struct AlsaSpeaker {
    pub device: String,
}

impl Speaker for AlsaSpeaker {
    fn name(&self) -> String {
        format!("ALSA playback {}", self.device)
    }

    fn build(&self) -> anyhow::Result<gst::Bin> {
        bin(
            &format!(
                "alsasink device={:?} buffer-time=40000 latency-time=10000",
                self.device
            ),
            "speaker",
        )
    }
}

/// Discards the call's sound, at the pace a speaker would play it.
pub struct NullSpeaker;

impl Speaker for NullSpeaker {
    fn name(&self) -> String {
        "no speaker".to_owned()
    }

    fn build(&self) -> anyhow::Result<gst::Bin> {
        bin("fakesink sync=true", "speaker")
    }
}

/// HDMI through KMS, no desktop needed.
pub struct KmsDisplay;

impl Display for KmsDisplay {
    fn name(&self) -> String {
        "KMS display".to_owned()
    }

    fn build(&self) -> anyhow::Result<Option<gst::Bin>> {
        bin("videoconvert ! kmssink sync=false", "display").map(Some)
    }
}

/// A window on a desktop.
pub struct WindowDisplay;

impl Display for WindowDisplay {
    fn name(&self) -> String {
        "window".to_owned()
    }

    fn build(&self) -> anyhow::Result<Option<gst::Bin>> {
        bin("videoconvert ! autovideosink sync=false", "display").map(Some)
    }
}

/// Headless: remote video is decoded and counted, not shown.
pub struct NoDisplay;

impl Display for NoDisplay {
    fn name(&self) -> String {
        "no display".to_owned()
    }

    fn build(&self) -> anyhow::Result<Option<gst::Bin>> {
        Ok(None)
    }
}

/// The devices a config names.
pub struct Devices {
    pub camera: Box<dyn Camera>,
    pub microphone: Box<dyn Microphone>,
    pub speaker: Box<dyn Speaker>,
    pub display: Box<dyn Display>,
}

impl Devices {
    pub fn from_config(config: &Config) -> Devices {
        let camera: Box<dyn Camera> = match config.camera.source {
            config::CameraSource::V4l2 => Box::new(V4l2Camera {
                device: config.camera.device.clone(),
            }),
            config::CameraSource::Libcamera => Box::new(LibCamera),
            config::CameraSource::Test => Box::new(TestPattern),
            config::CameraSource::Auto => auto_camera(&config.camera.device),
        };
        let microphone: Box<dyn Microphone> = match config.microphone.source {
            config::MicrophoneSource::Alsa => Box::new(AlsaMicrophone {
                device: config.microphone.device.clone(),
            }),
            config::MicrophoneSource::Test => Box::new(TestTone),
        };
        let speaker: Box<dyn Speaker> = match config.speaker.sink {
            config::SpeakerSink::Alsa => Box::new(AlsaSpeaker {
                device: config.speaker.device.clone(),
            }),
            config::SpeakerSink::Null => Box::new(NullSpeaker),
        };
        let display: Box<dyn Display> = match config.display.sink {
            config::DisplaySink::Kms => Box::new(KmsDisplay),
            config::DisplaySink::Window => Box::new(WindowDisplay),
            config::DisplaySink::None => Box::new(NoDisplay),
        };
        Devices {
            camera,
            microphone,
            speaker,
            display,
        }
    }

    /// Everything simulated: test pattern, test tone, no speaker, no display.
    pub fn simulated() -> Devices {
        Devices {
            camera: Box::new(TestPattern),
            microphone: Box::new(TestTone),
            speaker: Box::new(NullSpeaker),
            display: Box::new(NoDisplay),
        }
    }
}

/// `auto`: the configured V4L2 camera if it is there, else libcamera if installed. With neither,
/// the V4L2 camera all the same: the call then shows "camera unavailable" rather than a fake.
fn auto_camera(device: &std::path::Path) -> Box<dyn Camera> {
    if device.exists() {
        return Box::new(V4l2Camera {
            device: device.to_owned(),
        });
    }
    if gst::ElementFactory::find("libcamerasrc").is_some() {
        return Box::new(LibCamera);
    }
    Box::new(V4l2Camera {
        device: device.to_owned(),
    })
}
