//! One remote device's WebRTC connection: a bin with a payloader branch per sent medium feeding
//! webrtcbin, and decoders for what arrives. The encoded streams come from the call's tees.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use gst::prelude::*;

use super::elements::{add_linked, make};
use super::ice::IceServers;
use super::sdp;
use roomd_core::media::{
    Candidate, ConnectionState, MediaEvent, MediaKind, PeerId, PeerStats, SdpKind,
};

/// Where media events go; called from GStreamer's threads and the engine's.
pub type EventSink = Arc<dyn Fn(MediaEvent) + Send + Sync>;

/// Called once a peer's answer is made and set: its media may be linked in now.
pub type OnAnswered = Box<dyn FnOnce() + Send>;

/// What every peer shares with the call.
#[derive(Clone)]
pub struct PeerContext {
    pub events: EventSink,
    pub pipeline: gst::Pipeline,
    pub mixer: gst::Element,
    pub compositor: Option<gst::Element>,
    /// The display's size, which the remote pictures share.
    pub display_size: (u32, u32),
    pub jitter_latency_ms: u32,
    /// Addresses ICE should also offer (loopback in tests; libnice skips it otherwise).
    pub extra_local_addresses: Vec<String>,
    /// The STUN and TURN servers new peers get.
    pub ice: IceServers,
    /// Test only: the peers (by ID prefix) whose local descriptions are held, and for how long.
    pub slow_peer: Option<(String, Duration)>,
}

#[derive(Default)]
pub struct Counters {
    pub video_frames_sent: AtomicU64,
    pub video_frames_received: AtomicU64,
    pub audio_buffers_received: AtomicU64,
    pub state: Mutex<Option<ConnectionState>>,
    /// What webrtcbin's last `get-stats` answer said, and when it came.
    webrtc: Mutex<Option<(WebrtcStats, Instant)>>,
    /// A `get-stats` is in flight: one at a time, so a slow webrtcbin does not pile them up.
    stats_asked: AtomicBool,
}

/// The figures of webrtcbin's own statistics that roomd reports.
#[derive(Debug, Clone, Copy, Default)]
struct WebrtcStats {
    bytes_sent: u64,
    bytes_received: u64,
    packets_lost: i64,
    round_trip_time_s: Option<f64>,
}

impl WebrtcStats {
    fn from_reply(reply: &gst::StructureRef) -> WebrtcStats {
        let mut s = WebrtcStats::default();
        for (_, value) in reply.iter() {
            let Ok(entry) = value.get::<gst::Structure>() else {
                continue;
            };
            let kind = entry.get::<gst_webrtc::WebRTCStatsType>("type").ok();
            use gst_webrtc::WebRTCStatsType as T;
            match kind {
                Some(T::OutboundRtp) => {
                    s.bytes_sent += entry.get::<u64>("bytes-sent").unwrap_or(0);
                }
                Some(T::InboundRtp) => {
                    s.bytes_received += entry.get::<u64>("bytes-received").unwrap_or(0);
                    s.packets_lost += entry.get::<i64>("packets-lost").unwrap_or(0);
                }
                Some(T::RemoteInboundRtp) => {
                    if let Ok(rtt) = entry.get::<f64>("round-trip-time") {
                        s.round_trip_time_s = Some(rtt);
                    }
                }
                _ => {}
            }
        }
        s
    }
}

pub struct Peer {
    pub id: PeerId,
    /// Which of the call's peers this is (its bin is `peer-<serial>`).
    pub serial: u64,
    pub bin: gst::Bin,
    webrtc: gst::Element,
    /// webrtcbin's ICE agent dies with the last strong reference (a 1.22 floating-ref bug).
    _ice_agent: Option<gst_webrtc::WebRTCICE>,
    /// The bin's inputs for the encoded audio and video.
    pub audio_in: gst::Pad,
    pub video_in: gst::Pad,
    pub counters: Arc<Counters>,
    /// Pads on the call's mixer and compositor that this peer's decoded media feeds.
    pub outputs: Arc<Mutex<Vec<(gst::Element, gst::Pad)>>>,
    local: Describer,
}

/// What setting and reporting our own descriptions takes.
#[derive(Clone)]
struct Describer {
    id: PeerId,
    events: EventSink,
    /// The m-lines' mids, from our last local description (candidates carry them).
    mids: Arc<Mutex<Vec<Option<String>>>>,
    /// The stream ID (msid) of what we send.
    stream_id: String,
    /// The SSRC each medium is sent with, as our descriptions announce it.
    ssrcs: Arc<Vec<(&'static str, u32)>>,
    /// Test only: how long to hold every description before setting it (a slow webrtcbin).
    hold: Option<Duration>,
}

impl Describer {
    /// Sets our description (with every m-line naming our stream) and reports it. Called from
    /// the webrtcbin's own thread (a promise's change function), never the engine's.
    fn publish(
        &self,
        webrtc: &gst::Element,
        desc: &gst_webrtc::WebRTCSessionDescription,
        kind: SdpKind,
    ) {
        if let Some(hold) = self.hold {
            log::warn!("test hook: holding {}'s {kind:?} for {hold:?}", self.id);
            std::thread::sleep(hold);
        }
        let text = desc.sdp().as_text().unwrap_or_default();
        let sdp = sdp::with_msid(&text, &self.stream_id, &self.ssrcs);
        *self.mids.lock().unwrap() = sdp::mids(&sdp);
        let desc = match gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()) {
            Ok(message) => gst_webrtc::WebRTCSessionDescription::new(desc.type_(), message),
            Err(_) => desc.clone(),
        };
        webrtc.emit_by_name::<()>("set-local-description", &[&desc, &None::<gst::Promise>]);
        (self.events)(MediaEvent::LocalDescription {
            peer: self.id.clone(),
            kind,
            sdp,
        });
    }
}

const AUDIO_PT: u8 = 111;
const VIDEO_PT: u8 = 96;

/// The RTP caps of a sent medium. H.264's profile-level-id is left out on purpose: pinning it
/// breaks negotiation with the encoder's actual SPS (x264 gives 42c01f).
fn rtp_caps(kind: MediaKind, pt: u8) -> gst::Caps {
    match kind {
        MediaKind::Audio => gst::Caps::builder("application/x-rtp")
            .field("media", "audio")
            .field("encoding-name", "OPUS")
            .field("clock-rate", 48000i32)
            .field("payload", pt as i32)
            .build(),
        MediaKind::Video => gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("encoding-name", "H264")
            .field("clock-rate", 90000i32)
            .field("payload", pt as i32)
            .field("packetization-mode", "1")
            .build(),
    }
}

impl Peer {
    /// Builds the peer, adds it to the call's pipeline and starts negotiating: an offer, or the
    /// answer to `remote_offer` (made on webrtcbin's thread; `on_answered` once it is set).
    pub fn start(
        ctx: &PeerContext,
        id: PeerId,
        serial: u64,
        remote_offer: Option<&str>,
        stream_id: &str,
        on_answered: OnAnswered,
    ) -> anyhow::Result<Peer> {
        let bin = gst::Bin::builder().name(format!("peer-{serial}")).build();
        let webrtc = gst::ElementFactory::make("webrtcbin")
            .name(format!("webrtc-{serial}"))
            .property_from_str("bundle-policy", "max-bundle")
            .property("latency", ctx.jitter_latency_ms)
            .build()
            .context("creating webrtcbin (gstreamer1.0-plugins-bad and gstreamer1.0-nice)")?;
        ctx.ice.apply(&webrtc, &id);
        bin.add(&webrtc)?;

        // Which m-line carries which medium, with which payload type.
        let lines: Vec<(MediaKind, u32, u8)> = match remote_offer {
            None => vec![
                (MediaKind::Audio, 0, AUDIO_PT),
                (MediaKind::Video, 1, VIDEO_PT),
            ],
            Some(offer) => {
                let media = sdp::offered_media(offer);
                if media.is_empty() {
                    bail!("the offer has no media");
                }
                media
                    .iter()
                    .map(|m| {
                        let kind = match m.kind.as_str() {
                            "audio" => MediaKind::Audio,
                            "video" => MediaKind::Video,
                            other => bail!("m-line {} is {other:?}, which roomd cannot answer", m.index),
                        };
                        let pt = m.payload.ok_or_else(|| {
                            anyhow!(
                                "m-line {} offers no {} roomd can send (H.264 packetization-mode 1 / Opus)",
                                m.index,
                                m.kind
                            )
                        })?;
                        Ok((kind, m.index, pt))
                    })
                    .collect::<anyhow::Result<_>>()?
            }
        };
        let (Some(&(_, audio_line, audio_pt)), Some(&(_, video_line, video_pt))) = (
            lines.iter().find(|l| l.0 == MediaKind::Audio),
            lines.iter().find(|l| l.0 == MediaKind::Video),
        ) else {
            bail!("roomd needs one audio and one video m-line");
        };
        if lines.len() != 2 {
            bail!(
                "roomd answers one audio and one video m-line, not {}",
                lines.len()
            );
        }

        let counters = Arc::new(Counters::default());
        let local = Describer {
            id: id.clone(),
            events: ctx.events.clone(),
            mids: Arc::default(),
            stream_id: stream_id.to_owned(),
            ssrcs: Arc::new(vec![
                ("audio", rand::random::<u32>() | 1),
                ("video", rand::random::<u32>() | 1),
            ]),
            hold: ctx
                .slow_peer
                .as_ref()
                .filter(|(prefix, _)| id.0.starts_with(prefix.as_str()))
                .map(|(_, hold)| *hold),
        };
        let audio_in = Self::send_branch(
            &bin,
            &webrtc,
            MediaKind::Audio,
            audio_line,
            audio_pt,
            remote_offer.is_some(),
            (stream_id, local.ssrcs[0].1),
        )?;
        let video_in = Self::send_branch(
            &bin,
            &webrtc,
            MediaKind::Video,
            video_line,
            video_pt,
            remote_offer.is_some(),
            (stream_id, local.ssrcs[1].1),
        )?;
        {
            let counters = counters.clone();
            video_in.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counters.video_frames_sent.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }

        let ice_agent = webrtc.property::<Option<gst_webrtc::WebRTCICE>>("ice-agent");
        if let Some(agent) = &ice_agent {
            disable_upnp(agent);
            for addr in &ctx.extra_local_addresses {
                let _ = agent.emit_by_name::<bool>("add-local-ip-address", &[addr]);
            }
        }
        Self::connect_signals(
            ctx,
            &id,
            &webrtc,
            &bin,
            &counters,
            remote_offer.is_none(),
            &local,
        )?;

        let outputs: Arc<Mutex<Vec<(gst::Element, gst::Pad)>>> = Arc::default();
        Self::connect_incoming(ctx, &id, &webrtc, &bin, &counters, &outputs);

        ctx.pipeline.add(&bin)?;
        bin.sync_state_with_parent()?;

        if let Some(offer) = remote_offer {
            Self::answer(&webrtc, offer, &local, on_answered)?;
        }
        Ok(Peer {
            id,
            serial,
            bin,
            webrtc,
            _ice_agent: ice_agent,
            audio_in,
            video_in,
            counters,
            outputs,
            local,
        })
    }

    /// queue ! payloader ! caps ! webrtcbin.sink_<line>; returns the bin's ghost input.
    fn send_branch(
        bin: &gst::Bin,
        webrtc: &gst::Element,
        kind: MediaKind,
        line: u32,
        pt: u8,
        answering: bool,
        (stream_id, ssrc): (&str, u32),
    ) -> anyhow::Result<gst::Pad> {
        let (name, payloader) = match kind {
            MediaKind::Audio => ("audio", "rtpopuspay"),
            MediaKind::Video => ("video", "rtph264pay"),
        };
        let queue = make("queue", &format!("{name}-queue"))?;
        let pay = gst::ElementFactory::make(payloader)
            .name(format!("{name}-pay"))
            .property("pt", pt as u32)
            .property("ssrc", ssrc)
            .build()?;
        if kind == MediaKind::Video {
            pay.set_property("config-interval", -1i32);
            pay.set_property_from_str("aggregate-mode", "zero-latency");
        }
        let caps = gst::ElementFactory::make("capsfilter")
            .name(format!("{name}-rtp-caps"))
            .property("caps", rtp_caps(kind, pt))
            .build()?;
        add_linked(bin, &[&queue, &pay, &caps])?;
        let sink = webrtc
            .request_pad_simple(&format!("sink_{line}"))
            .ok_or_else(|| anyhow!("webrtcbin gave no sink_{line}"))?;
        // The stream ID the far end sees, which our sdp_stream_metadata describes.
        sink.set_property("msid", stream_id);
        caps.static_pad("src")
            .expect("capsfilter has a src pad")
            .link(&sink)?;
        let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendrecv,
        );
        if answering {
            transceiver.set_property("codec-preferences", rtp_caps(kind, pt));
        }
        if kind == MediaKind::Video {
            // NACK on audio makes Chromium refuse the description.
            transceiver.set_property("do-nack", true);
        }
        let ghost =
            gst::GhostPad::builder_with_target(&queue.static_pad("sink").expect("queue sink"))?
                .name(name)
                .build();
        ghost.set_active(true)?;
        bin.add_pad(&ghost)?;
        Ok(ghost.upcast())
    }

    fn connect_signals(
        ctx: &PeerContext,
        id: &PeerId,
        webrtc: &gst::Element,
        bin: &gst::Bin,
        counters: &Arc<Counters>,
        offering: bool,
        local: &Describer,
    ) -> anyhow::Result<()> {
        {
            let (events, id, mids) = (ctx.events.clone(), id.clone(), local.mids.clone());
            webrtc.connect("on-ice-candidate", false, move |values| {
                let mline = values[1].get::<u32>().unwrap_or(0);
                let candidate = values[2].get::<String>().unwrap_or_default();
                let mid = mids.lock().unwrap().get(mline as usize).cloned().flatten();
                events(MediaEvent::LocalCandidate {
                    peer: id.clone(),
                    candidate: Candidate {
                        candidate,
                        sdp_m_line_index: mline,
                        sdp_mid: mid,
                    },
                });
                None
            });
        }
        {
            let (events, id, counters) = (ctx.events.clone(), id.clone(), counters.clone());
            let bin = bin.downgrade();
            webrtc.connect_notify(Some("connection-state"), move |w, _| {
                use gst_webrtc::WebRTCPeerConnectionState as S;
                let state = match w.property::<S>("connection-state") {
                    S::New => ConnectionState::New,
                    S::Connecting => ConnectionState::Connecting,
                    S::Connected => ConnectionState::Connected,
                    S::Disconnected => ConnectionState::Disconnected,
                    S::Failed => ConnectionState::Failed,
                    _ => ConnectionState::Closed,
                };
                *counters.state.lock().unwrap() = Some(state);
                if state == ConnectionState::Connected
                    && let Some(bin) = bin.upgrade()
                {
                    // A new peer needs a keyframe now, not at the next scheduled one.
                    request_keyframe(&bin);
                }
                events(MediaEvent::ConnectionState {
                    peer: id.clone(),
                    state,
                });
            });
        }
        if offering {
            let local = local.clone();
            let offered = Arc::new(AtomicBool::new(false));
            webrtc.connect("on-negotiation-needed", false, move |values| {
                // Renegotiation is the call layer's to ask for; offer once.
                if offered.swap(true, Ordering::SeqCst) {
                    return None;
                }
                let webrtc = values[0].get::<gst::Element>().expect("webrtcbin");
                let local = local.clone();
                let w = webrtc.clone();
                let promise = gst::Promise::with_change_func(move |reply| {
                    match description_from(reply, "offer") {
                        Ok(desc) => local.publish(&w, &desc, SdpKind::Offer),
                        Err(e) => (local.events)(MediaEvent::Error {
                            element: w.name().to_string(),
                            cause: format!("creating an offer: {e}"),
                        }),
                    }
                });
                webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
                None
            });
        }
        Ok(())
    }

    /// Answers `offer` on webrtcbin's thread; nothing here waits for it.
    fn answer(
        webrtc: &gst::Element,
        offer: &str,
        local: &Describer,
        on_answered: OnAnswered,
    ) -> anyhow::Result<()> {
        let message = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|_| anyhow!("the offer is not valid SDP"))?;
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, message);
        webrtc.emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
        // Answered before the encoded streams are linked in (`on_answered` does that): webrtcbin
        // 1.22 matches the offer against the caps flowing in its pads, and our encoder's SPS
        // never matches an offer.
        let (local, w) = (local.clone(), webrtc.clone());
        let promise =
            gst::Promise::with_change_func(move |reply| match description_from(reply, "answer") {
                Ok(answer) => {
                    local.publish(&w, &answer, SdpKind::Answer);
                    on_answered();
                }
                Err(e) => (local.events)(MediaEvent::Refused {
                    command: format!("answer {}", local.id),
                    peer: Some(local.id.clone()),
                    reason: e.to_string(),
                }),
            });
        webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
        Ok(())
    }

    /// Decodes whatever arrives: audio into the call's mixer, video onto the display (or
    /// counted, headless).
    fn connect_incoming(
        ctx: &PeerContext,
        id: &PeerId,
        webrtc: &gst::Element,
        bin: &gst::Bin,
        counters: &Arc<Counters>,
        outputs: &Arc<Mutex<Vec<(gst::Element, gst::Pad)>>>,
    ) {
        let (ctx, id, counters, outputs) =
            (ctx.clone(), id.clone(), counters.clone(), outputs.clone());
        let bin = bin.downgrade();
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(bin) = bin.upgrade() else { return };
            if let Err(e) = decode(&ctx, &id, &bin, pad, &counters, &outputs) {
                (ctx.events)(MediaEvent::Error {
                    element: bin.name().to_string(),
                    cause: format!("decoding what {id} sends: {e:#}"),
                });
            }
        });
    }

    /// Takes the remote's description; a renegotiation's offer is answered at once.
    pub fn set_remote_description(&self, kind: SdpKind, sdp: &str) -> anyhow::Result<()> {
        let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
            .map_err(|_| anyhow!("not valid SDP"))?;
        let sdp_type = match kind {
            SdpKind::Offer => gst_webrtc::WebRTCSDPType::Offer,
            SdpKind::Answer => gst_webrtc::WebRTCSDPType::Answer,
        };
        let desc = gst_webrtc::WebRTCSessionDescription::new(sdp_type, message);
        self.webrtc
            .emit_by_name::<()>("set-remote-description", &[&desc, &None::<gst::Promise>]);
        if kind == SdpKind::Offer {
            self.describe_local(SdpKind::Answer, None);
        }
        Ok(())
    }

    /// Offers again with new ICE credentials, for a connection that was lost.
    pub fn restart_ice(&self) {
        let options = gst::Structure::builder("options")
            .field("ice-restart", true)
            .build();
        self.describe_local(SdpKind::Offer, Some(options));
    }

    /// Creates our offer or answer, sets it and reports it.
    fn describe_local(&self, kind: SdpKind, options: Option<gst::Structure>) {
        let local = self.local.clone();
        let w = self.webrtc.clone();
        let (signal, field) = match kind {
            SdpKind::Offer => ("create-offer", "offer"),
            SdpKind::Answer => ("create-answer", "answer"),
        };
        let promise =
            gst::Promise::with_change_func(move |reply| match description_from(reply, field) {
                Ok(desc) => local.publish(&w, &desc, kind),
                Err(e) => (local.events)(MediaEvent::Refused {
                    command: format!("create an {field} for {}", local.id),
                    peer: Some(local.id.clone()),
                    reason: e.to_string(),
                }),
            });
        self.webrtc
            .emit_by_name::<()>(signal, &[&options, &promise]);
    }

    pub fn add_candidate(&self, c: &Candidate) {
        if c.candidate.trim().is_empty() {
            return; // end of candidates
        }
        self.webrtc
            .emit_by_name::<()>("add-ice-candidate", &[&c.sdp_m_line_index, &c.candidate]);
    }

    /// Asks webrtcbin for its statistics; the answer is kept for [`Peer::stats`]. Skipped while
    /// the last request is unanswered.
    pub fn collect_stats(&self) {
        if self.counters.stats_asked.swap(true, Ordering::SeqCst) {
            return;
        }
        let counters = self.counters.clone();
        let promise = gst::Promise::with_change_func(move |reply| {
            // A closing webrtcbin answers with an error, not statistics.
            if let Ok(Some(reply)) = reply
                && !reply.has_field("error")
            {
                *counters.webrtc.lock().unwrap() =
                    Some((WebrtcStats::from_reply(reply), Instant::now()));
            }
            counters.stats_asked.store(false, Ordering::SeqCst);
        });
        self.webrtc
            .emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &promise]);
    }

    /// The engine's counters, live, plus webrtcbin's statistics as last collected.
    pub fn stats(&self, now: Instant) -> PeerStats {
        let mut s = PeerStats {
            peer: self.id.0.clone(),
            state: *self.counters.state.lock().unwrap(),
            video_frames_sent: self.counters.video_frames_sent.load(Ordering::Relaxed),
            video_frames_received: self.counters.video_frames_received.load(Ordering::Relaxed),
            audio_buffers_received: self.counters.audio_buffers_received.load(Ordering::Relaxed),
            ..Default::default()
        };
        if let Some((w, at)) = *self.counters.webrtc.lock().unwrap() {
            s.bytes_sent = w.bytes_sent;
            s.bytes_received = w.bytes_received;
            s.packets_lost = w.packets_lost;
            s.round_trip_time_s = w.round_trip_time_s;
            s.webrtc_stats_age_ms = Some(now.saturating_duration_since(at).as_millis() as u64);
        }
        s
    }
}

/// Turns off libnice's UPnP port mapping on webrtcbin's ICE agent: roomd does not use it, and its
/// probing once raised a GLib critical ("Address already in use", then g_hash_table_foreach).
pub fn disable_upnp(ice: &gst_webrtc::WebRTCICE) {
    use gst::glib;
    if ice.find_property("agent").is_none() {
        return;
    }
    if let Some(nice) = ice.property::<Option<glib::Object>>("agent")
        && nice.find_property("upnp").is_some()
    {
        nice.set_property("upnp", false);
    }
}

/// Asks the encoder for a keyframe, through this peer's video branch.
pub fn request_keyframe(bin: &gst::Bin) {
    if let Some(queue) = bin.by_name("video-queue")
        && let Some(pad) = queue.static_pad("sink")
    {
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        pad.push_event(event);
    }
}

fn description_from(
    reply: Result<Option<&gst::StructureRef>, gst::PromiseError>,
    field: &str,
) -> anyhow::Result<gst_webrtc::WebRTCSessionDescription> {
    let reply = reply
        .map_err(|e| anyhow!("{e:?}"))?
        .ok_or_else(|| anyhow!("no reply"))?;
    if let Ok(error) = reply.get::<gst::glib::Error>("error") {
        bail!("{error}");
    }
    reply
        .get::<gst_webrtc::WebRTCSessionDescription>(field)
        .map_err(|e| anyhow!("{e}"))
}

/// webrtcbin's src pad → decodebin → the raw stream's destination.
fn decode(
    ctx: &PeerContext,
    id: &PeerId,
    bin: &gst::Bin,
    pad: &gst::Pad,
    counters: &Arc<Counters>,
    outputs: &Arc<Mutex<Vec<(gst::Element, gst::Pad)>>>,
) -> anyhow::Result<()> {
    let decodebin = gst::ElementFactory::make("decodebin").build()?;
    bin.add(&decodebin)?;
    decodebin.sync_state_with_parent()?;
    pad.link(&decodebin.static_pad("sink").expect("decodebin sink"))?;
    let (ctx, id, counters, outputs) = (ctx.clone(), id.clone(), counters.clone(), outputs.clone());
    let weak_bin = bin.downgrade();
    decodebin.connect_pad_added(move |_, raw| {
        let Some(bin) = weak_bin.upgrade() else {
            return;
        };
        let caps = raw.current_caps().or_else(|| Some(raw.query_caps(None)));
        let is_video = caps
            .as_ref()
            .and_then(|c| c.structure(0))
            .is_some_and(|s| s.name().starts_with("video/"));
        let result = if is_video {
            play_video(&ctx, &id, &bin, raw, &counters, &outputs)
        } else {
            play_audio(&ctx, &id, &bin, raw, &counters, &outputs)
        };
        if let Err(e) = result {
            (ctx.events)(MediaEvent::Error {
                element: bin.name().to_string(),
                cause: format!("playing what {id} sends: {e:#}"),
            });
        }
    });
    Ok(())
}

fn first_buffer_event(
    pad: &gst::Pad,
    events: EventSink,
    id: PeerId,
    kind: MediaKind,
    count: impl Fn() + Send + Sync + 'static,
) {
    let seen = AtomicBool::new(false);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        count();
        if !seen.swap(true, Ordering::Relaxed) {
            events(MediaEvent::RemoteMedia {
                peer: id.clone(),
                kind,
            });
        }
        gst::PadProbeReturn::Ok
    });
}

/// Adds `chain` to the bin after `raw` and ends it in a ghost pad linked to `target`'s new
/// request pad (the call's mixer or compositor).
fn feed_shared(
    bin: &gst::Bin,
    raw: &gst::Pad,
    chain: &[gst::Element],
    target: &gst::Element,
    outputs: &Arc<Mutex<Vec<(gst::Element, gst::Pad)>>>,
) -> anyhow::Result<gst::Pad> {
    bin.add_many(chain)?;
    gst::Element::link_many(chain)?;
    for e in chain {
        e.sync_state_with_parent()?;
    }
    raw.link(&chain[0].static_pad("sink").expect("chain sink"))?;
    let last = chain
        .last()
        .expect("a chain")
        .static_pad("src")
        .expect("chain src");
    // Named after the chain's first element, which GStreamer named uniquely.
    let ghost = gst::GhostPad::builder_with_target(&last)?
        .name(format!("{}-out", chain[0].name()))
        .build();
    ghost.set_active(true)?;
    bin.add_pad(&ghost)?;
    let shared = target
        .request_pad_simple("sink_%u")
        .ok_or_else(|| anyhow!("{} gave no pad", target.name()))?;
    ghost.link(&shared)?;
    outputs
        .lock()
        .unwrap()
        .push((target.clone(), shared.clone()));
    Ok(shared)
}

fn play_audio(
    ctx: &PeerContext,
    id: &PeerId,
    bin: &gst::Bin,
    raw: &gst::Pad,
    counters: &Arc<Counters>,
    outputs: &Arc<Mutex<Vec<(gst::Element, gst::Pad)>>>,
) -> anyhow::Result<()> {
    let chain = [
        gst::ElementFactory::make("queue").build()?,
        gst::ElementFactory::make("audioconvert").build()?,
        gst::ElementFactory::make("audioresample").build()?,
    ];
    let c = counters.clone();
    first_buffer_event(
        raw,
        ctx.events.clone(),
        id.clone(),
        MediaKind::Audio,
        move || {
            c.audio_buffers_received.fetch_add(1, Ordering::Relaxed);
        },
    );
    feed_shared(bin, raw, &chain, &ctx.mixer, outputs)?;
    Ok(())
}

fn play_video(
    ctx: &PeerContext,
    id: &PeerId,
    bin: &gst::Bin,
    raw: &gst::Pad,
    counters: &Arc<Counters>,
    outputs: &Arc<Mutex<Vec<(gst::Element, gst::Pad)>>>,
) -> anyhow::Result<()> {
    let c = counters.clone();
    first_buffer_event(
        raw,
        ctx.events.clone(),
        id.clone(),
        MediaKind::Video,
        move || {
            c.video_frames_received.fetch_add(1, Ordering::Relaxed);
        },
    );
    match &ctx.compositor {
        None => {
            // Headless: decoded, counted, dropped.
            let chain = [
                gst::ElementFactory::make("queue").build()?,
                gst::ElementFactory::make("fakesink")
                    .property("sync", false)
                    .build()?,
            ];
            bin.add_many(&chain)?;
            gst::Element::link_many(&chain)?;
            for e in &chain {
                e.sync_state_with_parent()?;
            }
            raw.link(&chain[0].static_pad("sink").expect("queue sink"))?;
        }
        Some(compositor) => {
            // The compositor scales each picture to its tile.
            let chain = [
                gst::ElementFactory::make("queue").build()?,
                gst::ElementFactory::make("videoconvert").build()?,
            ];
            feed_shared(bin, raw, &chain, compositor, outputs)?;
            super::layout::tile(compositor, ctx.display_size);
        }
    }
    Ok(())
}
