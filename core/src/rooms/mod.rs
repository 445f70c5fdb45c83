//! The rooms the device is in: joining the served ones and staying there, and for each served
//! room, which call we are in and why. Who gets in (invites, 1:1 calls), the calls the device
//! starts, and hang-up and join each have a file of their own.

mod admission;
mod hang_up;
mod started;
mod status;

use started::Started;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, OwnedRoomOrAliasId, OwnedUserId, RoomId, UserId};

use super::backoff::Backoff;
use super::calls::{Mesh, MeshPeer};
use super::events::{StateEvent, TimelineEvent};
use super::membership::{CallId, Shape};
use super::own_call::{Identity, OwnCall, Phase as CallPhase};
use super::policy::{self, Decision, HungUp, Me, SessionAbility};
use super::room::{Applied, OwnMembership, RoomState};
use super::rtc::{SessionMember, WantedSession};
use super::{MatrixCommand, MatrixFailure, Now, Output, Outputs};
use crate::{JoinPolicy, Principal};

/// What the rooms need to know from the config.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    pub serve: Vec<OwnedRoomOrAliasId>,
    pub invite_from: Vec<Principal>,
    pub join: JoinPolicy,
    pub answer_direct_calls: bool,
    pub direct_call_from: Vec<Principal>,
    pub conference_focus: Option<OwnedUserId>,
    /// Join with no call on starts one.
    pub start_calls: bool,
    /// ...an Element Call session when the device can join those, else a mesh call.
    pub start_sessions: bool,
    /// The media engine can join Element Call sessions (a LiveKit path).
    pub element_call: bool,
}

#[derive(Debug)]
enum JoinAttempt {
    Idle,
    InFlight(u64),
    Waiting(Instant),
}

#[derive(Debug)]
struct ServedRoom {
    configured: OwnedRoomOrAliasId,
    room_id: Option<OwnedRoomId>,
    own: OwnMembership,
    join: JoinAttempt,
    join_backoff: Backoff,
    own_call: Option<OwnCall>,
    hung_up: Option<HungUp>,
    /// Someone in the room pressed join (or an admin asked): join as if rung.
    asked_to_join: bool,
    started: Option<Started>,
    decision: Option<Decision>,
    /// The conference focus to be in a 1:1 call with, when the room's call is held by one.
    focus: Option<OwnedUserId>,
}

#[derive(Debug)]
pub struct Rooms {
    settings: RoomSettings,
    me: Identity,
    served: Vec<ServedRoom>,
    /// State of every room we have seen, served or not, by ID.
    states: HashMap<OwnedRoomId, RoomState>,
    /// Joins of invited rooms in flight, by request.
    invite_joins: HashMap<u64, OwnedRoomId>,
    /// Our own membership changes seen in the current sync, applied when it ends.
    own_pending: HashMap<OwnedRoomId, (OwnMembership, Option<OwnedUserId>)>,
    /// Invites already decided, so each is logged once.
    invites_seen: HashMap<OwnedRoomId, bool>,
    /// Whether Element Call sessions can be joined now (set at each step).
    sessions: SessionAbility,
}

impl Rooms {
    pub fn new(settings: RoomSettings, me: Identity) -> Self {
        let served = settings
            .serve
            .iter()
            .map(|configured| ServedRoom {
                room_id: RoomId::parse(configured.as_str()).ok(),
                configured: configured.clone(),
                own: OwnMembership::Unknown,
                join: JoinAttempt::Idle,
                join_backoff: Backoff::new(Duration::from_secs(10), Duration::from_secs(600)),
                own_call: None,
                hung_up: None,
                asked_to_join: false,
                started: None,
                decision: None,
                focus: None,
            })
            .collect();
        Rooms {
            settings,
            me,
            served,
            states: HashMap::new(),
            invite_joins: HashMap::new(),
            own_pending: HashMap::new(),
            invites_seen: HashMap::new(),
            sessions: SessionAbility::Unsupported,
        }
    }

    pub fn on_state(&mut self, ev: &StateEvent) {
        let state = self.states.entry(ev.room_id.clone()).or_default();
        if let Applied::OwnMembership(own, by) = state.apply_state(ev, &self.me.user_id) {
            // Only where a sync leaves us counts: a rejoined room's timeline replays the kick.
            self.own_pending.insert(ev.room_id.clone(), (own, by));
        }
    }

    pub fn on_timeline(&mut self, ev: &TimelineEvent) {
        self.states
            .entry(ev.room_id.clone())
            .or_default()
            .apply_timeline(ev);
    }

    fn own_membership_changed(
        &mut self,
        now: Now,
        room_id: &RoomId,
        own: OwnMembership,
        by: Option<OwnedUserId>,
    ) {
        let Some(room) = self
            .served
            .iter_mut()
            .find(|r| r.room_id.as_deref() == Some(room_id))
        else {
            if matches!(own, OwnMembership::Left | OwnMembership::Banned) {
                // A room we are out of and do not serve: nothing to remember.
                self.states.remove(room_id);
            }
            return;
        };
        let was = room.own;
        if was == OwnMembership::Joined && own == OwnMembership::Invited {
            // A sync that began before our join completed; we cannot be invited while joined.
            return;
        }
        room.own = own;
        let by = by.map_or_else(|| "someone".to_owned(), |u| u.to_string());
        match (was, own) {
            (OwnMembership::Joined, OwnMembership::Left) => {
                // Repeated kicks back the rejoins off further each time.
                let wait = room.join_backoff.fail();
                log::warn!(
                    "removed from served room {} by {by}; rejoining in {}s",
                    room.configured,
                    wait.as_secs()
                );
                room.join = JoinAttempt::Waiting(now.mono + wait);
            }
            (was, OwnMembership::Banned) if was != OwnMembership::Banned => {
                log::error!(
                    "banned from served room {} by {by}; not rejoining until unbanned",
                    room.configured
                );
            }
            _ => {}
        }
        if own != OwnMembership::Joined {
            // Without the room there is no call to be in; our membership went with us.
            room.own_call = None;
        }
    }

    /// The result of a [`MatrixCommand::JoinRoom`]. Returns false if it was not ours.
    pub fn on_joined(
        &mut self,
        now: Now,
        request: u64,
        result: &Result<OwnedRoomId, MatrixFailure>,
    ) -> bool {
        if self.on_invite_joined(request, result) {
            return true;
        }
        let Some(room) = self
            .served
            .iter_mut()
            .find(|r| matches!(r.join, JoinAttempt::InFlight(q) if q == request))
        else {
            return false;
        };
        match result {
            Ok(room_id) => {
                log::info!("joined served room {} ({room_id})", room.configured);
                room.room_id = Some(room_id.clone());
                room.own = OwnMembership::Joined;
                room.join = JoinAttempt::Idle;
            }
            Err(e) => {
                let wait = room.join_backoff.fail();
                log::warn!(
                    "could not join served room {}: {}; retrying in {}s",
                    room.configured,
                    e.message,
                    wait.as_secs()
                );
                room.join = JoinAttempt::Waiting(now.mono + wait);
            }
        }
        true
    }

    pub fn on_state_sent(
        &mut self,
        now: Now,
        request: u64,
        result: Result<Option<String>, MatrixFailure>,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        let me = self.me.clone();
        for room in &mut self.served {
            if let Some(call) = &mut room.own_call
                && call.on_state_sent(now, request, result.clone(), &me, ids, out)
            {
                return;
            }
        }
        log::debug!("a state write result nobody asked for: {request}");
    }

    pub fn on_delayed_updated(
        &mut self,
        now: Now,
        request: u64,
        result: Result<(), MatrixFailure>,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        let me = self.me.clone();
        for room in &mut self.served {
            if let Some(call) = &mut room.own_call
                && call.on_delayed_updated(now, request, result.clone(), &me, ids, out)
            {
                return;
            }
        }
        log::debug!("a delayed-event result nobody asked for: {request}");
    }

    /// Whether we are in (or joining) a room's call.
    pub fn in_call(&self) -> bool {
        self.served.iter().any(|r| {
            r.focus.is_some()
                || r.own_call
                    .as_ref()
                    .is_some_and(|c| matches!(c.phase(), CallPhase::Joining(_) | CallPhase::In(_)))
        })
    }

    /// Whether a served room has a call we are not in that we could join, or rang us.
    pub fn call_waiting(&self, now: Now) -> bool {
        let me = Me {
            user_id: &self.me.user_id,
            device_id: self.me.device_id.as_str(),
            sessions: self.sessions,
        };
        self.served.iter().any(|r| {
            let Some(state) = r.room_id.as_ref().and_then(|id| self.states.get(id)) else {
                return false;
            };
            r.own == OwnMembership::Joined
                && r.focus.is_none()
                && r.own_call.as_ref().is_none_or(|c| c.current().is_none())
                && (policy::waiting_call(state, &me, r.hung_up.as_ref(), now.unix_ms)
                    || state.rung(&self.me.user_id, now.unix_ms))
        })
    }

    /// Acts on everything that has changed: joins served rooms, decides each room's call and
    /// moves our membership toward it.
    pub fn step(
        &mut self,
        now: Now,
        in_service: bool,
        stay_out: Option<&'static str>,
        livekit: Option<&str>,
        ids: &mut u64,
        out: &mut Outputs,
    ) {
        self.sessions = match livekit {
            _ if !self.settings.element_call => SessionAbility::Unsupported,
            None => SessionAbility::NoTransport,
            Some(_) => SessionAbility::Able,
        };
        for (room_id, (own, by)) in std::mem::take(&mut self.own_pending) {
            self.own_membership_changed(now, &room_id, own, by);
        }
        if !in_service {
            return;
        }
        let mut busy = self.served.iter().position(|r| {
            r.own_call
                .as_ref()
                .is_some_and(|c| *c.phase() != CallPhase::Out)
        });
        for i in 0..self.served.len() {
            let room = &mut self.served[i];
            Self::keep_joined(room, now, ids, out);
            let Some(room_id) = room.room_id.clone() else {
                continue;
            };
            let empty = RoomState::default();
            let state = self.states.get(&room_id).unwrap_or(&empty);
            let me = Me {
                user_id: &self.me.user_id,
                device_id: self.me.device_id.as_str(),
                sessions: self.sessions,
            };
            // Before anything that may skip the room: its timer is in `next_wakeup`.
            Self::end_started_call(room, state, &me, now, ids, out);
            if room.own != OwnMembership::Joined {
                continue;
            }
            if room
                .hung_up
                .as_ref()
                .is_some_and(|h| policy::hang_up_lapsed(state, h, &me, now.unix_ms))
            {
                log::info!(
                    "the hung-up call in {} is over or rang again",
                    room.configured
                );
                room.hung_up = None;
            }
            let own_call = room
                .own_call
                .get_or_insert_with(|| OwnCall::new(room_id.clone()));
            own_call.set_transport(livekit.map(str::to_owned));
            let focus = self
                .settings
                .conference_focus
                .as_ref()
                .filter(|f| state.is_joined(f));
            if let Some(focus) = focus {
                // The room's call is held by the focus: no membership of ours, a 1:1 call to it.
                let decision = if busy.is_some_and(|b| b != i) {
                    Decision {
                        call: None,
                        why: "already in a call in another served room",
                    }
                } else {
                    policy::decide_focus(
                        state,
                        self.settings.join,
                        &me,
                        focus,
                        room.hung_up.as_ref(),
                        room.asked_to_join,
                        now.unix_ms,
                    )
                };
                let decision = match stay_out {
                    Some(why) if decision.call.is_some() && room.focus.is_none() => {
                        Decision { call: None, why }
                    }
                    _ => decision,
                };
                room.focus = decision.call.is_some().then(|| focus.clone());
                if room.focus.is_some() {
                    busy = Some(i);
                }
                own_call.converge(now, None, &self.me, ids, out);
                if room.decision.as_ref() != Some(&decision) {
                    log::info!("{}: {}", room.configured, decision.why);
                }
                room.decision = Some(decision);
                continue;
            }
            room.focus = None;
            let current = own_call.current().cloned();
            if room.asked_to_join && !policy::waiting_call(state, &me, None, now.unix_ms) {
                // The call asked for is over; the next one waits for the policy again.
                room.asked_to_join = false;
            }
            let mut decision = policy::decide(
                state,
                self.settings.join,
                &me,
                current.as_ref(),
                room.hung_up.as_ref(),
                room.asked_to_join,
                now.unix_ms,
            );
            if let Some(started) = &room.started {
                let call = started.call().clone();
                let echoed = match &call {
                    CallId::Mesh { group_call_id } => state
                        .mesh_call(group_call_id)
                        .is_some_and(|c| !c.terminated),
                    // A session needs no call event: ours is the first membership in it.
                    _ => true,
                };
                decision = if echoed {
                    Decision {
                        call: Some(call),
                        why: "started the room's call; waiting for people",
                    }
                } else {
                    Decision {
                        call: None,
                        why: "starting the room's call",
                    }
                };
            }
            if let Some(why) = stay_out
                && decision.call.is_some()
            {
                decision = Decision { call: None, why };
            }
            if decision.call.is_some() && busy.is_some_and(|b| b != i) {
                decision = Decision {
                    call: None,
                    why: "already in a call in another served room",
                };
            }
            if decision.call.is_some() {
                busy = Some(i);
            }
            if room.decision.as_ref() != Some(&decision) {
                log::debug!("{}: {}", room.configured, decision.why);
            }
            if let Some(call) = own_call.current() {
                let ours = state
                    .members(now.unix_ms)
                    .find(|m| &m.call == call && me.is(m));
                own_call.observe(now, ours, &self.me, ids, out);
            }
            own_call.converge(now, decision.call.as_ref(), &self.me, ids, out);
            room.decision = Some(decision);
        }
    }

    fn keep_joined(room: &mut ServedRoom, now: Now, ids: &mut u64, out: &mut Outputs) {
        if matches!(room.own, OwnMembership::Joined | OwnMembership::Banned) {
            return;
        }
        match room.join {
            JoinAttempt::InFlight(_) => return,
            JoinAttempt::Waiting(until) if now.mono < until => return,
            _ => {}
        }
        *ids += 1;
        room.join = JoinAttempt::InFlight(*ids);
        log::info!("joining served room {}", room.configured);
        out.push_back(Output::Matrix(MatrixCommand::JoinRoom {
            request: *ids,
            room: room.configured.clone(),
        }));
    }

    /// Whether `user` is joined to `room_id`, as far as we know.
    pub fn is_joined(&self, room_id: &RoomId, user: &UserId) -> bool {
        self.states.get(room_id).is_some_and(|s| s.is_joined(user))
    }

    /// The conference foci to be in a 1:1 call with, by room.
    pub fn focus_calls(&self) -> Vec<(OwnedRoomId, OwnedUserId)> {
        self.served
            .iter()
            .filter_map(|r| Some((r.room_id.clone()?, r.focus.clone()?)))
            .collect()
    }

    /// The mesh calls we are established in, with every other device in each.
    pub fn meshes(&self, now: Now) -> Vec<Mesh> {
        let mut meshes = Vec::new();
        for room in &self.served {
            let (Some(room_id), Some(own_call)) = (&room.room_id, &room.own_call) else {
                continue;
            };
            let Some(CallId::Mesh { group_call_id }) = own_call.established() else {
                continue;
            };
            let Some(state) = self.states.get(room_id) else {
                continue;
            };
            let call = CallId::mesh(group_call_id);
            let peers = state
                .members(now.unix_ms)
                .filter(|m| m.call == call && m.shape == Shape::MeshCalls)
                .filter(|m| {
                    !(m.user_id == self.me.user_id && m.device_id == self.me.device_id.as_str())
                })
                .filter_map(|m| {
                    Some(MeshPeer {
                        user_id: m.user_id.clone(),
                        device_id: m.device_id.clone(),
                        session_id: m.session_id.clone()?,
                    })
                })
                .collect();
            meshes.push(Mesh {
                room_id: room_id.clone(),
                conf_id: group_call_id.clone(),
                peers,
            });
        }
        meshes
    }

    /// The Element Call sessions we are in or joining, with everyone else in each.
    pub fn sessions(&self, now: Now) -> Vec<WantedSession> {
        let mut sessions = Vec::new();
        for room in &self.served {
            let (Some(room_id), Some(own_call)) = (&room.room_id, &room.own_call) else {
                continue;
            };
            let (Some(call @ CallId::Rtc { .. }), Some(own_transport)) =
                (own_call.current(), own_call.transport())
            else {
                continue;
            };
            let Some(state) = self.states.get(room_id) else {
                continue;
            };
            let others = state
                .members(now.unix_ms)
                .filter(|m| &m.call == call)
                .filter(|m| {
                    !(m.user_id == self.me.user_id && m.device_id == self.me.device_id.as_str())
                })
                .map(|m| SessionMember {
                    transport: m.transport.clone(),
                    focus_selection: m.focus_selection.clone(),
                    created_ms: m.created_ms,
                })
                .collect();
            sessions.push(WantedSession {
                room_id: room_id.clone(),
                own_transport: own_transport.to_owned(),
                others,
            });
        }
        sessions
    }

    /// Leaves every call, for a clean shutdown.
    pub fn leave_calls(&mut self, now: Now, ids: &mut u64, out: &mut Outputs) {
        for room in &mut self.served {
            if let Some(call) = &mut room.own_call {
                call.converge(now, None, &self.me, ids, out);
            }
        }
    }

    /// Whether no call membership of ours is left to take back.
    pub fn out_of_calls(&self) -> bool {
        self.served.iter().all(|r| {
            r.own_call
                .as_ref()
                .is_none_or(|c| *c.phase() == CallPhase::Out)
        })
    }

    /// When the rooms next need a step. Out of service they take none (see [`Rooms::step`]),
    /// so a timer due then must not wake the loop, or it would spin until service is back.
    pub fn next_wakeup(&self, now: Now, in_service: bool) -> Option<Instant> {
        if !in_service {
            return None;
        }
        let joins = self.served.iter().filter_map(|r| match r.join {
            // As `keep_joined`: no join is due in a room we are in or banned from.
            JoinAttempt::Waiting(t)
                if !matches!(r.own, OwnMembership::Joined | OwnMembership::Banned) =>
            {
                Some(t)
            }
            _ => None,
        });
        let calls = self
            .served
            .iter()
            .filter_map(|r| r.own_call.as_ref().and_then(|c| c.next_wakeup()));
        let started = self
            .served
            .iter()
            .filter_map(|r| r.started.as_ref())
            .filter_map(|s| s.deadline(now));
        let expiries = self
            .served
            .iter()
            .filter_map(|r| r.room_id.as_ref().and_then(|id| self.states.get(id)))
            .filter_map(|s| s.next_expiry(now.unix_ms))
            .map(|t| now.instant_at(t));
        joins.chain(calls).chain(expiries).chain(started).min()
    }
}
