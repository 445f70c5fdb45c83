//! Call signalling to a device that has published E2EE keys goes Olm-encrypted, and encrypted
//! signalling to roomd is taken: a matrix-sdk client with its own device keys joins a mesh call
//! with roomd on a real Synapse, decrypts roomd's invite, and hangs up on it encrypted.

use std::time::{Duration, Instant};

use matrix_sdk::config::SyncSettings;
use matrix_sdk::deserialized_responses::ProcessedToDeviceEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedDeviceId, UserId};
use matrix_sdk_base::crypto::CollectStrategy;
use roomd_testbed::{Roomd, RoomdConfig, Synapse, Visitor};
use serde_json::{Value, json};

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const PASSWORD: &str = "room-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_is_olm_encrypted_both_ways_when_the_peer_has_keys() {
    let synapse = Synapse::start().unwrap();
    synapse.register("room", PASSWORD).await.unwrap();
    // Zed sorts after the room's account, so roomd places the call to Zed.
    let zed = Visitor::new(&synapse, "zed", "ZEDDEV").await.unwrap();
    let settings = SyncSettings::default().timeout(Duration::from_secs(1));
    zed.client.sync_once(settings.clone()).await.unwrap();
    assert_eq!(
        synapse.devices_with_keys("@zed:localhost").unwrap(),
        vec!["ZEDDEV"],
        "Zed's device published its keys"
    );
    let mut config = RoomdConfig::new(&synapse, "room", PASSWORD);
    let room_id = zed
        .create_call_room("Meeting", &[&config.user_id()])
        .await
        .unwrap();
    config.rooms = vec![room_id.to_string()];
    let dir = tempfile::tempdir().unwrap();
    let mut roomd = Roomd::spawn(ROOMD.as_ref(), &config, dir.path(), &["-v"], &[]).unwrap();
    assert!(roomd.wait_for_notification("STATUS=in service", Duration::from_secs(60)));
    let start = Instant::now();
    while !roomd
        .status()
        .is_ok_and(|s| s["rooms"][0]["joined"] == true)
    {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", roomd.log());
        std::thread::sleep(Duration::from_millis(100));
    }

    zed.join_mesh_call(&room_id, "g1").await.unwrap();
    let mut invite: Option<Value> = None;
    let start = Instant::now();
    while invite.is_none() && start.elapsed() < Duration::from_secs(30) {
        let response = zed.client.sync_once(settings.clone()).await.unwrap();
        for event in &response.to_device {
            let (raw, encrypted) = match event {
                ProcessedToDeviceEvent::Decrypted { raw, .. } => (raw, true),
                ProcessedToDeviceEvent::PlainText(raw) => (raw, false),
                _ => continue,
            };
            let event: Value = raw.deserialize_as_unchecked().unwrap();
            if event["type"] == "m.call.invite" {
                assert!(encrypted, "the invite came in plaintext: {event}");
                invite = Some(event);
            }
        }
    }
    let invite = invite.unwrap_or_else(|| panic!("no invite from roomd:\n{}", roomd.log()));
    let content = &invite["content"];
    assert_eq!(invite["sender"], config.user_id());
    assert_eq!(content["conf_id"], "g1");
    assert_eq!(content["dest_session_id"], "ZEDDEV-session");
    assert!(
        content["offer"]["sdp"]
            .as_str()
            .unwrap()
            .contains("m=video")
    );
    roomd_conformance::validate_call_event("m.call.invite", content).unwrap();

    // Zed declines, encrypted: roomd takes it and ends the call.
    let room_user = UserId::parse(config.user_id()).unwrap();
    let encryption = zed.client.encryption();
    encryption.request_user_identity(&room_user).await.unwrap();
    let device_id = OwnedDeviceId::from(config.device_id.as_str());
    let device = encryption
        .get_device(&room_user, &device_id)
        .await
        .unwrap()
        .expect("roomd's device keys are published");
    let hangup = json!({
        "call_id": content["call_id"], "party_id": "ZEDDEV", "version": "1",
        "reason": "user_hangup", "conf_id": "g1", "device_id": "ZEDDEV",
        "sender_session_id": "ZEDDEV-session", "dest_session_id": content["sender_session_id"],
        "seq": 0,
    });
    let failures = encryption
        .encrypt_and_send_raw_to_device(
            vec![&device],
            "m.call.hangup",
            Raw::new(&hangup).unwrap().cast_unchecked(),
            CollectStrategy::AllDevices,
        )
        .await
        .unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    let start = Instant::now();
    while !roomd.log().contains("hung up by them") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "roomd did not take the encrypted hangup:\n{}",
            roomd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(roomd.log().contains("encrypted"), "{}", roomd.log());
}
