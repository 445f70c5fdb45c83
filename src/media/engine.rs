//! The media engine: carries out the core's media commands and reports what happens. A call's
//! pipeline is built when its first peer arrives and torn down when its last one leaves.

use anyhow::Context;

use super::call::{Call, MediaSettings};
use super::devices::Devices;
use super::encoder;
use super::ice::IceServers;
use super::peer::EventSink;
use roomd_core::media::{MediaCommand, MediaEvent, PeerId, PeerStats};
use roomd_core::status::MediaStatus;

pub struct MediaEngine {
    devices: Devices,
    settings: MediaSettings,
    encoder: encoder::Choice,
    events: EventSink,
    call: Option<Call>,
    mic_muted: bool,
    camera_off: bool,
    /// What every new peer gets; those already up keep theirs.
    ice: IceServers,
}

impl MediaEngine {
    /// Initialises GStreamer and probes the encoder (`configured`: "auto" or an element name).
    pub fn new(
        devices: Devices,
        settings: MediaSettings,
        configured_encoder: &str,
        events: EventSink,
    ) -> anyhow::Result<MediaEngine> {
        gst::init().context("initialising GStreamer")?;
        let encoder = encoder::probe(configured_encoder, settings.format, settings.bitrate_kbps)?;
        for r in &encoder.refused {
            log::info!("encoder {} refused: {}", r.element, r.reason);
        }
        log::info!("video encoder: {}", encoder.element);
        Ok(MediaEngine {
            devices,
            settings,
            encoder,
            events,
            call: None,
            mic_muted: false,
            camera_off: false,
            ice: IceServers::default(),
        })
    }

    pub fn encoder(&self) -> &encoder::Choice {
        &self.encoder
    }

    /// The running call's pipeline, for inspection.
    pub fn pipeline(&self) -> Option<&gst::Pipeline> {
        self.call.as_ref().map(Call::pipeline)
    }

    /// The engine's part of `roomd ctl status`.
    pub fn status(&self) -> MediaStatus {
        MediaStatus {
            encoder: Some(self.encoder.element.clone()),
            unavailable: None,
            mic_muted: self.mic_muted,
            camera_off: self.camera_off,
            video_encoders: self.pipeline().map_or(0, count_video_encoders),
            peers: self.stats(),
            ice_servers: self.ice.without_credentials(),
        }
    }

    pub fn stats(&self) -> Vec<PeerStats> {
        self.call.as_ref().map(Call::stats).unwrap_or_default()
    }

    fn refuse(&self, command: &str, peer: Option<&PeerId>, reason: impl std::fmt::Display) {
        log::warn!("media: cannot {command}: {reason}");
        (self.events)(MediaEvent::Refused {
            command: command.to_owned(),
            peer: peer.cloned(),
            reason: reason.to_string(),
        });
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
            MediaCommand::RemovePeer { peer } => {
                let removed = self.call.as_mut().is_some_and(|c| c.remove_peer(&peer));
                if !removed {
                    log::debug!("media: no peer {peer} to remove");
                }
                if self.call.as_ref().is_some_and(Call::is_empty) {
                    log::info!("media: last peer gone; stopping the call's pipeline");
                    self.call = None;
                }
            }
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
        }
    }

    fn peer(&self, peer: &PeerId) -> Option<&super::peer::Peer> {
        self.call.as_ref().and_then(|c| c.peer(peer))
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
            ) {
                Ok(mut call) => {
                    call.set_ice_servers(self.ice.clone());
                    if self.mic_muted {
                        call.set_mic_muted(true);
                    }
                    if self.camera_off {
                        call.set_camera_off(true);
                    }
                    self.call = Some(call);
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
        if let Err(e) = call.add_peer(peer.clone(), remote_offer.as_deref(), stream_id) {
            self.refuse(&format!("add {peer}"), Some(&peer), format!("{e:#}"));
            if self.call.as_ref().is_some_and(Call::is_empty) {
                self.call = None;
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
