//! The daemon sleeps until `next_wakeup` and then ticks. A wakeup that is still due after the
//! tick it asked for would spin that loop at full CPU. These are the cases the `call_signalling`
//! fuzz target (fuzz/) found, each as a scenario.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::media::{ConnectionState, MediaCommand, MediaEvent, PeerId, SdpKind};
use crate::voip;

const ALICE: &str = "@alice:localhost";
const ZED: &str = "@zed:localhost";
const OFFER: &str = "v=0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

impl Harness {
    /// Lets `by` pass, ticking at every wakeup on the way; panics if one is still due after the
    /// tick it asked for.
    fn tick_through(&mut self, by: Duration) -> Vec<Output> {
        let until = self.now.after(by);
        let mut out = Vec::new();
        while let Some(wake) = self.core.next_wakeup(self.now).filter(|w| *w <= until.mono) {
            self.now = self
                .now
                .after(wake.saturating_duration_since(self.now.mono));
            out.extend(self.feed(Input::Tick));
            if let Some(next) = self.core.next_wakeup(self.now) {
                assert!(
                    next > self.now.mono,
                    "a wakeup still due after its tick: the daemon would spin"
                );
            }
        }
        self.now = until;
        out
    }

    fn in_mesh(user: &str, device: &str) -> (Harness, Vec<Output>) {
        let mut h = Harness::in_service(JoinPolicy::Auto, &[user]);
        let out = h.mesh_call_with("g1", user, device);
        h.homeserver_accepts(out);
        let mut all = std::mem::take(&mut h.stray);
        all.extend(h.feed(Input::Tick));
        (h, all)
    }
}

fn peers_added(out: &[Output]) -> Vec<PeerId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(MediaCommand::AddPeer { peer, .. }) => Some(peer.clone()),
            _ => None,
        })
        .collect()
}

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

#[test]
fn a_sync_outage_does_not_spin_on_the_call_membership_timers() {
    let (mut h, _) = Harness::in_mesh(ALICE, "ALICEDEV");
    // The homeserver is down: syncs fail with a growing backoff (1 s, 2 s, 4 s, ...). Out of
    // service, the rooms are not stepped, so the delayed leave's restart (every 5 s) waits.
    for _ in 0..5 {
        let failure = fail(FailureKind::Other);
        h.feed(Input::Synced(Err(failure)));
        h.tick_through(Duration::from_secs(20));
    }
}

#[test]
fn a_join_that_failed_for_a_call_since_over_does_not_spin() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    // Our join's first write fails: the next attempt waits. Then the call ends.
    for o in out {
        if let Output::Matrix(MatrixCommand::SendState { request, .. }) = o {
            let failure = fail(FailureKind::Other);
            h.feed(Input::StateSent {
                request,
                result: Err(failure),
            });
        }
    }
    h.state(CALL_MEMBER, ALICE, ALICE, json!({}));
    h.tick_through(Duration::from_secs(600));
}

#[test]
fn shutting_down_waits_only_for_its_deadline() {
    let (mut h, _) = Harness::new(settings(JoinPolicy::Auto, Some(Duration::from_secs(2))));
    h.feed(Input::LoggedIn(Ok(())));
    h.member(ME, "join");
    h.member(ALICE, "join");
    h.feed(Input::Synced(Ok(())));
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    h.homeserver_accepts(out);
    // Our leave is never answered; the watchdog (every second) and the delayed leave's restart
    // come due within the shutdown's grace, which runs nothing else.
    h.feed(Input::Shutdown);
    let out = h.tick_through(Duration::from_secs(10));
    assert!(out.contains(&Output::Exit), "{out:?}");
}

#[test]
fn a_retry_does_not_spin_while_the_peer_calls_us() {
    // Zed sorts after us: we call him.
    let (mut h, out) = Harness::in_mesh(ZED, "ZEDDEV");
    let ours = peers_added(&out)[0].clone();
    h.feed(Input::Media(MediaEvent::LocalDescription {
        peer: ours.clone(),
        kind: SdpKind::Offer,
        sdp: OFFER.into(),
    }));
    // Our call fails: we are to call again in a few seconds. Meanwhile Zed calls us.
    h.feed(Input::Media(MediaEvent::ConnectionState {
        peer: ours,
        state: ConnectionState::Failed,
    }));
    let invite = json!({"lifetime": 60000, "offer": {"type": "offer", "sdp": OFFER}});
    let out = h.feed_synced(Input::ToDevice {
        sender: ZED.try_into().unwrap(),
        event_type: voip::INVITE.to_owned(),
        content: signal("0", "ZEDDEV", 0, invite),
    });
    assert_eq!(peers_added(&out).len(), 1, "{out:?}");
    h.tick_through(Duration::from_secs(10));
}

#[test]
fn a_retry_does_not_spin_while_there_are_too_many_calls() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ZED]);
    h.state(
        MESH_CALL,
        "g1",
        ZED,
        json!({"m.intent": "m.room", "m.type": "m.video"}),
    );
    // Zed is in the call with 20 devices: we call 16 of them, the most we take.
    let expires = h.now.unix_ms + 3_600_000;
    let devices: Vec<Value> = (0..20)
        .map(|i| json!({"device_id": format!("D{i}"), "session_id": "s", "expires_ts": expires, "feeds": []}))
        .collect();
    let out = h.state(
        CALL_MEMBER,
        ZED,
        ZED,
        json!({"m.calls": [{"m.call_id": "g1", "m.foci": [], "m.devices": devices}]}),
    );
    h.homeserver_accepts(out);
    let mut out = std::mem::take(&mut h.stray);
    out.extend(h.feed(Input::Tick));
    let peers = peers_added(&out);
    assert_eq!(peers.len(), 16);
    // One fails at once: another device gets its place; the failed one is to be called again.
    h.feed(Input::Media(MediaEvent::Refused {
        command: "add a peer".into(),
        peer: Some(peers[0].clone()),
        reason: "test".into(),
    }));
    h.tick_through(Duration::from_secs(10));
}

#[test]
fn a_rejoin_pending_when_banned_does_not_spin() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    // Kicked: we rejoin after a pause. Banned before it is over: no rejoin until unbanned.
    h.state(ROOM_MEMBER, ME, ALICE, json!({"membership": "leave"}));
    h.state(ROOM_MEMBER, ME, ALICE, json!({"membership": "ban"}));
    h.tick_through(Duration::from_secs(600));
}

#[test]
fn a_started_call_ends_on_time_even_when_the_device_was_kicked_meanwhile() {
    let mut h = Harness::in_service(JoinPolicy::Auto, &[ALICE]);
    let out = h.feed(Input::Ctl {
        id: 1,
        request: CtlRequest::Join { room: None },
    });
    h.homeserver_accepts(out);
    // Kicked: the room is skipped in each step, but the started call's timer still comes due.
    h.state(
        ROOM_MEMBER,
        ME,
        ALICE,
        json!({"membership": "leave", "reason": "kicked"}),
    );
    h.tick_through(Duration::from_secs(180));
}
