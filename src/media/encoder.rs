//! The H.264 encoder: chosen at start by really encoding a few frames, since an element that
//! exists can still fail on real data (Debian's avenc_h264_omx does). Output is what browsers
//! decode: constrained baseline, byte-stream, whole access units.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gst::prelude::*;

use super::devices::VideoFormat;

/// Tried in this order when the config says `auto`.
pub const CANDIDATES: [&str; 3] = ["v4l2h264enc", "x264enc", "openh264enc"];

/// Which encoder the probe chose, and why each other one was refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Choice {
    pub element: String,
    pub refused: Vec<Refusal>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    pub element: String,
    pub reason: String,
}

/// Where an element comes from, for the admin whose image lacks it.
pub fn package_of(element: &str) -> &'static str {
    match element {
        "x264enc" => "Debian gstreamer1.0-plugins-ugly; Yocto gstreamer1.0-plugins-ugly-x264",
        "openh264enc" => "Debian gstreamer1.0-plugins-bad; Yocto gstreamer1.0-plugins-bad-openh264",
        "v4l2h264enc" => {
            "registered only where a V4L2 H.264 encoder device exists (Raspberry Pi 4: \
             bcm2835-codec, /dev/video11); Debian gstreamer1.0-plugins-good; Yocto \
             gstreamer1.0-plugins-good-video4linux2"
        }
        "opusenc" | "opusdec" => {
            "Debian gstreamer1.0-plugins-base; Yocto gstreamer1.0-plugins-base-opus"
        }
        "webrtcbin" => "Debian gstreamer1.0-plugins-bad; Yocto gstreamer1.0-plugins-bad-webrtc",
        "nicesrc" | "nicesink" => "Debian gstreamer1.0-nice; Yocto libnice",
        "webrtcdsp" | "webrtcechoprobe" => {
            "Debian gstreamer1.0-plugins-bad; Yocto gstreamer1.0-plugins-bad-webrtcdsp"
        }
        "avdec_h264" => "Debian gstreamer1.0-libav; Yocto gstreamer1.0-libav",
        "alsasrc" | "alsasink" => "Debian gstreamer1.0-alsa; Yocto gstreamer1.0-plugins-base-alsa",
        "v4l2src" => {
            "Debian gstreamer1.0-plugins-good; Yocto gstreamer1.0-plugins-good-video4linux2"
        }
        "kmssink" => "Debian gstreamer1.0-plugins-bad; Yocto gstreamer1.0-plugins-bad-kms",
        "libcamerasrc" => "Debian gstreamer1.0-libcamera; Yocto libcamera-gst",
        "textoverlay" => "Debian gstreamer1.0-x; Yocto gstreamer1.0-plugins-base-pango",
        _ => "Debian gstreamer1.0-plugins-{base,good,bad}",
    }
}

/// The encoder and the caps after it, as a launch description.
pub fn description(element: &str, format: VideoFormat, bitrate_kbps: u32) -> String {
    let gop = format.framerate * 2;
    let h264 = "video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au";
    // An explicit capsfilter: bare caps cannot end a bin description.
    match element {
        "x264enc" => format!(
            "x264enc tune=zerolatency speed-preset=ultrafast bitrate={bitrate_kbps} \
             key-int-max={gop} ! capsfilter caps=\"{h264}\""
        ),
        "openh264enc" => format!(
            "openh264enc bitrate={} rate-control=bitrate complexity=low gop-size={gop} \
             ! capsfilter caps=\"{h264}\"",
            bitrate_kbps * 1000
        ),
        // The Pi's encoder takes profile and level from the caps; without a level it picks one
        // too small for 720p.
        "v4l2h264enc" => format!(
            "v4l2h264enc extra-controls=\"controls,repeat_sequence_header=1,video_bitrate={},\
             h264_i_frame_period={gop}\" ! capsfilter caps=\"{h264},level=(string)4\"",
            bitrate_kbps * 1000
        ),
        other => format!("{other} ! capsfilter caps=\"{h264}\""),
    }
}

/// Builds the chosen encoder as a bin (raw I420 in, H.264 out).
pub fn build(element: &str, format: VideoFormat, bitrate_kbps: u32) -> anyhow::Result<gst::Bin> {
    let bin = gst::parse::bin_from_description(&description(element, format, bitrate_kbps), true)
        .with_context(|| format!("building the {element} encoder"))?;
    bin.set_property("name", "video-encoder");
    Ok(bin)
}

/// Tries `element` on a few frames of the configured size.
pub fn try_encoder(element: &str, format: VideoFormat, bitrate_kbps: u32) -> anyhow::Result<()> {
    if gst::ElementFactory::find(element).is_none() {
        bail!("not installed ({})", package_of(element));
    }
    let launch = format!(
        "videotestsrc num-buffers=10 ! video/x-raw,format=I420,width={},height={},framerate={}/1 \
         ! {} ! fakesink",
        format.width,
        format.height,
        format.framerate,
        description(element, format, bitrate_kbps)
    );
    let pipeline = gst::parse::launch(&launch)?;
    let result = run_to_eos(&pipeline, Duration::from_secs(10));
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run_to_eos(pipeline: &gst::Element, limit: Duration) -> anyhow::Result<()> {
    let bus = pipeline.bus().context("a pipeline has a bus")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| anyhow::anyhow!("would not start"))?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(e) => bail!("{}", e.error()),
            _ => {}
        }
    }
    bail!("did not encode 10 frames within {limit:?}")
}

/// Picks the encoder: the one the config names, or the first candidate that works.
pub fn probe(configured: &str, format: VideoFormat, bitrate_kbps: u32) -> anyhow::Result<Choice> {
    let candidates: Vec<&str> = if configured == "auto" {
        CANDIDATES.to_vec()
    } else {
        vec![configured]
    };
    let mut refused = Vec::new();
    for element in candidates {
        match try_encoder(element, format, bitrate_kbps) {
            Ok(()) => {
                return Ok(Choice {
                    element: element.to_owned(),
                    refused,
                });
            }
            Err(e) => refused.push(Refusal {
                element: element.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
    let reasons: Vec<String> = refused
        .iter()
        .map(|r| format!("{}: {}", r.element, r.reason))
        .collect();
    bail!("no H.264 encoder works: {}", reasons.join("; "))
}
