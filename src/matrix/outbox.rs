//! Call signalling on its way out, sent one message at a time so each peer receives them in
//! the order the core produced them: to-device messages (Olm-encrypted when the device has
//! published keys, since some clients drop plaintext signalling) and room events.

use std::collections::HashSet;
use std::time::Duration;

use matrix_sdk::Client;
use matrix_sdk::ruma::api::client::to_device::send_event_to_device;
use matrix_sdk::ruma::events::{AnyToDeviceEventContent, ToDeviceEventType};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::to_device::DeviceIdOrAllDevices;
use matrix_sdk::ruma::{OwnedDeviceId, OwnedUserId, TransactionId};
use matrix_sdk_base::crypto::CollectStrategy;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use roomd_core::MatrixCommand;

/// How long the last messages may take to go out at shutdown.
const DRAIN_LIMIT: Duration = Duration::from_secs(3);

pub struct Outbox {
    queue: mpsc::UnboundedSender<MatrixCommand>,
    task: JoinHandle<()>,
}

impl Outbox {
    pub fn start(client: Client) -> Outbox {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(client, rx));
        Outbox { queue, task }
    }

    /// Queues a [`MatrixCommand::SendToDevice`] or [`MatrixCommand::SendEvent`].
    pub fn send(&self, command: MatrixCommand) {
        let _ = self.queue.send(command);
    }

    /// Sends what is queued (for a bounded time), then stops.
    pub async fn drain(self) {
        drop(self.queue);
        let mut task = self.task;
        if tokio::time::timeout(DRAIN_LIMIT, &mut task).await.is_err() {
            log::warn!("call signalling still unsent at shutdown was dropped");
            task.abort();
        }
    }
}

async fn run(client: Client, mut rx: mpsc::UnboundedReceiver<MatrixCommand>) {
    // Devices whose keys we have asked the homeserver for once already.
    let mut queried: HashSet<(OwnedUserId, OwnedDeviceId)> = HashSet::new();
    while let Some(command) = rx.recv().await {
        match command {
            MatrixCommand::SendToDevice {
                user_id,
                device_id,
                event_type,
                content,
            } => {
                let device_id = OwnedDeviceId::from(device_id.as_str());
                let result = to_device(
                    &client,
                    &mut queried,
                    &user_id,
                    &device_id,
                    &event_type,
                    &content,
                )
                .await;
                match result {
                    Ok(how) => log::debug!("sent {event_type} to {user_id} {device_id} ({how})"),
                    Err(e) => log::warn!("could not send {event_type} to {user_id}: {e}"),
                }
            }
            MatrixCommand::SendEvent {
                room_id,
                event_type,
                content,
            } => {
                let Some(room) = client.get_room(&room_id) else {
                    log::warn!("could not send {event_type}: not in {room_id}");
                    continue;
                };
                match room.send_raw(&event_type, content).await {
                    Ok(_) => log::debug!("sent {event_type} to {room_id}"),
                    Err(e) => log::warn!("could not send {event_type} to {room_id}: {e}"),
                }
            }
            other => log::error!("the outbox cannot carry {other:?}"),
        }
    }
}

async fn to_device(
    client: &Client,
    queried: &mut HashSet<(OwnedUserId, OwnedDeviceId)>,
    user_id: &OwnedUserId,
    device_id: &OwnedDeviceId,
    event_type: &str,
    content: &Value,
) -> anyhow::Result<&'static str> {
    let raw: Raw<AnyToDeviceEventContent> = Raw::new(content)?.cast_unchecked();
    let encryption = client.encryption();
    let mut device = encryption.get_device(user_id, device_id).await?;
    if device.is_none() && queried.insert((user_id.clone(), device_id.clone())) {
        // Users we share no encrypted room with are not tracked: ask for their keys once.
        if let Err(e) = encryption.request_user_identity(user_id).await {
            log::debug!("cannot query {user_id}'s keys: {e}");
        }
        device = encryption.get_device(user_id, device_id).await?;
    }
    if let Some(device) = device {
        let failed = encryption
            .encrypt_and_send_raw_to_device(
                vec![&device],
                event_type,
                raw.clone(),
                CollectStrategy::AllDevices,
            )
            .await;
        match failed {
            Ok(failures) if failures.is_empty() => return Ok("encrypted"),
            Ok(_) => log::info!("cannot encrypt for {user_id} {device_id}; sending plaintext"),
            Err(e) => {
                log::info!("cannot encrypt for {user_id} {device_id} ({e}); sending plaintext")
            }
        }
    }
    let mut messages = std::collections::BTreeMap::new();
    messages.insert(
        user_id.clone(),
        std::collections::BTreeMap::from([(
            DeviceIdOrAllDevices::DeviceId(device_id.clone()),
            raw,
        )]),
    );
    let request = send_event_to_device::v3::Request::new_raw(
        ToDeviceEventType::from(event_type),
        TransactionId::new(),
        messages,
    );
    client.send(request).await?;
    Ok("plaintext")
}
