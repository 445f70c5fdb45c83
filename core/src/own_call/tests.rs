//! Our Element Call session membership on a fake clock, as Element Call keeps its own: behind a
//! delayed leave of 18 s restarted every 4 s, `created_ts` kept from the first join, `expires`
//! grown by 4 h an hour before it would lapse, and a new transport published at once.

use std::time::{Duration, Instant};

use ruma::{OwnedRoomId, owned_room_id, owned_user_id};
use serde_json::{Value, json};

use super::*;
use crate::membership::{Member, Shape};

const T0: u64 = 1_759_000_000_000;
const SVC: &str = "https://rtc.localhost/livekit/jwt";

fn me() -> Identity {
    Identity {
        user_id: owned_user_id!("@room:localhost"),
        device_id: "ROOMD".into(),
        session_id: "s".to_owned(),
    }
}

fn room() -> OwnedRoomId {
    owned_room_id!("!room:localhost")
}

struct Bench {
    call: OwnCall,
    now: Now,
    ids: u64,
}

impl Bench {
    fn new() -> Self {
        let mut call = OwnCall::new(room());
        call.set_transport(Some(SVC.to_owned()));
        Bench {
            call,
            now: Now::new(Instant::now(), T0),
            ids: 0,
        }
    }

    fn converge(&mut self, wanted: Option<&CallId>) -> Vec<MatrixCommand> {
        let mut out = Outputs::new();
        self.call
            .converge(self.now, wanted, &me(), &mut self.ids, &mut out);
        commands(out)
    }

    /// The homeserver accepts a state write (a delayed one gets `delay-1`).
    fn state_sent(&mut self, command: &MatrixCommand) -> Vec<MatrixCommand> {
        let MatrixCommand::SendState {
            request, delay_ms, ..
        } = command
        else {
            panic!("not a state write: {command:?}");
        };
        let mut out = Outputs::new();
        let result = Ok(delay_ms.map(|_| "delay-1".to_owned()));
        assert!(self.call.on_state_sent(
            self.now,
            *request,
            result,
            &me(),
            &mut self.ids,
            &mut out
        ));
        commands(out)
    }

    /// Moves the clock to `at`, stepping at every wakeup on the way and answering restarts.
    fn run_until(&mut self, at: Instant, wanted: &CallId) -> Vec<MatrixCommand> {
        let mut all = Vec::new();
        while let Some(wake) = self.call.next_wakeup().filter(|w| *w <= at) {
            self.now = self.now.after(wake - self.now.mono);
            for c in self.converge(Some(wanted)) {
                if let MatrixCommand::UpdateDelayed { request, .. } = &c {
                    let mut out = Outputs::new();
                    self.call.on_delayed_updated(
                        self.now,
                        *request,
                        Ok(()),
                        &me(),
                        &mut self.ids,
                        &mut out,
                    );
                }
                all.push(c);
            }
        }
        self.now = self.now.after(at - self.now.mono);
        all
    }

    /// The room's state shows our membership, first sent at `created_ms`.
    fn observe(&mut self, created_ms: u64) {
        let ours = Member {
            user_id: me().user_id,
            device_id: "ROOMD".to_owned(),
            call: CallId::room_call(),
            focus: "livekit".to_owned(),
            expires_at_ms: created_ms + 4 * 3_600_000,
            created_ms,
            transport: Some(SVC.to_owned()),
            focus_selection: Some("multi_sfu".to_owned()),
            session_id: None,
            shape: Shape::Session,
        };
        let mut out = Outputs::new();
        self.call
            .observe(self.now, Some(&ours), &me(), &mut self.ids, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}

fn commands(out: Outputs) -> Vec<MatrixCommand> {
    out.into_iter()
        .map(|o| match o {
            Output::Matrix(c) => c,
            other => panic!("not a Matrix command: {other:?}"),
        })
        .collect()
}

fn written(c: &MatrixCommand) -> (&str, &Value, Option<u64>) {
    match c {
        MatrixCommand::SendState {
            state_key,
            content,
            delay_ms,
            ..
        } => (state_key, content, *delay_ms),
        other => panic!("not a state write: {other:?}"),
    }
}

#[test]
fn a_session_membership_is_kept_as_element_call_keeps_its_own() {
    let mut b = Bench::new();
    let call = CallId::room_call();
    // The leave is scheduled first, on Element Call's 18 s.
    let c = b.converge(Some(&call));
    assert_eq!(c.len(), 1, "{c:?}");
    let (key, content, delay) = written(&c[0]);
    assert_eq!(
        (key, content, delay),
        ("_@room:localhost_ROOMD_m.call", &json!({}), Some(18_000))
    );
    // Then the membership: a first join has no created_ts.
    let c = b.state_sent(&c[0]);
    let (_, content, delay) = written(&c[0]);
    assert_eq!(delay, None);
    assert_eq!(content["expires"], 14_400_000);
    assert_eq!(content["foci_preferred"][0]["livekit_service_url"], SVC);
    assert!(content.get("created_ts").is_none(), "{content}");
    assert!(b.state_sent(&c[0]).is_empty());
    assert_eq!(b.call.phase(), &Phase::In(call.clone()));
    // The homeserver stamped the join 100 ms after we sent it.
    b.observe(T0 + 100);

    // The leave is restarted every 4 s: 900 times in the hour.
    let hour = b.now.mono + Duration::from_secs(3600);
    let c = b.run_until(hour, &call);
    let restarts = c
        .iter()
        .filter(|c| {
            matches!(
                c,
                MatrixCommand::UpdateDelayed {
                    action: DelayedAction::Restart,
                    ..
                }
            )
        })
        .count();
    assert_eq!((restarts, c.len()), (900, 900), "nothing else in the hour");

    // An hour before the 4 h lapse (3 h after the stamped join), the same created_ts and 8 h.
    let refresh_due = b.now.instant_at(T0 + 100 + 3 * 3_600_000);
    let c = b.run_until(refresh_due - Duration::from_millis(1), &call);
    assert!(
        c.iter()
            .all(|c| matches!(c, MatrixCommand::UpdateDelayed { .. }))
    );
    let c = b.run_until(refresh_due, &call);
    let writes: Vec<_> = c
        .iter()
        .filter(|c| matches!(c, MatrixCommand::SendState { .. }))
        .collect();
    assert_eq!(writes.len(), 1, "{c:?}");
    let (_, content, _) = written(writes[0]);
    assert_eq!(content["created_ts"], T0 + 100);
    assert_eq!(content["expires"], 28_800_000);
    b.state_sent(writes[0]);

    // The next one 4 h later, at 12 h.
    let next = b.now.instant_at(T0 + 100 + 7 * 3_600_000);
    let c = b.run_until(next, &call);
    let (_, content, _) = written(
        c.iter()
            .find(|c| matches!(c, MatrixCommand::SendState { .. }))
            .expect("refreshed again"),
    );
    assert_eq!(content["expires"], 43_200_000);
}

#[test]
fn a_new_transport_is_published_at_once_and_leaving_forgets_the_first_join() {
    let mut b = Bench::new();
    let call = CallId::room_call();
    let c = b.converge(Some(&call));
    let c = b.state_sent(&c[0]);
    b.state_sent(&c[0]);
    b.observe(T0);

    b.call
        .set_transport(Some("https://other.localhost/jwt".to_owned()));
    let c = b.converge(Some(&call));
    let (_, content, _) = written(&c[0]);
    assert_eq!(
        content["foci_preferred"][0]["livekit_service_url"],
        "https://other.localhost/jwt"
    );
    assert_eq!(content["created_ts"], T0, "still the first join");
    assert_eq!(content["expires"], 14_400_000, "not a lifetime refresh");
    b.state_sent(&c[0]);

    // Leaving sends the delayed leave; joining again is a first join.
    let c = b.converge(None);
    assert!(matches!(
        c[..],
        [MatrixCommand::UpdateDelayed {
            action: DelayedAction::Send,
            ..
        }]
    ));
    let MatrixCommand::UpdateDelayed { request, .. } = c[0] else {
        unreachable!()
    };
    let mut out = Outputs::new();
    b.call
        .on_delayed_updated(b.now, request, Ok(()), &me(), &mut b.ids, &mut out);
    assert_eq!(b.call.phase(), &Phase::Out);
    let c = b.converge(Some(&call));
    let c = b.state_sent(&c[0]);
    let (_, content, _) = written(&c[0]);
    assert!(content.get("created_ts").is_none(), "{content}");
    assert_eq!(content["expires"], 14_400_000);
}
