//! Press-to-silence: how long from a press of the mute button until the media engine reports
//! the microphone silenced (a silenced buffer has passed the mute point, before the encoder),
//! through the whole daemon: a real roomd in a call with a Chromium visitor on a real Synapse,
//! the press injected through the simulated button backend (`roomd ctl press mute`).
//!
//! Baseline, in the same run: the same mute asked for by `roomd ctl mute`, which skips the
//! button path (edge queue, debouncer, panel). The ratio is the button path's cost.
//!
//! Run: `cargo bench --bench press_to_mute` (needs what `tools/setup.sh` installs).

use std::path::Path;
use std::time::{Duration, SystemTime};

use roomd::controls::client;
use roomd_core::{Button, CtlRequest};
use roomd_testbed::meeting::Meeting;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const ROUNDS: usize = 15;

fn main() {
    if !roomd_testbed::bench::asked_to_run() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice"]).await;
    let alice = meeting.visitor("alice").await;
    alice
        .enter_group_call(meeting.room_id.as_str(), true)
        .await
        .unwrap();
    let room_user = meeting.config.user_id();
    alice
        .wait_for_feeds(Duration::from_secs(30), |f| {
            f.iter()
                .any(|f| f.user_id == room_user && f.video_tracks > 0)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let socket = meeting.roomd.dir().join("control.sock");

    let mut by_button = Vec::new();
    let mut by_ctl = Vec::new();
    for round in 0..ROUNDS * 2 {
        // Interleaved, so both see the same load.
        let button = round % 2 == 0;
        let (mute, unmute) = if button {
            let press = CtlRequest::Press {
                button: Button::Mute,
                long: false,
            };
            (press.clone(), press)
        } else {
            (CtlRequest::Mute, CtlRequest::Unmute)
        };
        let took = tokio::task::block_in_place(|| {
            let took = time_to(&meeting, &socket, &mute, "microphone silenced (confirmed)");
            // The finger lets go before pressing again.
            std::thread::sleep(Duration::from_millis(200));
            time_to(&meeting, &socket, &unmute, "microphone live (confirmed)");
            took
        });
        if button { &mut by_button } else { &mut by_ctl }.push(took);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (b, c) = (summary(&mut by_button), summary(&mut by_ctl));
    println!("press-to-silence through the daemon, {ROUNDS} presses each, in a 720p call:");
    println!("  mute button (simulated backend): median {b}");
    println!("  roomd ctl mute (baseline):       median {c}");
    println!(
        "  ratio button / ctl (median): {:.2}",
        median(&by_button) / median(&by_ctl).max(0.5)
    );
    println!(
        "  budget: audible at the far end within 100 ms of the press (DESIGN.md); the press \
         itself uses {:.1} ms of it (log stamps are whole milliseconds)",
        median(&by_button)
    );
}

/// Sends `request` and waits for roomd's log to say `confirmed`; milliseconds from sending to
/// the logged moment (roomd's log stamps are wall-clock milliseconds).
fn time_to(meeting: &Meeting, socket: &Path, request: &CtlRequest, confirmed: &str) -> f64 {
    let seen = meeting.log().len();
    let sent = SystemTime::now();
    let reply = client::request(socket, request).expect("roomd answers");
    assert!(reply.ok, "{reply:?}");
    let at = meeting
        .logged_at(seen, confirmed, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no {confirmed:?} in 5 s:\n{}", &meeting.log()[seen..]));
    // Sent and stamped on the same clock; the stamp is rounded down to the ms.
    at.duration_since(sent)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summary(v: &mut [f64]) -> String {
    v.sort_by(f64::total_cmp);
    let p95 = v[(v.len() * 95 / 100).min(v.len() - 1)];
    format!(
        "{:.1} ms, p95 {:.1} ms, min {:.1} ms, max {:.1} ms",
        v[v.len() / 2],
        p95,
        v[0],
        v[v.len() - 1]
    )
}
