//! Buttons and LEDs: what a press does in each state, and that the LEDs tell the truth.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::events::{MESH_CALL, RTC_NOTIFICATION};
use crate::media::{MediaCommand, MediaEvent};
use crate::status::SeatState;

const ALICE: &str = "@alice:localhost";

impl Harness {
    /// One edge of `button`, `after` from now (the clock moves on to it, ticking on the way).
    fn edge(&mut self, button: Button, pressed: bool, after: Duration) -> Vec<Output> {
        let mut out = self.advance(after);
        out.extend(self.feed(Input::Button(ButtonEdge {
            button,
            pressed,
            at: self.now.mono,
        })));
        out
    }

    /// A clean press held for `hold`.
    fn press(&mut self, button: Button, hold: Duration) -> Vec<Output> {
        let mut out = self.edge(button, true, Duration::ZERO);
        out.extend(self.edge(button, false, hold));
        out
    }

    fn led(&self, led: Led) -> Pattern {
        self.core.status(self.now).panel.leds[&led]
    }
}

fn mic_commands(out: &[Output]) -> Vec<bool> {
    out.iter()
        .filter_map(|o| match o {
            Output::Media(MediaCommand::SetMicMuted(m)) => Some(*m),
            _ => None,
        })
        .collect()
}

fn led_levels(out: &[Output], which: Led) -> Vec<bool> {
    out.iter()
        .filter_map(|o| match o {
            Output::Led { led, on } if *led == which => Some(*on),
            _ => None,
        })
        .collect()
}

/// `settings` with the LEDs wired.
fn with_leds(join: JoinPolicy) -> Settings {
    let mut s = settings(join, None);
    s.panel.leds_wired = true;
    s
}

fn in_call_with_alice(join: JoinPolicy) -> Harness {
    let mut h = Harness::in_service_with(with_leds(join), &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::InCall);
    h
}

#[test]
fn a_bounce_train_of_ten_edges_inside_the_debounce_window_is_one_press() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[]);
    let mut out = Vec::new();
    for i in 0..10 {
        // 2 ms apart: all ten inside the 30 ms window.
        let step = if i == 0 {
            Duration::ZERO
        } else {
            DEBOUNCE / 15
        };
        out.extend(h.edge(Button::Mute, i % 2 == 0, step));
    }
    out.extend(h.advance(Duration::from_millis(200)));
    assert_eq!(mic_commands(&out), vec![true], "one press: {out:?}");

    // The contact settled released at the end of the train; the next press is a new one.
    let out = h.press(Button::Mute, Duration::from_millis(100));
    assert_eq!(mic_commands(&out), vec![false]);
}

#[test]
fn a_press_acts_at_once_not_after_the_debounce_time() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[]);
    let out = h.edge(Button::Mute, true, Duration::ZERO);
    assert_eq!(mic_commands(&out), vec![true], "no waiting: {out:?}");
}

#[test]
fn the_muted_led_lights_only_when_the_media_engine_confirms() {
    let mut h = in_call_with_alice(JoinPolicy::Auto);
    let out = h.press(Button::Mute, Duration::from_millis(100));
    assert_eq!(mic_commands(&out), vec![true]);
    assert_eq!(led_levels(&out, Led::Muted), Vec::<bool>::new(), "{out:?}");
    assert_eq!(h.led(Led::Muted), Pattern::Off);
    assert!(h.core.status(h.now).mic_muted, "asked for");

    // The engine says a silenced buffer has passed: now the LED lights.
    let out = h.feed(Input::Media(MediaEvent::MicMuted(true)));
    assert_eq!(led_levels(&out, Led::Muted), vec![true]);
    assert_eq!(h.led(Led::Muted), Pattern::On);

    // Unmuting: the LED stays lit until the engine confirms the microphone is live.
    let out = h.press(Button::Mute, Duration::from_millis(100));
    assert_eq!(mic_commands(&out), vec![false]);
    assert_eq!(led_levels(&out, Led::Muted), Vec::<bool>::new());
    let out = h.feed(Input::Media(MediaEvent::MicMuted(false)));
    assert_eq!(led_levels(&out, Led::Muted), vec![false]);
}

#[test]
fn a_long_hang_up_press_keeps_the_device_out_of_new_calls_for_the_configured_time() {
    let mut h = in_call_with_alice(JoinPolicy::Auto);
    // Pressed: hangs up at once.
    let out = h.edge(Button::Hangup, true, Duration::ZERO);
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::LeftByHangUp);
    // Held past the long-press time: do-not-disturb.
    let out = h.edge(
        Button::Hangup,
        false,
        LONG_PRESS + Duration::from_millis(100),
    );
    h.homeserver_accepts(out);
    let left = h.core.status(h.now).panel.do_not_disturb_s.expect("on");
    assert!((29 * 60..=30 * 60).contains(&left), "{left}");
    assert_eq!(h.led(Led::Status), Pattern::DoNotDisturb);

    // The call ends and a new one starts: without do-not-disturb auto-join would take it.
    h.homeserver_accepts_state(CALL_MEMBER, ALICE, ALICE, json!({}));
    let out = h.mesh_call_with("g2", ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    // A ring does not break through either.
    let out = h.timeline(
        RTC_NOTIFICATION,
        ALICE,
        json!({"notification_type": "ring", "lifetime": 30000}),
    );
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    let why = h.core.status(h.now).rooms[0].why.clone();
    assert!(why.contains("do not disturb"), "{why}");
    let commands = h.live_for(Duration::from_secs(29 * 60));
    assert!(state_writes(&commands).is_empty(), "{commands:?}");
    assert_eq!(h.seat(), SeatState::Idle);

    // Thirty minutes after the press, the call still going is joined.
    let out = h.mesh_member(ALICE, "g2", "ALICEDEV", Duration::from_secs(3600));
    h.homeserver_accepts(out);
    let commands = h.live_for(Duration::from_secs(61));
    assert_eq!(state_writes(&commands).len(), 2, "{commands:?}");
    assert_eq!(h.seat(), SeatState::InCall);
    assert_eq!(h.core.status(h.now).panel.do_not_disturb_s, None);
    assert_eq!(h.led(Led::Status), Pattern::On);
}

#[test]
fn a_short_hang_up_press_is_no_do_not_disturb() {
    let mut h = in_call_with_alice(JoinPolicy::Auto);
    let out = h.press(Button::Hangup, Duration::from_millis(200));
    h.homeserver_accepts(out);
    assert_eq!(h.seat(), SeatState::LeftByHangUp);
    assert_eq!(h.core.status(h.now).panel.do_not_disturb_s, None);
    h.homeserver_accepts_state(CALL_MEMBER, ALICE, ALICE, json!({}));
    let out = h.mesh_call_with("g2", ALICE, "ALICEDEV");
    assert_eq!(state_writes(&h.homeserver_accepts(out)).len(), 2);
}

#[test]
fn join_ends_do_not_disturb_and_takes_the_call() {
    let mut h = in_call_with_alice(JoinPolicy::Auto);
    let out = h.edge(Button::Hangup, true, Duration::ZERO);
    h.homeserver_accepts(out);
    let out = h.edge(Button::Hangup, false, LONG_PRESS * 2);
    h.homeserver_accepts(out);
    assert!(h.core.status(h.now).panel.do_not_disturb_s.is_some());

    let out = h.press(Button::Join, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    assert_eq!(state_writes(&commands).len(), 2, "{commands:?}");
    assert_eq!(h.seat(), SeatState::InCall);
    assert_eq!(h.core.status(h.now).panel.do_not_disturb_s, None);
}

#[test]
fn join_takes_a_call_the_policy_waits_to_be_rung_for() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::WhenRung), &[ALICE]);
    let out = h.mesh_call_with("g1", ALICE, "ALICEDEV");
    assert!(state_writes(&h.homeserver_accepts(out)).is_empty());
    // A call is waiting: the status LED rings.
    assert_eq!(h.led(Led::Status), Pattern::Ringing);
    assert_eq!(h.led(Led::InCall), Pattern::Off);

    let out = h.press(Button::Join, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    assert_eq!(state_writes(&commands).len(), 2, "{commands:?}");
    assert_eq!(h.seat(), SeatState::InCall);
    assert_eq!(h.led(Led::InCall), Pattern::On);
    assert_eq!(h.led(Led::Status), Pattern::On);
}

#[test]
fn join_with_no_call_says_so_when_starting_calls_is_off() {
    let mut settings = with_leds(JoinPolicy::Auto);
    settings.rooms.start_calls = false;
    let mut h = Harness::in_service_with(settings, &[ALICE]);
    let out = h.feed(Input::Ctl {
        id: 4,
        request: CtlRequest::Join { room: None },
    });
    match &out[..] {
        [Output::Reply { id: 4, reply }, ..] => {
            assert!(!reply.ok);
            assert_eq!(reply.error.as_deref(), Some("no call to join"));
        }
        other => panic!("{other:?}"),
    }
}

/// The call roomd starts: (group call ID, content) of its m.call state writes.
fn call_writes(commands: &[MatrixCommand]) -> Vec<(String, serde_json::Value)> {
    commands
        .iter()
        .filter_map(|c| match c {
            MatrixCommand::SendState {
                event_type,
                state_key,
                content,
                ..
            } if event_type == MESH_CALL => Some((state_key.clone(), content.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn join_with_no_call_starts_one_and_waits_in_it_for_people() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[ALICE]);
    let out = h.press(Button::Join, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    let calls = call_writes(&commands);
    assert_eq!(calls.len(), 1, "{commands:?}");
    let (id, content) = &calls[0];
    assert_eq!(content["m.intent"], "m.room");
    assert_eq!(content["m.type"], "m.video");
    // Once the call is in the room's state, roomd is in it, alone for now.
    let writes = state_writes(&commands);
    let member = writes
        .iter()
        .find(|(k, c, _)| k == ME && !c.as_object().unwrap().is_empty());
    assert_eq!(
        member.expect("our membership").1["m.calls"][0]["m.call_id"],
        *id
    );
    assert_eq!(h.seat(), SeatState::InCall);
    assert_eq!(h.led(Led::InCall), Pattern::On);

    // Alice comes a minute later; the call goes on past the wait.
    h.live_for(Duration::from_secs(60));
    let out = h.mesh_member(ALICE, id, "ALICEDEV", Duration::from_secs(3600));
    h.homeserver_accepts(out);
    let commands = h.live_for(Duration::from_secs(120));
    assert!(call_writes(&commands).is_empty(), "not ended: {commands:?}");
    assert_eq!(h.seat(), SeatState::InCall);
}

#[test]
fn a_started_call_nobody_comes_to_is_ended_after_two_minutes() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[ALICE]);
    let out = h.feed(Input::Ctl {
        id: 2,
        request: CtlRequest::Join { room: None },
    });
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Reply { id: 2, reply } if reply.ok)),
        "{out:?}"
    );
    let commands = h.homeserver_accepts(out);
    let id = call_writes(&commands)[0].0.clone();
    let commands = h.live_for(Duration::from_secs(119));
    assert!(call_writes(&commands).is_empty());
    assert_eq!(h.seat(), SeatState::InCall);
    let commands = h.live_for(Duration::from_secs(2));
    let ended = call_writes(&commands);
    assert_eq!(ended.len(), 1, "{commands:?}");
    assert_eq!(ended[0].0, id);
    assert_eq!(ended[0].1["m.terminated"], "call_ended");
    assert_eq!(h.seat(), SeatState::Idle);
}

/// roomd starts a call and Alice comes into it; returns the call's ID.
fn started_call_with_alice(h: &mut Harness) -> String {
    let out = h.press(Button::Join, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    let id = call_writes(&commands)[0].0.clone();
    let out = h.mesh_member(ALICE, &id, "ALICEDEV", Duration::from_secs(3600));
    h.homeserver_accepts(out);
    h.live_for(Duration::from_secs(10));
    assert_eq!(h.seat(), SeatState::InCall);
    id
}

#[test]
fn a_started_call_ends_when_the_last_visitor_leaves() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[ALICE]);
    let id = started_call_with_alice(&mut h);
    let out = h.state(CALL_MEMBER, ALICE, ALICE, json!({}));
    let mut commands = h.homeserver_accepts(out);
    commands.extend(h.live_for(Duration::from_secs(1)));
    let ended = call_writes(&commands);
    assert_eq!(ended.len(), 1, "terminated at once: {commands:?}");
    assert_eq!(
        (ended[0].0.as_str(), &ended[0].1["m.terminated"]),
        (id.as_str(), &json!("call_ended"))
    );
    assert_eq!(h.seat(), SeatState::Idle, "no ghost left behind");
}

#[test]
fn hanging_up_a_started_call_leaves_it_for_good() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[ALICE]);
    started_call_with_alice(&mut h);

    // Hang-up with Alice still there: roomd leaves; the call goes on for her.
    let out = h.press(Button::Hangup, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    assert!(
        call_writes(&commands).is_empty(),
        "not ended under Alice: {commands:?}"
    );
    h.live_for(Duration::from_secs(5));
    assert_ne!(h.seat(), SeatState::InCall);

    // Alice leaves too: roomd does not come back, and does not end a call it has left.
    let out = h.state(CALL_MEMBER, ALICE, ALICE, json!({}));
    let mut commands = h.homeserver_accepts(out);
    commands.extend(h.live_for(Duration::from_secs(300)));
    assert_eq!(h.seat(), SeatState::Idle, "{commands:?}");
    assert!(
        !state_writes(&commands).iter().any(|(k, c, _)| k == ME
            && c.get("m.calls")
                .is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty()))),
        "roomd rejoined: {commands:?}"
    );
}

#[test]
fn hanging_up_a_started_call_alone_ends_it() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[ALICE]);
    let out = h.press(Button::Join, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    let id = call_writes(&commands)[0].0.clone();
    h.live_for(Duration::from_secs(10));
    let out = h.press(Button::Hangup, Duration::from_millis(100));
    let mut commands = h.homeserver_accepts(out);
    commands.extend(h.live_for(Duration::from_secs(5)));
    let ended = call_writes(&commands);
    assert_eq!(
        ended.len(),
        1,
        "ended at once, not after the wait: {commands:?}"
    );
    assert_eq!(ended[0].0, id);
    assert_eq!(h.seat(), SeatState::Idle);
}

#[test]
fn join_takes_up_an_open_call_nobody_is_in_rather_than_start_a_second() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[ALICE]);
    // Alice's client made a call and left it, without ending it: js-sdk still holds it as the
    // room's call and would never see a second one.
    h.state(
        MESH_CALL,
        "old",
        ALICE,
        json!({"m.intent": "m.room", "m.type": "m.voice"}),
    );
    let out = h.press(Button::Join, Duration::from_millis(100));
    let commands = h.homeserver_accepts(out);
    assert!(
        call_writes(&commands).is_empty(),
        "no new call: {commands:?}"
    );
    let writes = state_writes(&commands);
    let member = writes
        .iter()
        .find(|(k, c, _)| k == ME && !c.as_object().unwrap().is_empty());
    assert_eq!(
        member.expect("our membership").1["m.calls"][0]["m.call_id"],
        "old"
    );
    assert_eq!(h.seat(), SeatState::InCall);

    // Nobody comes: it is ended as it was (a voice call).
    let commands = h.live_for(Duration::from_secs(121));
    let ended = call_writes(&commands);
    assert_eq!(ended.len(), 1, "{commands:?}");
    assert_eq!(ended[0].0, "old");
    assert_eq!(ended[0].1["m.type"], "m.voice");
    assert_eq!(ended[0].1["m.terminated"], "call_ended");
}

#[test]
fn join_with_no_call_under_the_never_policy_starts_nothing() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Never), &[ALICE]);
    let out = h.press(Button::Join, Duration::from_millis(100));
    assert!(call_writes(&h.homeserver_accepts(out)).is_empty());
}

#[test]
fn volume_steps_stay_within_bounds_and_are_sent_once_each() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[]);
    let mut sent = Vec::new();
    for _ in 0..10 {
        let out = h.press(Button::VolumeUp, Duration::from_millis(100));
        sent.extend(out.iter().filter_map(|o| match o {
            Output::SetVolume(v) => Some(*v),
            _ => None,
        }));
    }
    // 70 % in steps of 5: six steps reach 100, then nothing more is sent.
    assert_eq!(sent, vec![75, 80, 85, 90, 95, 100]);
    let out = h.feed(Input::Ctl {
        id: 1,
        request: CtlRequest::Volume {
            change: Some(VolumeChange::Set(3)),
        },
    });
    assert!(out.contains(&Output::SetVolume(3)));
    let out = h.press(Button::VolumeDown, Duration::from_millis(100));
    assert!(out.contains(&Output::SetVolume(0)), "{out:?}");
    assert_eq!(h.core.status(h.now).panel.volume, 0);
}

#[test]
fn the_volume_is_set_at_start() {
    let (_, out) = Harness::new(with_leds(JoinPolicy::Auto));
    assert!(out.contains(&Output::SetVolume(70)), "{out:?}");
}

#[test]
fn the_status_led_blinks_on_the_core_clock_while_connecting() {
    let (mut h, out) = Harness::new(with_leds(JoinPolicy::Auto));
    assert_eq!(led_levels(&out, Led::Status), vec![true]);
    // Nothing else happens: the LED's own wakeups drive the blinking.
    let out = h.advance(Duration::from_millis(2_250));
    assert_eq!(
        led_levels(&out, Led::Status),
        vec![false, true, false, true],
        "1 Hz: {out:?}"
    );
    h.feed(Input::LoggedIn(Ok(())));
    let out = h.feed(Input::Synced(Ok(())));
    assert_eq!(h.led(Led::Status), Pattern::On);
    let out: Vec<Output> = out
        .into_iter()
        .chain(h.advance(Duration::from_secs(5)))
        .collect();
    assert!(
        led_levels(&out, Led::Status).iter().all(|on| *on),
        "steady: {out:?}"
    );
    assert_eq!(
        h.core.next_wakeup(h.now),
        None,
        "a steady LED needs no wakeup"
    );
}

#[test]
fn a_refused_login_is_an_error_blink_an_unreachable_server_is_not() {
    let (mut h, _) = Harness::new(with_leds(JoinPolicy::Auto));
    h.feed(Input::LoggedIn(Err(fail(FailureKind::Other))));
    assert_eq!(h.led(Led::Status), Pattern::Connecting);
    let out = h.advance(Duration::from_secs(10));
    h.feed(Input::LoggedIn(Err(fail(FailureKind::Unauthorized))));
    assert_eq!(h.led(Led::Status), Pattern::Error, "{out:?}");
}

#[test]
fn media_unavailable_is_an_error_blink() {
    let mut h = Harness::in_service_with(with_leds(JoinPolicy::Auto), &[]);
    assert_eq!(h.led(Led::Status), Pattern::On);
    h.feed(Input::Media(MediaEvent::Unavailable {
        reason: "no H.264 encoder".to_owned(),
    }));
    assert_eq!(h.led(Led::Status), Pattern::Error);
}

#[test]
fn shutting_down_puts_every_led_out_and_ignores_buttons() {
    let mut h = in_call_with_alice(JoinPolicy::Auto);
    h.feed(Input::Media(MediaEvent::MicMuted(true)));
    let out = h.feed(Input::Shutdown);
    for led in [Led::InCall, Led::Muted, Led::Status] {
        assert_eq!(led_levels(&out, led), vec![false], "{led:?}: {out:?}");
    }
    let out = h.press(Button::Mute, Duration::from_millis(100));
    assert_eq!(mic_commands(&out), Vec::<bool>::new());
}
