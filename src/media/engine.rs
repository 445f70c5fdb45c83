//! What the media engine's thread owns: the call's pipeline and its peers. Carries out the
//! core's media commands and reports what happens; nothing here waits on webrtcbin (its answers
//! come back through promise change functions). A call's pipeline is built when its first peer
//! arrives and torn down when its last one leaves.

use std::time::Instant;

use super::call::{Call, MediaSettings};
use super::devices::Devices;
use super::encoder;
use super::events::EventSender;
use super::hooks::TestHooks;
use super::ice::IceServers;
use super::mailbox::Post;
use super::peer::EventSink;
use roomd_core::media::{EngineReport, MediaCommand, MediaEvent, PeerId};

pub struct Engine {
    devices: Devices,
    settings: MediaSettings,
    encoder: encoder::Choice,
    events: EventSink,
    reports: EventSender,
    post: Post,
    hooks: TestHooks,
    call: Option<Call>,
    /// The last peer serial handed out (peers' bins are `peer-<serial>`).
    serials: u64,
    /// The running call's pipeline, for inspection from other threads (tests).
    shown_pipeline: std::sync::Arc<std::sync::Mutex<Option<gst::Pipeline>>>,
    mic_muted: bool,
    camera_off: bool,
    /// What every new peer gets; those already up keep theirs.
    ice: IceServers,
}

pub struct EngineParts {
    pub devices: Devices,
    pub settings: MediaSettings,
    pub encoder: encoder::Choice,
    pub reports: EventSender,
    pub post: Post,
    pub hooks: TestHooks,
    pub shown_pipeline: std::sync::Arc<std::sync::Mutex<Option<gst::Pipeline>>>,
}

impl Engine {
    pub fn new(parts: EngineParts) -> Engine {
        let reports = parts.reports.clone();
        Engine {
            devices: parts.devices,
            settings: parts.settings,
            encoder: parts.encoder,
            events: std::sync::Arc::new(move |e| reports.send(e)),
            reports: parts.reports,
            post: parts.post,
            hooks: parts.hooks,
            call: None,
            serials: 0,
            shown_pipeline: parts.shown_pipeline,
            mic_muted: false,
            camera_off: false,
            ice: IceServers::default(),
        }
    }

    fn set_call(&mut self, call: Option<Call>) {
        *self.shown_pipeline.lock().unwrap() = call.as_ref().map(|c| c.pipeline().clone());
        // The old call (if any) is dropped here: its pipeline goes to NULL.
        self.call = call;
    }

    /// What the engine says of itself: settings, live counters, the last webrtcbin statistics.
    fn report(&self) -> EngineReport {
        let now = Instant::now();
        EngineReport {
            encoder: self.encoder.element.clone(),
            mic_muted: self.mic_muted,
            camera_off: self.camera_off,
            video_encoders: self
                .call
                .as_ref()
                .map_or(0, |c| count_video_encoders(c.pipeline())),
            peers: self.call.as_ref().map(|c| c.stats(now)).unwrap_or_default(),
            ice_servers: self.ice.without_credentials(),
        }
    }

    fn refuse(&self, command: &str, peer: Option<&PeerId>, reason: impl std::fmt::Display) {
        log::warn!("media: cannot {command}: {reason}");
        (self.events)(MediaEvent::Refused {
            command: command.to_owned(),
            peer: peer.cloned(),
            reason: reason.to_string(),
        });
    }

    /// Every second or so: asks the peers for statistics, gives up on stuck removals.
    pub fn tick(&mut self, now: Instant) {
        if let Some(call) = &mut self.call {
            call.tick(now);
        }
    }

    /// Peer `serial`'s answer is set: its media goes in.
    pub fn on_answered(&mut self, serial: u64) {
        let Some(call) = &mut self.call else { return };
        if let Err((peer, e)) = call.on_answered(serial) {
            self.refuse(
                &format!("send media to {peer}"),
                Some(&peer),
                format!("{e:#}"),
            );
        }
    }

    pub fn on_detached(&mut self, serial: u64) {
        if let Some(call) = &mut self.call {
            call.on_detached(serial);
        }
    }

    pub fn handle(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::AddPeer {
                peer,
                remote_offer,
                stream_id,
            } => self.add_peer(peer, remote_offer, &stream_id),
            MediaCommand::RemoteDescription { peer, kind, sdp } => match self.peer(&peer) {
                Some(p) => {
                    if let Err(e) = p.set_remote_description(kind, &sdp) {
                        self.refuse(&format!("take {peer}'s description"), Some(&peer), e);
                    }
                }
                None => self.refuse("take a description", None, format!("no peer {peer}")),
            },
            MediaCommand::RemoteCandidate { peer, candidate } => match self.peer(&peer) {
                Some(p) => p.add_candidate(&candidate),
                None => self.refuse("take a candidate", None, format!("no peer {peer}")),
            },
            MediaCommand::RestartIce { peer } => match self.peer(&peer) {
                Some(p) => p.restart_ice(),
                None => self.refuse("restart ICE", None, format!("no peer {peer}")),
            },
            MediaCommand::AddSfuPeer { peer, .. } => self.refuse(
                "open a LiveKit peer",
                Some(&peer),
                "no LiveKit media path yet",
            ),
            MediaCommand::RemovePeer { peer } => self.remove_peer(&peer),
            MediaCommand::SetMicMuted(muted) => {
                self.mic_muted = muted;
                match &self.call {
                    Some(call) => call.set_mic_muted(muted),
                    // No pipeline, no sound: the state holds for the next call.
                    None => (self.events)(MediaEvent::MicMuted(muted)),
                }
            }
            MediaCommand::SetIceServers { servers } => {
                self.ice = IceServers::new(&servers);
                if let Some(call) = &mut self.call {
                    call.set_ice_servers(self.ice.clone());
                }
            }
            MediaCommand::SetCameraOff(off) => {
                self.camera_off = off;
                match &mut self.call {
                    Some(call) => call.set_camera_off(off),
                    None => (self.events)(MediaEvent::CameraOff(off)),
                }
            }
            MediaCommand::Report { request } => self.reports.report(request, self.report()),
        }
    }

    fn peer(&self, peer: &PeerId) -> Option<&super::peer::Peer> {
        self.call.as_ref().and_then(|c| c.peer(peer))
    }

    fn remove_peer(&mut self, peer: &PeerId) {
        let Some(call) = &mut self.call else {
            log::debug!("media: no peer {peer} to remove");
            return;
        };
        if call.has_peer(peer) && call.peer_count() == 1 {
            log::info!("media: last peer gone; stopping the call's pipeline");
            self.set_call(None);
        } else if !call.remove_peer(peer) {
            log::debug!("media: no peer {peer} to remove");
        }
    }

    fn add_peer(&mut self, peer: PeerId, remote_offer: Option<String>, stream_id: &str) {
        if self.call.as_ref().is_some_and(|c| c.has_peer(&peer)) {
            return self.refuse(&format!("add {peer}"), None, "it is already there");
        }
        if self.call.is_none() {
            match Call::start(
                &self.devices,
                &self.settings,
                &self.encoder.element,
                self.events.clone(),
                self.post.clone(),
                self.hooks.slow_peer.clone(),
            ) {
                Ok(mut call) => {
                    call.set_ice_servers(self.ice.clone());
                    if self.mic_muted {
                        call.set_mic_muted(true);
                    }
                    if self.camera_off {
                        call.set_camera_off(true);
                    }
                    self.set_call(Some(call));
                }
                Err(e) => {
                    return self.refuse(
                        &format!("start the call for {peer}"),
                        Some(&peer),
                        format!("{e:#}"),
                    );
                }
            }
        }
        let call = self.call.as_mut().expect("started above");
        self.serials += 1;
        if let Err(e) = call.add_peer(
            peer.clone(),
            self.serials,
            remote_offer.as_deref(),
            stream_id,
        ) {
            self.refuse(&format!("add {peer}"), Some(&peer), format!("{e:#}"));
            if self.call.as_ref().is_some_and(|c| c.peer_count() == 0) {
                self.set_call(None);
            }
        }
    }
}

/// Video encoders anywhere in the pipeline, by their factory's class.
fn count_video_encoders(pipeline: &gst::Pipeline) -> u32 {
    use gst::prelude::*;
    pipeline
        .iterate_recurse()
        .into_iter()
        .flatten()
        .filter(|e| {
            e.factory()
                .is_some_and(|f| f.klass().contains("Encoder/Video"))
        })
        .count() as u32
}
