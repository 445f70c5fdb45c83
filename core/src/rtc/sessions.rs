//! The LiveKit connections the device's Element Call sessions need, kept in line with the
//! sessions' members: with `multi_sfu` (Element Call's default) one connection that publishes on
//! our own transport and one receive-only connection per other transport a fellow member
//! publishes on; with `oldest_membership` the oldest member's transport for both.

use std::collections::BTreeMap;
use std::time::Instant;

use ruma::OwnedRoomId;

use super::connection::{ConnId, Connection, LiveKitEvent, OpenIdToken, Role, SfuAccess};
use crate::media::{Candidate, ConnectionState, PeerId, SdpKind};
use crate::{MatrixFailure, Now, Outputs};

/// Connections at once; more is a flood of transports.
const MAX_CONNECTIONS: usize = 8;

/// A fellow member of a session, as far as choosing SFUs goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionMember {
    pub transport: Option<String>,
    pub focus_selection: Option<String>,
    pub created_ms: u64,
}

/// A session the device is in (or joining), and who else is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSession {
    pub room_id: OwnedRoomId,
    /// Our own transport, which our membership names.
    pub own_transport: String,
    pub others: Vec<SessionMember>,
}

/// Which connections a session needs: (transport, role).
pub fn connections_for(session: &WantedSession) -> Vec<(String, Role)> {
    let oldest = session
        .others
        .iter()
        .filter(|m| m.transport.is_some())
        .min_by_key(|m| m.created_ms);
    if let Some(oldest) = oldest
        && oldest.focus_selection.as_deref() == Some("oldest_membership")
    {
        let transport = oldest.transport.clone().expect("filtered above");
        return vec![(transport, Role::Publish)];
    }
    let mut wanted = vec![(session.own_transport.clone(), Role::Publish)];
    for m in &session.others {
        let Some(t) = &m.transport else { continue };
        if !wanted.iter().any(|(w, _)| w == t) {
            wanted.push((t.clone(), Role::Subscribe));
        }
    }
    wanted
}

#[derive(Debug)]
pub struct Sessions {
    device_id: String,
    conns: BTreeMap<ConnId, (OwnedRoomId, Connection)>,
    next_id: u64,
    mic_muted: bool,
}

impl Sessions {
    pub fn new(device_id: String) -> Self {
        Sessions {
            device_id,
            conns: BTreeMap::new(),
            next_id: 0,
            mic_muted: false,
        }
    }

    /// Opens the connections `sessions` need and closes the others.
    pub fn reconcile(&mut self, sessions: &[WantedSession], out: &mut Outputs) {
        let wanted: Vec<(OwnedRoomId, String, Role)> = sessions
            .iter()
            .flat_map(|s| {
                connections_for(s)
                    .into_iter()
                    .map(|(t, role)| (s.room_id.clone(), t, role))
            })
            .collect();
        for (room_id, conn) in self.conns.values_mut() {
            let keep = wanted
                .iter()
                .any(|(r, t, role)| r == room_id && *t == conn.service_url && *role == conn.role);
            if !keep && !conn.is_closed() {
                log::info!("{}: no longer needed; leaving the SFU", conn.id);
                conn.close(out);
            }
        }
        self.conns.retain(|_, (_, c)| !c.is_closed());
        for (room_id, transport, role) in wanted {
            let have = self
                .conns
                .values()
                .any(|(r, c)| *r == room_id && c.service_url == transport && c.role == role);
            if have {
                continue;
            }
            if self.conns.len() >= MAX_CONNECTIONS {
                log::warn!("not connecting to {transport}: {MAX_CONNECTIONS} SFUs already");
                continue;
            }
            self.next_id += 1;
            let id = ConnId(self.next_id);
            log::info!("{id}: connecting to the LiveKit transport {transport} for {room_id}");
            let conn = Connection::new(
                id,
                transport,
                role,
                room_id.clone(),
                self.device_id.clone(),
                self.mic_muted,
            );
            self.conns.insert(id, (room_id, conn));
        }
    }

    pub fn on_tick(&mut self, now: Now, ids: &mut u64, out: &mut Outputs) {
        for (_, conn) in self.conns.values_mut() {
            conn.on_tick(now, ids, out);
        }
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|(_, c)| c.next_wakeup())
            .min()
    }

    /// Whether a connection asked for the token `request`; if so it took it.
    pub fn on_openid(
        &mut self,
        now: Now,
        request: u64,
        result: &Result<OpenIdToken, MatrixFailure>,
        ids: &mut u64,
        out: &mut Outputs,
    ) -> bool {
        self.conns
            .values_mut()
            .any(|(_, c)| c.on_openid(now, request, result, ids, out))
    }

    pub fn on_token(
        &mut self,
        now: Now,
        request: u64,
        result: &Result<SfuAccess, String>,
        out: &mut Outputs,
    ) -> bool {
        self.conns
            .values_mut()
            .any(|(_, c)| c.on_token(now, request, result, out))
    }

    pub fn on_event(&mut self, now: Now, conn: ConnId, event: LiveKitEvent, out: &mut Outputs) {
        match self.conns.get_mut(&conn) {
            Some((_, c)) => c.on_event(now, event, out),
            None => log::debug!("{conn}: an event for a connection we no longer have"),
        }
    }

    fn by_peer(&mut self, peer: &PeerId) -> Option<&mut Connection> {
        self.conns
            .values_mut()
            .map(|(_, c)| c)
            .find(|c| c.owns(peer))
    }

    /// Whether `peer` belongs to a LiveKit connection (and not to a peer call).
    pub fn owns(&self, peer: &PeerId) -> bool {
        self.conns.values().any(|(_, c)| c.owns(peer))
    }

    pub fn on_local_description(
        &mut self,
        peer: &PeerId,
        kind: SdpKind,
        sdp: String,
        out: &mut Outputs,
    ) {
        if let Some(c) = self.by_peer(peer) {
            c.on_local_description(peer, kind, sdp, out);
        }
    }

    pub fn on_local_candidate(&mut self, peer: &PeerId, candidate: Candidate, out: &mut Outputs) {
        if let Some(c) = self.by_peer(peer) {
            c.on_local_candidate(peer, candidate, out);
        }
    }

    pub fn on_connection_state(
        &mut self,
        now: Now,
        peer: &PeerId,
        state: ConnectionState,
        out: &mut Outputs,
    ) {
        if let Some(c) = self.by_peer(peer) {
            c.on_connection_state(now, peer, state, out);
        }
    }

    pub fn on_media_refused(&mut self, now: Now, peer: &PeerId, out: &mut Outputs) {
        if let Some(c) = self.by_peer(peer) {
            c.on_media_refused(now, peer, out);
        }
    }

    pub fn set_mic_muted(&mut self, muted: bool, out: &mut Outputs) {
        self.mic_muted = muted;
        for (_, c) in self.conns.values_mut() {
            c.set_mic_muted(muted, out);
        }
    }

    /// Each connection in a few words, for status.
    pub fn describe(&self) -> Vec<String> {
        self.conns
            .values()
            .map(|(room, c)| format!("{} in {room}: {}", c.id, c.describe()))
            .collect()
    }

    /// Whether any connection is still open (shutdown waits for none).
    pub fn any_open(&self) -> bool {
        !self.conns.is_empty()
    }

    /// The participants the SFUs know in `room_id`, by identity, with whether their audio and
    /// video are muted.
    pub fn participants(&self, room_id: &OwnedRoomId) -> Vec<(String, bool, bool)> {
        use crate::media::MediaKind;
        let mut seen: Vec<(String, bool, bool)> = Vec::new();
        for (_, c) in self.conns.values().filter(|(r, _)| r == room_id) {
            for p in c.participants() {
                let muted = |kind| p.tracks.iter().filter(|t| t.kind == kind).all(|t| t.muted);
                if !seen.iter().any(|(id, ..)| *id == p.identity) {
                    seen.push((
                        p.identity.clone(),
                        muted(MediaKind::Audio),
                        muted(MediaKind::Video),
                    ));
                }
            }
        }
        seen
    }
}
