//! Turns a matrix-sdk sync response into the core's inputs: state events, the timeline events
//! the core wants, and invites. Only shapes are checked here; meaning is the core's business.

use matrix_sdk::deserialized_responses::TimelineEvent as SdkTimelineEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedUserId, RoomId, UserId};
use matrix_sdk::sync::{State, SyncResponse};
use serde::Deserialize;
use serde_json::Value;

use matrix_sdk::deserialized_responses::ProcessedToDeviceEvent;

use roomd_core::events::{ROOM_MEMBER, TIMELINE_TYPES};
use roomd_core::voip;
use roomd_core::{Input, Invite, StateEvent, TimelineEvent};

/// The fields every event the core reads has.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    state_key: Option<String>,
    sender: OwnedUserId,
    origin_server_ts: u64,
    #[serde(default)]
    content: Value,
    msc4354_sticky: Option<Sticky>,
}

#[derive(Deserialize)]
struct Sticky {
    duration_ms: u64,
}

fn envelope<T>(raw: &Raw<T>) -> Option<Envelope> {
    match raw.deserialize_as_unchecked::<Envelope>() {
        Ok(e) => Some(e),
        Err(e) => {
            log::debug!("skipping an event without the usual fields: {e}");
            None
        }
    }
}

fn state_input(room_id: &RoomId, e: Envelope) -> Option<Input> {
    Some(Input::State(StateEvent {
        room_id: room_id.to_owned(),
        event_type: e.event_type,
        state_key: e.state_key?,
        sender: e.sender,
        origin_server_ts: e.origin_server_ts,
        content: e.content,
    }))
}

fn timeline_input(room_id: &RoomId, e: Envelope) -> Option<Input> {
    let wanted = |t: &str| TIMELINE_TYPES.contains(&t) || voip::TYPES.contains(&t);
    if !wanted(&e.event_type) {
        return None;
    }
    Some(Input::Timeline(TimelineEvent {
        room_id: room_id.to_owned(),
        event_type: e.event_type,
        sender: e.sender,
        origin_server_ts: e.origin_server_ts,
        content: e.content,
        sticky_duration_ms: e.msc4354_sticky.map(|s| s.duration_ms),
    }))
}

/// One room's state and timeline, in the order the core must see them.
fn room_inputs(room_id: &RoomId, state: &State, timeline: &[SdkTimelineEvent]) -> Vec<Input> {
    let mut inputs = Vec::new();
    let (state_events, timeline_state_counts) = match state {
        State::Before(events) => (events, true),
        State::After(events) => (events, false),
    };
    if timeline_state_counts {
        inputs.extend(
            state_events
                .iter()
                .filter_map(envelope)
                .filter_map(|e| state_input(room_id, e)),
        );
    }
    for event in timeline {
        let Some(e) = envelope(event.raw()) else {
            continue;
        };
        let input = if e.state_key.is_some() {
            timeline_state_counts
                .then(|| state_input(room_id, e))
                .flatten()
        } else {
            timeline_input(room_id, e)
        };
        inputs.extend(input);
    }
    if !timeline_state_counts {
        // `state_after`: the state at the end of the timeline, which replaces the timeline's.
        inputs.extend(
            state_events
                .iter()
                .filter_map(envelope)
                .filter_map(|e| state_input(room_id, e)),
        );
    }
    inputs
}

pub fn inputs(response: &SyncResponse, own_user: &UserId) -> Vec<Input> {
    let mut inputs = Vec::new();
    for (room_id, room) in &response.rooms.joined {
        inputs.extend(room_inputs(room_id, &room.state, &room.timeline.events));
    }
    for (room_id, room) in &response.rooms.left {
        inputs.extend(room_inputs(room_id, &room.state, &room.timeline.events));
    }
    inputs.extend(response.to_device.iter().filter_map(to_device_input));
    for (room_id, room) in &response.rooms.invited {
        inputs.push(Input::Invite(Invite {
            room_id: room_id.clone(),
            inviter: inviter(&room.invite_state.events, own_user),
        }));
    }
    inputs
}

/// A call-signalling to-device message, decrypted or plaintext; others are not the core's.
fn to_device_input(event: &ProcessedToDeviceEvent) -> Option<Input> {
    #[derive(Deserialize)]
    struct ToDevice {
        #[serde(rename = "type")]
        event_type: String,
        sender: OwnedUserId,
        #[serde(default)]
        content: Value,
    }
    let raw = match event {
        ProcessedToDeviceEvent::Decrypted { raw, .. } | ProcessedToDeviceEvent::PlainText(raw) => {
            raw
        }
        ProcessedToDeviceEvent::UnableToDecrypt { .. } => {
            log::warn!("a to-device message could not be decrypted");
            return None;
        }
        ProcessedToDeviceEvent::Invalid(_) => return None,
    };
    let e = raw.deserialize_as_unchecked::<ToDevice>().ok()?;
    if !voip::TYPES.contains(&e.event_type.as_str()) {
        return None;
    }
    Some(Input::ToDevice {
        sender: e.sender,
        event_type: e.event_type,
        content: e.content,
    })
}

/// Who sent our invite, from the invite's stripped state.
fn inviter<T>(events: &[Raw<T>], own_user: &UserId) -> Option<OwnedUserId> {
    #[derive(Deserialize)]
    struct Stripped {
        #[serde(rename = "type")]
        event_type: String,
        state_key: String,
        sender: OwnedUserId,
    }
    events
        .iter()
        .filter_map(|raw| raw.deserialize_as_unchecked::<Stripped>().ok())
        .find(|e| e.event_type == ROOM_MEMBER && e.state_key == own_user.as_str())
        .map(|e| e.sender)
}
