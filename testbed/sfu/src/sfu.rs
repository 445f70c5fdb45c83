//! The SFU proper: one task owns every participant, both of each participant's str0m `Rtc`s
//! (publisher: the client offers; subscriber: the SFU offers) and the one UDP socket they share.
//! WebSocket tasks hand it decoded `SignalRequest`s and get `SignalResponse`s back on a bounded
//! channel; RTP is forwarded between `Rtc`s inside this task, so nothing is shared or locked.

// `TrackInfo.layers`, `simulcast` and friends are deprecated in the proto in favour of
// per-codec fields, yet livekit-client 2.22 on the v0 path still reads them.
#![allow(deprecated)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_protocol as lk;
use lk::{signal_request, signal_response};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, Reliability};
use str0m::format::{Codec, PayloadParams};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::forward::{RIDS, Rewriter, choose_layer, rid_index, starts_keyframe};
use crate::jwt::Claims;
use crate::{SfuConfig, sdp};

/// What the SFU says it is: livekit-client refuses a server without a version.
pub const SERVER_VERSION: &str = "1.9.0";
/// LiveKit's signalling protocol version (livekit-client 2.22 and the server both speak 17).
pub const PROTOCOL: i32 = 17;
/// A simulcast layer with no packet for this long is taken as switched off by the sender.
const LAYER_IDLE: Duration = Duration::from_millis(1000);
/// At most one keyframe request per published layer in this time.
const KEYFRAME_REQUEST_GAP: Duration = Duration::from_millis(500);
/// Signalling messages queued for one client before it is dropped as stuck.
const OUT_QUEUE: usize = 512;
/// Passes of poll-and-handle per wakeup (each pass drains every `Rtc`).
const MAX_PASSES: usize = 32;

pub(crate) type Pid = u64;

/// The WebSocket side's view of a joined client.
pub(crate) struct Joined {
    pub pid: Pid,
    pub rx: mpsc::Receiver<Out>,
}

pub(crate) enum Out {
    Msg(Box<signal_response::Message>),
    /// Close the WebSocket (after a `leave`, or when evicted).
    Close,
}

pub(crate) struct JoinParams {
    pub auto_subscribe: bool,
}

pub(crate) enum Cmd {
    Join {
        claims: Claims,
        params: JoinParams,
        reply: oneshot::Sender<Result<Joined, String>>,
    },
    Signal {
        pid: Pid,
        msg: Box<signal_request::Message>,
    },
    Gone {
        pid: Pid,
    },
    Stats {
        reply: oneshot::Sender<SfuStats>,
    },
}

/// A snapshot of the SFU for tests: who is in, what they publish, what each one is sent.
#[derive(Debug, Clone, Default)]
pub struct SfuStats {
    pub participants: Vec<ParticipantStats>,
}

#[derive(Debug, Clone, Default)]
pub struct ParticipantStats {
    pub sid: String,
    pub identity: String,
    pub room: String,
    pub published: Vec<PublishedStats>,
    pub forwarded: Vec<ForwardedStats>,
}

#[derive(Debug, Clone, Default)]
pub struct PublishedStats {
    pub sid: String,
    pub kind: String,
    pub mime_type: String,
    pub muted: bool,
    /// Simulcast rids seen arriving (`q`, `h`, `f`), or none for a single stream.
    pub rids: Vec<String>,
    pub packets_in: u64,
}

/// One track as sent to this participant.
#[derive(Debug, Clone, Default)]
pub struct ForwardedStats {
    pub track_sid: String,
    pub from_identity: String,
    /// The simulcast layer being forwarded (`None`: not simulcast, or not started).
    pub rid: Option<String>,
    pub packets_out: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pc {
    Publisher,
    Subscriber,
}

struct PubTrack {
    cid: String,
    /// The codec `add_track` asked for (`vp8`, `h264`), put first in the answer.
    requested_codec: Option<String>,
    info: lk::TrackInfo,
    kind: MediaKind,
    mid: Option<Mid>,
    layer_seen: [Option<Instant>; 3],
    last_keyframe_request: [Option<Instant>; 4],
    packets_in: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum DownState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    Stopping(Mid),
}

struct DownTrack {
    from: Pid,
    /// The publisher's participant sid: the msid stream id is `PA_pub|TR_track`, which is
    /// how livekit-client finds the publication for an incoming track.
    from_sid: String,
    track_sid: String,
    kind: MediaKind,
    state: DownState,
    /// Wanted layer index into [`RIDS`] (2: the best), from `track_setting`.
    wanted: usize,
    current: Option<usize>,
    rewriter: Rewriter,
    packets_out: u64,
}

struct Participant {
    sid: String,
    identity: String,
    name: String,
    room: String,
    joined_at: i64,
    version: u32,
    permission: lk::ParticipantPermission,
    auto_subscribe: bool,
    tx: mpsc::Sender<Out>,
    publisher: Rtc,
    subscriber: Rtc,
    tracks: Vec<PubTrack>,
    down: Vec<DownTrack>,
    sub_pending: Option<SdpPendingOffer>,
    sub_dirty: bool,
    channels_added: bool,
    offer_id: u32,
    dead: bool,
}

struct RoomState {
    sid: String,
    created: i64,
}

pub(crate) struct Sfu {
    config: SfuConfig,
    socket: UdpSocket,
    local: SocketAddr,
    participants: HashMap<Pid, Participant>,
    rooms: HashMap<String, RoomState>,
    next_pid: Pid,
}

fn sid(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let s: String = (0..12)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{s}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn new_rtc(local: SocketAddr) -> Rtc {
    let mut rtc = Rtc::builder()
        .set_ice_lite(true)
        .set_rtp_mode(true)
        .clear_codecs()
        // Plain Opus (no RED: forwarding RED to a subscriber that did not negotiate it breaks).
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_h264(true)
        .build(Instant::now());
    let candidate = Candidate::host(local, "udp").expect("a loopback host candidate");
    rtc.add_local_candidate(candidate);
    rtc
}

fn mime_of(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "audio/opus",
        Codec::Vp8 => "video/VP8",
        Codec::H264 => "video/H264",
        Codec::Vp9 => "video/VP9",
        Codec::Av1 => "video/AV1",
        _ => "",
    }
}

impl Sfu {
    pub(crate) fn new(config: SfuConfig, socket: UdpSocket) -> std::io::Result<Sfu> {
        let local = socket.local_addr()?;
        Ok(Sfu {
            config,
            socket,
            local,
            participants: HashMap::new(),
            rooms: HashMap::new(),
            next_pid: 1,
        })
    }

    /// Runs until every command sender is gone.
    pub(crate) async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut buf = vec![0u8; 2000];
        loop {
            let deadline = self.drive();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                r = self.socket.recv_from(&mut buf) => {
                    if let Ok((n, source)) = r {
                        self.udp(&buf[..n], source);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            self.tick();
            self.reap();
        }
        for p in self.participants.values_mut() {
            p.publisher.disconnect();
            p.subscriber.disconnect();
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        for p in self.participants.values_mut() {
            for rtc in [&mut p.publisher, &mut p.subscriber] {
                if rtc.is_alive() && rtc.handle_input(Input::Timeout(now)).is_err() {
                    rtc.disconnect();
                }
            }
        }
    }

    fn udp(&mut self, data: &[u8], source: SocketAddr) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let input = Input::Receive(
            Instant::now(),
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        for p in self.participants.values_mut() {
            for rtc in [&mut p.publisher, &mut p.subscriber] {
                if rtc.is_alive() && rtc.accepts(&input) {
                    if let Err(e) = rtc.handle_input(input) {
                        log::debug!("test SFU: {}: input refused: {e}", p.identity);
                    }
                    return;
                }
            }
        }
    }

    /// Polls every `Rtc` until each waits for time, sending what they transmit and handling
    /// what they report (which may give other `Rtc`s more to send). Returns the next deadline.
    fn drive(&mut self) -> Instant {
        let mut next = Instant::now() + Duration::from_millis(100);
        for _ in 0..MAX_PASSES {
            let mut events = Vec::new();
            for (&pid, p) in &mut self.participants {
                for (pc, rtc) in [
                    (Pc::Publisher, &mut p.publisher),
                    (Pc::Subscriber, &mut p.subscriber),
                ] {
                    while rtc.is_alive() {
                        match rtc.poll_output() {
                            Ok(Output::Timeout(t)) => {
                                next = next.min(t);
                                break;
                            }
                            Ok(Output::Transmit(t)) => {
                                // Loopback UDP: a full buffer just drops the datagram.
                                let _ = self.socket.try_send_to(&t.contents, t.destination);
                            }
                            Ok(Output::Event(e)) => events.push((pid, pc, e)),
                            Err(e) => {
                                log::debug!("test SFU: {}: {pc:?} failed: {e}", p.identity);
                                rtc.disconnect();
                            }
                        }
                    }
                }
            }
            if events.is_empty() {
                break;
            }
            for (pid, pc, event) in events {
                self.event(pid, pc, event);
            }
        }
        next
    }

    fn event(&mut self, pid: Pid, pc: Pc, event: Event) {
        match (pc, event) {
            (Pc::Publisher, Event::RtpPacket(pkt)) => self.forward(pid, pkt),
            (Pc::Subscriber, Event::KeyframeRequest(req)) => {
                let Some(p) = self.participants.get(&pid) else {
                    return;
                };
                let Some(d) = p
                    .down
                    .iter()
                    .find(|d| matches!(d.state, DownState::Open(m) if m == req.mid))
                else {
                    return;
                };
                let (from, sid, layer) = (d.from, d.track_sid.clone(), d.current);
                self.request_keyframe(from, &sid, layer, req.kind);
            }
            (pc, Event::IceConnectionStateChange(state)) => {
                if let Some(p) = self.participants.get(&pid) {
                    log::debug!("test SFU: {} {pc:?} ICE {state:?}", p.identity);
                }
            }
            _ => {}
        }
    }

    /// Sends one publisher packet on to every subscriber of its track, on the layer each gets.
    fn forward(&mut self, from: Pid, pkt: RtpPacket) {
        let now = Instant::now();
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let (mid, rid) = {
            let mut api = p.publisher.direct_api();
            let Some(rx) = api.stream_rx(&pkt.header.ssrc) else {
                return;
            };
            (rx.mid(), rx.rid())
        };
        let Some(params) = p
            .publisher
            .codec_config()
            .params()
            .iter()
            .find(|pp| pp.pt() == pkt.header.payload_type)
            .copied()
        else {
            return;
        };
        let room = p.room.clone();
        let Some(track) = p.tracks.iter_mut().find(|t| t.mid == Some(mid)) else {
            return;
        };
        track.packets_in += 1;
        let layer = rid.as_ref().and_then(|r| rid_index(r));
        if let Some(l) = layer {
            track.layer_seen[l] = Some(now);
        }
        let active = track
            .layer_seen
            .map(|t| t.is_some_and(|t| now.duration_since(t) < LAYER_IDLE));
        let video = track.kind == MediaKind::Video;
        let keyframe = video && starts_keyframe(params.spec().codec, &pkt.payload);
        let track_sid = track.info.sid.clone();
        let mut want_keyframe: Option<Option<usize>> = None;

        for (&pid, s) in &mut self.participants {
            if pid == from || s.room != room {
                continue;
            }
            let Some(d) = s
                .down
                .iter_mut()
                .find(|d| d.from == from && d.track_sid == track_sid)
            else {
                continue;
            };
            let DownState::Open(out_mid) = d.state else {
                continue;
            };
            if video {
                if layer.is_some() {
                    let target = choose_layer(active, d.wanted);
                    if d.current != layer {
                        if target != layer {
                            continue;
                        }
                        if !keyframe {
                            want_keyframe = Some(layer);
                            continue;
                        }
                        d.current = layer;
                        d.rewriter.rebase(*pkt.seq_no, pkt.header.timestamp);
                    } else if target.is_some() && target != layer {
                        // Still on this layer, but a better (or the only live) one waits.
                        want_keyframe = Some(target);
                    }
                } else if !d.rewriter.is_started() {
                    if !keyframe {
                        want_keyframe = Some(None);
                        continue;
                    }
                    d.rewriter.rebase(*pkt.seq_no, pkt.header.timestamp);
                }
            } else if !d.rewriter.is_started() {
                d.rewriter.rebase(*pkt.seq_no, pkt.header.timestamp);
            }
            let Some((seq, ts)) = d.rewriter.map(*pkt.seq_no, pkt.header.timestamp) else {
                continue;
            };
            let Some(pt) = out_pt(&s.subscriber, out_mid, params) else {
                continue;
            };
            let mut api = s.subscriber.direct_api();
            let Some(tx) = api.stream_tx_by_mid(out_mid, None) else {
                continue;
            };
            let ext = ExtensionValues {
                audio_level: pkt.header.ext_vals.audio_level,
                voice_activity: pkt.header.ext_vals.voice_activity,
                video_orientation: pkt.header.ext_vals.video_orientation,
                ..Default::default()
            };
            tx.write_rtp(
                RtpWrite::new(pt, seq.into(), ts, pkt.timestamp, pkt.payload.clone())
                    .marker(pkt.header.marker)
                    .ext_vals(ext)
                    .nackable(video),
            );
            d.packets_out += 1;
        }
        if let Some(layer) = want_keyframe {
            self.request_keyframe(from, &track_sid, layer, KeyframeRequestKind::Pli);
        }
    }

    /// Asks the publisher of `track_sid` for a keyframe on `layer` (all layers if `None`),
    /// at most once per [`KEYFRAME_REQUEST_GAP`] per layer.
    fn request_keyframe(
        &mut self,
        from: Pid,
        track_sid: &str,
        layer: Option<usize>,
        kind: KeyframeRequestKind,
    ) {
        let now = Instant::now();
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        let Some(track) = p.tracks.iter_mut().find(|t| t.info.sid == track_sid) else {
            return;
        };
        let Some(mid) = track.mid else { return };
        let slot = layer.unwrap_or(3);
        if track.last_keyframe_request[slot]
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_GAP)
        {
            return;
        }
        track.last_keyframe_request[slot] = Some(now);
        let rids: Vec<Option<Rid>> = match layer {
            Some(l) => vec![Some(RIDS[l].into())],
            None if track.info.simulcast => RIDS.iter().map(|r| Some((*r).into())).collect(),
            None => vec![None],
        };
        let mut api = p.publisher.direct_api();
        for rid in rids {
            if let Some(rx) = api.stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(kind);
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Join {
                claims,
                params,
                reply,
            } => {
                let joined = self.join(claims, params);
                let _ = reply.send(joined);
            }
            Cmd::Signal { pid, msg } => self.signal(pid, *msg),
            Cmd::Gone { pid } => self.remove(pid),
            Cmd::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
        }
    }

    fn join(&mut self, claims: Claims, params: JoinParams) -> Result<Joined, String> {
        let room = claims.video.room.clone();
        // One identity, one participant: the newcomer evicts the old one.
        let old: Vec<Pid> = self
            .participants
            .iter()
            .filter(|(_, p)| p.room == room && p.identity == claims.sub)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in old {
            if let Some(p) = self.participants.get(&pid) {
                let _ =
                    p.tx.try_send(out_msg(signal_response::Message::Leave(lk::LeaveRequest {
                        can_reconnect: false,
                        reason: lk::DisconnectReason::DuplicateIdentity as i32,
                        action: lk::leave_request::Action::Disconnect as i32,
                        regions: None,
                    })));
                let _ = p.tx.try_send(Out::Close);
            }
            self.remove(pid);
        }
        let in_room = self
            .participants
            .values()
            .filter(|p| p.room == room)
            .count();
        if in_room >= self.config.max_participants_per_room {
            return Err("the room is full".to_owned());
        }
        if !self.rooms.contains_key(&room) && self.rooms.len() >= self.config.max_rooms {
            return Err("too many rooms".to_owned());
        }
        let room_state = self.rooms.entry(room.clone()).or_insert_with(|| RoomState {
            sid: sid("RM_"),
            created: jwt_now(),
        });
        let (room_sid, created) = (room_state.sid.clone(), room_state.created);

        let grant = &claims.video;
        let permission = lk::ParticipantPermission {
            can_subscribe: grant.can_subscribe.unwrap_or(true),
            can_publish: grant.can_publish.unwrap_or(true),
            can_publish_data: grant.can_publish_data.unwrap_or(true),
            can_update_metadata: grant.can_update_own_metadata.unwrap_or(false),
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        let pid = self.next_pid;
        self.next_pid += 1;
        let participant = Participant {
            sid: sid("PA_"),
            identity: claims.sub.clone(),
            name: claims.name.clone(),
            room: room.clone(),
            joined_at: jwt_now(),
            version: 1,
            permission,
            auto_subscribe: params.auto_subscribe,
            tx,
            publisher: new_rtc(self.local),
            subscriber: new_rtc(self.local),
            tracks: Vec::new(),
            down: Vec::new(),
            sub_pending: None,
            sub_dirty: false,
            channels_added: false,
            offer_id: 0,
            dead: false,
        };
        let others: Vec<lk::ParticipantInfo> = self
            .participants
            .values()
            .filter(|p| p.room == room)
            .map(Participant::info)
            .collect();
        let join = lk::JoinResponse {
            room: Some(lk::Room {
                sid: room_sid,
                name: room.clone(),
                creation_time: created,
                creation_time_ms: created * 1000,
                num_participants: in_room as u32 + 1,
                max_participants: self.config.max_participants_per_room as u32,
                ..Default::default()
            }),
            participant: Some(participant.info()),
            other_participants: others,
            server_version: SERVER_VERSION.to_owned(),
            server_info: Some(lk::ServerInfo {
                edition: lk::server_info::Edition::Standard as i32,
                version: SERVER_VERSION.to_owned(),
                protocol: PROTOCOL,
                node_id: "roomd-test-sfu".to_owned(),
                ..Default::default()
            }),
            subscriber_primary: participant.permission.can_subscribe,
            ping_interval: 10,
            ping_timeout: 20,
            enabled_publish_codecs: self
                .config
                .publish_codecs
                .iter()
                .map(|mime| lk::Codec {
                    mime: mime.clone(),
                    fmtp_line: String::new(),
                })
                .collect(),
            ..Default::default()
        };
        participant
            .tx
            .try_send(out_msg(signal_response::Message::Join(join)))
            .map_err(|_| "signalling queue closed".to_owned())?;
        let info = participant.info();
        self.participants.insert(pid, participant);
        log::debug!("test SFU: {} joined {room}", claims.sub);
        self.broadcast(&room, Some(pid), vec![info]);

        // Everything already published here goes into the first subscriber offer.
        if params.auto_subscribe {
            let existing: Vec<(Pid, String, String, MediaKind)> = self
                .participants
                .iter()
                .filter(|&(&o, p)| o != pid && p.room == room)
                .flat_map(|(&o, p)| {
                    p.tracks
                        .iter()
                        .filter(|t| t.mid.is_some())
                        .map(move |t| (o, p.sid.clone(), t.info.sid.clone(), t.kind))
                })
                .collect();
            let p = self.participants.get_mut(&pid).expect("just inserted");
            for (from, from_sid, track_sid, kind) in existing {
                p.subscribe(from, from_sid, track_sid, kind);
            }
        }
        if self.participants[&pid].permission.can_subscribe {
            self.negotiate(pid);
        }
        Ok(Joined { pid, rx })
    }

    fn signal(&mut self, pid: Pid, msg: signal_request::Message) {
        use signal_request::Message as M;
        if !self.participants.contains_key(&pid) {
            return;
        }
        match msg {
            M::Offer(sd) => self.publisher_offer(pid, sd),
            M::Answer(sd) => self.subscriber_answer(pid, sd),
            M::Trickle(t) => {
                let p = self.participants.get_mut(&pid).expect("checked");
                let rtc = if t.target == lk::SignalTarget::Subscriber as i32 {
                    &mut p.subscriber
                } else {
                    &mut p.publisher
                };
                add_remote_candidate(rtc, &t.candidate_init);
            }
            M::AddTrack(req) => self.add_track(pid, req),
            M::Mute(m) => {
                let p = self.participants.get_mut(&pid).expect("checked");
                let Some(t) = p.tracks.iter_mut().find(|t| t.info.sid == m.sid) else {
                    return;
                };
                if t.info.muted == m.muted {
                    return;
                }
                t.info.muted = m.muted;
                p.version += 1;
                let (room, info) = (p.room.clone(), p.info());
                self.broadcast(&room, None, vec![info]);
            }
            M::TrackSetting(s) => {
                let layers: HashMap<String, Vec<lk::VideoLayer>> = self
                    .participants
                    .values()
                    .flat_map(|p| p.tracks.iter())
                    .map(|t| (t.info.sid.clone(), t.info.layers.clone()))
                    .collect();
                let p = self.participants.get_mut(&pid).expect("checked");
                for d in p.down.iter_mut() {
                    if s.track_sids.contains(&d.track_sid) {
                        d.wanted = wanted_layer(&s, layers.get(&d.track_sid));
                    }
                }
            }
            M::Subscription(s) => self.subscription(pid, s),
            M::Leave(_) => {
                if let Some(p) = self.participants.get(&pid) {
                    let _ = p.tx.try_send(Out::Close);
                }
                self.remove(pid);
            }
            M::Ping(ts) => self.send(pid, signal_response::Message::Pong(ts)),
            M::PingReq(ping) => self.send(
                pid,
                signal_response::Message::PongResp(lk::Pong {
                    last_ping_timestamp: ping.timestamp,
                    timestamp: now_ms(),
                }),
            ),
            _ => {}
        }
    }

    fn add_track(&mut self, pid: Pid, req: lk::AddTrackRequest) {
        let max_tracks = self.config.max_tracks_per_participant;
        let p = self.participants.get_mut(&pid).expect("checked");
        if !p.permission.can_publish || p.tracks.len() >= max_tracks {
            log::debug!("test SFU: {}: add_track refused", p.identity);
            return;
        }
        if let Some(t) = p.tracks.iter().find(|t| t.cid == req.cid) {
            let published = lk::TrackPublishedResponse {
                cid: req.cid.clone(),
                track: Some(t.info.clone()),
            };
            let _ =
                p.tx.try_send(out_msg(signal_response::Message::TrackPublished(published)));
            return;
        }
        let video = req.r#type == lk::TrackType::Video as i32;
        let layers = if !req.layers.is_empty() {
            req.layers.clone()
        } else {
            req.simulcast_codecs
                .first()
                .map(|c| c.layers.clone())
                .unwrap_or_default()
        };
        let mime_type = match req.simulcast_codecs.first() {
            Some(c) if !c.codec.is_empty() => format!("video/{}", c.codec),
            _ if video => String::new(),
            _ => "audio/opus".to_owned(),
        };
        let info = lk::TrackInfo {
            sid: sid("TR_"),
            r#type: req.r#type,
            name: req.name.clone(),
            muted: req.muted,
            width: req.width,
            height: req.height,
            simulcast: layers.len() > 1,
            disable_dtx: req.disable_dtx,
            source: req.source,
            layers,
            mime_type,
            stereo: req.stereo,
            disable_red: req.disable_red,
            encryption: req.encryption,
            stream: req.stream.clone(),
            ..Default::default()
        };
        p.tracks.push(PubTrack {
            cid: req.cid.clone(),
            requested_codec: req
                .simulcast_codecs
                .first()
                .map(|c| c.codec.to_ascii_lowercase())
                .filter(|c| !c.is_empty()),
            info: info.clone(),
            kind: if video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            },
            mid: None,
            layer_seen: [None; 3],
            last_keyframe_request: [None; 4],
            packets_in: 0,
        });
        let _ =
            p.tx.try_send(out_msg(signal_response::Message::TrackPublished(
                lk::TrackPublishedResponse {
                    cid: req.cid,
                    track: Some(info),
                },
            )));
    }

    /// The client's publisher offer: answered at once; m-lines newly tied to announced
    /// tracks make those tracks published to the room.
    fn publisher_offer(&mut self, pid: Pid, sd: lk::SessionDescription) {
        let p = self.participants.get_mut(&pid).expect("checked");
        let offer = match SdpOffer::from_sdp_string(&sd.sdp) {
            Ok(o) => o,
            Err(e) => {
                log::warn!("test SFU: {}: unreadable offer: {e}", p.identity);
                return;
            }
        };
        let answer = match p.publisher.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("test SFU: {}: offer refused: {e}", p.identity);
                return;
            }
        };
        let sections = sdp::sections(&sd.sdp);
        // The codec each track asked for, by the mid its m-line has.
        let preferred: HashMap<String, String> = sections
            .iter()
            .filter_map(|s| {
                let t = p
                    .tracks
                    .iter()
                    .find(|t| Some(&t.cid) == s.track_id.as_ref())?;
                Some((s.mid.clone(), t.requested_codec.clone()?))
            })
            .collect();
        let _ = p.tx.try_send(out_msg(signal_response::Message::Answer(
            lk::SessionDescription {
                r#type: "answer".to_owned(),
                sdp: sdp::answer_preferring(&sd.sdp, &answer.to_sdp_string(), &preferred),
                id: sd.id,
                ..Default::default()
            },
        )));
        let mut published = Vec::new();
        for section in sections {
            let Some(track_id) = section.track_id.as_deref() else {
                continue;
            };
            let Some(t) = p
                .tracks
                .iter_mut()
                .find(|t| t.mid.is_none() && t.cid == track_id)
            else {
                continue;
            };
            if !section.sending {
                continue;
            }
            let mid: Mid = section.mid.as_str().into();
            t.mid = Some(mid);
            // The negotiated codec, now that there is one.
            // The negotiated codec: the requested one if it was accepted, else the first.
            if let Some(media) = p.publisher.media(mid) {
                let mimes: Vec<&str> = media
                    .remote_pts()
                    .iter()
                    .filter_map(|pt| {
                        let params = p.publisher.codec_config().params();
                        params.iter().find(|pp| pp.pt() == *pt)
                    })
                    .map(|pp| mime_of(pp.spec().codec))
                    .filter(|m| !m.is_empty())
                    .collect();
                let requested = t.requested_codec.as_deref().unwrap_or("");
                let mime = mimes
                    .iter()
                    .find(|m| m.to_ascii_lowercase().ends_with(&format!("/{requested}")))
                    .or(mimes.first());
                if let Some(mime) = mime {
                    t.info.mime_type = (*mime).to_owned();
                }
            }
            t.info.mid = section.mid.clone();
            published.push((t.info.sid.clone(), t.kind));
        }
        if published.is_empty() {
            return;
        }
        p.version += 1;
        let (room, info, from_sid) = (p.room.clone(), p.info(), p.sid.clone());
        self.broadcast(&room, None, vec![info]);
        let subscribers: Vec<Pid> = self
            .participants
            .iter()
            .filter(|&(&o, s)| {
                o != pid && s.room == room && s.auto_subscribe && s.permission.can_subscribe
            })
            .map(|(&o, _)| o)
            .collect();
        for s in subscribers {
            let sp = self.participants.get_mut(&s).expect("listed");
            for (track_sid, kind) in &published {
                sp.subscribe(pid, from_sid.clone(), track_sid.clone(), *kind);
            }
            self.negotiate(s);
        }
    }

    fn subscriber_answer(&mut self, pid: Pid, sd: lk::SessionDescription) {
        let p = self.participants.get_mut(&pid).expect("checked");
        let Some(pending) = p.sub_pending.take() else {
            log::debug!("test SFU: {}: an answer with no offer out", p.identity);
            return;
        };
        let answer = match SdpAnswer::from_sdp_string(&sd.sdp) {
            Ok(a) => a,
            Err(e) => {
                log::warn!("test SFU: {}: unreadable answer: {e}", p.identity);
                return;
            }
        };
        if let Err(e) = p.subscriber.sdp_api().accept_answer(pending, answer) {
            log::warn!("test SFU: {}: answer refused: {e}", p.identity);
            return;
        }
        let mut opened = Vec::new();
        p.down.retain_mut(|d| match d.state {
            DownState::Negotiating(m) => {
                d.state = DownState::Open(m);
                opened.push((d.from, d.track_sid.clone()));
                true
            }
            DownState::Stopping(_) => false,
            _ => true,
        });
        let dirty = std::mem::take(&mut p.sub_dirty);
        for (from, track_sid) in opened {
            self.request_keyframe(from, &track_sid, None, KeyframeRequestKind::Pli);
        }
        if dirty {
            self.negotiate(pid);
        }
    }

    fn subscription(&mut self, pid: Pid, s: lk::UpdateSubscription) {
        let mut sids: Vec<String> = s.track_sids.clone();
        for pt in &s.participant_tracks {
            sids.extend(pt.track_sids.iter().cloned());
        }
        let room = self.participants[&pid].room.clone();
        let available: Vec<(Pid, String, String, MediaKind)> = self
            .participants
            .iter()
            .filter(|&(&o, p)| o != pid && p.room == room)
            .flat_map(|(&o, p)| {
                p.tracks
                    .iter()
                    .filter(|t| t.mid.is_some() && sids.contains(&t.info.sid))
                    .map(move |t| (o, p.sid.clone(), t.info.sid.clone(), t.kind))
            })
            .collect();
        let p = self.participants.get_mut(&pid).expect("checked");
        if s.subscribe {
            for (from, from_sid, track_sid, kind) in available {
                p.subscribe(from, from_sid, track_sid, kind);
            }
        } else {
            for d in p.down.iter_mut().filter(|d| sids.contains(&d.track_sid)) {
                d.stop();
            }
            p.down.retain(|d| d.state != DownState::ToOpen);
        }
        self.negotiate(pid);
    }

    /// Sends the subscriber a new offer for what changed, unless one is still unanswered (then
    /// once it is answered).
    fn negotiate(&mut self, pid: Pid) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.sub_pending.is_some() {
            p.sub_dirty = true;
            return;
        }
        let mut api = p.subscriber.sdp_api();
        if !p.channels_added {
            api.add_channel_with_config(ChannelConfig {
                label: "_reliable".to_owned(),
                ordered: true,
                reliability: Reliability::Reliable,
                negotiated: None,
                protocol: String::new(),
            });
            api.add_channel_with_config(ChannelConfig {
                label: "_lossy".to_owned(),
                ordered: true,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                negotiated: None,
                protocol: String::new(),
            });
        }
        for d in p.down.iter_mut() {
            match d.state {
                DownState::ToOpen => {
                    let stream = format!("{}|{}", d.from_sid, d.track_sid);
                    let mid = api.add_media(
                        d.kind,
                        Direction::SendOnly,
                        Some(stream),
                        Some(d.track_sid.clone()),
                        None,
                    );
                    d.state = DownState::Negotiating(mid);
                }
                DownState::ToStop(m) => {
                    api.stop_media(m);
                    d.state = DownState::Stopping(m);
                }
                _ => {}
            }
        }
        if !api.has_changes() {
            return;
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        p.channels_added = true;
        p.sub_pending = Some(pending);
        p.offer_id += 1;
        let msg = signal_response::Message::Offer(lk::SessionDescription {
            r#type: "offer".to_owned(),
            sdp: offer.to_sdp_string(),
            id: p.offer_id,
            ..Default::default()
        });
        if p.tx.try_send(out_msg(msg)).is_err() {
            p.dead = true;
        }
    }

    /// Takes a participant out: its tracks stop for everyone else, who are told it left.
    fn remove(&mut self, pid: Pid) {
        let Some(mut p) = self.participants.remove(&pid) else {
            return;
        };
        p.publisher.disconnect();
        p.subscriber.disconnect();
        log::debug!("test SFU: {} left {}", p.identity, p.room);
        p.version += 1;
        let mut info = p.info();
        info.state = lk::participant_info::State::Disconnected as i32;
        info.tracks.clear();
        let room = p.room.clone();
        let others: Vec<Pid> = self
            .participants
            .iter()
            .filter(|(_, o)| o.room == room)
            .map(|(&o, _)| o)
            .collect();
        for o in &others {
            let op = self.participants.get_mut(o).expect("listed");
            let mut changed = false;
            for d in op.down.iter_mut().filter(|d| d.from == pid) {
                d.stop();
                changed = true;
            }
            op.down
                .retain(|d| !(d.from == pid && d.state == DownState::ToOpen));
            if changed {
                self.negotiate(*o);
            }
        }
        self.broadcast(&room, Some(pid), vec![info]);
        if others.is_empty() {
            self.rooms.remove(&room);
        }
    }

    /// Drops participants whose signalling queue overflowed or whose WebSocket went away.
    fn reap(&mut self) {
        let dead: Vec<Pid> = self
            .participants
            .iter()
            .filter(|(_, p)| p.dead || p.tx.is_closed())
            .map(|(&pid, _)| pid)
            .collect();
        for pid in dead {
            self.remove(pid);
        }
    }

    fn send(&mut self, pid: Pid, msg: signal_response::Message) {
        if let Some(p) = self.participants.get_mut(&pid)
            && p.tx.try_send(out_msg(msg)).is_err()
        {
            p.dead = true;
        }
    }

    /// A participant `update` to everyone in `room` but `except`.
    fn broadcast(&mut self, room: &str, except: Option<Pid>, infos: Vec<lk::ParticipantInfo>) {
        let targets: Vec<Pid> = self
            .participants
            .iter()
            .filter(|&(&pid, p)| p.room == room && Some(pid) != except)
            .map(|(&pid, _)| pid)
            .collect();
        for pid in targets {
            self.send(
                pid,
                signal_response::Message::Update(lk::ParticipantUpdate {
                    participants: infos.clone(),
                }),
            );
        }
    }

    fn stats(&self) -> SfuStats {
        let identity_of = |pid: &Pid| {
            self.participants
                .get(pid)
                .map(|p| p.identity.clone())
                .unwrap_or_default()
        };
        SfuStats {
            participants: self
                .participants
                .values()
                .map(|p| ParticipantStats {
                    sid: p.sid.clone(),
                    identity: p.identity.clone(),
                    room: p.room.clone(),
                    published: p
                        .tracks
                        .iter()
                        .map(|t| PublishedStats {
                            sid: t.info.sid.clone(),
                            kind: format!("{:?}", t.kind).to_lowercase(),
                            mime_type: t.info.mime_type.clone(),
                            muted: t.info.muted,
                            rids: (0..3)
                                .filter(|&i| t.layer_seen[i].is_some())
                                .map(|i| RIDS[i].to_owned())
                                .collect(),
                            packets_in: t.packets_in,
                        })
                        .collect(),
                    forwarded: p
                        .down
                        .iter()
                        .map(|d| ForwardedStats {
                            track_sid: d.track_sid.clone(),
                            from_identity: identity_of(&d.from),
                            rid: d.current.map(|i| RIDS[i].to_owned()),
                            packets_out: d.packets_out,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Participant {
    fn info(&self) -> lk::ParticipantInfo {
        lk::ParticipantInfo {
            sid: self.sid.clone(),
            identity: self.identity.clone(),
            name: self.name.clone(),
            state: lk::participant_info::State::Active as i32,
            tracks: self
                .tracks
                .iter()
                .filter(|t| t.mid.is_some())
                .map(|t| t.info.clone())
                .collect(),
            joined_at: self.joined_at,
            joined_at_ms: self.joined_at * 1000,
            version: self.version,
            permission: Some(self.permission.clone()),
            is_publisher: self.tracks.iter().any(|t| t.mid.is_some()),
            ..Default::default()
        }
    }

    /// Adds a track to send this participant (negotiated with the next subscriber offer).
    fn subscribe(&mut self, from: Pid, from_sid: String, track_sid: String, kind: MediaKind) {
        if self
            .down
            .iter()
            .any(|d| d.from == from && d.track_sid == track_sid)
        {
            return;
        }
        self.down.push(DownTrack {
            from,
            from_sid,
            track_sid,
            kind,
            state: DownState::ToOpen,
            wanted: 2,
            current: None,
            rewriter: Rewriter::default(),
            packets_out: 0,
        });
    }
}

impl DownTrack {
    fn stop(&mut self) {
        self.state = match self.state {
            DownState::Negotiating(m) | DownState::Open(m) => DownState::ToStop(m),
            s => s,
        };
    }
}

fn jwt_now() -> i64 {
    crate::jwt::now_secs()
}

/// The layer a `track_setting` asks for: by size when it gives one (the smallest layer at
/// least that wide), else by quality (LOW, MEDIUM, HIGH).
fn wanted_layer(s: &lk::UpdateTrackSettings, layers: Option<&Vec<lk::VideoLayer>>) -> usize {
    if s.width > 0
        && let Some(layers) = layers.filter(|l| !l.is_empty())
    {
        let mut sorted: Vec<&lk::VideoLayer> = layers.iter().collect();
        sorted.sort_by_key(|l| l.width);
        let pick = sorted
            .iter()
            .position(|l| l.width >= s.width)
            .unwrap_or(sorted.len() - 1);
        return pick.min(2);
    }
    match lk::VideoQuality::try_from(s.quality) {
        Ok(lk::VideoQuality::Low) => 0,
        Ok(lk::VideoQuality::Medium) => 1,
        _ => 2,
    }
}

/// The subscriber-side payload type for the publisher's codec `params` on `mid`.
fn out_pt(rtc: &Rtc, mid: Mid, params: PayloadParams) -> Option<str0m::media::Pt> {
    let media = rtc.media(mid)?;
    let remote = media.remote_pts();
    let spec = params.spec();
    rtc.codec_config()
        .params()
        .iter()
        .filter(|pp| remote.contains(&pp.pt()) && pp.spec().codec == spec.codec)
        .max_by_key(|pp| {
            let f = pp.spec().format;
            (
                f.packetization_mode == spec.format.packetization_mode,
                f.profile_level_id == spec.format.profile_level_id,
            )
        })
        .map(|pp| pp.pt())
}

/// A trickled candidate (`{"candidate": "candidate:...", ...}`). The SFU is ICE-lite, so
/// remote candidates only help; an mDNS one it cannot use is skipped.
fn add_remote_candidate(rtc: &mut Rtc, candidate_init: &str) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(candidate_init) else {
        return;
    };
    let Some(line) = v["candidate"].as_str().filter(|c| !c.is_empty()) else {
        return;
    };
    let line = line.strip_prefix("a=").unwrap_or(line);
    if let Ok(c) = Candidate::from_sdp_string(line) {
        rtc.add_remote_candidate(c);
    }
}

fn out_msg(m: signal_response::Message) -> Out {
    Out::Msg(Box::new(m))
}
