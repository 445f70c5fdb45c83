//! One call's pipeline: the camera and microphone encoded once into tees, every peer branching
//! off them, and every peer's decoded media mixed into the speaker and laid out on the display.
//! It exists while the call has peers, so nothing (camera light, threads, memory) outlives it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use gst::prelude::*;

use super::devices::{Devices, VideoFormat};
use super::elements::{add_linked, caps_filter, make};
use super::encoder;
use super::ice::IceServers;
use super::mailbox::Post;
use super::peer::{EventSink, Peer, PeerContext};
use crate::config::NoiseSuppression;
use roomd_core::media::{MediaEvent, PeerId, PeerStats};

/// What the engine needs from the config to build a call.
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub format: VideoFormat,
    pub bitrate_kbps: u32,
    pub echo_cancellation: bool,
    pub noise_suppression: NoiseSuppression,
    pub gain_control: bool,
    pub jitter_latency_ms: u32,
    pub extra_local_addresses: Vec<String>,
}

/// Keyframe requests closer together than this are merged (every peer's PLI would otherwise
/// make its own keyframe).
const KEYFRAME_MIN_INTERVAL: Duration = Duration::from_millis(500);
const DISPLAY_SIZE: (u32, u32) = (1280, 720);
/// How long a removed peer's branches may take to go idle before it is removed anyway.
const DETACH_LIMIT: Duration = Duration::from_secs(2);

pub struct Call {
    pipeline: gst::Pipeline,
    video_tee: gst::Element,
    audio_tee: gst::Element,
    mute: gst::Element,
    selector: gst::Element,
    camera_pad: gst::Pad,
    slate_pad: gst::Pad,
    slate_text: gst::Element,
    camera_failed: Arc<AtomicBool>,
    camera_off: bool,
    ctx: PeerContext,
    peers: BTreeMap<PeerId, Peer>,
    /// Removed peers whose branches are being cut off the tees, and since when.
    leaving: Vec<(Peer, Instant)>,
    /// Where GStreamer's threads tell the engine that an answer or a detach is done.
    post: Post,
    stop_bus: Arc<AtomicBool>,
    bus_thread: Option<JoinHandle<()>>,
}

fn raw_video(f: VideoFormat) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", f.width as i32)
        .field("height", f.height as i32)
        .field("framerate", gst::Fraction::new(f.framerate as i32, 1))
        .build()
}

/// The format webrtcdsp and webrtcechoprobe both work in.
fn dsp_audio() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", 48000i32)
        .field("channels", 1i32)
        .build()
}

impl Call {
    /// `slow_peer`: test only, see `TestHooks::slow_peer`.
    pub fn start(
        devices: &Devices,
        settings: &MediaSettings,
        encoder_element: &str,
        events: EventSink,
        post: Post,
        slow_peer: Option<(String, Duration)>,
    ) -> anyhow::Result<Call> {
        let pipeline = gst::Pipeline::builder().name("call").build();
        // Playout first: the echo probe must exist before the DSP's sink pad activates.
        let (mixer, compositor) = build_playout(&pipeline, devices)?;
        let (audio_tee, mute) = build_microphone(&pipeline, devices, settings)?;
        let video = build_video(&pipeline, devices, settings, encoder_element)?;

        let camera_failed = Arc::new(AtomicBool::new(false));
        let stop_bus = Arc::new(AtomicBool::new(false));
        let bus_thread = spawn_bus_watch(
            &pipeline,
            events.clone(),
            video.camera.clone(),
            video.selector.clone(),
            video.slate_pad.clone(),
            video.slate_text.clone(),
            camera_failed.clone(),
            stop_bus.clone(),
        )?;

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| anyhow!("the call's pipeline would not start; see the errors above"))?;
        let ctx = PeerContext {
            events,
            pipeline: pipeline.clone(),
            mixer,
            compositor,
            display_size: DISPLAY_SIZE,
            jitter_latency_ms: settings.jitter_latency_ms,
            extra_local_addresses: settings.extra_local_addresses.clone(),
            ice: IceServers::default(),
            slow_peer,
        };
        Ok(Call {
            pipeline,
            video_tee: video.tee,
            audio_tee,
            mute,
            selector: video.selector,
            camera_pad: video.camera_pad,
            slate_pad: video.slate_pad,
            slate_text: video.slate_text,
            camera_failed,
            camera_off: false,
            ctx,
            peers: BTreeMap::new(),
            leaving: Vec::new(),
            post,
            stop_bus,
            bus_thread: Some(bus_thread),
        })
    }

    /// The STUN and TURN servers for the peers added from now on.
    pub fn set_ice_servers(&mut self, ice: IceServers) {
        self.ctx.ice = ice;
    }

    pub fn has_peer(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    pub fn peer(&self, peer: &PeerId) -> Option<&Peer> {
        self.peers.get(peer)
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Starts a peer. An offer is made with our media already flowing into it; an answer must be
    /// made first (see `Peer::answer`), so its media is linked in at [`Call::on_answered`].
    /// `serial`: new for every peer the engine makes, so that word about a peer of an earlier
    /// call can never be taken for one of this call's.
    pub fn add_peer(
        &mut self,
        id: PeerId,
        serial: u64,
        remote_offer: Option<&str>,
        stream_id: &str,
    ) -> anyhow::Result<()> {
        let post = self.post.clone();
        let on_answered = Box::new(move || post.answered(serial));
        let peer = Peer::start(
            &self.ctx,
            id.clone(),
            serial,
            remote_offer,
            stream_id,
            on_answered,
        )?;
        if remote_offer.is_none()
            && let Err(e) = self.link_media(&peer)
        {
            self.finish_removal(peer);
            return Err(e);
        }
        self.peers.insert(id, peer);
        self.relayout();
        Ok(())
    }

    /// The answer of peer `serial` is set: branches our encoded streams into it. An error names
    /// the peer, which cannot go on.
    pub fn on_answered(&mut self, serial: u64) -> Result<(), (PeerId, anyhow::Error)> {
        let Some(peer) = self.peers.values().find(|p| p.serial == serial) else {
            return Ok(()); // removed meanwhile
        };
        self.link_media(peer).map_err(|e| (peer.id.clone(), e))
    }

    /// Branches the encoded streams into `peer` without disturbing the others.
    fn link_media(&self, peer: &Peer) -> anyhow::Result<()> {
        for (tee, input) in [
            (&self.audio_tee, &peer.audio_in),
            (&self.video_tee, &peer.video_in),
        ] {
            let src = tee
                .request_pad_simple("src_%u")
                .ok_or_else(|| anyhow!("the tee gave no pad"))?;
            src.link(input)?;
        }
        Ok(())
    }

    /// Cuts the peer off the tees once no buffer or event is passing (idle probes, which report
    /// to the engine's thread: see [`Call::on_detached`]), without waiting for that here.
    pub fn remove_peer(&mut self, id: &PeerId) -> bool {
        let Some(peer) = self.peers.remove(id) else {
            return false;
        };
        let linked: Vec<(gst::Pad, gst::Pad)> = [&peer.audio_in, &peer.video_in]
            .into_iter()
            .filter_map(|input| input.peer().map(|src| (src, input.clone())))
            .collect();
        if linked.is_empty() {
            self.finish_removal(peer);
            return true;
        }
        let left = Arc::new(AtomicUsize::new(linked.len()));
        let serial = peer.serial;
        self.leaving.push((peer, Instant::now()));
        for (src, sink) in linked {
            detach_when_idle(&src, sink, left.clone(), self.post.clone(), serial);
        }
        true
    }

    /// Peer `serial`'s branches are off the tees: stops it and frees its pads.
    pub fn on_detached(&mut self, serial: u64) {
        if let Some(i) = self.leaving.iter().position(|(p, _)| p.serial == serial) {
            let (peer, _) = self.leaving.remove(i);
            self.finish_removal(peer);
        }
    }

    /// Every second or so: removes peers whose branches never went idle, and asks every peer's
    /// webrtcbin for its statistics.
    pub fn tick(&mut self, now: Instant) {
        let (late, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.leaving)
            .into_iter()
            .partition(|(_, since)| now.saturating_duration_since(*since) >= DETACH_LIMIT);
        self.leaving = waiting;
        for (peer, _) in late {
            log::warn!(
                "media: {}'s branch did not go idle; removing it anyway",
                peer.id
            );
            self.finish_removal(peer);
        }
        for peer in self.peers.values() {
            peer.collect_stats();
        }
    }

    /// Stops a peer's bin, then frees its pads on the shared mixer and compositor.
    fn finish_removal(&mut self, peer: Peer) {
        let _ = peer.bin.set_state(gst::State::Null);
        for (owner, pad) in peer.outputs.lock().unwrap().drain(..) {
            if let Some(src) = pad.peer() {
                let _ = src.unlink(&pad);
            }
            owner.release_request_pad(&pad);
        }
        let _ = self.pipeline.remove(&peer.bin);
        self.relayout();
    }

    fn relayout(&self) {
        if let Some(compositor) = &self.ctx.compositor {
            super::layout::tile(compositor, DISPLAY_SIZE);
        }
    }

    /// Mutes before the encoder; reports once a buffer has passed the new setting.
    pub fn set_mic_muted(&self, muted: bool) {
        self.mute.set_property("mute", muted);
        confirm_after_next_buffer(
            &self.mute,
            self.ctx.events.clone(),
            MediaEvent::MicMuted(muted),
        );
    }

    pub fn set_camera_off(&mut self, off: bool) {
        self.camera_off = off;
        let failed = self.camera_failed.load(Ordering::SeqCst);
        let (pad, text) = match (off, failed) {
            (true, _) => (&self.slate_pad, "Camera off"),
            (false, true) => (&self.slate_pad, "Camera unavailable"),
            (false, false) => (&self.camera_pad, ""),
        };
        self.slate_text.set_property("text", text);
        self.selector.set_property("active-pad", pad);
        confirm_after_next_buffer(
            &self.video_tee,
            self.ctx.events.clone(),
            MediaEvent::CameraOff(off),
        );
    }

    pub fn stats(&self, now: Instant) -> Vec<PeerStats> {
        self.peers.values().map(|p| p.stats(now)).collect()
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        // Each peer's callbacks hold the pipeline (through their context), and the pipeline
        // holds the peer: out of the pipeline, both can be freed.
        for peer in self
            .peers
            .values()
            .chain(self.leaving.iter().map(|(p, _)| p))
        {
            let _ = self.pipeline.remove(&peer.bin);
        }
        self.stop_bus.store(true, Ordering::SeqCst);
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
    }
}

/// Unlinks a tee's request pad from `sink` and releases it, from an idle probe so nothing is in
/// flight through it; the last of a peer's branches to go tells the engine's thread.
fn detach_when_idle(
    src: &gst::Pad,
    sink: gst::Pad,
    left: Arc<AtomicUsize>,
    post: Post,
    serial: u64,
) {
    let once = AtomicBool::new(false);
    src.add_probe(gst::PadProbeType::IDLE, move |pad, _| {
        if once.swap(true, Ordering::SeqCst) {
            return gst::PadProbeReturn::Remove;
        }
        let _ = pad.unlink(&sink);
        if let Some(tee) = pad.parent_element() {
            tee.release_request_pad(pad);
        }
        if left.fetch_sub(1, Ordering::SeqCst) == 1 {
            post.detached(serial);
        }
        gst::PadProbeReturn::Remove
    });
}

/// A one-shot probe: `event` once the next buffer has left `element`.
fn confirm_after_next_buffer(element: &gst::Element, events: EventSink, event: MediaEvent) {
    let Some(pad) = element
        .static_pad("src")
        .or_else(|| element.src_pads().into_iter().next())
    else {
        events(event);
        return;
    };
    let event = Mutex::new(Some(event));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        if let Some(e) = event.lock().unwrap().take() {
            events(e);
        }
        gst::PadProbeReturn::Remove
    });
}

/// silence ! audiomixer ! webrtcechoprobe ! speaker; and the display's compositor.
fn build_playout(
    pipeline: &gst::Pipeline,
    devices: &Devices,
) -> anyhow::Result<(gst::Element, Option<gst::Element>)> {
    // A silent input keeps the mixer (and so the echo probe) running with no peers yet.
    let silence = gst::ElementFactory::make("audiotestsrc")
        .name("silence")
        .property("is-live", true)
        .property_from_str("wave", "silence")
        .build()?;
    let mixer = make("audiomixer", "mixer")?;
    let convert = make("audioconvert", "playout-convert")?;
    let resample = make("audioresample", "playout-resample")?;
    let caps = caps_filter("playout-caps", dsp_audio())?;
    let probe = make("webrtcechoprobe", "echoprobe")?;
    let out_convert = make("audioconvert", "speaker-convert")?;
    let speaker = devices.speaker.build()?;
    add_linked(
        pipeline,
        &[
            &silence,
            &mixer,
            &convert,
            &resample,
            &caps,
            &probe,
            &out_convert,
            speaker.upcast_ref(),
        ],
    )?;

    let compositor = match devices.display.build()? {
        None => None,
        Some(display) => {
            let background = gst::ElementFactory::make("videotestsrc")
                .name("display-background")
                .property("is-live", true)
                .property_from_str("pattern", "black")
                .build()?;
            let bg_caps = caps_filter(
                "display-background-caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", DISPLAY_SIZE.0 as i32)
                    .field("height", DISPLAY_SIZE.1 as i32)
                    .field("framerate", gst::Fraction::new(30, 1))
                    .build(),
            )?;
            let compositor = make("compositor", "compositor")?;
            add_linked(
                pipeline,
                &[&background, &bg_caps, &compositor, display.upcast_ref()],
            )?;
            Some(compositor)
        }
    };
    Ok((mixer, compositor))
}

/// microphone ! webrtcdsp ! volume (mute) ! opusenc ! tee.
fn build_microphone(
    pipeline: &gst::Pipeline,
    devices: &Devices,
    settings: &MediaSettings,
) -> anyhow::Result<(gst::Element, gst::Element)> {
    let mic = devices.microphone.build()?;
    let convert = make("audioconvert", "mic-convert")?;
    let resample = make("audioresample", "mic-resample")?;
    let caps = caps_filter("mic-caps", dsp_audio())?;
    let dsp = gst::ElementFactory::make("webrtcdsp")
        .name("dsp")
        .property("probe", "echoprobe")
        .property("echo-cancel", settings.echo_cancellation)
        .property("gain-control", settings.gain_control)
        .property(
            "noise-suppression",
            settings.noise_suppression != NoiseSuppression::Off,
        )
        .build()
        .context("creating webrtcdsp (gstreamer1.0-plugins-bad)")?;
    let level = match settings.noise_suppression {
        NoiseSuppression::Off | NoiseSuppression::Moderate => "moderate",
        NoiseSuppression::Low => "low",
        NoiseSuppression::High => "high",
        NoiseSuppression::VeryHigh => "very-high",
    };
    dsp.set_property_from_str("noise-suppression-level", level);
    let mute = make("volume", "mute")?;
    let enc_convert = make("audioconvert", "opus-convert")?;
    let opus = gst::ElementFactory::make("opusenc")
        .name("audio-encoder")
        .property_from_str("audio-type", "voice")
        .property("inband-fec", true)
        .property("dtx", true)
        .property("packet-loss-percentage", 10i32)
        .property("bitrate", 32000i32)
        .build()
        .context("creating opusenc")?;
    let tee = gst::ElementFactory::make("tee")
        .name("audio-tee")
        .property("allow-not-linked", true)
        .build()?;
    add_linked(
        pipeline,
        &[
            mic.upcast_ref(),
            &convert,
            &resample,
            &caps,
            &dsp,
            &mute,
            &enc_convert,
            &opus,
            &tee,
        ],
    )?;
    Ok((tee, mute))
}

struct Video {
    tee: gst::Element,
    camera: gst::Bin,
    selector: gst::Element,
    camera_pad: gst::Pad,
    slate_pad: gst::Pad,
    slate_text: gst::Element,
}

/// camera (or the slate) ! encoder ! h264parse ! tee.
fn build_video(
    pipeline: &gst::Pipeline,
    devices: &Devices,
    settings: &MediaSettings,
    encoder_element: &str,
) -> anyhow::Result<Video> {
    let f = settings.format;
    let camera = devices.camera.build(f)?;
    let chain = [
        make("videoconvert", "camera-convert")?,
        make("videoscale", "camera-scale")?,
        make("videorate", "camera-rate")?,
        caps_filter("camera-caps", raw_video(f))?,
    ];
    // The slate: what peers see when the camera is off or gone.
    let slate_src = gst::ElementFactory::make("videotestsrc")
        .name("slate")
        .property("is-live", true)
        .property_from_str("pattern", "black")
        .build()?;
    let slate_caps = caps_filter("slate-caps", raw_video(f))?;
    let slate_text = gst::ElementFactory::make("textoverlay")
        .name("slate-text")
        .property("text", "")
        .property("font-desc", "Sans 32")
        .property_from_str("valignment", "center")
        .property_from_str("halignment", "center")
        .build()
        .context("creating textoverlay (gstreamer1.0-plugins-base, pango)")?;
    let slate_convert = make("videoconvert", "slate-convert")?;
    let slate_out = caps_filter("slate-out-caps", raw_video(f))?;
    let selector = gst::ElementFactory::make("input-selector")
        .name("camera-or-slate")
        .property("sync-streams", false)
        .build()?;
    let encoder = encoder::build(encoder_element, f, settings.bitrate_kbps)?;
    let parse = gst::ElementFactory::make("h264parse")
        .name("h264parse")
        .property("config-interval", -1i32)
        .build()?;
    let tee = gst::ElementFactory::make("tee")
        .name("video-tee")
        .property("allow-not-linked", true)
        .build()?;

    pipeline.add(&camera)?;
    pipeline.add_many(&chain)?;
    add_linked(
        pipeline,
        &[
            &slate_src,
            &slate_caps,
            &slate_text,
            &slate_convert,
            &slate_out,
        ],
    )?;
    pipeline.add(&selector)?;
    pipeline.add(&encoder)?;
    pipeline.add_many([&parse, &tee])?;
    camera.link(&chain[0])?;
    gst::Element::link_many(&chain)?;
    let camera_pad = selector
        .request_pad_simple("sink_%u")
        .expect("selector pad");
    let slate_pad = selector
        .request_pad_simple("sink_%u")
        .expect("selector pad");
    chain[3]
        .static_pad("src")
        .expect("caps src")
        .link(&camera_pad)?;
    slate_out
        .static_pad("src")
        .expect("caps src")
        .link(&slate_pad)?;
    selector.set_property("active-pad", &camera_pad);
    gst::Element::link_many([&selector, encoder.upcast_ref(), &parse, &tee])?;
    limit_keyframe_requests(&encoder, encoder_element);
    Ok(Video {
        tee,
        camera,
        selector,
        camera_pad,
        slate_pad,
        slate_text,
    })
}

/// Lets one keyframe request through per interval; the Pi's encoder (which ignores the event in
/// GStreamer 1.22) is asked through its controls instead.
fn limit_keyframe_requests(encoder: &gst::Bin, element: &str) {
    let Some(pad) = encoder.static_pad("src") else {
        return;
    };
    let last: Mutex<Option<Instant>> = Mutex::new(None);
    let v4l2 = element == "v4l2h264enc";
    let weak_encoder = encoder.downgrade();
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let Some(gst::PadProbeData::Event(event)) = &info.data else {
            return gst::PadProbeReturn::Ok;
        };
        if gst_video::UpstreamForceKeyUnitEvent::parse(event).is_err() {
            return gst::PadProbeReturn::Ok;
        }
        let mut last = last.lock().unwrap();
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < KEYFRAME_MIN_INTERVAL) {
            // Consumed here (Handled): returning Drop for an upstream event trips a 1.22
            // refcount assertion.
            info.data = None;
            return gst::PadProbeReturn::Handled;
        }
        *last = Some(now);
        if v4l2
            && let Some(bin) = weak_encoder.upgrade()
            && let Some(enc) = bin
                .iterate_elements()
                .into_iter()
                .flatten()
                .find(|e| e.factory().is_some_and(|f| f.name() == "v4l2h264enc"))
        {
            let controls = gst::Structure::builder("controls")
                .field("force_key_frame", 1i32)
                .build();
            enc.set_property("extra-controls", controls);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Reports pipeline errors with the element and cause; a failing camera is swapped for the
/// "camera unavailable" slate so the call goes on.
#[allow(clippy::too_many_arguments)]
fn spawn_bus_watch(
    pipeline: &gst::Pipeline,
    events: EventSink,
    camera: gst::Bin,
    selector: gst::Element,
    slate_pad: gst::Pad,
    slate_text: gst::Element,
    camera_failed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<()>> {
    let bus = pipeline.bus().context("a pipeline has a bus")?;
    Ok(std::thread::Builder::new()
        .name("media-bus".to_owned())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                    continue;
                };
                match msg.view() {
                    gst::MessageView::Error(e) => {
                        let src = msg.src();
                        let from_camera = src.is_some_and(|s| {
                            s == camera.upcast_ref::<gst::Object>() || s.has_as_ancestor(&camera)
                        });
                        let element =
                            src.map_or("pipeline".to_owned(), |s| s.path_string().to_string());
                        let cause = match e.debug() {
                            Some(debug) => format!("{} ({debug})", e.error()),
                            None => e.error().to_string(),
                        };
                        if from_camera {
                            if !camera_failed.swap(true, Ordering::SeqCst) {
                                log::error!("the camera failed: {element}: {cause}");
                                slate_text.set_property("text", "Camera unavailable");
                                selector.set_property("active-pad", &slate_pad);
                                events(MediaEvent::CameraUnavailable {
                                    reason: format!("{element}: {cause}"),
                                });
                            }
                        } else {
                            log::error!("media error in {element}: {cause}");
                            events(MediaEvent::Error { element, cause });
                        }
                    }
                    gst::MessageView::Warning(w) => {
                        let element = msg
                            .src()
                            .map_or("pipeline".to_owned(), |s| s.path_string().to_string());
                        log::warn!("media warning in {element}: {}", w.error());
                    }
                    _ => {}
                }
            }
        })?)
}
