//! A remote participant made of a second webrtcbin, for roomd's in-process media tests: it sends
//! a test pattern (H.264) and a 880 Hz tone (Opus) the way a browser would, and measures what
//! it decodes from roomd: frames, and the loudness of every audio buffer as it arrives.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, anyhow};
use gst::prelude::*;

/// What the remote says to roomd.
#[derive(Debug, Clone)]
pub enum Signal {
    Description { offer: bool, sdp: String },
    Candidate { mline: u32, candidate: String },
}

pub struct WebrtcPeer {
    pub pipeline: gst::Pipeline,
    webrtc: gst::Element,
    _ice_agent: Option<gst_webrtc::WebRTCICE>,
    pub signals: Receiver<Signal>,
    signal_tx: Sender<Signal>,
    sinks: Mutex<Vec<gst::Pad>>,
    pub video_frames: Arc<AtomicU64>,
    /// Per decoded audio buffer: when it arrived and its RMS level in dBFS.
    pub audio_levels: Arc<Mutex<Vec<(Instant, f64)>>>,
}

const AUDIO_PT: u32 = 111;
const VIDEO_PT: u32 = 96;

impl WebrtcPeer {
    /// `jitter_ms`: the receive jitter buffer, as a browser would keep on a quiet network.
    pub fn new(name: &str, jitter_ms: u32) -> anyhow::Result<WebrtcPeer> {
        gst::init()?;
        let pipeline = gst::Pipeline::builder().name(name).build();
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name("webrtc")
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", jitter_ms)
            .build()?;
        pipeline.add(&webrtc)?;
        let ice_agent = webrtc.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent");
        if let Some(agent) = &ice_agent {
            disable_upnp(agent);
        }
        let (signal_tx, signals) = channel();
        {
            let tx = signal_tx.clone();
            webrtc.connect("on-ice-candidate", false, move |values| {
                let mline = values[1].get::<u32>().unwrap_or(0);
                let candidate = values[2].get::<String>().unwrap_or_default();
                let _ = tx.send(Signal::Candidate { mline, candidate });
                None
            });
        }
        let video_frames = Arc::new(AtomicU64::new(0));
        let audio_levels = Arc::new(Mutex::new(Vec::new()));
        {
            let (frames, levels) = (video_frames.clone(), audio_levels.clone());
            let weak = pipeline.downgrade();
            webrtc.connect_pad_added(move |_, pad| {
                if pad.direction() != gst::PadDirection::Src {
                    return;
                }
                let Some(pipeline) = weak.upgrade() else { return };
                let decodebin = gst::ElementFactory::make("decodebin").build().unwrap();
                pipeline.add(&decodebin).unwrap();
                decodebin.sync_state_with_parent().unwrap();
                pad.link(&decodebin.static_pad("sink").unwrap()).unwrap();
                let (frames, levels) = (frames.clone(), levels.clone());
                let weak = pipeline.downgrade();
                decodebin.connect_pad_added(move |_, raw| {
                    let Some(pipeline) = weak.upgrade() else { return };
                    let caps = raw.current_caps().unwrap_or_else(|| raw.query_caps(None));
                    let video = caps
                        .structure(0)
                        .is_some_and(|s| s.name().starts_with("video/"));
                    if video {
                        let sink = gst::ElementFactory::make("fakesink")
                            .property("sync", false)
                            .build()
                            .unwrap();
                        pipeline.add(&sink).unwrap();
                        sink.sync_state_with_parent().unwrap();
                        raw.link(&sink.static_pad("sink").unwrap()).unwrap();
                        let frames = frames.clone();
                        raw.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                            frames.fetch_add(1, Ordering::Relaxed);
                            gst::PadProbeReturn::Ok
                        });
                    } else {
                        let chain = gst::parse::bin_from_description(
                            "audioconvert ! audio/x-raw,format=F32LE,channels=1 ! fakesink name=ears sync=false",
                            true,
                        )
                        .unwrap();
                        pipeline.add(&chain).unwrap();
                        chain.sync_state_with_parent().unwrap();
                        raw.link(&chain.static_pad("sink").unwrap()).unwrap();
                        let ears = chain.by_name("ears").unwrap().static_pad("sink").unwrap();
                        let levels = levels.clone();
                        ears.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                            if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data
                                && let Ok(map) = buffer.map_readable()
                            {
                                let samples: Vec<f32> = map
                                    .chunks_exact(4)
                                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                                    .collect();
                                levels.lock().unwrap().push((Instant::now(), dbfs(&samples)));
                            }
                            gst::PadProbeReturn::Ok
                        });
                    }
                });
            });
        }
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("the remote peer would not start"))?;
        Ok(WebrtcPeer {
            pipeline,
            webrtc,
            _ice_agent: ice_agent,
            signals,
            signal_tx,
            sinks: Mutex::new(Vec::new()),
            video_frames,
            audio_levels,
        })
    }

    /// Adds the sending branches and links them to webrtcbin. Done when offering, or after the
    /// answer is made: webrtcbin 1.22 matches an offer against the caps already flowing in its
    /// pads (SPS, stereo flags), and those never match another encoder's offer.
    /// `attach: false` only makes the sink pads and their transceivers, for an answer.
    fn link_branches(&self, attach: bool) -> anyhow::Result<()> {
        let branches = [
            (
                0,
                format!(
                    "audiotestsrc is-live=true wave=sine freq=880 volume=0.3 samplesperbuffer=480 \
                     ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! opusenc \
                     ! rtpopuspay pt={AUDIO_PT} ! queue"
                ),
                format!(
                    "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload={AUDIO_PT}"
                ),
            ),
            (
                1,
                format!(
                    "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=640,height=360,framerate=30/1 \
                     ! videoconvert ! video/x-raw,format=I420 \
                     ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=800 \
                     ! video/x-h264,profile=constrained-baseline \
                     ! rtph264pay config-interval=-1 aggregate-mode=zero-latency pt={VIDEO_PT} ! queue"
                ),
                format!(
                    "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload={VIDEO_PT},\
                     packetization-mode=(string)1"
                ),
            ),
        ];
        let mut sinks = self.sinks.lock().unwrap();
        for (line, launch, caps) in branches {
            let sink = match sinks.get(line) {
                Some(sink) => sink.clone(),
                None => {
                    let sink = self
                        .webrtc
                        .request_pad_simple(&format!("sink_{line}"))
                        .context("a webrtcbin sink pad")?;
                    let t = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
                    t.set_property(
                        "direction",
                        gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
                    );
                    t.set_property("codec-preferences", gst::Caps::from_str(&caps)?);
                    sinks.push(sink.clone());
                    sink
                }
            };
            if !attach {
                continue;
            }
            let branch = gst::parse::bin_from_description(&launch, true)?;
            self.pipeline.add(&branch)?;
            branch
                .static_pad("src")
                .context("a branch output")?
                .link(&sink)?;
            branch.sync_state_with_parent()?;
        }
        Ok(())
    }

    /// Makes an offer (the remote calls roomd); it arrives on `signals`.
    pub fn offer(&self) {
        self.link_branches(true)
            .expect("the remote's branches link");
        let tx = self.signal_tx.clone();
        let w = self.webrtc.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            let desc = reply
                .ok()
                .flatten()
                .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("offer").ok())
                .expect("an offer");
            w.emit_by_name::<()>("set-local-description", &[&desc, &None::<gst::Promise>]);
            let _ = tx.send(Signal::Description {
                offer: true,
                sdp: desc.sdp().as_text().unwrap(),
            });
        });
        self.webrtc
            .emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    }

    /// Takes roomd's description; an offer is answered (on `signals`).
    pub fn take_description(&self, offer: bool, sdp: &str) -> anyhow::Result<()> {
        let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())?;
        let kind = if offer {
            gst_webrtc::WebRTCSDPType::Offer
        } else {
            gst_webrtc::WebRTCSDPType::Answer
        };
        let desc = gst_webrtc::WebRTCSessionDescription::new(kind, message);
        if offer {
            self.link_branches(false)?;
        }
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&desc, &None::<gst::Promise>]);
        if offer {
            let promise = gst::Promise::new();
            self.webrtc
                .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
            promise.wait();
            let desc = promise
                .get_reply()
                .and_then(|r| r.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok())
                .context("an answer")?;
            self.webrtc
                .emit_by_name::<()>("set-local-description", &[&desc, &None::<gst::Promise>]);
            let _ = self.signal_tx.send(Signal::Description {
                offer: false,
                sdp: desc.sdp().as_text()?,
            });
            self.link_branches(true)?;
        }
        Ok(())
    }

    pub fn take_candidate(&self, mline: u32, candidate: &str) {
        self.webrtc
            .emit_by_name::<()>("add-ice-candidate", &[&mline, &candidate]);
    }

    /// Frames decoded so far.
    pub fn frames(&self) -> u64 {
        self.video_frames.load(Ordering::Relaxed)
    }

    /// The mean level (dBFS) of the audio that arrived after `from`.
    pub fn level_since(&self, from: Instant) -> Option<f64> {
        let levels = self.audio_levels.lock().unwrap();
        let recent: Vec<f64> = levels
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, db)| *db)
            .collect();
        (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64)
    }
}

impl Drop for WebrtcPeer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Turns off libnice's UPnP port mapping, as roomd does: nothing here needs it, and its probing
/// once raised a GLib critical ("Address already in use", then g_hash_table_foreach).
fn disable_upnp(ice: &gst_webrtc::WebRTCICE) {
    if ice.find_property("agent").is_none() {
        return;
    }
    if let Some(nice) = ice.property::<Option<gst::glib::Object>>("agent")
        && nice.find_property("upnp").is_some()
    {
        nice.set_property("upnp", false);
    }
}

/// RMS of `samples` in dBFS (full scale 1.0); silence is -200.
pub fn dbfs(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return -200.0;
    }
    let mean_square = samples
        .iter()
        .map(|s| (*s as f64) * (*s as f64))
        .sum::<f64>()
        / samples.len() as f64;
    if mean_square <= 0.0 {
        -200.0
    } else {
        10.0 * mean_square.log10()
    }
}
