//! A Matrix user driven by the test through matrix-sdk: creates rooms, invites, writes call
//! memberships as other clients do, and reads the room's state back.

use std::time::{Duration, Instant};

use anyhow::Context;
use matrix_sdk::Client;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::api::client::state::{get_state_event_for_key, send_state_event};
use matrix_sdk::ruma::events::StateEventType;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedRoomId, RoomId, UserId};
use serde_json::{Value, json};

use crate::synapse::{SERVER_NAME, Synapse};

pub struct Visitor {
    pub client: Client,
    pub localpart: String,
    pub device_id: String,
}

impl Visitor {
    /// Registers `localpart` and logs in as device `device_id`.
    pub async fn new(synapse: &Synapse, localpart: &str, device_id: &str) -> anyhow::Result<Self> {
        let password = format!("{localpart}-password");
        synapse.register(localpart, &password).await?;
        let client = Client::builder()
            .homeserver_url(synapse.url())
            .build()
            .await?;
        client
            .matrix_auth()
            .login_username(localpart, &password)
            .device_id(device_id)
            .send()
            .await
            .with_context(|| format!("logging in as {localpart}"))?;
        Ok(Visitor {
            client,
            localpart: localpart.to_owned(),
            device_id: device_id.to_owned(),
        })
    }

    pub fn user_id(&self) -> String {
        format!("@{}:{SERVER_NAME}", self.localpart)
    }

    /// A room where everyone may write call state, as Element Call makes them, with `invite`
    /// invited.
    pub async fn create_call_room(
        &self,
        name: &str,
        invite: &[&str],
    ) -> anyhow::Result<OwnedRoomId> {
        self.create_call_room_with_alias(name, None, invite).await
    }

    /// As [`Visitor::create_call_room`], published as `#alias:server` too.
    pub async fn create_call_room_with_alias(
        &self,
        name: &str,
        alias: Option<&str>,
        invite: &[&str],
    ) -> anyhow::Result<OwnedRoomId> {
        let mut request = create_room::v3::Request::new();
        request.name = Some(name.to_owned());
        request.room_alias_name = alias.map(str::to_owned);
        request.invite = invite
            .iter()
            .map(|u| UserId::parse(*u))
            .collect::<Result<_, _>>()?;
        request.power_level_content_override = Some(
            Raw::new(&json!({
                "events": {
                    "org.matrix.msc3401.call.member": 0,
                    "org.matrix.msc3401.call": 0
                }
            }))?
            .cast_unchecked(),
        );
        let room = self.client.create_room(request).await?;
        Ok(room.room_id().to_owned())
    }

    pub async fn invite(&self, room_id: &RoomId, user: &str) -> anyhow::Result<()> {
        let room = self
            .client
            .get_room(room_id)
            .context("the visitor is not in that room")?;
        room.invite_user_by_id(&UserId::parse(user)?).await?;
        Ok(())
    }

    pub async fn set_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> anyhow::Result<()> {
        let request = send_state_event::v3::Request::new_raw(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            Raw::new(&content)?.cast_unchecked(),
        );
        self.client.send(request).await?;
        Ok(())
    }

    /// The current content of a state event, or `None` if there is none.
    pub async fn state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
    ) -> anyhow::Result<Option<Value>> {
        let request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(event_type),
            state_key.to_owned(),
        );
        match self.client.send(request).await {
            Ok(response) => Ok(Some(serde_json::from_str(response.event_or_content.get())?)),
            Err(e)
                if e.as_client_api_error()
                    .is_some_and(|c| c.status_code.as_u16() == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Polls a state event until `done` holds for it, for up to `limit`. Returns the time it
    /// took, or `None`.
    pub async fn wait_for_state(
        &self,
        room_id: &RoomId,
        event_type: &str,
        state_key: &str,
        limit: Duration,
        done: impl Fn(Option<&Value>) -> bool,
    ) -> anyhow::Result<Option<Duration>> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if done(self.state(room_id, event_type, state_key).await?.as_ref()) {
                return Ok(Some(start.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(None)
    }

    /// The membership Element Call writes when this visitor joins the room's call.
    pub fn element_call_membership(&self, room_id: &RoomId) -> (String, Value) {
        let key = format!("_{}_{}_m.call", self.user_id(), self.device_id);
        let content = json!({
            "application": "m.call",
            "call_id": "",
            "scope": "m.room",
            "device_id": self.device_id,
            "membershipID": format!("{}:{}", self.user_id(), self.device_id),
            "expires": 14_400_000,
            "m.call.intent": "video",
            "focus_active": {"type": "livekit", "focus_selection": "multi_sfu"},
            "foci_preferred": [{
                "type": "livekit",
                "livekit_service_url": "https://rtc.localhost/livekit/jwt",
                "livekit_alias": room_id.as_str()
            }]
        });
        (key, content)
    }

    /// Starts (or joins) an MSC3401 mesh group call the way matrix-js-sdk's GroupCall does.
    pub async fn join_mesh_call(
        &self,
        room_id: &RoomId,
        group_call_id: &str,
    ) -> anyhow::Result<()> {
        self.set_state(
            room_id,
            "org.matrix.msc3401.call",
            group_call_id,
            json!({"m.intent": "m.room", "m.type": "m.video", "io.element.ptt": false}),
        )
        .await?;
        let expires = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64
            + 3_600_000;
        self.set_state(
            room_id,
            "org.matrix.msc3401.call.member",
            &self.user_id(),
            json!({"m.calls": [{
                "m.call_id": group_call_id,
                "m.foci": [],
                "m.devices": [{
                    "device_id": self.device_id,
                    "session_id": format!("{}-session", self.device_id),
                    "expires_ts": expires,
                    "feeds": [{"purpose": "m.usermedia"}]
                }]
            }]}),
        )
        .await
    }

    /// Joins the room's call the way matrix-js-sdk 43 does in Matrix 2.0 mode: a sticky
    /// `org.matrix.msc4143.rtc.member` event (MSC4354).
    pub fn join_call_sticky(
        &self,
        synapse: &Synapse,
        room_id: &RoomId,
        sticky_ms: u64,
    ) -> anyhow::Result<()> {
        let token = self.client.access_token().context("not logged in")?;
        let content = json!({
            "slot_id": "m.call#ROOM",
            "application": {"type": "m.call", "m.call.intent": "video"},
            "transports": {"published": [{"type": "livekit", "livekit_service_url": "https://rtc.localhost"}],
                           "can_subscribe": ["livekit"]},
            "member": {"user_id": self.user_id(), "device_id": self.device_id, "id": "member-1"},
            "versions": [],
            "msc4354_sticky_key": "sticky-1"
        });
        let txn = format!("sticky{}", std::process::id());
        let path = format!(
            "/_matrix/client/v3/rooms/{room_id}/send/org.matrix.msc4143.rtc.member/{txn}\
             ?org.matrix.msc4354.sticky_duration_ms={sticky_ms}"
        );
        let (status, body) = synapse.request("PUT", &path, &token, &content.to_string())?;
        anyhow::ensure!(
            status == 200,
            "sending a sticky rtc member: {status} {body}"
        );
        Ok(())
    }

    pub async fn kick(&self, room_id: &RoomId, user: &str) -> anyhow::Result<()> {
        let room = self.client.get_room(room_id).context("not in that room")?;
        room.kick_user(&UserId::parse(user)?, Some("test kick"))
            .await?;
        Ok(())
    }

    /// Whether `user` is joined to the room, as the room's state says.
    pub async fn is_joined(&self, room_id: &RoomId, user: &str) -> anyhow::Result<bool> {
        Ok(self
            .state(room_id, "m.room.member", user)
            .await?
            .is_some_and(|c| c["membership"] == "join"))
    }
}
