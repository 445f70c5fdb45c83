//! Call membership in every shape clients send, read into one form: who (user, device) is in
//! which call, through which focus, until when. Anything malformed or claiming someone else's
//! membership is an `Err` with a reason, for the caller to log and drop.

use ruma::events::call::member::{
    ActiveFocus, Application, CallMemberEventContent, Focus, MembershipData,
};
use ruma::{MilliSecondsSinceUnixEpoch, OwnedUserId, UInt, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::events::{RTC_NOTIFICATION, RTC_NOTIFICATION_STABLE, StateEvent, TimelineEvent};

/// The most devices one membership event may list; more is hostile or broken.
const MAX_DEVICES_PER_EVENT: usize = 32;
/// A ring counts for at most this long, whatever it claims (js-sdk caps lifetime the same way).
const MAX_RING_LIFETIME_MS: u64 = 120_000;
const DEFAULT_RING_LIFETIME_MS: u64 = 30_000;
/// MSC4354's upper bound on how long a sticky event stays sticky.
const MAX_STICKY_MS: u64 = 3_600_000;

/// Which call a membership is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallId {
    /// A MatrixRTC session (MSC4143/MSC4196), as Element Call joins them.
    Rtc {
        application: String,
        call_id: String,
        scope: String,
    },
    /// An MSC3401 full-mesh group call, by its group call ID.
    Mesh { group_call_id: String },
    /// A conference held by a focus user (the early MCU draft): joined by a 1:1 call to it.
    Focus { user_id: String },
}

impl CallId {
    /// The room's own call: application `m.call`, call ID `""`, scope `m.room`.
    pub fn room_call() -> CallId {
        CallId::Rtc {
            application: "m.call".to_owned(),
            call_id: String::new(),
            scope: "m.room".to_owned(),
        }
    }

    pub fn mesh(id: &str) -> CallId {
        CallId::Mesh {
            group_call_id: id.to_owned(),
        }
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallId::Rtc {
                application,
                call_id,
                scope,
            } if call_id.is_empty() && scope == "m.room" => {
                write!(f, "the room's {application} session")
            }
            CallId::Rtc {
                application,
                call_id,
                scope,
            } => write!(f, "{application} session {call_id:?} ({scope})"),
            CallId::Mesh { group_call_id } => write!(f, "mesh call {group_call_id}"),
            CallId::Focus { user_id } => write!(f, "the conference at {user_id}"),
        }
    }
}

/// The shape of event a membership was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `org.matrix.msc3401.call.member`, one event per device (MSC4143 session format).
    Session,
    /// `org.matrix.msc3401.call.member` with a `memberships` array (2024 format).
    Memberships,
    /// `org.matrix.msc3401.call.member` with an `m.calls` array (MSC3401 mesh).
    MeshCalls,
    /// A sticky `m.rtc.member` event (MSC4143 with MSC4354).
    RtcMember,
}

/// One device in one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub user_id: OwnedUserId,
    pub device_id: String,
    pub call: CallId,
    /// The focus type: `livekit`, `mesh`, or whatever the client named.
    pub focus: String,
    /// When the membership lapses, in ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// When the member joined (`created_ts`, else the event's `origin_server_ts`), in ms since
    /// the Unix epoch: the oldest membership's transport is `oldest_membership`'s choice.
    pub created_ms: u64,
    /// The LiveKit token service the member publishes on (`foci_preferred[0]`), for sessions.
    pub transport: Option<String>,
    /// How the session's SFU is chosen (`multi_sfu`, `oldest_membership`), for sessions.
    pub focus_selection: Option<String>,
    /// The MSC3401 device session, which peer-call signalling addresses.
    pub session_id: Option<String>,
    pub shape: Shape,
}

/// An MSC3401 `org.matrix.msc3401.call` state event: the call itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeshCall {
    /// `m.room`, `m.ring` or `m.prompt`.
    pub intent: String,
    pub call_type: Option<String>,
    pub terminated: bool,
    /// When the call's event was sent (ms since the epoch): clients take the newest open call.
    pub sent_ms: u64,
}

/// Someone rang (or notified) the room about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    pub call: CallId,
    pub until_ms: u64,
}

/// Reads an `org.matrix.msc3401.call.member` state event. `Ok(vec![])` is a left membership.
pub fn call_member(ev: &StateEvent) -> Result<Vec<Member>, String> {
    let Value::Object(fields) = &ev.content else {
        return Err("content is not a JSON object".to_owned());
    };
    if fields.is_empty() {
        return Ok(Vec::new());
    }
    if fields.contains_key("m.calls") {
        return mesh_calls(ev);
    }
    let content: CallMemberEventContent = serde_json::from_value(ev.content.clone())
        .map_err(|e| format!("unreadable membership: {e}"))?;
    let origin = MilliSecondsSinceUnixEpoch(UInt::new_saturating(ev.origin_server_ts));
    match &content {
        CallMemberEventContent::LegacyContent(_) => {
            if ev.state_key != ev.sender.as_str() {
                return Err(format!(
                    "`memberships` content under state key {:?} is not {}'s own",
                    ev.state_key, ev.sender
                ));
            }
        }
        CallMemberEventContent::SessionContent(data) => {
            let owner = ev.state_key.strip_prefix('_').unwrap_or(&ev.state_key);
            if !owner.starts_with(&format!("{}_{}", ev.sender, data.device_id)) {
                return Err(format!(
                    "state key {:?} does not belong to {} device {}",
                    ev.state_key, ev.sender, data.device_id
                ));
            }
        }
        CallMemberEventContent::Empty(_) => {
            // An untagged parse lands here for anything it cannot place; only a real leave
            // (no fields but a reason) is one.
            if fields.keys().any(|k| k != "leave_reason") {
                return Err("membership content in no known shape".to_owned());
            }
            return Ok(Vec::new());
        }
        _ => return Err("membership content in no known shape".to_owned()),
    }
    content
        .memberships()
        .iter()
        .take(MAX_DEVICES_PER_EVENT)
        .map(|m| rtc_member_data(&ev.sender, m, origin))
        .collect()
}

fn rtc_member_data(
    sender: &UserId,
    m: &MembershipData<'_>,
    origin: MilliSecondsSinceUnixEpoch,
) -> Result<Member, String> {
    let Application::Call(app) = m.application() else {
        return Err("not an m.call application".to_owned());
    };
    let focus = match m {
        MembershipData::Session(s) => match &s.focus_active {
            ActiveFocus::Livekit(_) => "livekit".to_owned(),
            _ => "unknown".to_owned(),
        },
        MembershipData::Legacy(l) => match l.foci_active.first() {
            Some(Focus::Livekit(_)) => "livekit".to_owned(),
            _ => "unknown".to_owned(),
        },
        _ => "unknown".to_owned(),
    };
    let shape = match m {
        MembershipData::Legacy(_) => Shape::Memberships,
        _ => Shape::Session,
    };
    let expires_at_ms = m
        .expires_ts(Some(origin))
        .map(|t| u64::from(t.0))
        .ok_or("membership expiry out of range")?;
    let (created_ms, transport, focus_selection) = match m {
        MembershipData::Session(s) => (
            u64::from(s.created_ts.unwrap_or(origin).0),
            s.foci_preferred.first().and_then(|f| match f {
                Focus::Livekit(l) => Some(l.service_url.clone()),
                _ => None,
            }),
            match &s.focus_active {
                ActiveFocus::Livekit(a) => Some(a.focus_selection.as_str().to_owned()),
                _ => None,
            },
        ),
        _ => (u64::from(origin.0), None, None),
    };
    Ok(Member {
        user_id: sender.to_owned(),
        device_id: m.device_id().to_string(),
        call: CallId::Rtc {
            application: "m.call".to_owned(),
            call_id: app.call_id.clone(),
            scope: app.scope.as_str().to_owned(),
        },
        focus,
        expires_at_ms,
        created_ms,
        transport,
        focus_selection,
        session_id: None,
        shape,
    })
}

#[derive(Deserialize)]
struct MeshCallsContent {
    #[serde(rename = "m.calls")]
    calls: Vec<MeshCallEntry>,
}

#[derive(Deserialize)]
struct MeshCallEntry {
    #[serde(rename = "m.call_id")]
    call_id: String,
    #[serde(rename = "m.devices")]
    devices: Vec<MeshDevice>,
}

#[derive(Deserialize)]
struct MeshDevice {
    device_id: String,
    session_id: String,
    expires_ts: u64,
}

fn mesh_calls(ev: &StateEvent) -> Result<Vec<Member>, String> {
    if ev.state_key != ev.sender.as_str() {
        return Err(format!(
            "`m.calls` content under state key {:?} is not {}'s own",
            ev.state_key, ev.sender
        ));
    }
    let content: MeshCallsContent = serde_json::from_value(ev.content.clone())
        .map_err(|e| format!("unreadable m.calls membership: {e}"))?;
    let members: Vec<Member> = content
        .calls
        .iter()
        .flat_map(|call| {
            call.devices.iter().map(move |d| Member {
                user_id: ev.sender.clone(),
                device_id: d.device_id.clone(),
                call: CallId::mesh(&call.call_id),
                focus: "mesh".to_owned(),
                expires_at_ms: d.expires_ts,
                created_ms: ev.origin_server_ts,
                transport: None,
                focus_selection: None,
                session_id: Some(d.session_id.clone()),
                shape: Shape::MeshCalls,
            })
        })
        .take(MAX_DEVICES_PER_EVENT + 1)
        .collect();
    if members.len() > MAX_DEVICES_PER_EVENT {
        return Err(format!(
            "more than {MAX_DEVICES_PER_EVENT} devices in one membership"
        ));
    }
    if members
        .iter()
        .any(|m| m.device_id.is_empty() || m.session_id.as_deref() == Some(""))
    {
        return Err("a device without a device or session ID".to_owned());
    }
    Ok(members)
}

/// Reads an `org.matrix.msc3401.call` state event; `Ok(None)` is an emptied (ended) call.
pub fn mesh_call(ev: &StateEvent) -> Result<Option<MeshCall>, String> {
    #[derive(Deserialize)]
    struct Content {
        #[serde(rename = "m.intent")]
        intent: String,
        #[serde(rename = "m.type")]
        call_type: Option<String>,
        #[serde(rename = "m.terminated")]
        terminated: Option<Value>,
    }
    if ev.content.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(None);
    }
    if ev.state_key.is_empty() {
        return Err("a group call with an empty call ID".to_owned());
    }
    let c: Content = serde_json::from_value(ev.content.clone())
        .map_err(|e| format!("unreadable group call: {e}"))?;
    Ok(Some(MeshCall {
        intent: c.intent,
        call_type: c.call_type,
        terminated: c.terminated.is_some(),
        sent_ms: ev.origin_server_ts,
    }))
}

/// A sticky `m.rtc.member` event: the member's key and the membership, or `None` for a leave.
pub fn rtc_member(ev: &TimelineEvent) -> Result<(String, Option<Member>), String> {
    #[derive(Deserialize)]
    struct Content {
        slot_id: String,
        msc4354_sticky_key: Option<String>,
        application: Option<AppContent>,
        member: Option<MemberContent>,
        transports: Option<Transports>,
    }
    #[derive(Deserialize)]
    struct AppContent {
        #[serde(rename = "type")]
        kind: String,
    }
    #[derive(Deserialize)]
    struct MemberContent {
        user_id: OwnedUserId,
        device_id: String,
        id: Option<String>,
    }
    #[derive(Deserialize)]
    struct Transports {
        #[serde(default)]
        published: Vec<Value>,
    }
    let c: Content = serde_json::from_value(ev.content.clone())
        .map_err(|e| format!("unreadable rtc member: {e}"))?;
    let key = c
        .msc4354_sticky_key
        .clone()
        .or_else(|| c.member.as_ref().and_then(|m| m.id.clone()))
        .unwrap_or_else(|| c.slot_id.clone());
    let (Some(member), Some(app)) = (c.member, c.application) else {
        return Ok((key, None));
    };
    if member.user_id != ev.sender {
        return Err(format!(
            "rtc member for {} sent by {}",
            member.user_id, ev.sender
        ));
    }
    let sticky = ev
        .sticky_duration_ms
        .unwrap_or(MAX_STICKY_MS)
        .min(MAX_STICKY_MS);
    let published = c.transports.and_then(|t| t.published.first().cloned());
    let focus = published
        .as_ref()
        .and_then(|t| t.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let transport = published
        .as_ref()
        .and_then(|t| t.get("livekit_service_url").and_then(Value::as_str))
        .map(str::to_owned);
    Ok((
        key,
        Some(Member {
            user_id: member.user_id,
            device_id: member.device_id,
            call: slot_call(&app.kind, &c.slot_id),
            focus,
            expires_at_ms: ev.origin_server_ts.saturating_add(sticky),
            created_ms: ev.origin_server_ts,
            transport,
            // Matrix 2.0 mode is multi-SFU.
            focus_selection: Some("multi_sfu".to_owned()),
            session_id: None,
            shape: Shape::RtcMember,
        }),
    ))
}

/// MSC4143 slots: `m.call#ROOM` is the room call.
fn slot_call(application: &str, slot_id: &str) -> CallId {
    match slot_id.rsplit_once('#') {
        Some((_, "ROOM")) => CallId::Rtc {
            application: application.to_owned(),
            call_id: String::new(),
            scope: "m.room".to_owned(),
        },
        _ => CallId::Rtc {
            application: application.to_owned(),
            call_id: slot_id.to_owned(),
            scope: "m.user".to_owned(),
        },
    }
}

/// A ringing notification (`org.matrix.msc4075.rtc.notification`, `m.rtc.notify` or the older
/// `org.matrix.msc4075.call.notify`).
pub fn ring(ev: &TimelineEvent) -> Result<Ring, String> {
    let content = ev
        .content
        .as_object()
        .ok_or("content is not a JSON object")?;
    let lifetime = content
        .get("lifetime")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_RING_LIFETIME_MS)
        .min(MAX_RING_LIFETIME_MS);
    let call = if [RTC_NOTIFICATION, RTC_NOTIFICATION_STABLE].contains(&ev.event_type.as_str()) {
        match content.get("slot_id").and_then(Value::as_str) {
            Some(slot) => slot_call("m.call", slot),
            None => CallId::room_call(),
        }
    } else {
        let application = content
            .get("application")
            .and_then(Value::as_str)
            .ok_or("a notify without an application")?;
        let call_id = content
            .get("call_id")
            .and_then(Value::as_str)
            .ok_or("a notify without a call_id")?;
        CallId::Rtc {
            application: application.to_owned(),
            call_id: call_id.to_owned(),
            scope: "m.room".to_owned(),
        }
    };
    Ok(Ring {
        call,
        until_ms: ev.origin_server_ts.saturating_add(lifetime),
    })
}

#[cfg(test)]
mod tests;
