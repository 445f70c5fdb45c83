//! The operation interpreter behind the `call_signalling` fuzz target and the `fuzz_smoke` test
//! (which includes this file with `#[path]`): a core in service and in an MSC3401 mesh call with
//! two peers, then a byte string read as a sequence of operations against it. To-device and room
//! `m.call.*` signalling (mostly well-formed, with hostile values and some plain garbage),
//! membership changes, media-engine reports for the peers the core made, control requests,
//! homeserver answers and the passing of time. After every operation the invariants are checked;
//! a broken one panics, which is what the fuzzer looks for:
//!
//! - nothing panics;
//! - no input makes more than [`MAX_OUTPUTS_PER_INPUT`] outputs;
//! - never more than [`MAX_PEER_CALLS`] peer calls;
//! - after a tick at `t`, the next wakeup is `None` or after `t` (a wakeup due at or before the
//!   tick that just ran would spin the daemon's loop), and the clock gets anywhere with a bounded
//!   number of ticks;
//! - the core's state (its `Debug` text) stays within a constant plus a multiple of what was fed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use roomd_core::events::{CALL_MEMBER, MESH_CALL, ROOM_MEMBER};
use roomd_core::ice::{IceSettings, TurnServers};
use roomd_core::ice_uri::IceUri;
use roomd_core::media::{
    Candidate, ConnectionState, MediaCommand, MediaEvent, MediaKind, PeerId, SdpKind,
};
use roomd_core::rtc::signal::{
    Joined, Participant, ParticipantState, SignalResponse, Target, TrackInfo, Trickle,
};
use roomd_core::rtc::{ConnId, LiveKitCommand, LiveKitEvent, OpenIdToken, SfuAccess};
use roomd_core::{
    Button, ButtonEdge, Core, CtlRequest, DelayedAction, FailureKind, Identity, Input, JoinPolicy,
    MatrixCommand, MatrixFailure, Now, Output, PanelSettings, Principal, RoomSettings, Secret,
    Settings, StateEvent, TimelineEvent, VolumeChange, voip,
};
use serde_json::{Map, Value, json};

/// No single input may make more outputs than this.
pub const MAX_OUTPUTS_PER_INPUT: usize = 1000;
/// The core's own bound on peer calls.
pub const MAX_PEER_CALLS: usize = 16;
/// Operations read from one input; the rest of a longer one is ignored.
pub const MAX_OPS: usize = 2000;
/// Ticks allowed while the clock moves by one operation's step (at most an hour).
const MAX_TICKS_PER_STEP: usize = 10_000;
/// The core's `Debug` text may be this long plus [`GROWTH_PER_BYTE_FED`] per byte fed.
const STATE_BASE: usize = 1 << 20;
const GROWTH_PER_BYTE_FED: usize = 4;

const TS0: u64 = 1_759_000_000_000;
const ROOM: &str = "!room:localhost";
const OTHER_ROOM: &str = "!other:localhost";
const ME: &str = "@room:localhost";
const MY_DEVICE: &str = "ROOMD";
const MY_SESSION: &str = "session-1";
/// Sorts before the device's user ID: she places the call to us.
const ALICE: &str = "@alice:localhost";
/// Sorts after it: we place the call to him.
const ZED: &str = "@zed:localhost";
/// Joined to the room, not in the call.
const MALLORY: &str = "@mallory:localhost";
/// Not in the room at all.
const EVE: &str = "@eve:elsewhere.example";
/// The conference focus: when it joins the room, the device places a 1:1 call to it.
const FOCUS: &str = "@focus:localhost";
const SENDERS: &[&str] = &[ALICE, ZED, ALICE, ZED, MALLORY, EVE, FOCUS, ME];
/// The signalling types, the ones that set up calls more often.
const SIGNAL_TYPES: &[&str] = &[
    voip::INVITE,
    voip::INVITE,
    voip::INVITE,
    voip::ANSWER,
    voip::ANSWER,
    voip::CANDIDATES,
    voip::CANDIDATES,
    voip::SELECT_ANSWER,
    voip::NEGOTIATE,
    voip::NEGOTIATE,
    voip::HANGUP,
    voip::REJECT,
    voip::METADATA_CHANGED,
    "org.matrix.call.sdp_stream_metadata_changed",
];
const OFFER: &str =
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
/// Looks like SDP, but without media.
const NO_MEDIA: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";
const CANDIDATE: &str = "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host";

fn device_of(user: &str) -> &'static str {
    match user {
        ALICE => "ALICEDEV",
        ZED => "ZEDDEV",
        MALLORY => "MALLORYDEV",
        EVE => "EVEDEV",
        FOCUS => "FOCUSDEV",
        _ => MY_DEVICE,
    }
}

/// Field names and values the parsers look for, so garbage often looks nearly right.
const KEYS: &[&str] = &[
    "call_id",
    "party_id",
    "version",
    "lifetime",
    "offer",
    "answer",
    "type",
    "sdp",
    "candidates",
    "candidate",
    "sdpMid",
    "sdpMLineIndex",
    "selected_party_id",
    "description",
    "reason",
    "invitee",
    "sdp_stream_metadata",
    "purpose",
    "audio_muted",
    "video_muted",
    "conf_id",
    "device_id",
    "sender_session_id",
    "dest_session_id",
    "seq",
    "m.calls",
    "m.call_id",
    "m.devices",
    "session_id",
    "expires_ts",
    "membership",
];
const STRINGS: &[&str] = &[
    "",
    "1",
    "offer",
    "answer",
    "g1",
    "g2",
    "s",
    MY_SESSION,
    MY_DEVICE,
    "ALICEDEV",
    "ZEDDEV",
    ME,
    ALICE,
    ZED,
    "m.usermedia",
    "m.screenshare",
    "user_hangup",
    "join",
    "\u{0}",
    "🙂",
    OFFER,
];

/// The fuzz input, read a little at a time; past its end every read is zero.
struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn below(&mut self, n: usize) -> usize {
        self.byte() as usize % n
    }

    /// True one time in `n` (when the byte read is a multiple of `n`).
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |v, _| (v << 8) | u64::from(self.byte()))
    }

    /// A short string: a known one, or raw bytes.
    fn text(&mut self) -> String {
        if self.one_in(2) {
            return self.pick(STRINGS).to_owned();
        }
        let len = self.below(12);
        let start = self.pos.min(self.data.len());
        let end = (start + len).min(self.data.len());
        self.pos += len;
        String::from_utf8_lossy(&self.data[start..end]).into_owned()
    }

    /// Any JSON value, small.
    fn garbage(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.byte() & 1 == 1),
            2 => match self.below(5) {
                0 => json!(self.u64()),
                1 => json!(-1),
                2 => json!(u64::MAX),
                3 => json!(-1.5e300),
                _ => json!(self.byte()),
            },
            3..=5 => json!(self.text()),
            6 => Value::Array(
                (0..self.below(4))
                    .map(|_| self.garbage(depth - 1))
                    .collect(),
            ),
            _ => {
                let mut m = Map::new();
                for _ in 0..self.below(6) {
                    let k = self.pick(KEYS);
                    m.insert(k.to_owned(), self.garbage(depth - 1));
                }
                Value::Object(m)
            }
        }
    }
}

/// What a run did, for the smoke test to report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub ops: usize,
    pub inputs: usize,
    pub ticks: usize,
    pub peers_added: usize,
    /// Peers opened to answer an invite.
    pub invites_answered: usize,
    pub signalling_sent: usize,
    /// LiveKit connects the core asked for, and joins it got through to.
    pub sfu_connects: usize,
    pub max_peer_calls: usize,
    pub max_state_bytes: usize,
}

struct World {
    core: Core,
    mono0: Instant,
    now: Now,
    /// Media peers the core opened, newest last.
    peers: Vec<PeerId>,
    /// The descriptions the media engine owes: answers to offers, offers for new peers.
    owed: Vec<(PeerId, SdpKind)>,
    /// Call IDs the core used in what it sent, newest last.
    call_ids: Vec<String>,
    /// The next `seq` of each (sender, call ID), for well-formed sequences.
    seqs: HashMap<(String, String), u64>,
    /// Homeserver requests not yet answered.
    pending: VecDeque<MatrixCommand>,
    /// LiveKit token requests and connects not yet answered.
    livekit: VecDeque<LiveKitCommand>,
    /// LiveKit connections the core opened, newest last.
    conns: Vec<ConnId>,
    /// The fake homeserver's delayed events: ID -> (type, state key, content).
    delayed: HashMap<String, (String, String, Value)>,
    delay_ids: u64,
    /// Inputs have been fed since the last `Synced`.
    in_sync: bool,
    /// Bytes of content fed (JSON and SDP), for the bound on the core's state.
    fed: usize,
    stats: Stats,
    /// Every input and output on stderr (`FUZZ_TRACE=1`), to read a failing case.
    trace: bool,
}

fn settings() -> Settings {
    Settings {
        identity: Identity {
            user_id: ME.try_into().unwrap(),
            device_id: MY_DEVICE.into(),
            session_id: MY_SESSION.to_owned(),
        },
        rooms: RoomSettings {
            serve: vec![ROOM.try_into().unwrap()],
            invite_from: vec![Principal::Server("friends.example".try_into().unwrap())],
            join: JoinPolicy::Auto,
            answer_direct_calls: true,
            start_calls: true,
            direct_call_from: vec![Principal::Server("localhost".try_into().unwrap())],
            conference_focus: Some(FOCUS.try_into().unwrap()),
            element_call: true,
            start_sessions: true,
        },
        watchdog_timeout: Some(Duration::from_secs(600)),
        livekit_service_url: Some("https://rtc.example.org/jwt".to_owned()),
        ice: IceSettings {
            stun: vec![IceUri::parse("stun:stun.example.org").unwrap()],
            ..IceSettings::default()
        },
        panel: PanelSettings {
            debounce: Duration::from_millis(30),
            long_press: Duration::from_millis(1500),
            do_not_disturb: Duration::from_secs(30 * 60),
            volume: 70,
            volume_step: 5,
            leds_wired: true,
        },
    }
}

impl World {
    /// Logged in, in service in the room with Alice, Zed and Mallory, and in Alice's mesh call
    /// g1 with Alice's and Zed's devices: our call to Zed placed. With `element_call`, in the
    /// room's Element Call session with them instead, asking the token service for the SFU.
    fn new(element_call: bool) -> World {
        let mono0 = Instant::now();
        let now = Now::new(mono0, TS0);
        let mut w = World {
            core: Core::new(now, settings()),
            mono0,
            now,
            peers: Vec::new(),
            owed: Vec::new(),
            call_ids: Vec::new(),
            seqs: HashMap::new(),
            pending: VecDeque::new(),
            livekit: VecDeque::new(),
            conns: Vec::new(),
            delayed: HashMap::new(),
            delay_ids: 0,
            in_sync: false,
            fed: 0,
            stats: Stats::default(),
            trace: std::env::var_os("FUZZ_TRACE").is_some(),
        };
        w.drain();
        w.handle(Input::LoggedIn(Ok(())));
        for user in [ME, ALICE, ZED, MALLORY] {
            w.state(ROOM_MEMBER, user, user, json!({"membership": "join"}));
        }
        w.end_sync();
        assert!(w.core.in_service(), "setup: not in service");
        if element_call {
            for user in [ALICE, ZED] {
                let device = device_of(user);
                let content = json!({
                    "application": "m.call", "call_id": "", "scope": "m.room",
                    "device_id": device, "expires": 14_400_000,
                    "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
                    "foci_preferred": [{"type": "livekit", "livekit_alias": ROOM,
                                        "livekit_service_url": "https://rtc.example.org/jwt"}]
                });
                w.state(
                    CALL_MEMBER,
                    &format!("_{user}_{device}_m.call"),
                    user,
                    content,
                );
            }
            w.end_sync();
            w.homeserver(usize::MAX, &mut Bytes { data: &[], pos: 0 }, false);
            w.tick();
            assert!(
                w.livekit
                    .iter()
                    .any(|c| matches!(c, LiveKitCommand::FetchToken { .. })),
                "setup: the device did not ask for a LiveKit token"
            );
            return w;
        }
        w.state(
            MESH_CALL,
            "g1",
            ALICE,
            json!({"m.intent": "m.room", "m.type": "m.video"}),
        );
        for user in [ALICE, ZED] {
            let content = mesh_member("g1", &[(device_of(user), "s", TS0 + 3_600_000)]);
            w.state(CALL_MEMBER, user, user, content);
        }
        w.end_sync();
        w.homeserver(usize::MAX, &mut Bytes { data: &[], pos: 0 }, false);
        w.tick();
        assert!(
            !w.peers.is_empty(),
            "setup: the device did not call Zed in the mesh call"
        );
        w
    }

    fn at(&self, mono: Instant) -> Now {
        // Both clocks from one origin, so sub-millisecond steps never drift them apart.
        let ms = mono.duration_since(self.mono0).as_millis() as u64;
        Now::new(mono, TS0 + ms)
    }

    fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(output) = self.core.poll_output() {
            n += 1;
            if self.trace {
                eprintln!("    -> {output:?}");
            }
            assert!(
                n <= MAX_OUTPUTS_PER_INPUT,
                "more than {MAX_OUTPUTS_PER_INPUT} outputs for one input"
            );
            self.observe(output);
        }
        n
    }

    fn observe(&mut self, output: Output) {
        match output {
            Output::Media(MediaCommand::AddPeer {
                peer, remote_offer, ..
            }) => {
                self.stats.peers_added += 1;
                let kind = match remote_offer {
                    Some(_) => {
                        self.stats.invites_answered += 1;
                        SdpKind::Answer
                    }
                    None => SdpKind::Offer,
                };
                remember(&mut self.owed, (peer.clone(), kind), 32);
                remember(&mut self.peers, peer, 32);
            }
            Output::Media(MediaCommand::AddSfuPeer {
                peer, remote_offer, ..
            }) => {
                let kind = match remote_offer {
                    Some(_) => SdpKind::Answer,
                    None => SdpKind::Offer,
                };
                remember(&mut self.owed, (peer.clone(), kind), 32);
                remember(&mut self.peers, peer, 32);
            }
            Output::Media(MediaCommand::RemoteDescription {
                peer,
                kind: SdpKind::Offer,
                ..
            }) => remember(&mut self.owed, (peer, SdpKind::Answer), 32),
            Output::Media(MediaCommand::RestartIce { peer }) => {
                remember(&mut self.owed, (peer, SdpKind::Offer), 32)
            }
            Output::Media(MediaCommand::RemovePeer { peer }) => {
                self.owed.retain(|(p, _)| p != &peer)
            }
            Output::Matrix(
                MatrixCommand::SendToDevice { content, .. }
                | MatrixCommand::SendEvent { content, .. },
            ) => {
                self.stats.signalling_sent += 1;
                if let Some(id) = content.get("call_id").and_then(Value::as_str) {
                    let id = id.to_owned();
                    if !self.call_ids.contains(&id) {
                        remember(&mut self.call_ids, id, 16);
                    }
                }
            }
            Output::Matrix(MatrixCommand::Sync { .. }) => {}
            Output::Matrix(command) => {
                if self.pending.len() >= 256 {
                    self.pending.pop_front();
                }
                self.pending.push_back(command);
            }
            Output::LiveKit(
                command @ (LiveKitCommand::FetchToken { .. } | LiveKitCommand::Connect { .. }),
            ) => {
                if let LiveKitCommand::Connect { conn, .. } = &command {
                    self.stats.sfu_connects += 1;
                    if !self.conns.contains(conn) {
                        remember(&mut self.conns, *conn, 16);
                    }
                }
                if self.livekit.len() >= 64 {
                    self.livekit.pop_front();
                }
                self.livekit.push_back(command);
            }
            Output::LiveKit(_) => {}
            Output::SetVolume(v) => assert!(v <= 100, "volume {v}%"),
            Output::Notify(_)
            | Output::Reply { .. }
            | Output::Media(_)
            | Output::Led { .. }
            | Output::Exit => {}
        }
    }

    fn handle(&mut self, input: Input) {
        let acts = !matches!(
            input,
            Input::State(_) | Input::Timeline(_) | Input::ToDevice { .. }
        );
        if acts {
            // A sync's events are fed together, then its end; nothing comes in between.
            self.end_sync();
        } else {
            self.in_sync = true;
        }
        if self.trace {
            eprintln!("t0+{:?}: {input:?}", self.now.mono - self.mono0);
        }
        self.core.handle(self.now, input);
        self.stats.inputs += 1;
        self.drain();
    }

    fn end_sync(&mut self) {
        if std::mem::take(&mut self.in_sync) {
            if self.trace {
                eprintln!("t0+{:?}: Synced(Ok)", self.now.mono - self.mono0);
            }
            self.core.handle(self.now, Input::Synced(Ok(())));
            self.stats.inputs += 1;
            self.drain();
        }
    }

    /// Ticks; returns the next wakeup.
    fn tick(&mut self) -> Option<Instant> {
        self.handle(Input::Tick);
        self.stats.ticks += 1;
        let next = self.core.next_wakeup(self.now);
        if let Some(wake) = next {
            assert!(
                wake > self.now.mono,
                "after a tick at t0+{:?}, the next wakeup is due already ({:?} before): the \
                 daemon would spin",
                self.now.mono - self.mono0,
                self.now.mono.saturating_duration_since(wake),
            );
        }
        next
    }

    /// What the daemon does when idle: ticks when a wakeup is due.
    fn settle(&mut self) {
        if !self.in_sync
            && self
                .core
                .next_wakeup(self.now)
                .is_some_and(|w| w <= self.now.mono)
        {
            self.tick();
        }
    }

    fn advance(&mut self, by: Duration) {
        self.end_sync();
        self.settle();
        let until = self.now.mono + by;
        let mut ticks = 0;
        // A blinking LED wakes the loop at each change (the fastest, 10 a second).
        let allowed = MAX_TICKS_PER_STEP + 10 * by.as_secs() as usize;
        let mut next = self.core.next_wakeup(self.now);
        while let Some(wake) = next.filter(|w| *w <= until) {
            ticks += 1;
            assert!(ticks <= allowed, "more than {allowed} wakeups in {by:?}");
            self.now = self.at(wake.max(self.now.mono));
            next = self.tick();
        }
        self.now = self.at(until);
    }

    fn state(&mut self, event_type: &str, state_key: &str, sender: &str, content: Value) {
        self.fed += content.to_string().len();
        self.handle(Input::State(StateEvent {
            room_id: ROOM.try_into().unwrap(),
            event_type: event_type.to_owned(),
            state_key: state_key.to_owned(),
            sender: sender.try_into().unwrap(),
            origin_server_ts: self.now.unix_ms,
            content,
        }));
    }

    /// Answers up to `n` pending requests: with success, or as `r` says when `flaky`.
    fn homeserver(&mut self, n: usize, r: &mut Bytes, flaky: bool) {
        for _ in 0..n.min(1000) {
            let Some(command) = self.pending.pop_front() else {
                return;
            };
            let fail = flaky && r.one_in(5);
            let mut failure = || MatrixFailure {
                kind: r.pick(&[
                    FailureKind::Other,
                    FailureKind::NotFound,
                    FailureKind::Unsupported,
                    FailureKind::Unauthorized,
                ]),
                message: "fuzzed failure".to_owned(),
            };
            match command {
                MatrixCommand::LogIn { .. } => {
                    let result = if fail { Err(failure()) } else { Ok(()) };
                    self.handle(Input::LoggedIn(result));
                }
                MatrixCommand::JoinRoom { request, .. } => {
                    let result = if fail {
                        Err(failure())
                    } else {
                        Ok(ROOM.try_into().unwrap())
                    };
                    self.handle(Input::RoomJoined { request, result });
                }
                MatrixCommand::SendState {
                    request,
                    event_type,
                    state_key,
                    content,
                    delay_ms,
                    ..
                } => {
                    let result = if fail {
                        Err(failure())
                    } else if delay_ms.is_some() {
                        self.delay_ids += 1;
                        let id = format!("delay-{}", self.delay_ids);
                        if self.delayed.len() < 64 {
                            self.delayed
                                .insert(id.clone(), (event_type, state_key, content));
                        }
                        Ok(Some(id))
                    } else {
                        // The write comes back in a sync.
                        self.state(&event_type, &state_key, ME, content);
                        self.end_sync();
                        Ok(None)
                    };
                    self.handle(Input::StateSent { request, result });
                }
                MatrixCommand::UpdateDelayed {
                    request,
                    delay_id,
                    action,
                } => {
                    let result = if fail {
                        Err(failure())
                    } else {
                        if action != DelayedAction::Restart
                            && let Some((t, k, c)) = self.delayed.remove(&delay_id)
                            && action == DelayedAction::Send
                        {
                            self.state(&t, &k, ME, c);
                            self.end_sync();
                        }
                        Ok(())
                    };
                    self.handle(Input::DelayedUpdated { request, result });
                }
                MatrixCommand::FetchTurnServers => {
                    let result = if fail {
                        Err(failure())
                    } else if flaky && r.one_in(2) {
                        // What the homeserver may say (ttl within what the I/O layer reads).
                        let uris = (0..r.below(4))
                            .map(|_| match r.below(4) {
                                0 => "turn:turn.example.org?transport=udp".to_owned(),
                                1 => "stun:stun.example.org:3478".to_owned(),
                                _ => r.text(),
                            })
                            .collect();
                        Ok(TurnServers {
                            uris,
                            username: r.text(),
                            password: Secret::new(r.text()),
                            ttl_s: r.pick(&[0, 1, 60, 86_400, (1 << 53) - 1]),
                        })
                    } else {
                        Ok(TurnServers::none())
                    };
                    self.handle(Input::TurnServers(result));
                }
                MatrixCommand::RequestOpenIdToken { request } => {
                    let result = if fail {
                        Err(failure())
                    } else {
                        Ok(OpenIdToken {
                            access_token: Secret::new(r.text()),
                            matrix_server_name: "localhost".to_owned(),
                            expires_in_s: 3600,
                        })
                    };
                    self.handle(Input::OpenIdToken { request, result });
                }
                MatrixCommand::FetchRtcTransports | MatrixCommand::FetchWellKnownRtcFoci => {
                    // What a homeserver may list: a LiveKit transport, another kind, junk.
                    let result = if fail {
                        Err(failure())
                    } else {
                        Ok((0..r.below(3))
                            .map(|_| match r.below(3) {
                                0 => json!({
                                    "type": "livekit",
                                    "livekit_service_url": "https://rtc.example.org/jwt",
                                }),
                                1 => json!({"type": r.text()}),
                                _ => json!(r.text()),
                            })
                            .collect())
                    };
                    self.handle(match command {
                        MatrixCommand::FetchRtcTransports => Input::RtcTransports(result),
                        _ => Input::WellKnownRtcFoci(result),
                    });
                }
                MatrixCommand::Sync { .. }
                | MatrixCommand::SendToDevice { .. }
                | MatrixCommand::SendEvent { .. } => {}
            }
        }
    }

    fn check(&mut self, deep: bool) {
        let calls = self.core.status(self.now).peer_calls.len();
        assert!(
            calls <= MAX_PEER_CALLS,
            "{calls} peer calls, more than {MAX_PEER_CALLS}"
        );
        self.stats.max_peer_calls = self.stats.max_peer_calls.max(calls);
        if deep {
            let size = format!("{:?}", self.core).len();
            self.stats.max_state_bytes = self.stats.max_state_bytes.max(size);
            let bound = STATE_BASE + GROWTH_PER_BYTE_FED * self.fed;
            assert!(
                size <= bound,
                "the core's state is {size} bytes after {} bytes fed (bound {bound})",
                self.fed
            );
        }
    }

    // The operations.

    fn op(&mut self, r: &mut Bytes) {
        match r.below(16) {
            0..=4 => self.signal_to_device(r),
            5 => self.signal_garbage(r),
            6 | 7 => self.room_signal(r),
            8 if r.one_in(2) => self.livekit(r),
            8 | 9 => self.membership(r),
            10 | 11 => self.media(r),
            12 if r.one_in(2) => self.button(r),
            12 => self.ctl(r),
            13 | 14 => {
                // Rarely long: the device's own membership is kept up every few seconds.
                let by = match r.below(32) {
                    0 => Duration::from_secs(3600),
                    1 => Duration::from_secs(600),
                    n => [
                        Duration::ZERO,
                        Duration::from_millis(1),
                        Duration::from_millis(50),
                        Duration::from_millis(500),
                        Duration::from_secs(3),
                        Duration::from_secs(10),
                        Duration::from_secs(15),
                        Duration::from_secs(61),
                    ][n % 8],
                };
                self.advance(by)
            }
            _ => self.homeserver_or_sync(r),
        }
        // The end of a sync, unless more of its events follow.
        if r.one_in(3) {
            self.end_sync();
        }
    }

    fn signal_to_device(&mut self, r: &mut Bytes) {
        let sender = r.pick(SENDERS);
        let event_type = if r.one_in(16) {
            r.text()
        } else {
            r.pick(SIGNAL_TYPES).to_owned()
        };
        let content = self.signal_content(r, &event_type, sender, true);
        self.feed_to_device(sender, event_type, content);
    }

    fn signal_garbage(&mut self, r: &mut Bytes) {
        let sender = r.pick(SENDERS);
        let event_type = r.pick(voip::TYPES).to_owned();
        let content = if r.one_in(2) {
            // The rest of a chunk of input as JSON text, when it is JSON.
            let len = r.below(64);
            let start = r.pos.min(r.data.len());
            let end = (start + len).min(r.data.len());
            r.pos += len;
            serde_json::from_slice(&r.data[start..end])
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&r.data[start..end])))
        } else {
            r.garbage(3)
        };
        self.feed_to_device(sender, event_type, content);
    }

    fn feed_to_device(&mut self, sender: &str, event_type: String, content: Value) {
        self.fed += content.to_string().len();
        self.handle(Input::ToDevice {
            sender: sender.try_into().unwrap(),
            event_type,
            content,
        });
    }

    /// A 1:1 call event in a room.
    fn room_signal(&mut self, r: &mut Bytes) {
        let sender = r.pick(SENDERS);
        let event_type = r.pick(SIGNAL_TYPES).to_owned();
        let content = if r.one_in(8) {
            r.garbage(3)
        } else {
            let routed = r.one_in(8);
            self.signal_content(r, &event_type, sender, routed)
        };
        let room = if r.one_in(6) { OTHER_ROOM } else { ROOM };
        let origin_server_ts = match r.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => self.now.unix_ms.saturating_sub(120_000),
            _ => self.now.unix_ms,
        };
        self.fed += content.to_string().len();
        self.handle(Input::Timeline(TimelineEvent {
            room_id: room.try_into().unwrap(),
            event_type,
            sender: sender.try_into().unwrap(),
            origin_server_ts,
            content,
            sticky_duration_ms: None,
        }));
    }

    /// An `m.call.*` content: half the time well-formed (a sender following the protocol, if
    /// not always at the right moment), otherwise with hostile values in the right places.
    fn signal_content(
        &mut self,
        r: &mut Bytes,
        event_type: &str,
        sender: &str,
        routed: bool,
    ) -> Value {
        let hostile = r.one_in(2);
        // A choice among `n`: the last (the well-formed one) unless hostile.
        let choose = |r: &mut Bytes, n: usize| if hostile { r.below(n) } else { n - 1 };
        // The sender's own device mostly, else one of the crowd's.
        let device = match r.below(3) {
            0 => format!("D{}", r.below(20)),
            _ => device_of(sender).to_owned(),
        };
        let mut c = Map::new();
        let call_id = match r.below(if hostile { 10 } else { 6 }) {
            // Ours (their answers, candidates, hangups), or one of a few of theirs.
            0..=2 if !self.call_ids.is_empty() => {
                json!(self.call_ids[r.below(self.call_ids.len())])
            }
            0..=5 => json!(format!("c{}", r.below(8))),
            6 => json!("0"),
            7 => json!(""),
            8 => json!("c".repeat(256)),
            _ => r.garbage(1),
        };
        c.insert("call_id".into(), call_id.clone());
        match choose(r, 6) {
            0 => c.insert("party_id".into(), json!(MY_DEVICE)),
            1 => None,
            2 => c.insert("party_id".into(), json!(r.text())),
            _ => c.insert("party_id".into(), json!(device)),
        };
        match choose(r, 6) {
            0 => c.insert("version".into(), json!(1)),
            1 => c.insert("version".into(), json!(0)),
            2 => None,
            _ => c.insert("version".into(), json!("1")),
        };
        let shape = if hostile && r.one_in(4) {
            r.pick(voip::TYPES)
        } else {
            event_type
        };
        match shape {
            voip::INVITE => {
                c.insert("offer".into(), description(r, hostile, "offer"));
                c.insert("lifetime".into(), lifetime(r, hostile));
                match r.below(4) {
                    0 => c.insert("invitee".into(), json!(ME)),
                    1 if hostile => c.insert("invitee".into(), json!(r.pick(&[ALICE, "x"]))),
                    _ => None,
                };
                if r.one_in(2) {
                    c.insert("sdp_stream_metadata".into(), metadata(r, hostile));
                }
            }
            voip::ANSWER => {
                c.insert("answer".into(), description(r, hostile, "answer"));
                if r.one_in(2) {
                    c.insert("sdp_stream_metadata".into(), metadata(r, hostile));
                }
            }
            voip::CANDIDATES => {
                let n = match choose(r, 4) {
                    0 => 0,
                    1 => 64,
                    2 => 65,
                    _ => 1 + r.below(4),
                };
                let candidates: Vec<Value> = (0..n).map(|_| candidate(r, hostile)).collect();
                c.insert("candidates".into(), json!(candidates));
            }
            voip::SELECT_ANSWER => {
                let party = match choose(r, 4) {
                    0 => json!("ELSEWHERE"),
                    1 => json!(r.text()),
                    2 => r.garbage(0),
                    _ => json!(MY_DEVICE),
                };
                c.insert("selected_party_id".into(), party);
            }
            voip::NEGOTIATE => {
                let kind = if hostile && r.one_in(4) {
                    "rollback"
                } else {
                    r.pick(&["offer", "answer"])
                };
                c.insert("description".into(), description(r, hostile, kind));
                c.insert("lifetime".into(), lifetime(r, hostile));
                if r.one_in(2) {
                    c.insert("sdp_stream_metadata".into(), metadata(r, hostile));
                }
            }
            voip::HANGUP => {
                match choose(r, 4) {
                    0 => None,
                    1 => c.insert("reason".into(), json!(r.text())),
                    2 => c.insert("reason".into(), json!("ice_failed")),
                    _ => c.insert("reason".into(), json!("user_hangup")),
                };
            }
            voip::REJECT => {}
            _ => {
                c.insert("sdp_stream_metadata".into(), metadata(r, hostile));
            }
        }
        if routed {
            self.routing(r, hostile, &mut c, (sender, &device), &call_id);
        }
        if hostile {
            // A few fields wrong or missing.
            for _ in 0..r.below(3) {
                let key = r.pick(KEYS);
                if r.one_in(2) {
                    let value = r.garbage(2);
                    c.insert(key.to_owned(), value);
                } else {
                    c.remove(key);
                }
            }
        }
        Value::Object(c)
    }

    /// The MSC3401 to-device fields: from the sender's device in g1 to our session.
    fn routing(
        &mut self,
        r: &mut Bytes,
        hostile: bool,
        c: &mut Map<String, Value>,
        (sender, device): (&str, &str),
        call_id: &Value,
    ) {
        let choose = |r: &mut Bytes, n: usize| if hostile { r.below(n) } else { n - 1 };
        match choose(r, 6) {
            0 => None,
            1 => c.insert("conf_id".into(), json!("g2")),
            2 => c.insert("conf_id".into(), r.garbage(1)),
            _ => c.insert("conf_id".into(), json!("g1")),
        };
        let device_id = match choose(r, 5) {
            0 => json!(r.pick(&["ALICEDEV", "ZEDDEV", "D2", MY_DEVICE])),
            1 => r.garbage(1),
            _ => json!(device),
        };
        c.insert("device_id".into(), device_id);
        match choose(r, 5) {
            0 => c.insert("sender_session_id".into(), json!("s2")),
            1 => None,
            _ => c.insert("sender_session_id".into(), json!("s")),
        };
        match choose(r, 5) {
            0 => c.insert("dest_session_id".into(), json!("session-2")),
            1 => None,
            _ => c.insert("dest_session_id".into(), json!(MY_SESSION)),
        };
        let seq = match choose(r, 8) {
            0 | 1 => json!(r.below(6)),
            2 => json!(r.pick(&[32u64, 33, 1_000_000_000_000, u64::MAX])),
            3 => r.pick(&[json!(-1), json!("0"), json!(1.5), Value::Null]),
            _ => {
                // The next in this sender's sequence for the call (what a real sender sends).
                if self.seqs.len() >= 64 {
                    self.seqs.clear();
                }
                let next = self
                    .seqs
                    .entry((format!("{sender} {device}"), call_id.to_string()))
                    .or_insert(0);
                *next += 1;
                json!(*next - 1)
            }
        };
        c.insert("seq".into(), seq);
    }

    fn membership(&mut self, r: &mut Bytes) {
        let user = r.pick(&[ALICE, ZED, MALLORY, ALICE, ZED, MALLORY, EVE, FOCUS]);
        match r.below(16) {
            0 | 1 => {
                let user = if r.one_in(16) { ME } else { user };
                let membership = r.pick(&["join", "join", "join", "leave", "ban", "invite"]);
                self.state(ROOM_MEMBER, user, user, json!({ "membership": membership }));
            }
            2..=5 => {
                // In the call with the device they started with (back in it, often).
                let expires = self.now.unix_ms + 3_600_000;
                let content = mesh_member("g1", &[(device_of(user), "s", expires)]);
                self.state(CALL_MEMBER, user, user, content);
            }
            6..=11 => {
                let call = r.pick(&["g1", "g1", "g1", "g2"]);
                let mut devices = Vec::new();
                // Now and then a crowd: more devices than the core takes calls with.
                let crowd = r.one_in(6);
                for i in 0..if crowd { 20 } else { r.below(4) } {
                    let device = match r.below(6) {
                        _ if crowd => format!("D{i}"),
                        0 => format!("D{}", r.below(20)),
                        1 => MY_DEVICE.to_owned(),
                        _ => device_of(user).to_owned(),
                    };
                    let session = r.pick(&["s", "s", "s", "s2"]);
                    let expires = match r.below(6) {
                        0 => self.now.unix_ms + 5_000,
                        1 => self.now.unix_ms.saturating_sub(1),
                        2 => u64::MAX,
                        _ => self.now.unix_ms + 3_600_000,
                    };
                    devices.push((device, session, expires));
                }
                let content = match r.below(8) {
                    0 => json!({}),
                    1 => r.garbage(3),
                    _ => mesh_member(call, &devices),
                };
                self.state(CALL_MEMBER, user, user, content);
            }
            12 => {
                let call = r.pick(&["g1", "g2"]);
                let content = match r.below(8) {
                    0 => json!({"m.intent": "m.room", "m.type": "m.video", "m.terminated": "over"}),
                    1 => json!({}),
                    2 => r.garbage(2),
                    _ => json!({"m.intent": "m.room", "m.type": "m.video"}),
                };
                self.state(MESH_CALL, call, ALICE, content);
            }
            13 | 14 => {
                // In the room's Element Call session, on one of a few transports.
                let device = device_of(user);
                let transport = r.pick(&[
                    "https://rtc.example.org/jwt",
                    "https://other.example.org/jwt",
                    "not a url",
                ]);
                let selection = r.pick(&["multi_sfu", "multi_sfu", "oldest_membership", "?"]);
                let content = match r.below(8) {
                    0 => json!({}),
                    1 => r.garbage(3),
                    _ => json!({
                        "application": "m.call", "call_id": "", "scope": "m.room",
                        "device_id": device, "expires": 14_400_000,
                        "focus_active": {"type": "livekit", "focus_selection": selection},
                        "foci_preferred": [{"type": "livekit", "livekit_service_url": transport,
                                            "livekit_alias": ROOM}]
                    }),
                };
                self.state(
                    CALL_MEMBER,
                    &format!("_{user}_{device}_m.call"),
                    user,
                    content,
                );
            }
            _ => {
                let key = r.text();
                let content = r.garbage(3);
                self.state(CALL_MEMBER, &key, user, content);
            }
        }
    }

    /// The token service and the SFU: answers to what the core asked, then anything an SFU
    /// (or a hostile one) may send on a connection it has.
    fn livekit(&mut self, r: &mut Bytes) {
        if !self.livekit.is_empty()
            && !r.one_in(4)
            && let Some(command) = self.livekit.pop_front()
        {
            match command {
                LiveKitCommand::FetchToken { request, .. } => {
                    let result = if r.one_in(5) {
                        Err("fuzzed refusal".to_owned())
                    } else {
                        Ok(SfuAccess {
                            url: "ws://127.0.0.1:7880".to_owned(),
                            jwt: Secret::new(r.text()),
                        })
                    };
                    self.handle(Input::SfuToken { request, result });
                }
                LiveKitCommand::Connect { conn, .. } => {
                    let event = if r.one_in(5) {
                        LiveKitEvent::Closed {
                            reason: "refused".to_owned(),
                        }
                    } else {
                        LiveKitEvent::Message(SignalResponse::Join(Box::new(self.joined(r))))
                    };
                    self.handle(Input::LiveKit { conn, event });
                }
                _ => {}
            }
            return;
        }
        let conn = if self.conns.is_empty() || r.one_in(8) {
            ConnId(r.below(4) as u64)
        } else {
            self.conns[r.below(self.conns.len())]
        };
        let target = r.pick(&[Target::Publisher, Target::Subscriber]);
        let message = match r.below(12) {
            0 => SignalResponse::Join(Box::new(self.joined(r))),
            1 | 2 => SignalResponse::Offer(OFFER.to_owned()),
            3 => SignalResponse::Answer(r.pick(&[OFFER, "garbage"]).to_owned()),
            4 | 5 => SignalResponse::Trickle(Trickle {
                target,
                candidate: r.text(),
                sdp_mid: r.one_in(2).then(|| "0".to_owned()),
                sdp_m_line_index: r.one_in(2).then(|| r.below(4) as u32),
            }),
            6 => SignalResponse::Update(vec![participant(r)]),
            7 => SignalResponse::TrackPublished {
                cid: r
                    .pick(&["roomd-microphone", "roomd-camera", "other"])
                    .to_owned(),
                track: track(r),
            },
            8 => SignalResponse::Leave {
                reason: "fuzzed".to_owned(),
                reconnect: r.one_in(2),
            },
            9 => SignalResponse::Mute {
                sid: r.text(),
                muted: r.one_in(2),
            },
            10 => SignalResponse::Pong,
            _ => {
                let reason = "fuzzed close".to_owned();
                return self.handle(Input::LiveKit {
                    conn,
                    event: LiveKitEvent::Closed { reason },
                });
            }
        };
        self.handle(Input::LiveKit {
            conn,
            event: LiveKitEvent::Message(message),
        });
    }

    fn joined(&self, r: &mut Bytes) -> Joined {
        Joined {
            room: "RM_fuzz".to_owned(),
            participant: participant(r),
            others: (0..r.below(4)).map(|_| participant(r)).collect(),
            subscriber_primary: r.one_in(2),
            ping_interval_s: r.pick(&[0, 1, 10]),
            ping_timeout_s: r.pick(&[0, 2, 20]),
            server_version: "fuzz".to_owned(),
        }
    }

    fn media(&mut self, r: &mut Bytes) {
        if !self.owed.is_empty() && r.one_in(2) {
            // The engine does its job: the description it owes, candidates, connected.
            let (peer, kind) = self.owed.remove(r.below(self.owed.len()));
            let sdp = OFFER.to_owned();
            self.handle(Input::Media(MediaEvent::LocalDescription {
                peer: peer.clone(),
                kind,
                sdp,
            }));
            for i in 0..r.below(3) {
                let candidate = Candidate {
                    candidate: CANDIDATE.to_owned(),
                    sdp_m_line_index: i as u32,
                    sdp_mid: Some("0".to_owned()),
                };
                let peer = peer.clone();
                self.handle(Input::Media(MediaEvent::LocalCandidate { peer, candidate }));
            }
            if r.one_in(2) {
                let state = ConnectionState::Connected;
                self.handle(Input::Media(MediaEvent::ConnectionState { peer, state }));
            }
            return;
        }
        let peer = if self.peers.is_empty() || r.one_in(10) {
            PeerId(r.text())
        } else {
            // The newest peers most often: the live calls.
            let back = r.below(self.peers.len().min(4)).min(self.peers.len() - 1);
            self.peers[self.peers.len() - 1 - back].clone()
        };
        let event = match r.below(12) {
            0..=2 => {
                let kind = if r.one_in(2) {
                    SdpKind::Offer
                } else {
                    SdpKind::Answer
                };
                let sdp = if r.one_in(4) {
                    r.text()
                } else {
                    OFFER.to_owned()
                };
                self.fed += sdp.len();
                MediaEvent::LocalDescription { peer, kind, sdp }
            }
            3..=5 => MediaEvent::LocalCandidate {
                peer,
                candidate: Candidate {
                    candidate: if r.one_in(4) {
                        r.text()
                    } else {
                        CANDIDATE.to_owned()
                    },
                    sdp_m_line_index: r.below(3) as u32,
                    sdp_mid: r.one_in(2).then(|| "0".to_owned()),
                },
            },
            6..=8 => MediaEvent::ConnectionState {
                peer,
                state: r.pick(&[
                    ConnectionState::New,
                    ConnectionState::Connecting,
                    ConnectionState::Connected,
                    ConnectionState::Connected,
                    ConnectionState::Disconnected,
                    ConnectionState::Failed,
                    ConnectionState::Closed,
                ]),
            },
            9 => MediaEvent::Refused {
                command: "fuzz".to_owned(),
                peer: Some(peer),
                reason: "fuzzed".to_owned(),
            },
            10 => MediaEvent::RemoteMedia {
                peer,
                kind: if r.one_in(2) {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                },
            },
            _ => match r.below(4) {
                0 => MediaEvent::MicMuted(r.one_in(2)),
                1 => MediaEvent::CameraOff(r.one_in(2)),
                2 => MediaEvent::CameraUnavailable {
                    reason: "fuzzed".to_owned(),
                },
                _ => MediaEvent::Error {
                    element: "fuzz".to_owned(),
                    cause: "fuzzed".to_owned(),
                },
            },
        };
        self.handle(Input::Media(event));
    }

    fn ctl(&mut self, r: &mut Bytes) {
        let request = match r.below(12) {
            0 => CtlRequest::Status,
            1 => CtlRequest::Mute,
            2 => CtlRequest::Unmute,
            3 | 4 => CtlRequest::ToggleMute,
            5 => CtlRequest::Hangup {
                room: r.pick(&[None, Some(ROOM.to_owned()), Some(OTHER_ROOM.to_owned())]),
            },
            6 if r.one_in(4) => CtlRequest::Hangup {
                room: Some(r.text()),
            },
            7 if r.one_in(4) => return self.handle(Input::Shutdown),
            8 => CtlRequest::Join {
                room: r.pick(&[None, Some(ROOM.to_owned()), Some(OTHER_ROOM.to_owned())]),
            },
            9 => CtlRequest::Volume {
                change: r.pick(&[
                    None,
                    Some(VolumeChange::Up),
                    Some(VolumeChange::Down),
                    Some(VolumeChange::Set(0)),
                    Some(VolumeChange::Set(100)),
                    Some(VolumeChange::Set(255)),
                ]),
            },
            10 => CtlRequest::Press {
                button: r.pick(&Button::ALL),
                long: r.one_in(2),
            },
            _ => CtlRequest::Status,
        };
        self.handle(Input::Ctl { id: 1, request });
    }

    /// A button edge, as the GPIO backend reports it: a little after it happened, sometimes
    /// repeated or bouncing.
    fn button(&mut self, r: &mut Bytes) {
        let button = r.pick(&Button::ALL);
        let pressed = r.one_in(2);
        let late = Duration::from_millis(r.below(64) as u64);
        let at = self.now.mono.checked_sub(late).unwrap_or(self.now.mono);
        self.handle(Input::Button(ButtonEdge {
            button,
            pressed,
            at,
        }));
    }

    fn homeserver_or_sync(&mut self, r: &mut Bytes) {
        match r.below(10) {
            0 => {
                let kind = r.pick(&[FailureKind::Other, FailureKind::Unauthorized]);
                let failure = MatrixFailure {
                    kind,
                    message: "fuzzed sync failure".to_owned(),
                };
                self.handle(Input::Synced(Err(failure)));
            }
            1 => {
                let n = 1 + r.below(4);
                self.homeserver(n, r, true);
            }
            _ => self.homeserver(usize::MAX, r, false),
        }
    }
}

fn remember<T>(list: &mut Vec<T>, item: T, max: usize) {
    if list.len() >= max {
        list.remove(0);
    }
    list.push(item);
}

fn description(r: &mut Bytes, hostile: bool, kind: &str) -> Value {
    if !hostile {
        return json!({ "type": kind, "sdp": OFFER });
    }
    let kind = if r.one_in(6) {
        r.text()
    } else {
        kind.to_owned()
    };
    let sdp = match r.below(9) {
        0 => json!(""),
        1 => json!(r.text()),
        2 => json!("x".repeat(64 * 1024 + r.below(2))),
        3 => r.garbage(1),
        4 => return json!({ "type": kind }),
        5 => json!(NO_MEDIA),
        _ => json!(OFFER),
    };
    json!({ "type": kind, "sdp": sdp })
}

fn lifetime(r: &mut Bytes, hostile: bool) -> Value {
    if !hostile {
        return json!(60_000);
    }
    match r.below(6) {
        0 => json!(0),
        1 => json!(u64::MAX),
        2 => json!(-1),
        3 => json!("60000"),
        _ => json!(60_000),
    }
}

fn metadata(r: &mut Bytes, hostile: bool) -> Value {
    let n = if hostile && r.one_in(4) {
        9
    } else {
        r.below(3)
    };
    let mut streams = Map::new();
    for i in 0..n {
        let id = if hostile && r.one_in(2) {
            r.text()
        } else {
            format!("stream-{i}")
        };
        let purpose = match r.below(6) {
            0 => json!("m.screenshare"),
            1 if hostile => r.garbage(0),
            _ => json!("m.usermedia"),
        };
        let mut s = json!({ "purpose": purpose });
        if r.one_in(2) {
            s["audio_muted"] = if hostile && r.one_in(3) {
                r.garbage(0)
            } else {
                json!(r.one_in(2))
            };
            s["video_muted"] = json!(r.one_in(2));
        }
        streams.insert(id, s);
    }
    Value::Object(streams)
}

fn candidate(r: &mut Bytes, hostile: bool) -> Value {
    if !hostile {
        return json!({ "candidate": CANDIDATE, "sdpMLineIndex": r.below(2), "sdpMid": "0" });
    }
    let text = match r.below(6) {
        0 => json!(""),
        1 => json!("c".repeat(1025)),
        2 => json!(r.text()),
        3 => r.garbage(0),
        _ => json!(CANDIDATE),
    };
    let mut c = json!({ "candidate": text });
    match r.below(4) {
        0 => {}
        1 => c["sdpMLineIndex"] = r.pick(&[json!(-1), json!(u64::MAX), json!(4_294_967_296u64)]),
        _ => c["sdpMLineIndex"] = json!(r.below(3)),
    }
    if !r.one_in(4) {
        c["sdpMid"] = json!("0");
    }
    c
}

/// An MSC3401 `call.member` content: in call `call` with these (device, session, expiry)s.
fn mesh_member<D: AsRef<str>>(call: &str, devices: &[(D, &str, u64)]) -> Value {
    let devices: Vec<Value> = devices
        .iter()
        .map(|(device, session, expires)| {
            let device = device.as_ref();
            json!({"device_id": device, "session_id": session, "expires_ts": expires, "feeds": []})
        })
        .collect();
    json!({"m.calls": [{"m.call_id": call, "m.foci": [], "m.devices": devices}]})
}

/// Runs the operations `data` encodes against a core in a mesh call, checking the invariants
/// after each; panics when one breaks.
pub fn run(data: &[u8]) -> Stats {
    // A quarter of the inputs start in an Element Call session instead of a mesh call.
    let mut w = World::new(data.first().is_some_and(|b| b % 4 == 0));
    let mut r = Bytes { data, pos: 0 };
    let mut ops = 0;
    while !r.done() && ops < MAX_OPS {
        w.op(&mut r);
        ops += 1;
        if !w.in_sync {
            w.settle();
        }
        w.check(ops % 32 == 0);
    }
    w.end_sync();
    w.settle();
    w.check(true);
    w.stats.ops = ops;
    w.stats
}

fn participant(r: &mut Bytes) -> Participant {
    Participant {
        sid: format!("PA_{}", r.below(8)),
        identity: r
            .pick(&["@alice:localhost:ALICEDEV", "@zed:localhost:ZEDDEV", "?"])
            .to_owned(),
        state: r.pick(&[
            ParticipantState::Joining,
            ParticipantState::Joined,
            ParticipantState::Active,
            ParticipantState::Disconnected,
        ]),
        tracks: (0..r.below(3)).map(|_| track(r)).collect(),
    }
}

fn track(r: &mut Bytes) -> TrackInfo {
    TrackInfo {
        sid: format!("TR_{}", r.below(8)),
        kind: r.pick(&[MediaKind::Audio, MediaKind::Video]),
        muted: r.one_in(2),
        mime_type: r
            .pick(&["video/VP8", "video/H264", "audio/opus"])
            .to_owned(),
    }
}
