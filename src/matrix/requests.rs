//! The core's room commands, carried out with matrix-sdk: joins, state writes (delayed or not),
//! delayed-event updates, the homeserver's TURN servers and its RTC transports.

use std::time::Duration;

use matrix_sdk::ruma::api::FeatureFlag;
use matrix_sdk::ruma::api::client::account::request_openid_token;
use matrix_sdk::ruma::api::client::delayed_events::{
    DelayParameters, delayed_state_event, update_delayed_event,
};
use matrix_sdk::ruma::api::client::rtc::transports;
use matrix_sdk::ruma::api::client::state::send_state_event;
use matrix_sdk::ruma::api::client::voip::get_turn_server_info;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::api::error::FromHttpResponseError;
use matrix_sdk::ruma::events::StateEventType;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedRoomId, RoomOrAliasId};
use matrix_sdk::{Client, HttpError};
use serde_json::Value;

use crate::config::Secret;
use roomd_core::ice::TurnServers;
use roomd_core::rtc::OpenIdToken;
use roomd_core::{DelayedAction, FailureKind, MatrixFailure};

pub async fn join(client: &Client, room: &RoomOrAliasId) -> Result<OwnedRoomId, MatrixFailure> {
    client
        .join_room_by_id_or_alias(room, &[])
        .await
        .map(|r| r.room_id().to_owned())
        .map_err(|e| failure(&format!("joining {room}"), &e))
}

/// Writes a state event now, or schedules it `delay_ms` from now and returns its delay ID.
pub async fn send_state(
    client: &Client,
    room_id: OwnedRoomId,
    event_type: &str,
    state_key: &str,
    content: &Value,
    delay_ms: Option<u64>,
) -> Result<Option<String>, MatrixFailure> {
    let body =
        Raw::from_json(
            serde_json::value::to_raw_value(content).map_err(|e| MatrixFailure {
                kind: FailureKind::Other,
                message: format!("unserializable content: {e}"),
            })?,
        );
    let what = format!("writing {event_type} in {room_id}");
    match delay_ms {
        None => {
            let request = send_state_event::v3::Request::new_raw(
                room_id,
                StateEventType::from(event_type),
                state_key.to_owned(),
                body,
            );
            client
                .send(request)
                .await
                .map(|_| None)
                .map_err(|e| http_failure(&what, &e))
        }
        Some(ms) => {
            // A homeserver without MSC4140 would ignore the delay and write the event at once.
            if !supports_delayed_events(client).await {
                return Err(MatrixFailure {
                    kind: FailureKind::Unsupported,
                    message: "the homeserver does not advertise org.matrix.msc4140".to_owned(),
                });
            }
            let request = delayed_state_event::unstable::Request::new_raw(
                room_id,
                state_key.to_owned(),
                StateEventType::from(event_type),
                DelayParameters::Timeout {
                    timeout: Duration::from_millis(ms),
                },
                body.cast_unchecked(),
            );
            client
                .send(request)
                .await
                .map(|r| Some(r.delay_id))
                .map_err(|e| http_failure(&format!("scheduling {what}"), &e))
        }
    }
}

async fn supports_delayed_events(client: &Client) -> bool {
    match client.unstable_features().await {
        Ok(features) => features.contains(&FeatureFlag::Msc4140),
        Err(e) => {
            log::debug!("cannot read the homeserver's features: {e}");
            false
        }
    }
}

pub async fn update_delayed(
    client: &Client,
    delay_id: String,
    action: DelayedAction,
) -> Result<(), MatrixFailure> {
    let ruma_action = match action {
        DelayedAction::Restart => update_delayed_event::unstable::UpdateAction::Restart,
        DelayedAction::Send => update_delayed_event::unstable::UpdateAction::Send,
        DelayedAction::Cancel => update_delayed_event::unstable::UpdateAction::Cancel,
    };
    let what = format!("{action:?} of delayed event {delay_id}");
    client
        .send(update_delayed_event::unstable::Request::new(
            delay_id,
            ruma_action,
        ))
        .await
        .map(|_| ())
        .map_err(|e| http_failure(&what, &e))
}

/// The homeserver's TURN servers and their credentials. An answer without servers (Synapse's
/// `{}` when it has no TURN configured) is an empty `uris`, not a failure.
pub async fn turn_servers(client: &Client) -> Result<TurnServers, MatrixFailure> {
    match client.send(get_turn_server_info::v3::Request::new()).await {
        Ok(r) => {
            crate::logging::redact_rotating("TURN password", &r.password);
            Ok(TurnServers {
                uris: r.uris,
                username: r.username,
                password: Secret::new(r.password),
                ttl_s: r.ttl.as_secs(),
            })
        }
        Err(HttpError::Api(e)) if matches!(*e, FromHttpResponseError::Deserialization(_)) => {
            log::debug!("the homeserver's TURN answer holds no servers: {e}");
            Ok(TurnServers::none())
        }
        Err(e) => Err(http_failure("asking for the homeserver's TURN servers", &e)),
    }
}

/// The homeserver's RTC transports (MSC4143), as JSON objects for the core to read. An answer
/// without any (Synapse without `matrix_rtc` answers `{}`) is none, not a failure.
pub async fn rtc_transports(client: &Client) -> Result<Vec<Value>, MatrixFailure> {
    match client.send(transports::v1::Request::new()).await {
        Ok(response) => Ok(to_json(&response.rtc_transports)),
        Err(HttpError::Api(e)) if matches!(*e, FromHttpResponseError::Deserialization(_)) => {
            log::debug!("the homeserver's RTC transports answer lists none: {e}");
            Ok(Vec::new())
        }
        Err(e) => Err(http_failure(
            "asking for the homeserver's RTC transports",
            &e,
        )),
    }
}

/// `.well-known/matrix/client`'s `org.matrix.msc4143.rtc_foci`, as JSON objects; none when the
/// file or the key is missing.
pub async fn well_known_rtc_foci(client: &Client) -> Result<Vec<Value>, MatrixFailure> {
    let foci = client
        .rtc_foci()
        .await
        .map_err(|e| http_failure("reading .well-known's RTC foci", &e))?;
    Ok(to_json(&foci))
}

/// An OpenID token to prove who we are to a LiveKit token service. Never logged: it is
/// registered with the log scrubber as it arrives.
pub async fn openid_token(client: &Client) -> Result<OpenIdToken, MatrixFailure> {
    let user_id = client.user_id().ok_or_else(|| MatrixFailure {
        kind: FailureKind::Unauthorized,
        message: "not logged in".to_owned(),
    })?;
    let response = client
        .send(request_openid_token::v3::Request::new(user_id.to_owned()))
        .await
        .map_err(|e| http_failure("asking for an OpenID token", &e))?;
    crate::logging::redact_rotating("OpenID token", &response.access_token);
    Ok(OpenIdToken {
        access_token: Secret::new(response.access_token),
        matrix_server_name: response.matrix_server_name.to_string(),
        expires_in_s: response.expires_in.as_secs(),
    })
}

fn to_json<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect()
}

fn kind_of(kind: Option<&ErrorKind>, status: Option<u16>) -> FailureKind {
    match (kind, status) {
        (
            Some(
                ErrorKind::UnknownToken(_)
                | ErrorKind::MissingToken
                | ErrorKind::UserDeactivated
                | ErrorKind::UserLocked
                | ErrorKind::UserSuspended,
            ),
            _,
        ) => FailureKind::Unauthorized,
        (Some(ErrorKind::NotFound), _) | (None, Some(404)) => FailureKind::NotFound,
        (Some(ErrorKind::Unrecognized), _) => FailureKind::Unsupported,
        _ => FailureKind::Other,
    }
}

pub fn failure(what: &str, e: &matrix_sdk::Error) -> MatrixFailure {
    let status = match e {
        matrix_sdk::Error::Http(http) => http.as_client_api_error().map(|c| c.status_code.as_u16()),
        _ => None,
    };
    MatrixFailure {
        kind: kind_of(e.client_api_error_kind(), status),
        message: format!("{what}: {e}"),
    }
}

pub fn http_failure(what: &str, e: &matrix_sdk::HttpError) -> MatrixFailure {
    let status = e.as_client_api_error().map(|c| c.status_code.as_u16());
    MatrixFailure {
        kind: kind_of(e.client_api_error_kind(), status),
        message: format!("{what}: {e}"),
    }
}
