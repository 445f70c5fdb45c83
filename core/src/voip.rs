//! VoIP signalling messages (`m.call.*`), read from and written to Matrix through ruma's event
//! types. The same contents travel as room events (1:1 calls) and as to-device messages (MSC3401
//! mesh calls), where they carry extra routing fields ([`Routing`]). Anything unreadable or
//! oversized is an `Err` with a reason, for the caller to log and drop.

use std::collections::BTreeMap;

use ruma::events::call::answer::CallAnswerEventContent;
use ruma::events::call::candidates::{CallCandidatesEventContent, Candidate as RumaCandidate};
use ruma::events::call::hangup::{CallHangupEventContent, Reason};
use ruma::events::call::invite::CallInviteEventContent;
use ruma::events::call::negotiate::CallNegotiateEventContent;
use ruma::events::call::reject::CallRejectEventContent;
use ruma::events::call::sdp_stream_metadata_changed::CallSdpStreamMetadataChangedEventContent;
use ruma::events::call::select_answer::CallSelectAnswerEventContent;
use ruma::events::call::{SessionDescription, StreamMetadata, StreamPurpose};
use ruma::{OwnedUserId, OwnedVoipId, UInt, VoipVersionId};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::media::{Candidate, SdpKind};

pub const INVITE: &str = "m.call.invite";
pub const ANSWER: &str = "m.call.answer";
pub const CANDIDATES: &str = "m.call.candidates";
pub const SELECT_ANSWER: &str = "m.call.select_answer";
pub const NEGOTIATE: &str = "m.call.negotiate";
pub const HANGUP: &str = "m.call.hangup";
pub const REJECT: &str = "m.call.reject";
pub const METADATA_CHANGED: &str = "m.call.sdp_stream_metadata_changed";
/// What matrix-js-sdk sends before the stable name.
const METADATA_CHANGED_UNSTABLE: &str = "org.matrix.call.sdp_stream_metadata_changed";

/// The event types carried in and out, for the I/O layers' filters.
pub const TYPES: &[&str] = &[
    INVITE,
    ANSWER,
    CANDIDATES,
    SELECT_ANSWER,
    NEGOTIATE,
    HANGUP,
    REJECT,
    METADATA_CHANGED,
    METADATA_CHANGED_UNSTABLE,
];

/// Bigger than any real session description; a bigger one is hostile.
const MAX_SDP_BYTES: usize = 64 * 1024;
const MAX_CANDIDATES: usize = 64;
const MAX_STREAMS: usize = 8;
const MAX_ID_BYTES: usize = 255;

/// The to-device routing fields of MSC3401 group-call signalling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub conf_id: String,
    /// The sender's device.
    pub device_id: String,
    pub sender_session_id: String,
    pub dest_session_id: String,
    pub seq: u64,
}

/// One stream's metadata, as `sdp_stream_metadata` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    pub screenshare: bool,
    pub audio_muted: bool,
    pub video_muted: bool,
}

pub type Metadata = BTreeMap<String, StreamState>;

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Invite {
        sdp: String,
        lifetime_ms: u64,
        invitee: Option<OwnedUserId>,
        metadata: Metadata,
    },
    Answer {
        sdp: String,
        metadata: Metadata,
    },
    Candidates(Vec<Candidate>),
    SelectAnswer {
        selected_party_id: String,
    },
    Negotiate {
        kind: SdpKind,
        sdp: String,
        metadata: Metadata,
    },
    Hangup {
        reason: String,
    },
    Reject,
    MetadataChanged(Metadata),
}

impl Body {
    pub fn event_type(&self) -> &'static str {
        match self {
            Body::Invite { .. } => INVITE,
            Body::Answer { .. } => ANSWER,
            Body::Candidates(_) => CANDIDATES,
            Body::SelectAnswer { .. } => SELECT_ANSWER,
            Body::Negotiate { .. } => NEGOTIATE,
            Body::Hangup { .. } => HANGUP,
            Body::Reject => REJECT,
            Body::MetadataChanged(_) => METADATA_CHANGED,
        }
    }
}

/// One signalling message: which call, from which party, what.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub call_id: String,
    /// Required by VoIP version 1; version 0 senders have none.
    pub party_id: Option<String>,
    pub body: Body,
    pub routing: Option<Routing>,
}

fn read<T: DeserializeOwned>(content: &Value) -> Result<T, String> {
    serde_json::from_value(content.clone()).map_err(|e| format!("malformed: {e}"))
}

fn bounded_id(what: &str, id: &str) -> Result<String, String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(format!(
            "{what} is empty or longer than {MAX_ID_BYTES} bytes"
        ));
    }
    Ok(id.to_owned())
}

fn sdp(description: SessionDescription, expected: Option<&str>) -> Result<String, String> {
    if let Some(expected) = expected
        && description.session_type != expected
    {
        return Err(format!(
            "the description is of type {:?}, not {expected:?}",
            description.session_type
        ));
    }
    if description.sdp.len() > MAX_SDP_BYTES {
        return Err(format!("the SDP is over {MAX_SDP_BYTES} bytes"));
    }
    // Garbage is refused here, before it can replace a call that works.
    let text = &description.sdp;
    if !text.starts_with("v=0") || !text.lines().any(|l| l.starts_with("m=")) {
        return Err("the SDP is not a session description with media".to_owned());
    }
    Ok(description.sdp)
}

fn metadata_in(m: BTreeMap<String, StreamMetadata>) -> Result<Metadata, String> {
    if m.len() > MAX_STREAMS {
        return Err(format!(
            "more than {MAX_STREAMS} streams in sdp_stream_metadata"
        ));
    }
    Ok(m.into_iter()
        .map(|(id, s)| {
            let state = StreamState {
                screenshare: s.purpose == StreamPurpose::ScreenShare,
                audio_muted: s.audio_muted,
                video_muted: s.video_muted,
            };
            (id, state)
        })
        .collect())
}

fn metadata_out(m: &Metadata) -> BTreeMap<String, StreamMetadata> {
    m.iter()
        .map(|(id, s)| {
            let purpose = if s.screenshare {
                StreamPurpose::ScreenShare
            } else {
                StreamPurpose::UserMedia
            };
            let mut meta = StreamMetadata::new(purpose);
            meta.audio_muted = s.audio_muted;
            meta.video_muted = s.video_muted;
            (id.clone(), meta)
        })
        .collect()
}

fn routing(content: &Value) -> Result<Option<Routing>, String> {
    let Some(conf_id) = content.get("conf_id") else {
        return Ok(None);
    };
    let text = |key: &str| -> Result<String, String> {
        let v = content
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("group-call signalling without a string {key}"))?;
        bounded_id(key, v)
    };
    let conf_id = conf_id
        .as_str()
        .ok_or("conf_id is not a string")
        .and_then(|c| bounded_id("conf_id", c).map_err(|_| "conf_id is empty or too long"))?;
    Ok(Some(Routing {
        conf_id,
        device_id: text("device_id")?,
        sender_session_id: text("sender_session_id")?,
        dest_session_id: text("dest_session_id")?,
        seq: content
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or("group-call signalling without a non-negative integer seq")?,
    }))
}

/// Reads a signalling message of `event_type` from its content.
pub fn parse(event_type: &str, content: &Value) -> Result<Message, String> {
    if !content.is_object() {
        return Err("the content is not an object".to_owned());
    }
    let routing = routing(content)?;
    let (call_id, party_id, body): (OwnedVoipId, Option<OwnedVoipId>, Body) = match event_type {
        INVITE => {
            let c: CallInviteEventContent = read(content)?;
            let body = Body::Invite {
                sdp: sdp(c.offer, Some("offer"))?,
                lifetime_ms: u64::from(c.lifetime),
                invitee: c.invitee,
                metadata: metadata_in(c.sdp_stream_metadata)?,
            };
            (c.call_id, c.party_id, body)
        }
        ANSWER => {
            let c: CallAnswerEventContent = read(content)?;
            let body = Body::Answer {
                sdp: sdp(c.answer, Some("answer"))?,
                metadata: metadata_in(c.sdp_stream_metadata)?,
            };
            (c.call_id, c.party_id, body)
        }
        CANDIDATES => {
            let c: CallCandidatesEventContent = read(content)?;
            if c.candidates.len() > MAX_CANDIDATES {
                return Err(format!(
                    "more than {MAX_CANDIDATES} candidates in one message"
                ));
            }
            let candidates = c
                .candidates
                .into_iter()
                .filter(|c| c.candidate.len() <= 1024)
                .map(|c| Candidate {
                    candidate: c.candidate,
                    sdp_m_line_index: c
                        .sdp_m_line_index
                        .and_then(|i| u32::try_from(u64::from(i)).ok())
                        .unwrap_or(0),
                    sdp_mid: c.sdp_mid,
                })
                .collect();
            (c.call_id, c.party_id, Body::Candidates(candidates))
        }
        SELECT_ANSWER => {
            let c: CallSelectAnswerEventContent = read(content)?;
            let body = Body::SelectAnswer {
                selected_party_id: c.selected_party_id.to_string(),
            };
            (c.call_id, Some(c.party_id), body)
        }
        NEGOTIATE => {
            let c: CallNegotiateEventContent = read(content)?;
            let kind = match c.description.session_type.as_str() {
                "offer" => SdpKind::Offer,
                "answer" => SdpKind::Answer,
                other => return Err(format!("a negotiate description of type {other:?}")),
            };
            let body = Body::Negotiate {
                kind,
                sdp: sdp(c.description, None)?,
                metadata: metadata_in(c.sdp_stream_metadata)?,
            };
            (c.call_id, Some(c.party_id), body)
        }
        HANGUP => {
            let c: CallHangupEventContent = read(content)?;
            let body = Body::Hangup {
                reason: c.reason.as_str().to_owned(),
            };
            (c.call_id, c.party_id, body)
        }
        REJECT => {
            let c: CallRejectEventContent = read(content)?;
            (c.call_id, Some(c.party_id), Body::Reject)
        }
        METADATA_CHANGED | METADATA_CHANGED_UNSTABLE => {
            let c: CallSdpStreamMetadataChangedEventContent = read(content)?;
            let body = Body::MetadataChanged(metadata_in(c.sdp_stream_metadata)?);
            (c.call_id, Some(c.party_id), body)
        }
        other => return Err(format!("{other} is not a call signalling type")),
    };
    Ok(Message {
        call_id: bounded_id("call_id", call_id.as_str())?,
        party_id: party_id
            .map(|p| bounded_id("party_id", p.as_str()))
            .transpose()?,
        body,
        routing,
    })
}

/// The spec's hangup reasons that roomd sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    UserHangup,
    IceFailed,
    InviteTimeout,
    UserBusy,
    UserMediaFailed,
    UnknownError,
}

impl HangupReason {
    fn ruma(self) -> Reason {
        match self {
            HangupReason::UserHangup => Reason::UserHangup,
            HangupReason::IceFailed => Reason::IceFailed,
            HangupReason::InviteTimeout => Reason::InviteTimeout,
            HangupReason::UserBusy => Reason::UserBusy,
            HangupReason::UserMediaFailed => Reason::UserMediaFailed,
            HangupReason::UnknownError => Reason::UnknownError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HangupReason::UserHangup => "user_hangup",
            HangupReason::IceFailed => "ice_failed",
            HangupReason::InviteTimeout => "invite_timeout",
            HangupReason::UserBusy => "user_busy",
            HangupReason::UserMediaFailed => "user_media_failed",
            HangupReason::UnknownError => "unknown_error",
        }
    }
}

/// What roomd sends; [`content`] turns it into an event content.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Invite {
        sdp: String,
        lifetime_ms: u64,
        invitee: Option<OwnedUserId>,
        metadata: Metadata,
    },
    Answer {
        sdp: String,
        metadata: Metadata,
    },
    Candidates(Vec<Candidate>),
    SelectAnswer {
        selected_party_id: String,
    },
    Negotiate {
        kind: SdpKind,
        sdp: String,
        lifetime_ms: u64,
        metadata: Metadata,
    },
    Hangup(HangupReason),
    Reject,
    MetadataChanged(Metadata),
}

impl Outgoing {
    pub fn event_type(&self) -> &'static str {
        match self {
            Outgoing::Invite { .. } => INVITE,
            Outgoing::Answer { .. } => ANSWER,
            Outgoing::Candidates(_) => CANDIDATES,
            Outgoing::SelectAnswer { .. } => SELECT_ANSWER,
            Outgoing::Negotiate { .. } => NEGOTIATE,
            Outgoing::Hangup(_) => HANGUP,
            Outgoing::Reject => REJECT,
            Outgoing::MetadataChanged(_) => METADATA_CHANGED,
        }
    }
}

fn description(kind: &str, sdp: &str) -> SessionDescription {
    SessionDescription::new(kind.to_owned(), sdp.to_owned())
}

fn to_value<T: serde::Serialize>(content: T) -> Value {
    serde_json::to_value(content).expect("event contents serialize")
}

/// The content of `message` in call `call_id` from party `party_id`, with the to-device
/// routing fields when it goes to a device.
pub fn content(
    message: &Outgoing,
    call_id: &str,
    party_id: &str,
    routing: Option<&Routing>,
) -> Value {
    let call = OwnedVoipId::from(call_id);
    let party = OwnedVoipId::from(party_id);
    let mut value = match message {
        Outgoing::Invite {
            sdp,
            lifetime_ms,
            invitee,
            metadata,
        } => {
            let lifetime = UInt::new_saturating(*lifetime_ms);
            let mut c =
                CallInviteEventContent::version_1(call, party, lifetime, description("offer", sdp));
            c.invitee = invitee.clone();
            c.sdp_stream_metadata = metadata_out(metadata);
            to_value(c)
        }
        Outgoing::Answer { sdp, metadata } => {
            let mut c = CallAnswerEventContent::version_1(description("answer", sdp), call, party);
            c.sdp_stream_metadata = metadata_out(metadata);
            to_value(c)
        }
        Outgoing::Candidates(candidates) => {
            let candidates = candidates
                .iter()
                .map(|c| {
                    let mut r = RumaCandidate::new(c.candidate.clone());
                    r.sdp_mid = c.sdp_mid.clone();
                    r.sdp_m_line_index = Some(UInt::from(c.sdp_m_line_index));
                    r
                })
                .collect();
            to_value(CallCandidatesEventContent::version_1(
                call, party, candidates,
            ))
        }
        Outgoing::SelectAnswer { selected_party_id } => {
            to_value(CallSelectAnswerEventContent::version_1(
                call,
                party,
                OwnedVoipId::from(selected_party_id.as_str()),
            ))
        }
        Outgoing::Negotiate {
            kind,
            sdp,
            lifetime_ms,
            metadata,
        } => {
            let kind = match kind {
                SdpKind::Offer => "offer",
                SdpKind::Answer => "answer",
            };
            let mut c = CallNegotiateEventContent::version_1(
                call,
                party,
                UInt::new_saturating(*lifetime_ms),
                description(kind, sdp),
            );
            c.sdp_stream_metadata = metadata_out(metadata);
            to_value(c)
        }
        Outgoing::Hangup(reason) => to_value(CallHangupEventContent::version_1(
            call,
            party,
            reason.ruma(),
        )),
        Outgoing::Reject => to_value(CallRejectEventContent::version_1(call, party)),
        Outgoing::MetadataChanged(metadata) => {
            to_value(CallSdpStreamMetadataChangedEventContent::new(
                call,
                party,
                VoipVersionId::V1,
                metadata_out(metadata),
            ))
        }
    };
    // matrix-js-sdk reads a missing mute flag as "unknown", not false: always say it.
    if let Some(Value::Object(streams)) = value.get_mut("sdp_stream_metadata") {
        for stream in streams.values_mut() {
            if let Value::Object(s) = stream {
                s.entry("audio_muted").or_insert(Value::Bool(false));
                s.entry("video_muted").or_insert(Value::Bool(false));
            }
        }
    }
    if let (Some(r), Value::Object(fields)) = (routing, &mut value) {
        let extra = json!({
            "conf_id": r.conf_id,
            "device_id": r.device_id,
            "sender_session_id": r.sender_session_id,
            "dest_session_id": r.dest_session_id,
            "seq": r.seq,
        });
        if let Value::Object(extra) = extra {
            fields.extend(extra);
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_messages_read_back_as_sent() {
        let routing = Routing {
            conf_id: "conf".into(),
            device_id: "ROOMD".into(),
            sender_session_id: "s1".into(),
            dest_session_id: "s2".into(),
            seq: 7,
        };
        let mut metadata = Metadata::new();
        metadata.insert(
            "stream".into(),
            StreamState {
                screenshare: false,
                audio_muted: true,
                video_muted: false,
            },
        );
        let sent = Outgoing::Invite {
            sdp: "v=0\r\nm=audio 9 X 111\r\n".into(),
            lifetime_ms: 60_000,
            invitee: None,
            metadata: metadata.clone(),
        };
        let value = content(&sent, "call1", "ROOMD", Some(&routing));
        assert_eq!(value["version"], "1");
        let read = parse(INVITE, &value).unwrap();
        assert_eq!(read.call_id, "call1");
        assert_eq!(read.party_id.as_deref(), Some("ROOMD"));
        assert_eq!(read.routing, Some(routing));
        assert_eq!(
            read.body,
            Body::Invite {
                sdp: "v=0\r\nm=audio 9 X 111\r\n".into(),
                lifetime_ms: 60_000,
                invitee: None,
                metadata
            }
        );
    }

    #[test]
    fn hostile_contents_are_refused_with_a_reason() {
        let cases = [
            (INVITE, json!([])),
            (
                INVITE,
                json!({"call_id": "c", "version": "1", "lifetime": 1}),
            ),
            (
                INVITE,
                json!({"call_id": "c", "version": "1", "lifetime": 1, "party_id": "p",
                       "offer": {"type": "answer", "sdp": "x"}}),
            ),
            (
                ANSWER,
                json!({"call_id": "", "version": "1", "party_id": "p",
                       "answer": {"type": "answer", "sdp": "x"}}),
            ),
            (
                CANDIDATES,
                json!({"call_id": "c", "version": "1", "party_id": "p",
                       "candidates": vec![json!({"candidate": "a"}); 65]}),
            ),
            (
                HANGUP,
                json!({"call_id": "c", "version": "1", "party_id": "p", "conf_id": "x",
                       "device_id": "D", "sender_session_id": "a", "dest_session_id": "b",
                       "seq": -1}),
            ),
            ("m.call.unknown", json!({})),
        ];
        for (kind, content) in cases {
            assert!(parse(kind, &content).is_err(), "{kind} {content}");
        }
        let garbage = json!({"call_id": "c", "version": "1", "lifetime": 1, "party_id": "p",
                             "offer": {"type": "offer", "sdp": "\u{0}\u{1}not sdp at all"}});
        assert!(parse(INVITE, &garbage).is_err());
        let huge = "x".repeat(MAX_SDP_BYTES + 1);
        let invite = json!({"call_id": "c", "version": "1", "lifetime": 1, "party_id": "p",
                            "offer": {"type": "offer", "sdp": huge}});
        assert!(parse(INVITE, &invite).is_err());
    }
}
