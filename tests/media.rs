//! The media engine in-process with test sources; each remote participant is a second webrtcbin
//! (testbed's WebrtcPeer) that sends H.264 + Opus and measures what it decodes from roomd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roomd::config::NoiseSuppression;
use roomd::media::{
    Devices, EventReceiver, MediaEngine, MediaSettings, TestHooks, VideoFormat, event_channels,
};
use roomd_core::Secret;
use roomd_core::ice_uri::{IceServer, IceUri};
use roomd_core::media::{
    Candidate, ConnectionState, EngineReport, MediaCommand, MediaEvent, PeerId, PeerStats, SdpKind,
};
use roomd_testbed::webrtc_peer::{Signal, WebrtcPeer};

fn settings(format: VideoFormat) -> MediaSettings {
    MediaSettings {
        format,
        bitrate_kbps: 2000,
        echo_cancellation: true,
        noise_suppression: NoiseSuppression::Moderate,
        gain_control: false,
        jitter_latency_ms: 50,
        extra_local_addresses: vec!["127.0.0.1".to_owned()],
    }
}

const HD: VideoFormat = VideoFormat {
    width: 1280,
    height: 720,
    framerate: 30,
};
const SD: VideoFormat = VideoFormat {
    width: 640,
    height: 360,
    framerate: 30,
};
const SMALL: VideoFormat = VideoFormat {
    width: 320,
    height: 240,
    framerate: 15,
};

/// One media test at a time: each runs encoders and decoders in real time, and two at once on
/// a two-core machine would measure the machine, not roomd.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The engine (on its own thread, as in the daemon), its event stream, and remote peers
/// connected through in-process signalling.
struct Bench {
    _turn: std::sync::MutexGuard<'static, ()>,
    engine: Option<MediaEngine>,
    events: EventReceiver,
    remotes: HashMap<PeerId, WebrtcPeer>,
    /// Every event seen, for assertions after the fact.
    seen: Arc<Mutex<Vec<(Instant, MediaEvent)>>>,
    /// The last report request sent.
    requests: u64,
}

impl Bench {
    fn new(devices: Devices, format: VideoFormat) -> Bench {
        Bench::with_hooks(devices, format, TestHooks::default())
    }

    fn with_hooks(devices: Devices, format: VideoFormat, hooks: TestHooks) -> Bench {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (sender, events) = event_channels();
        let engine = MediaEngine::start(devices, settings(format), "auto", sender, hooks)
            .expect("the engine starts");
        Bench {
            _turn: turn,
            engine: Some(engine),
            events,
            remotes: HashMap::new(),
            seen: Arc::default(),
            requests: 0,
        }
    }

    fn send(&self, command: MediaCommand) {
        self.engine
            .as_ref()
            .expect("running")
            .send(command)
            .expect("the engine takes the command");
    }

    /// Asks the engine for a report and waits (up to 5 s, carrying signalling) for it.
    fn report(&mut self) -> EngineReport {
        self.requests += 1;
        let request = self.requests;
        self.send(MediaCommand::Report { request });
        let mut report = None;
        let answered = self.pump_until_with(Duration::from_secs(5), |bench| {
            if let Some(MediaEvent::Report {
                request: r,
                report: answer,
            }) = bench.events.take_report()
                && r >= request
            {
                report = Some(*answer);
            }
            report.is_some()
        });
        assert!(
            answered,
            "the engine did not answer report request {request}"
        );
        report.expect("answered")
    }

    fn stats(&mut self) -> Vec<PeerStats> {
        self.report().peers
    }

    /// The running call's pipeline.
    fn pipeline(&self) -> Option<gst::Pipeline> {
        self.engine.as_ref().expect("running").pipeline()
    }

    /// Adds a remote without waiting for it to connect; roomd offers (`roomd_offers`) or
    /// answers the remote's offer.
    fn add(&mut self, name: &str, roomd_offers: bool) {
        let peer = PeerId(name.to_owned());
        let remote = WebrtcPeer::new(name, 30).unwrap();
        if roomd_offers {
            self.send(MediaCommand::AddPeer {
                peer: peer.clone(),
                remote_offer: None,
                stream_id: format!("stream-{name}"),
            });
        } else {
            remote.offer();
            let offer = loop {
                match remote
                    .signals
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                {
                    Signal::Description { sdp, .. } => break sdp,
                    Signal::Candidate { .. } => {}
                }
            };
            // Candidates gathered before the offer was taken are pumped later.
            self.send(MediaCommand::AddPeer {
                peer: peer.clone(),
                remote_offer: Some(offer),
                stream_id: format!("stream-{name}"),
            });
        }
        self.remotes.insert(peer, remote);
    }

    /// When `name` connected, waiting up to `limit` for it.
    fn connected_at(&mut self, name: &str, limit: Duration) -> Option<Instant> {
        let peer = PeerId(name.to_owned());
        let connected = |seen: &[(Instant, MediaEvent)]| {
            seen.iter().find_map(|(t, e)| match e {
                MediaEvent::ConnectionState {
                    peer: p,
                    state: ConnectionState::Connected,
                } if *p == peer => Some(*t),
                _ => None,
            })
        };
        self.pump_until(limit, |seen| connected(seen).is_some());
        connected(&self.seen.lock().unwrap())
    }

    /// Adds a remote and waits until it is connected.
    fn connect(&mut self, name: &str, roomd_offers: bool) {
        self.add(name, roomd_offers);
        assert!(
            self.connected_at(name, Duration::from_secs(20)).is_some(),
            "{name} never connected: {:#?}",
            self.seen.lock().unwrap()
        );
    }

    /// Carries signalling both ways until `done` holds or `limit` passes.
    fn pump_until(
        &mut self,
        limit: Duration,
        done: impl Fn(&[(Instant, MediaEvent)]) -> bool,
    ) -> bool {
        self.pump_until_with(limit, |bench| done(&bench.seen.lock().unwrap()))
    }

    fn pump_until_with(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut Bench) -> bool,
    ) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            while let Ok(event) = self.events.events.try_recv() {
                self.deliver(&event);
                self.seen.lock().unwrap().push((Instant::now(), event));
            }
            for (peer, remote) in &self.remotes {
                while let Ok(signal) = remote.signals.try_recv() {
                    let command = match signal {
                        Signal::Description { offer, sdp } => MediaCommand::RemoteDescription {
                            peer: peer.clone(),
                            kind: if offer {
                                SdpKind::Offer
                            } else {
                                SdpKind::Answer
                            },
                            sdp,
                        },
                        Signal::Candidate { mline, candidate } => MediaCommand::RemoteCandidate {
                            peer: peer.clone(),
                            candidate: Candidate {
                                candidate,
                                sdp_m_line_index: mline,
                                sdp_mid: None,
                            },
                        },
                    };
                    self.send(command);
                }
            }
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn deliver(&self, event: &MediaEvent) {
        match event {
            MediaEvent::LocalDescription { peer, kind, sdp } => {
                if let Some(r) = self.remotes.get(peer) {
                    r.take_description(*kind == SdpKind::Offer, sdp).unwrap();
                }
            }
            MediaEvent::LocalCandidate { peer, candidate } => {
                if let Some(r) = self.remotes.get(peer) {
                    r.take_candidate(candidate.sdp_m_line_index, &candidate.candidate);
                }
            }
            MediaEvent::Error { element, cause } => panic!("media error in {element}: {cause}"),
            MediaEvent::Refused {
                command, reason, ..
            } => panic!("refused to {command}: {reason}"),
            _ => {}
        }
    }

    /// Lets media flow for `d` while carrying signalling.
    fn run(&mut self, d: Duration) {
        self.pump_until(d, |_| false);
    }

    fn received_frames(&mut self, peer: &str) -> u64 {
        self.stats()
            .into_iter()
            .find(|s| s.peer == peer)
            .map_or(0, |s| s.video_frames_received)
    }

    /// The number of elements in the call's pipeline made by `factory`.
    fn count(&self, factory: &str) -> usize {
        let pipeline = self.pipeline().expect("a call is running");
        gst::prelude::GstBinExtManual::iterate_all_by_element_factory_name(&pipeline, factory)
            .into_iter()
            .flatten()
            .count()
    }
}

impl Drop for Bench {
    /// The engine's call is torn down before the next test takes its turn.
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take() {
            engine.stop(Duration::from_secs(10));
        }
    }
}

fn frames_over(bench: &mut Bench, peer: &str, d: Duration) -> (u64, u64) {
    let remote_before = bench.remotes[&PeerId(peer.to_owned())].frames();
    let local_before = bench.received_frames(peer);
    bench.run(d);
    (
        bench.remotes[&PeerId(peer.to_owned())].frames() - remote_before,
        bench.received_frames(peer) - local_before,
    )
}

#[test]
fn one_peer_at_720p30_both_ways() {
    let mut bench = Bench::new(Devices::simulated(), HD);
    bench.connect("remote", true);
    bench.run(Duration::from_secs(1)); // past the first keyframe
    let started = Instant::now();
    let (sent, received) = frames_over(&mut bench, "remote", Duration::from_secs(10));
    let remote = &bench.remotes[&PeerId("remote".to_owned())];
    let level = remote.level_since(started).expect("the remote heard audio");
    assert!(
        sent >= 270,
        "the remote decoded {sent} of 300 frames from roomd"
    );
    assert!(
        level > -30.0,
        "the remote heard the tone at {level:.1} dBFS"
    );
    assert!(
        received >= 270,
        "roomd decoded {received} of 300 frames from the remote"
    );
    let stats = bench.stats();
    assert!(stats[0].audio_buffers_received > 400, "{stats:?}");
    assert!(
        stats[0].bytes_sent > 100_000 && stats[0].bytes_received > 100_000,
        "{stats:?}"
    );
    assert_eq!(stats[0].state, Some(ConnectionState::Connected));
}

#[test]
fn roomd_answers_an_offer() {
    let mut bench = Bench::new(Devices::simulated(), SD);
    bench.connect("caller", false);
    bench.run(Duration::from_secs(1));
    let (sent, received) = frames_over(&mut bench, "caller", Duration::from_secs(3));
    assert!(
        sent >= 80 && received >= 80,
        "{sent} / {received} frames in 3 s"
    );
}

#[test]
fn four_peers_share_one_encoder_of_each_kind() {
    let mut bench = Bench::new(Devices::simulated(), SD);
    let names = ["p1", "p2", "p3", "p4"];
    for (i, name) in names.iter().enumerate() {
        bench.connect(name, i.is_multiple_of(2));
    }
    bench.run(Duration::from_secs(1));
    let before: Vec<u64> = names
        .iter()
        .map(|n| bench.remotes[&PeerId(n.to_string())].frames())
        .collect();
    bench.run(Duration::from_secs(5));
    for (name, before) in names.iter().zip(before) {
        let got = bench.remotes[&PeerId(name.to_string())].frames() - before;
        assert!(got >= 135, "{name} decoded {got} of 150 frames");
    }
    assert_eq!(bench.count("x264enc"), 1, "one H.264 encoder");
    assert_eq!(bench.count("opusenc"), 1, "one Opus encoder");
    assert_eq!(bench.count("webrtcbin"), 4);
}

#[test]
fn mute_silences_the_far_end_within_100_ms() {
    let mut bench = Bench::new(Devices::simulated(), SD);
    bench.connect("remote", true);
    bench.run(Duration::from_secs(2));
    let peer = PeerId("remote".to_owned());
    assert!(
        bench.remotes[&peer]
            .level_since(Instant::now() - Duration::from_millis(500))
            .unwrap()
            > -30.0
    );

    let muted_at = Instant::now();
    bench.send(MediaCommand::SetMicMuted(true));
    bench.run(Duration::from_millis(1000));
    let silent_from = bench.remotes[&peer]
        .audio_levels
        .lock()
        .unwrap()
        .iter()
        .find(|(t, db)| *t >= muted_at && *db < -60.0)
        .map(|(t, _)| *t)
        .expect("the far end went silent");
    let took = silent_from - muted_at;
    assert!(took <= Duration::from_millis(100), "silent after {took:?}");
    assert!(
        bench
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, e)| *e == MediaEvent::MicMuted(true))
    );
    let level = bench.remotes[&peer]
        .level_since(muted_at + Duration::from_millis(200))
        .unwrap();
    assert!(level < -60.0, "stays silent: {level:.1} dBFS");

    let unmuted_at = Instant::now();
    bench.send(MediaCommand::SetMicMuted(false));
    bench.run(Duration::from_millis(1000));
    let level = bench.remotes[&peer]
        .level_since(unmuted_at + Duration::from_millis(300))
        .unwrap();
    assert!(level > -30.0, "the tone is back: {level:.1} dBFS");
}

/// A camera that works for a second and then fails, as an unplugged webcam does.
struct FailingCamera;

impl roomd::media::devices::Camera for FailingCamera {
    fn name(&self) -> String {
        "failing camera".to_owned()
    }

    fn build(&self, f: VideoFormat) -> anyhow::Result<gst::Bin> {
        let bin = gst::parse::bin_from_description(
            &format!(
                "videotestsrc is-live=true ! video/x-raw,width={},height={},framerate={}/1 \
                 ! identity error-after=30",
                f.width, f.height, f.framerate
            ),
            true,
        )?;
        Ok(bin)
    }
}

#[test]
fn a_failing_camera_becomes_a_slate_and_the_call_goes_on() {
    let mut devices = Devices::simulated();
    devices.camera = Box::new(FailingCamera);
    let mut bench = Bench::new(devices, SD);
    bench.connect("remote", true);
    let failed = bench.pump_until(Duration::from_secs(10), |seen| {
        seen.iter()
            .any(|(_, e)| matches!(e, MediaEvent::CameraUnavailable { .. }))
    });
    assert!(failed, "the camera failure was reported");
    bench.run(Duration::from_millis(500));
    let peer = PeerId("remote".to_owned());
    let since = Instant::now();
    let (sent, _) = frames_over(&mut bench, "remote", Duration::from_secs(3));
    assert!(
        sent >= 80,
        "the remote still gets pictures (the slate): {sent} in 3 s"
    );
    let level = bench.remotes[&peer].level_since(since).unwrap();
    assert!(level > -30.0, "and sound: {level:.1} dBFS");
}

fn process_usage() -> (usize, usize, u64) {
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    (threads, fds, rss_kb)
}

#[test]
fn twenty_calls_leave_nothing_behind() {
    let mut bench = Bench::new(Devices::simulated(), SMALL);
    let cycle = |bench: &mut Bench, i: usize| {
        let name = format!("visitor-{i}");
        bench.connect(&name, i.is_multiple_of(2));
        bench.run(Duration::from_millis(300));
        let peer = PeerId(name);
        bench.send(MediaCommand::RemovePeer { peer: peer.clone() });
        bench.remotes.remove(&peer);
        bench.run(Duration::from_millis(200));
        assert!(bench.pipeline().is_none(), "the call's pipeline is gone");
    };
    // Warm up: GStreamer's registry, thread pools and allocators settle in the first calls.
    for i in 0..3 {
        cycle(&mut bench, i);
    }
    let (threads, fds, rss) = process_usage();
    for i in 3..23 {
        cycle(&mut bench, i);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (threads_after, fds_after, rss_after) = process_usage();
    assert!(
        threads_after <= threads + 4,
        "threads {threads} -> {threads_after}"
    );
    assert!(fds_after <= fds + 4, "fds {fds} -> {fds_after}");
    assert!(rss_after <= rss + 40_000, "RSS {rss} kB -> {rss_after} kB");
}

#[test]
fn an_unreadable_offer_is_refused_not_fatal() {
    let mut bench = Bench::new(Devices::simulated(), SMALL);
    let mut refusals = 0;
    let mut refused = |bench: &mut Bench| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(event) = bench.events.events.try_recv() {
                assert!(matches!(event, MediaEvent::Refused { .. }), "{event:?}");
                refusals += 1;
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("nothing was refused");
    };
    for offer in [
        "garbage",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n",
    ] {
        bench.send(MediaCommand::AddPeer {
            peer: PeerId("x".to_owned()),
            remote_offer: Some(offer.to_owned()),
            stream_id: "stream-x".to_owned(),
        });
        refused(&mut bench);
    }
    assert!(bench.pipeline().is_none());
    bench.send(MediaCommand::RemoteCandidate {
        peer: PeerId("nobody".to_owned()),
        candidate: Candidate {
            candidate: "x".to_owned(),
            sdp_m_line_index: 9,
            sdp_mid: None,
        },
    });
    refused(&mut bench);
    assert_eq!(refusals, 3);
    assert!(
        bench.report().peers.is_empty(),
        "and the engine still answers"
    );
}

#[test]
fn camera_off_sends_a_picture_and_is_confirmed() {
    let mut bench = Bench::new(Devices::simulated(), SD);
    bench.connect("remote", true);
    bench.run(Duration::from_secs(1));
    bench.send(MediaCommand::SetCameraOff(true));
    let confirmed = bench.pump_until(Duration::from_secs(2), |seen| {
        seen.iter().any(|(_, e)| *e == MediaEvent::CameraOff(true))
    });
    assert!(confirmed);
    let (sent, _) = frames_over(&mut bench, "remote", Duration::from_secs(2));
    assert!(
        sent >= 50,
        "the slate keeps the picture alive: {sent} frames in 2 s"
    );
    bench.send(MediaCommand::SetCameraOff(false));
    assert!(bench.pump_until(Duration::from_secs(2), |seen| {
        seen.iter().any(|(_, e)| *e == MediaEvent::CameraOff(false))
    }));
}

/// A display that counts the frames the compositor shows.
struct CountingDisplay(Arc<std::sync::atomic::AtomicU64>);

impl roomd::media::devices::Display for CountingDisplay {
    fn name(&self) -> String {
        "counting display".to_owned()
    }

    fn build(&self) -> anyhow::Result<Option<gst::Bin>> {
        use gst::prelude::*;
        let bin = gst::parse::bin_from_description("fakesink name=screen sync=false", true)?;
        let screen = bin.by_name("screen").unwrap();
        let count = self.0.clone();
        screen
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        Ok(Some(bin))
    }
}

#[test]
fn remote_pictures_are_tiled_on_the_display() {
    use gst::prelude::*;
    let shown = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut devices = Devices::simulated();
    devices.display = Box::new(CountingDisplay(shown.clone()));
    let mut bench = Bench::new(devices, SD);
    bench.connect("left", true);
    bench.connect("right", false);
    bench.run(Duration::from_secs(2));
    assert!(bench.received_frames("left") > 20 && bench.received_frames("right") > 20);
    let before = shown.load(std::sync::atomic::Ordering::Relaxed);
    bench.run(Duration::from_secs(2));
    let frames = shown.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        frames >= 20,
        "the display keeps showing pictures: {frames} in 2 s"
    );
    let compositor = bench.pipeline().unwrap().by_name("compositor").unwrap();
    let mut tiles: Vec<(i32, i32, i32)> = compositor
        .sink_pads()
        .iter()
        .filter(|p| p.name() != "sink_0")
        .map(|p| {
            (
                p.property::<i32>("xpos"),
                p.property::<i32>("ypos"),
                p.property::<i32>("width"),
            )
        })
        .collect();
    tiles.sort();
    assert_eq!(
        tiles,
        vec![(0, 0, 640), (640, 0, 640)],
        "two remotes side by side"
    );
}

#[test]
fn a_storm_of_keyframe_requests_makes_few_keyframes() {
    use gst::prelude::*;
    let mut bench = Bench::new(Devices::simulated(), SD);
    bench.connect("remote", true);
    bench.run(Duration::from_secs(1));
    let pipeline = bench.pipeline().unwrap();
    let keyframes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let keyframes = keyframes.clone();
        let tee = pipeline.by_name("video-tee").unwrap();
        tee.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(b)) = &info.data
                    && !b.flags().contains(gst::BufferFlags::DELTA_UNIT)
                {
                    keyframes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
    }
    // Twenty requests in 200 ms, as a burst of PLIs from several peers would be.
    let queue = pipeline.by_name("video-queue").unwrap();
    for _ in 0..20 {
        queue.static_pad("sink").unwrap().push_event(
            gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build(),
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    bench.run(Duration::from_millis(800));
    let made = keyframes.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=2).contains(&made),
        "{made} keyframes for 20 requests in a second"
    );
}

#[test]
fn a_peer_leaving_does_not_disturb_the_others() {
    let mut bench = Bench::new(Devices::simulated(), SD);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        bench.connect(name, i != 1);
    }
    bench.run(Duration::from_secs(1));
    let leaving = PeerId("b".to_owned());
    bench.send(MediaCommand::RemovePeer {
        peer: leaving.clone(),
    });
    bench.remotes.remove(&leaving);
    for name in ["a", "c"] {
        let (sent, received) = frames_over(&mut bench, name, Duration::from_secs(2));
        assert!(
            sent >= 50 && received >= 50,
            "{name}: {sent} / {received} frames in 2 s"
        );
    }
    assert_eq!(bench.count("webrtcbin"), 2);
    assert_eq!(bench.count("x264enc"), 1);
}

/// An ICE server as the core hands it over: `uri` with TURN's (username, password).
fn ice_server(uri: &str, credentials: Option<(&str, &str)>) -> IceServer {
    IceServer {
        uri: IceUri::parse(uri).expect("a STUN or TURN URI"),
        credentials: credentials.map(|(u, p)| (u.to_owned(), Secret::new(p.to_owned()))),
    }
}

/// The webrtcbin of the `n`th peer the engine made, in the running call.
fn webrtcbin(bench: &Bench, n: u64) -> gst::Element {
    use gst::prelude::GstBinExt;
    bench
        .pipeline()
        .expect("a call is running")
        .by_name(&format!("webrtc-{n}"))
        .unwrap_or_else(|| panic!("no webrtc-{n}"))
}

#[test]
fn new_peers_get_the_ice_servers_and_connect_even_when_those_never_answer() {
    use gst::prelude::ObjectExt;
    let mut bench = Bench::new(Devices::simulated(), SMALL);
    // Nothing listens on 127.0.0.1:9 and :10. There is no STUN or TURN server on this machine
    // (and no network): this proves the servers reach webrtcbin and that ones that never answer
    // do not stop a connection that host candidates can make, not that relaying works.
    bench.send(MediaCommand::SetIceServers {
        servers: vec![
            ice_server("stun:127.0.0.1:9", None),
            ice_server("stun:127.0.0.1:10", None),
            ice_server(
                "turn:127.0.0.1:9?transport=udp",
                Some(("1759003600:@room:localhost", "a+b/c=")),
            ),
            ice_server("turns:127.0.0.1:10", Some(("room", "secret"))),
        ],
    });
    bench.connect("alice", true);
    let first = webrtcbin(&bench, 1);
    let nice = first
        .property::<gst_webrtc::WebRTCICE>("ice-agent")
        .property::<gst::glib::Object>("agent");
    assert!(!nice.property::<bool>("upnp"), "libnice's UPnP is off");
    assert_eq!(
        first.property::<Option<String>>("stun-server").as_deref(),
        Some("stun://127.0.0.1:9"),
        "webrtcbin takes one STUN server: the first"
    );
    let turn = first
        .property::<Option<String>>("turn-server")
        .expect("webrtcbin took the TURN server");
    // (Read back, GStreamer escapes the already-escaped credentials once more; what libnice
    // is given is checked by `turn_credentials_reach_the_turn_server_decoded`.)
    assert!(
        turn.starts_with("turn://") && turn.ends_with("@127.0.0.1:9?transport=udp"),
        "{turn}"
    );
    let shown = bench.report().ice_servers;
    assert_eq!(
        shown,
        vec![
            "stun:127.0.0.1:9",
            "stun:127.0.0.1:10",
            "turn:127.0.0.1:9?transport=udp",
            "turns:127.0.0.1:10"
        ]
    );

    // New servers: the connected peer keeps what it has, the next one gets the new set.
    bench.send(MediaCommand::SetIceServers {
        servers: Vec::new(),
    });
    bench.connect("bob", false);
    let second = webrtcbin(&bench, 2);
    assert_eq!(second.property::<Option<String>>("stun-server"), None);
    assert_eq!(second.property::<Option<String>>("turn-server"), None);
    assert_eq!(
        first.property::<Option<String>>("stun-server").as_deref(),
        Some("stun://127.0.0.1:9")
    );
    let (sent, received) = frames_over(&mut bench, "alice", Duration::from_secs(2));
    assert!(sent > 0 && received > 0, "{sent} / {received} frames");
    assert!(bench.report().ice_servers.is_empty());
}

/// STUN attributes of one message: (type, value).
fn stun_attributes(message: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 20;
    while at + 4 <= message.len() {
        let kind = u16::from_be_bytes([message[at], message[at + 1]]);
        let len = u16::from_be_bytes([message[at + 2], message[at + 3]]) as usize;
        let Some(value) = message.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push((kind, value.to_vec()));
        at += 4 + len.div_ceil(4) * 4;
    }
    out
}

/// A STUN attribute, padded.
fn stun_attribute(kind: u16, value: &[u8]) -> Vec<u8> {
    let mut a = kind.to_be_bytes().to_vec();
    a.extend((value.len() as u16).to_be_bytes());
    a.extend(value);
    a.resize(a.len().div_ceil(4) * 4, 0);
    a
}

/// Whether the MESSAGE-INTEGRITY of a long-term-credential STUN request matches
/// (RFC 5389 15.4: HMAC-SHA1 keyed with MD5(user:realm:password)), checked by Python's hmac.
fn integrity_holds(message: &[u8], user: &str, realm: &str, password: &str) -> bool {
    let mut at = 20;
    while at + 4 <= message.len() {
        let kind = u16::from_be_bytes([message[at], message[at + 1]]);
        let len = u16::from_be_bytes([message[at + 2], message[at + 3]]) as usize;
        if kind == 0x0008 {
            let mut signed = message[..at].to_vec();
            let length = (at - 20 + 24) as u16;
            signed[2..4].copy_from_slice(&length.to_be_bytes());
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let script = "import hashlib,hmac,sys\n\
                u,r,p,m,mac=sys.argv[1:]\n\
                k=hashlib.md5(f'{u}:{r}:{p}'.encode()).digest()\n\
                print(hmac.new(k,bytes.fromhex(m),hashlib.sha1).hexdigest()==mac)";
            let out = std::process::Command::new("python3")
                .args(["-c", script, user, realm, password])
                .arg(hex(&signed))
                .arg(hex(&message[at + 4..at + 24]))
                .output()
                .expect("python3 runs");
            return String::from_utf8_lossy(&out.stdout).trim() == "True";
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    false
}

#[test]
fn turn_credentials_reach_the_turn_server_decoded() {
    // Synapse's credentials: `expiry:@user:server` and a base64 HMAC, both full of characters
    // that must be escaped in webrtcbin's turn:// URI and decoded before libnice uses them.
    const USER: &str = "1759003600:@room:localhost";
    const PASSWORD: &str = "a+b/c=d%e";
    const REALM: &str = "roomd-test";
    // Not a TURN server: a socket that asks for credentials (401 with a realm and nonce, as a
    // real one does) and keeps what comes back. No relay is made.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let requests: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let (requests, stop) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let m = &buf[..n];
                // An Allocate request with the magic cookie.
                if n < 20 || m[0..2] != [0x00, 0x03] || m[4..8] != [0x21, 0x12, 0xa4, 0x42] {
                    continue;
                }
                requests.lock().unwrap().push(m.to_vec());
                let mut attrs = stun_attribute(0x0009, &[0, 0, 4, 1, b'U', b'n', b'a', b'u']);
                attrs.extend(stun_attribute(0x0014, REALM.as_bytes()));
                attrs.extend(stun_attribute(0x0015, b"nonce-1"));
                let mut reply = vec![0x01, 0x13];
                reply.extend((attrs.len() as u16).to_be_bytes());
                reply.extend(&m[4..20]);
                reply.extend(attrs);
                let _ = socket.send_to(&reply, from);
            }
        })
    };

    let mut bench = Bench::new(Devices::simulated(), SMALL);
    let turn = ice_server(
        &format!("turn:127.0.0.1:{port}?transport=udp"),
        Some(("1759003600:@room:localhost", "a+b/c=d%e")),
    );
    bench.send(MediaCommand::SetIceServers {
        servers: vec![turn],
    });
    bench.connect("alice", true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let signed = loop {
        let found = requests.lock().unwrap().iter().find_map(|m| {
            let attrs = stun_attributes(m);
            let user = attrs.iter().find(|(k, _)| *k == 0x0006)?;
            Some((String::from_utf8_lossy(&user.1).into_owned(), m.clone()))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no authenticated Allocate came; requests: {}",
            requests.lock().unwrap().len()
        );
        bench.run(Duration::from_millis(100));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    server.join().unwrap();
    assert_eq!(signed.0, USER, "the username, decoded");
    assert!(
        integrity_holds(&signed.1, USER, REALM, PASSWORD),
        "the request is signed with the decoded password"
    );
    assert!(
        !integrity_holds(&signed.1, USER, REALM, "a%2Bb%2Fc%3Dd%25e"),
        "and not with the escaped one"
    );
}

/// How long the slow peer's webrtcbin takes over its answer.
const SLOW: Duration = Duration::from_secs(6);

#[test]
fn a_slow_webrtcbin_holds_up_neither_the_other_peers_nor_the_engine() {
    // Every description of "slow" is held for 6 s on its own webrtcbin's thread, where the
    // answer's change function runs: a webrtcbin stuck on something.
    let hooks = TestHooks {
        slow_peer: Some(("slow".to_owned(), SLOW)),
        ..Default::default()
    };
    let mut bench = Bench::with_hooks(Devices::simulated(), SD, hooks);
    let asked = Instant::now();
    // roomd answers both: the path that used to wait on webrtcbin's promise.
    bench.add("slow", false);
    bench.add("fast", false);

    let fast = bench
        .connected_at("fast", SLOW)
        .expect("fast connects while slow's answer is held");
    // The engine answers at once all the while.
    let answered = |bench: &Bench| {
        bench
            .seen
            .lock()
            .unwrap()
            .iter()
            .find_map(|(t, e)| match e {
                MediaEvent::LocalDescription { peer, .. } if peer.0 == "slow" => Some(*t),
                _ => None,
            })
    };
    let mut round_trips = Vec::new();
    while answered(&bench).is_none() && asked.elapsed() < SLOW {
        let sent = Instant::now();
        bench.report();
        round_trips.push(sent.elapsed());
        bench.run(Duration::from_millis(100));
    }
    let worst = round_trips.iter().max().copied().unwrap_or_default();
    println!(
        "fast connected after {:?}; {} reports while slow was held, the slowest in {worst:?}",
        fast - asked,
        round_trips.len()
    );
    assert!(round_trips.len() >= 5, "{round_trips:?}");
    assert!(
        worst < Duration::from_millis(100),
        "a report took {worst:?}"
    );

    // Then the slow one gets its answer, and connects too.
    let slow = bench
        .connected_at("slow", Duration::from_secs(20))
        .expect("slow connects in the end");
    let slow_answer = answered(&bench).expect("slow's answer");
    assert!(
        slow_answer - asked >= SLOW,
        "slow's answer came after {:?}",
        slow_answer - asked
    );
    assert!(fast < slow_answer, "fast did not wait for slow");
    println!("slow connected after {:?}", slow - asked);
    bench.run(Duration::from_secs(1));
    for name in ["fast", "slow"] {
        let (sent, received) = frames_over(&mut bench, name, Duration::from_secs(2));
        assert!(
            sent >= 40 && received >= 40,
            "{name}: {sent} / {received} frames in 2 s"
        );
    }
}

#[test]
fn webrtc_statistics_are_collected_without_being_asked() {
    let mut bench = Bench::new(Devices::simulated(), SMALL);
    bench.connect("remote", true);
    // The engine asks webrtcbin every second on its own; a report only reads what came back.
    let collected = bench.pump_until_with(Duration::from_secs(5), |bench| {
        bench
            .stats()
            .first()
            .is_some_and(|s| s.bytes_sent > 0 && s.webrtc_stats_age_ms.is_some())
    });
    assert!(collected, "{:?}", bench.stats());
    let age = bench.stats()[0].webrtc_stats_age_ms.unwrap();
    assert!(age <= 2_000, "the figures are {age} ms old");
}
