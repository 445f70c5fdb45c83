//! Peer calls on a fake clock: mesh signalling with matrix-js-sdk's rules, reordering and its
//! bounds, glare, 1:1 admission, mute metadata. Every `m.call.*` content the core sends is
//! checked against the Matrix spec's schemas.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::media::{Candidate, ConnectionState, MediaCommand, MediaEvent, PeerId, SdpKind};
use crate::voip;

const ALICE: &str = "@alice:localhost";
/// Sorts after the device's own user ID, so the device places the call (GroupCall's rule).
const ZED: &str = "@zed:localhost";
const OFFER: &str =
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

/// Signalling the core sent, checked against the spec's schemas on the way.
#[derive(Debug, Clone)]
struct Sent {
    to: String,
    event_type: String,
    content: Value,
}

fn sent(out: &[Output]) -> Vec<Sent> {
    let sent: Vec<Sent> = out
        .iter()
        .filter_map(|o| match o {
            Output::Matrix(MatrixCommand::SendToDevice {
                user_id,
                device_id,
                event_type,
                content,
            }) => Some(Sent {
                to: format!("{user_id} {device_id}"),
                event_type: event_type.clone(),
                content: content.clone(),
            }),
            Output::Matrix(MatrixCommand::SendEvent {
                room_id,
                event_type,
                content,
            }) => Some(Sent {
                to: room_id.to_string(),
                event_type: event_type.clone(),
                content: content.clone(),
            }),
            _ => None,
        })
        .collect();
    for s in &sent {
        if let Err(errors) = roomd_conformance::validate_call_event(&s.event_type, &s.content) {
            panic!(
                "{} does not meet the spec: {errors:?}\n{}",
                s.event_type, s.content
            );
        }
    }
    sent
}

fn media(out: &[Output]) -> Vec<MediaCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn added_peer(out: &[Output]) -> PeerId {
    media(out)
        .into_iter()
        .find_map(|m| match m {
            MediaCommand::AddPeer { peer, .. } => Some(peer),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no peer added: {out:?}"))
}

fn removed(out: &[Output]) -> bool {
    media(out)
        .iter()
        .any(|m| matches!(m, MediaCommand::RemovePeer { .. }))
}

/// Group-call signalling from `user`'s `device` in mesh call g1, to our session.
fn signal(call_id: &str, device: &str, seq: u64, body: Value) -> Value {
    let mut content = json!({
        "call_id": call_id, "party_id": device, "version": "1",
        "conf_id": "g1", "device_id": device,
        "sender_session_id": "s", "dest_session_id": "session-1", "seq": seq,
    });
    content
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    content
}

fn invite_body() -> Value {
    json!({"lifetime": 60000, "offer": {"type": "offer", "sdp": OFFER},
           "sdp_stream_metadata": {"alice-stream": {"purpose": "m.usermedia"}}})
}

fn candidates_body(n: usize) -> Value {
    let candidates: Vec<Value> = (0..n)
        .map(|i| json!({"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 {} typ host", 5000 + i), "sdpMLineIndex": 0, "sdpMid": "0"}))
        .collect();
    json!({ "candidates": candidates })
}

impl Harness {
    fn send_to_device(&mut self, sender: &str, event_type: &str, content: Value) -> Vec<Output> {
        self.feed_synced(Input::ToDevice {
            sender: sender.try_into().unwrap(),
            event_type: event_type.to_owned(),
            content,
        })
    }

    fn media_event(&mut self, event: MediaEvent) -> Vec<Output> {
        self.feed(Input::Media(event))
    }

    /// In mesh call g1 with `user`'s `device`, our membership published and seen. Returns
    /// what the core did besides talking to the homeserver.
    fn in_mesh_with(user: &str, device: &str) -> (Harness, Vec<Output>) {
        let mut h = Harness::in_service(JoinPolicy::Auto, &[user]);
        let out = h.mesh_call_with("g1", user, device);
        h.homeserver_accepts(out);
        let mut all = std::mem::take(&mut h.stray);
        all.extend(h.feed(Input::Tick));
        (h, all)
    }
}

#[test]
fn a_caller_in_the_mesh_is_answered_with_candidates_in_order() {
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    // Alice sorts before us: she calls, we wait.
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    let peer = added_peer(&out);
    assert!(matches!(
        &media(&out)[0],
        MediaCommand::AddPeer { remote_offer: Some(o), stream_id, .. } if o == OFFER && stream_id == "roomd-session-1"
    ));
    // Her candidates go straight to the media engine.
    let out = h.send_to_device(
        ALICE,
        voip::CANDIDATES,
        signal("c1", "ALICEDEV", 1, candidates_body(2)),
    );
    assert_eq!(
        media(&out)
            .iter()
            .filter(|m| matches!(m, MediaCommand::RemoteCandidate { .. }))
            .count(),
        2
    );
    // Our answer, then our candidates batched behind it.
    let out = h.media_event(MediaEvent::LocalDescription {
        peer: peer.clone(),
        kind: SdpKind::Answer,
        sdp: "v=0\r\nanswer".into(),
    });
    let answer = sent(&out);
    assert_eq!(answer.len(), 1, "{out:?}");
    assert_eq!(answer[0].event_type, voip::ANSWER);
    assert_eq!(answer[0].to, format!("{ALICE} ALICEDEV"));
    let c = &answer[0].content;
    assert_eq!(
        (
            &c["call_id"],
            &c["party_id"],
            &c["conf_id"],
            &c["device_id"],
            &c["seq"]
        ),
        (
            &json!("c1"),
            &json!(MY_DEVICE),
            &json!("g1"),
            &json!(MY_DEVICE),
            &json!(0)
        )
    );
    assert_eq!(
        (&c["sender_session_id"], &c["dest_session_id"]),
        (&json!("session-1"), &json!("s"))
    );
    assert_eq!(
        c["sdp_stream_metadata"]["roomd-session-1"]["purpose"],
        "m.usermedia"
    );
    for i in 0..3 {
        h.media_event(MediaEvent::LocalCandidate {
            peer: peer.clone(),
            candidate: Candidate {
                candidate: format!("candidate:{i}"),
                sdp_m_line_index: 0,
                sdp_mid: Some("0".into()),
            },
        });
    }
    let out = h.advance(Duration::from_millis(100));
    let batch = sent(&out);
    assert_eq!(batch.len(), 1, "one batch: {out:?}");
    assert_eq!(batch[0].event_type, voip::CANDIDATES);
    assert_eq!(batch[0].content["seq"], 1);
    assert_eq!(batch[0].content["candidates"].as_array().unwrap().len(), 3);

    // Connected; then she leaves the call: the peer goes, and she is told.
    h.media_event(MediaEvent::ConnectionState {
        peer: peer.clone(),
        state: ConnectionState::Connected,
    });
    assert_eq!(h.core.status(h.now).peer_calls.len(), 1);
    let out = h.state(CALL_MEMBER, ALICE, ALICE, json!({}));
    assert!(removed(&out), "{out:?}");
    let bye = sent(&out);
    assert!(bye.iter().any(|s| s.event_type == voip::HANGUP), "{bye:?}");
    assert!(h.core.status(h.now).peer_calls.is_empty());
}

#[test]
fn signalling_out_of_order_is_put_back_in_order_and_duplicates_dropped() {
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    let out = h.send_to_device(
        ALICE,
        voip::CANDIDATES,
        signal("c1", "ALICEDEV", 2, candidates_body(1)),
    );
    assert!(media(&out).is_empty(), "held: {out:?}");
    let out = h.send_to_device(
        ALICE,
        voip::CANDIDATES,
        signal("c1", "ALICEDEV", 1, candidates_body(1)),
    );
    assert!(media(&out).is_empty(), "held: {out:?}");
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    let m = media(&out);
    assert!(matches!(m[0], MediaCommand::AddPeer { .. }), "{m:?}");
    assert_eq!(
        m.iter()
            .filter(|c| matches!(c, MediaCommand::RemoteCandidate { .. }))
            .count(),
        2,
        "the held candidates follow the invite: {m:?}"
    );
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    assert!(media(&out).is_empty() && sent(&out).is_empty());
}

#[test]
fn a_sender_that_jumps_ahead_is_hung_up_on_and_a_gap_is_not_waited_for_forever() {
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    let peer = added_peer(&out);
    h.media_event(MediaEvent::LocalDescription {
        peer,
        kind: SdpKind::Answer,
        sdp: "v=0\r\n".into(),
    });
    let out = h.send_to_device(
        ALICE,
        voip::CANDIDATES,
        signal("c1", "ALICEDEV", 1_000_000_000_000, candidates_body(1)),
    );
    assert!(removed(&out), "{out:?}");
    let hangup = sent(&out);
    assert_eq!(hangup[0].event_type, voip::HANGUP);
    assert_eq!(hangup[0].content["reason"], "unknown_error");

    // A new call that leaves seq 1 missing: what waits behind the gap is dropped after the
    // timeout, and the call goes on.
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c2", "ALICEDEV", 0, invite_body()),
    );
    let peer = added_peer(&out);
    h.media_event(MediaEvent::LocalDescription {
        peer,
        kind: SdpKind::Answer,
        sdp: "v=0\r\n".into(),
    });
    h.send_to_device(
        ALICE,
        voip::CANDIDATES,
        signal("c2", "ALICEDEV", 5, candidates_body(1)),
    );
    let out = h.advance(Duration::from_secs(11));
    assert!(!removed(&out) && media(&out).is_empty(), "{out:?}");
    assert_eq!(h.core.status(h.now).peer_calls.len(), 1);
    assert!(h.core.next_wakeup(h.now).is_none_or(|w| w > h.now.mono));
    let out = h.send_to_device(
        ALICE,
        voip::CANDIDATES,
        signal("c2", "ALICEDEV", 1, candidates_body(1)),
    );
    assert_eq!(
        media(&out).len(),
        1,
        "the call still takes its signalling: {out:?}"
    );
}

#[test]
fn strangers_other_sessions_and_garbage_are_dropped() {
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    let mut wrong_session = signal("c1", "ALICEDEV", 0, invite_body());
    wrong_session["dest_session_id"] = json!("someone-else");
    let mut not_a_member = signal("c1", "MALLORYDEV", 0, invite_body());
    not_a_member["device_id"] = json!("MALLORYDEV");
    let mut garbage_sdp = signal("c1", "ALICEDEV", 0, invite_body());
    garbage_sdp["offer"] = json!({"type": "offer", "sdp": 42});
    let cases = [
        (ALICE, voip::INVITE, wrong_session),
        ("@mallory:localhost", voip::INVITE, not_a_member),
        (ALICE, voip::INVITE, garbage_sdp),
        (ALICE, voip::INVITE, json!("not an object")),
        (
            ALICE,
            voip::ANSWER,
            signal("nope", "ALICEDEV", 0, json!({})),
        ),
        (ALICE, "m.call.invite", json!({"call_id": "c1"})),
    ];
    for (sender, kind, content) in cases {
        let out = h.send_to_device(sender, kind, content.clone());
        assert!(
            media(&out).is_empty() && sent(&out).is_empty(),
            "{content}: {out:?}"
        );
    }
    // The real call still goes through afterwards.
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    added_peer(&out);
}

#[test]
fn the_device_calls_those_who_sort_after_it_and_retries_an_unanswered_invite() {
    let (mut h, out) = Harness::in_mesh_with(ZED, "ZEDDEV");
    let peer = added_peer(&out);
    assert!(matches!(
        media(&out)
            .iter()
            .find(|m| matches!(m, MediaCommand::AddPeer { .. })),
        Some(MediaCommand::AddPeer {
            remote_offer: None,
            ..
        })
    ));
    let out = h.media_event(MediaEvent::LocalDescription {
        peer: peer.clone(),
        kind: SdpKind::Offer,
        sdp: OFFER.into(),
    });
    let invite = sent(&out);
    assert_eq!(invite[0].event_type, voip::INVITE);
    assert_eq!(invite[0].to, format!("{ZED} ZEDDEV"));
    assert_eq!(invite[0].content["invitee"], ZED);
    assert_eq!(invite[0].content["lifetime"], 60000);
    let call_id = invite[0].content["call_id"].as_str().unwrap().to_owned();

    // No answer within the invite's lifetime: hang up, then call again a little later.
    let out = h.advance(Duration::from_secs(61));
    assert!(removed(&out));
    assert!(
        sent(&out)
            .iter()
            .any(|s| s.event_type == voip::HANGUP && s.content["reason"] == "invite_timeout")
    );
    let out = h.advance(Duration::from_secs(5));
    let again = added_peer(&out);
    assert_ne!(again, peer);

    // Zed answers the new call: select_answer goes back, the answer to the media engine.
    let out = h.media_event(MediaEvent::LocalDescription {
        peer: again.clone(),
        kind: SdpKind::Offer,
        sdp: OFFER.into(),
    });
    let new_call = sent(&out)[0].content["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_call, call_id);
    let mut answer = signal(
        &new_call,
        "ZEDDEV",
        0,
        json!({"answer": {"type": "answer", "sdp": "v=0\r\nm=audio 9 X 111\r\n"}}),
    );
    answer["dest_session_id"] = json!("session-1");
    let out = h.send_to_device(ZED, voip::ANSWER, answer);
    let s = sent(&out);
    assert_eq!(s[0].event_type, voip::SELECT_ANSWER);
    assert_eq!(s[0].content["selected_party_id"], "ZEDDEV");
    assert!(media(&out).iter().any(
        |m| matches!(m, MediaCommand::RemoteDescription { kind: SdpKind::Answer, sdp, .. } if sdp == "v=0\r\nm=audio 9 X 111\r\n")
    ));
}

#[test]
fn glare_keeps_the_call_with_the_lower_call_id() {
    let (mut h, out) = Harness::in_mesh_with(ZED, "ZEDDEV");
    let peer = added_peer(&out);
    let out = h.media_event(MediaEvent::LocalDescription {
        peer: peer.clone(),
        kind: SdpKind::Offer,
        sdp: OFFER.into(),
    });
    let ours = sent(&out)[0].content["call_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Zed calls at the same moment with a higher call ID: ours stands, theirs is refused.
    let higher = format!("{ours}z");
    let out = h.send_to_device(
        ZED,
        voip::INVITE,
        signal(&higher, "ZEDDEV", 0, invite_body()),
    );
    assert!(!removed(&out));
    assert!(
        sent(&out)
            .iter()
            .any(|s| s.event_type == voip::HANGUP && s.content["call_id"] == higher.as_str())
    );
    // With a lower one, theirs wins and ours is hung up.
    let out = h.send_to_device(ZED, voip::INVITE, signal("0", "ZEDDEV", 0, invite_body()));
    assert!(removed(&out), "{out:?}");
    assert!(media(&out).iter().any(|m| matches!(
        m,
        MediaCommand::AddPeer {
            remote_offer: Some(_),
            ..
        }
    )));
}

#[test]
fn mute_goes_to_the_media_engine_and_its_confirmation_to_every_peer() {
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    let peer = added_peer(&out);
    h.media_event(MediaEvent::LocalDescription {
        peer,
        kind: SdpKind::Answer,
        sdp: "v=0\r\n".into(),
    });
    let out = h.feed(Input::Ctl {
        id: 1,
        request: CtlRequest::Mute,
    });
    assert!(media(&out).contains(&MediaCommand::SetMicMuted(true)));
    assert!(sent(&out).is_empty(), "not before the engine confirms");
    let out = h.media_event(MediaEvent::MicMuted(true));
    let s = sent(&out);
    assert_eq!(s[0].event_type, voip::METADATA_CHANGED);
    assert_eq!(
        s[0].content["sdp_stream_metadata"]["roomd-session-1"]["audio_muted"],
        true
    );
    assert!(h.core.status(h.now).mic_muted);
}

fn room_invite(h: &mut Harness, sender: &str, call_id: &str) -> Vec<Output> {
    h.timeline(
        voip::INVITE,
        sender,
        json!({"call_id": call_id, "party_id": "PHONE", "version": "1", "lifetime": 60000,
               "offer": {"type": "offer", "sdp": OFFER}}),
    )
}

#[test]
fn direct_calls_are_answered_from_allowed_members_and_refused_when_busy() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE, "@eve:elsewhere.example"]);
    let out = room_invite(&mut h, ALICE, "d1");
    let peer = added_peer(&out);
    let out = h.media_event(MediaEvent::LocalDescription {
        peer,
        kind: SdpKind::Answer,
        sdp: "v=0\r\n".into(),
    });
    let answer = sent(&out);
    assert_eq!(answer[0].event_type, voip::ANSWER);
    assert_eq!(answer[0].to, ROOM);
    assert!(answer[0].content.get("conf_id").is_none());

    // Busy with Alice: a second caller is refused with user_busy.
    let out = room_invite(&mut h, "@eve:elsewhere.example", "d2");
    let refused = sent(&out);
    assert_eq!(refused[0].content["reason"], "user_busy");
    assert!(media(&out).is_empty());

    // Hang-up from the control socket ends the 1:1 call.
    let out = h.feed(Input::Ctl {
        id: 2,
        request: CtlRequest::Hangup { room: None },
    });
    assert!(removed(&out));
    assert!(sent(&out).iter().any(|s| s.event_type == voip::HANGUP));

    // Not allowed by calls.direct_call_from.
    let out = room_invite(&mut h, "@eve:elsewhere.example", "d3");
    assert!(media(&out).is_empty());
    assert_eq!(sent(&out)[0].event_type, voip::HANGUP);
}

const FOCUS: &str = "@conf:localhost";

#[test]
fn a_conference_focus_in_the_room_is_called_and_left_when_it_goes() {
    let mut s = settings(JoinPolicy::Auto, None);
    s.rooms.conference_focus = Some(FOCUS.try_into().unwrap());
    let (mut h, _) = Harness::new(s);
    h.feed(Input::LoggedIn(Ok(())));
    h.member(ME, "join");
    h.feed(Input::Synced(Ok(())));
    // The focus joins: the device calls it in the room, as a 1:1 call.
    let out = h.member(FOCUS, "join");
    let peer = added_peer(&out);
    let out = h.media_event(MediaEvent::LocalDescription {
        peer: peer.clone(),
        kind: SdpKind::Offer,
        sdp: OFFER.into(),
    });
    let invite = sent(&out);
    assert_eq!(invite[0].event_type, voip::INVITE);
    assert_eq!(invite[0].to, ROOM);
    assert_eq!(invite[0].content["invitee"], FOCUS);
    assert_eq!(h.seat(), status::SeatState::InCall);
    let ours = invite[0].content["call_id"].as_str().unwrap().to_owned();

    // It calls at the same moment with a lower call ID: its call wins, ours is dropped.
    let out = room_invite(&mut h, FOCUS, "0");
    assert!(removed(&out), "{out:?}");
    assert!(
        sent(&out)
            .iter()
            .any(|s| s.event_type == voip::HANGUP && s.content["call_id"] == ours.as_str())
    );
    let theirs = added_peer(&out);
    assert_ne!(theirs, peer);
    assert_eq!(h.core.status(h.now).peer_calls.len(), 1);

    // The focus leaves the room: the conference is over.
    let out = h.member(FOCUS, "leave");
    assert!(removed(&out), "{out:?}");
    assert!(h.core.status(h.now).peer_calls.is_empty());
    assert_eq!(h.seat(), status::SeatState::Idle);
}

#[test]
fn stray_signalling_for_calls_we_never_had_does_not_lock_out_new_calls() {
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    for i in 0..200 {
        h.send_to_device(
            ALICE,
            voip::HANGUP,
            signal(
                &format!("nope{i}"),
                "ALICEDEV",
                0,
                json!({"reason": "user_hangup"}),
            ),
        );
        h.send_to_device(
            ALICE,
            voip::CANDIDATES,
            signal(&format!("gap{i}"), "ALICEDEV", 3, candidates_body(1)),
        );
    }
    h.advance(Duration::from_secs(600));
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    added_peer(&out);
}

#[test]
fn one_members_flood_of_gapped_signalling_does_not_hold_off_anothers_call() {
    const MALLORY: &str = "@mallory:localhost";
    let (mut h, _) = Harness::in_mesh_with(ALICE, "ALICEDEV");
    h.member(MALLORY, "join");
    h.mesh_member(MALLORY, "g1", "MALLORYDEV", Duration::from_secs(3600));
    // Mallory opens 200 gaps at once (seq 3 with 0..2 missing), each held for its gap timeout.
    for i in 0..200 {
        h.send_to_device(
            MALLORY,
            voip::CANDIDATES,
            signal(&format!("gap{i}"), "MALLORYDEV", 3, candidates_body(1)),
        );
    }
    // Alice calls right away and is answered.
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    added_peer(&out);
}

#[test]
fn a_flood_from_a_non_member_does_not_crowd_out_an_invite_that_overtook_its_membership() {
    const MALLORY: &str = "@mallory:localhost";
    let (mut h, _) = Harness::in_mesh_with(ZED, "ZEDDEV");
    h.member(MALLORY, "join");
    h.member(ALICE, "join");
    // Mallory never joins the call but keeps signalling our session.
    for i in 0..100 {
        h.send_to_device(
            MALLORY,
            voip::INVITE,
            signal(&format!("m{i}"), "MALLORYDEV", 0, invite_body()),
        );
    }
    // Alice's invite overtakes her membership, and is answered when it comes.
    h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    let out = h.mesh_member(ALICE, "g1", "ALICEDEV", Duration::from_secs(3600));
    let all: Vec<Output> = out.into_iter().chain(h.stray.drain(..)).collect();
    added_peer(&all);
}

#[test]
fn an_invite_that_overtakes_the_callers_membership_is_answered_when_it_arrives() {
    // We are in call g1 with Zed; Alice enters and calls at once, and her to-device invite
    // comes a sync before her membership.
    let (mut h, _) = Harness::in_mesh_with(ZED, "ZEDDEV");
    h.member(ALICE, "join");
    let out = h.send_to_device(
        ALICE,
        voip::INVITE,
        signal("c1", "ALICEDEV", 0, invite_body()),
    );
    assert!(media(&out).is_empty(), "not yet: {out:?}");
    let out = h.mesh_member(ALICE, "g1", "ALICEDEV", Duration::from_secs(3600));
    let all: Vec<Output> = out.into_iter().chain(h.stray.drain(..)).collect();
    added_peer(&all);

    // One whose membership never comes is dropped after a while, not held forever.
    let mut mallory = signal("c2", "MALLORYDEV", 0, invite_body());
    mallory["device_id"] = json!("MALLORYDEV");
    h.member("@mallory:localhost", "join");
    h.send_to_device("@mallory:localhost", voip::INVITE, mallory);
    h.advance(Duration::from_secs(11));
    let out = h.mesh_member(
        "@mallory:localhost",
        "g1",
        "MALLORYDEV",
        Duration::from_secs(3600),
    );
    assert!(
        !media(&out).iter().any(|m| matches!(
            m,
            MediaCommand::AddPeer {
                remote_offer: Some(_),
                ..
            }
        )),
        "{out:?}"
    );
}
