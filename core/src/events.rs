//! What the Matrix I/O layer reports from a sync, as plain values. Contents stay JSON: the core
//! parses them itself, so a malformed event is the core's to log and drop.

use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::Value;

/// A state event of a room we are in (or just left).
#[derive(Debug, Clone, PartialEq)]
pub struct StateEvent {
    pub room_id: OwnedRoomId,
    pub event_type: String,
    pub state_key: String,
    pub sender: OwnedUserId,
    pub origin_server_ts: u64,
    pub content: Value,
}

/// A non-state event from a room's timeline, of a type in [`TIMELINE_TYPES`].
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEvent {
    pub room_id: OwnedRoomId,
    pub event_type: String,
    pub sender: OwnedUserId,
    pub origin_server_ts: u64,
    pub content: Value,
    /// MSC4354 sticky duration, for events sent sticky.
    pub sticky_duration_ms: Option<u64>,
}

/// An invite to a room, with who sent it when the invite says.
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub room_id: OwnedRoomId,
    pub inviter: Option<OwnedUserId>,
}

pub const CALL_MEMBER: &str = "org.matrix.msc3401.call.member";
pub const MESH_CALL: &str = "org.matrix.msc3401.call";
pub const RTC_MEMBER: &str = "m.rtc.member";
pub const RTC_MEMBER_UNSTABLE: &str = "org.matrix.msc4143.rtc.member";
pub const RTC_NOTIFICATION: &str = "org.matrix.msc4075.rtc.notification";
/// The name ruma 0.16 gives its typed `RtcNotificationEventContent` (`TYPE`), which some
/// clients built on it send.
pub const RTC_NOTIFICATION_STABLE: &str = "m.rtc.notification";
pub const RTC_NOTIFY: &str = "m.rtc.notify";
pub const CALL_NOTIFY_UNSTABLE: &str = "org.matrix.msc4075.call.notify";
pub const ROOM_MEMBER: &str = "m.room.member";
pub const ROOM_ENCRYPTION: &str = "m.room.encryption";

/// The timeline event types the core wants; the I/O layer passes only these.
pub const TIMELINE_TYPES: &[&str] = &[
    RTC_MEMBER,
    RTC_MEMBER_UNSTABLE,
    RTC_NOTIFICATION,
    RTC_NOTIFICATION_STABLE,
    RTC_NOTIFY,
    CALL_NOTIFY_UNSTABLE,
];
