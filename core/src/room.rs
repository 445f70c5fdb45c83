//! What the core knows about one room: who is joined, every call membership in it, the MSC3401
//! group calls, and recent rings. Live participants are computed on demand for a given time,
//! so expiry needs no timer of its own here.

use std::collections::{BTreeMap, HashMap, HashSet};

use ruma::{OwnedUserId, UserId};
use serde_json::Value;

use super::events::{
    CALL_MEMBER, MESH_CALL, ROOM_ENCRYPTION, ROOM_MEMBER, RTC_MEMBER, RTC_MEMBER_UNSTABLE,
    StateEvent, TimelineEvent,
};
use super::membership::{self, CallId, Member, MeshCall, Ring};

/// Rings remembered per room; older ones have long lapsed.
const MAX_RINGS: usize = 16;
/// Sticky rtc memberships remembered per room.
const MAX_RTC_MEMBERS: usize = 256;

/// Our own membership of a room, as its state says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnMembership {
    Unknown,
    Joined,
    Invited,
    Left,
    Banned,
}

#[derive(Debug, Default)]
pub struct RoomState {
    joined: HashSet<OwnedUserId>,
    /// `org.matrix.msc3401.call.member`, by state key.
    call_members: HashMap<String, Vec<Member>>,
    /// `org.matrix.msc3401.call`, by group call ID.
    mesh_calls: HashMap<String, MeshCall>,
    /// Sticky `m.rtc.member`, by sender and sticky key.
    rtc_members: HashMap<(OwnedUserId, String), Member>,
    rings: Vec<(OwnedUserId, Ring)>,
    /// The room has `m.room.encryption` (which cannot be turned off).
    encrypted: bool,
}

/// What applying an event changed that the caller must act on.
pub enum Applied {
    Nothing,
    OwnMembership(OwnMembership, Option<OwnedUserId>),
}

impl RoomState {
    pub fn apply_state(&mut self, ev: &StateEvent, own_user: &UserId) -> Applied {
        match ev.event_type.as_str() {
            ROOM_MEMBER => return self.apply_room_member(ev, own_user),
            // Encryption cannot be turned off; an empty or broken event still counts as on, as
            // clients treat it.
            ROOM_ENCRYPTION => self.encrypted = true,
            CALL_MEMBER => match membership::call_member(ev) {
                Ok(members) if members.is_empty() => {
                    self.call_members.remove(&ev.state_key);
                }
                Ok(members) => {
                    self.call_members.insert(ev.state_key.clone(), members);
                }
                Err(why) => {
                    log::warn!(
                        "ignoring call membership {:?} from {} in {}: {why}",
                        ev.state_key,
                        ev.sender,
                        ev.room_id
                    );
                    // It replaced whatever that state key held before.
                    self.call_members.remove(&ev.state_key);
                }
            },
            MESH_CALL => match membership::mesh_call(ev) {
                Ok(Some(call)) => {
                    self.mesh_calls.insert(ev.state_key.clone(), call);
                }
                Ok(None) => {
                    self.mesh_calls.remove(&ev.state_key);
                }
                Err(why) => {
                    log::warn!(
                        "ignoring group call {:?} in {}: {why}",
                        ev.state_key,
                        ev.room_id
                    );
                    self.mesh_calls.remove(&ev.state_key);
                }
            },
            RTC_MEMBER | RTC_MEMBER_UNSTABLE => {
                let as_timeline = TimelineEvent {
                    room_id: ev.room_id.clone(),
                    event_type: ev.event_type.clone(),
                    sender: ev.sender.clone(),
                    origin_server_ts: ev.origin_server_ts,
                    content: ev.content.clone(),
                    sticky_duration_ms: None,
                };
                self.apply_rtc_member(&as_timeline);
            }
            _ => {}
        }
        Applied::Nothing
    }

    fn apply_room_member(&mut self, ev: &StateEvent, own_user: &UserId) -> Applied {
        let Ok(user) = UserId::parse(&ev.state_key) else {
            log::warn!("ignoring m.room.member with state key {:?}", ev.state_key);
            return Applied::Nothing;
        };
        let membership = ev.content.get("membership").and_then(Value::as_str);
        if membership == Some("join") {
            self.joined.insert(user.clone());
        } else {
            self.joined.remove(&user);
        }
        if user != own_user {
            return Applied::Nothing;
        }
        let own = match membership {
            Some("join") => OwnMembership::Joined,
            Some("invite") => OwnMembership::Invited,
            Some("ban") => OwnMembership::Banned,
            Some("leave") => OwnMembership::Left,
            _ => OwnMembership::Unknown,
        };
        Applied::OwnMembership(own, Some(ev.sender.clone()))
    }

    pub fn is_joined(&self, user: &UserId) -> bool {
        self.joined.contains(user)
    }

    pub fn joined_count(&self) -> usize {
        self.joined.len()
    }

    pub fn apply_timeline(&mut self, ev: &TimelineEvent) {
        match ev.event_type.as_str() {
            RTC_MEMBER | RTC_MEMBER_UNSTABLE => self.apply_rtc_member(ev),
            _ => match membership::ring(ev) {
                Ok(ring) => {
                    self.rings.push((ev.sender.clone(), ring));
                    if self.rings.len() > MAX_RINGS {
                        self.rings.remove(0);
                    }
                }
                Err(why) => log::warn!(
                    "ignoring {} from {} in {}: {why}",
                    ev.event_type,
                    ev.sender,
                    ev.room_id
                ),
            },
        }
    }

    fn apply_rtc_member(&mut self, ev: &TimelineEvent) {
        match membership::rtc_member(ev) {
            Ok((key, Some(member))) => {
                let slot = (ev.sender.clone(), key);
                if self.rtc_members.len() >= MAX_RTC_MEMBERS
                    && !self.rtc_members.contains_key(&slot)
                {
                    log::warn!("too many rtc members in {}; ignoring more", ev.room_id);
                    return;
                }
                self.rtc_members.insert(slot, member);
            }
            Ok((key, None)) => {
                self.rtc_members.remove(&(ev.sender.clone(), key));
            }
            Err(why) => log::warn!(
                "ignoring rtc member from {} in {}: {why}",
                ev.sender,
                ev.room_id
            ),
        }
    }

    /// Every live membership: unexpired, from a joined member, and for a mesh call only while
    /// that call exists and is not terminated.
    pub fn members(&self, now_ms: u64) -> impl Iterator<Item = &Member> {
        self.call_members
            .values()
            .flatten()
            .chain(self.rtc_members.values())
            .filter(move |m| m.expires_at_ms > now_ms && self.joined.contains(&m.user_id))
            .filter(|m| match &m.call {
                CallId::Mesh { group_call_id } => self
                    .mesh_calls
                    .get(group_call_id)
                    .is_some_and(|c| !c.terminated),
                CallId::Rtc { .. } | CallId::Focus { .. } => true,
            })
    }

    /// Live calls and their members, in a stable order.
    pub fn calls(&self, now_ms: u64) -> BTreeMap<CallId, Vec<&Member>> {
        let mut calls: BTreeMap<CallId, Vec<&Member>> = BTreeMap::new();
        for m in self.members(now_ms) {
            calls.entry(m.call.clone()).or_default().push(m);
        }
        for members in calls.values_mut() {
            members.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));
            members.dedup_by(|a, b| a.user_id == b.user_id && a.device_id == b.device_id);
        }
        calls
    }

    /// Whether the room encrypts its events, and so Element Call its media.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    pub fn mesh_call(&self, id: &str) -> Option<&MeshCall> {
        self.mesh_calls.get(id)
    }

    /// The newest group call not terminated, with or without people in it: the one
    /// matrix-js-sdk enters in this room (it keeps one group call per room).
    pub fn newest_open_mesh_call(&self) -> Option<&str> {
        self.mesh_calls
            .iter()
            .filter(|(_, c)| !c.terminated)
            .max_by(|(a_id, a), (b_id, b)| a.sent_ms.cmp(&b.sent_ms).then(a_id.cmp(b_id)))
            .map(|(id, _)| id.as_str())
    }

    /// Whether someone other than `own_user` rang the room recently.
    pub fn rung(&self, own_user: &UserId, now_ms: u64) -> bool {
        self.rings.iter().any(|(sender, r)| {
            sender != own_user && r.until_ms > now_ms && self.joined.contains(sender)
        })
    }

    /// The latest time a ring from someone else stays valid, to notice a new one.
    pub fn latest_ring(&self, own_user: &UserId) -> Option<u64> {
        self.rings
            .iter()
            .filter(|(sender, _)| sender != own_user)
            .map(|(_, r)| r.until_ms)
            .max()
    }

    /// When the next live membership or ring lapses, so the caller can wake then.
    pub fn next_expiry(&self, now_ms: u64) -> Option<u64> {
        let members = self.members(now_ms).map(|m| m.expires_at_ms);
        let rings = self
            .rings
            .iter()
            .map(|(_, r)| r.until_ms)
            .filter(|t| *t > now_ms);
        members.chain(rings).min()
    }
}
