//! Join time: from a visitor entering a call to the first decoded video frame in each direction.
//!
//! roomd: roomd has started the room's call (its join button) and waits in it; Alice (headless
//! Chromium with matrix-js-sdk) enters. Measured: until Alice's browser decodes roomd's first
//! frame, and until roomd's engine decodes Alice's (its log stamp).
//!
//! Baseline, in the same run and interleaved: two browsers joining each other. Bob has started a
//! call in a second room roomd is not in; Alice enters it. Measured the same way, in both browsers.
//!
//! DESIGN.md: under 1 s on loopback, and faster than two browsers joining each other.
//!
//! Run: `cargo bench --profile dev --bench join_time` (needs what `tools/setup.sh` installs).

use std::time::{Duration, SystemTime};

use roomd_testbed::browser::Browser;
use roomd_testbed::meeting::Meeting;

const ROOMD: &str = env!("CARGO_BIN_EXE_roomd");
const ROUNDS: usize = 5;
const LIMIT: Duration = Duration::from_secs(30);

/// One join: milliseconds until the joiner saw the other, and until the other saw the joiner.
struct Join {
    joiner_sees: f64,
    joined_sees: f64,
}

impl Join {
    /// Both directions done.
    fn both(&self) -> f64 {
        self.joiner_sees.max(self.joined_sees)
    }
}

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
    let meeting = Meeting::start(ROOMD.as_ref(), &["alice", "bob"]).await;
    let alice = meeting.visitor("alice").await;
    let bob = meeting.visitor("bob").await;
    let other_room = meeting
        .host
        .create_call_room("Browsers only", &["@alice:localhost", "@bob:localhost"])
        .await
        .unwrap();
    alice.join_room(other_room.as_str()).await.unwrap();
    bob.join_room(other_room.as_str()).await.unwrap();

    let mut with_roomd = Vec::new();
    let mut browsers = Vec::new();
    for round in 0..ROUNDS {
        with_roomd.push(join_roomd(&meeting, &alice).await);
        browsers.push(join_browsers(other_room.as_str(), &alice, &bob).await);
        let (r, b) = (&with_roomd[round], &browsers[round]);
        println!(
            "round {}: roomd {:.0}/{:.0} ms, browsers {:.0}/{:.0} ms (joiner sees / is seen)",
            round + 1,
            r.joiner_sees,
            r.joined_sees,
            b.joiner_sees,
            b.joined_sees
        );
    }

    println!("join time, entering to first decoded frame, {ROUNDS} joins each, loopback, 720p:");
    report("Alice joins roomd", &with_roomd);
    report("Alice joins Bob (baseline)", &browsers);
    let (r, b) = (median_both(&with_roomd), median_both(&browsers));
    println!(
        "  ratio roomd / browsers (median, both directions): {:.2}",
        r / b.max(1.0)
    );
    println!(
        "  DESIGN.md: under 1000 ms ({}), faster than two browsers ({})",
        if r < 1000.0 { "met" } else { "NOT met" },
        if r < b { "met" } else { "NOT met" }
    );
}

/// roomd starts a call and waits; Alice enters it, then leaves, and roomd with her.
async fn join_roomd(meeting: &Meeting, alice: &Browser) -> Join {
    let room_user = meeting.config.user_id();
    meeting.ctl(&["press", "join"]);
    tokio::task::block_in_place(|| meeting.wait_in_call(Duration::from_secs(10)));
    let seen = meeting.log().len();
    let entered = SystemTime::now();
    alice
        .join_existing_group_call(meeting.room_id.as_str(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    let (alice_sees, roomd_sees) = tokio::join!(alice.first_frame(&room_user, LIMIT), async {
        tokio::task::block_in_place(|| {
            meeting.logged_at(seen, "media: first Video from @alice:localhost/", LIMIT)
        })
    });
    let alice_sees = alice_sees.unwrap_or_else(|e| panic!("{e}\nroomd:\n{}", meeting.log()));
    let roomd_sees = roomd_sees
        .unwrap_or_else(|| panic!("roomd decoded no video from alice:\n{}", meeting.log()));
    // Alice leaves; roomd, last one out, ends the call it started and leaves.
    alice.leave_group_call().await.unwrap();
    tokio::task::block_in_place(|| {
        meeting.wait_for_status(Duration::from_secs(20), |s| {
            s["rooms"][0]["state"] == "idle"
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "roomd stayed in the call: {}\n{}",
            meeting.status(),
            meeting.log()
        )
    });
    Join {
        joiner_sees: ms_since(entered, alice_sees),
        joined_sees: ms_since(entered, roomd_sees),
    }
}

/// Bob starts a call in a room without roomd; Alice enters it; then both leave.
async fn join_browsers(room: &str, alice: &Browser, bob: &Browser) -> Join {
    bob.enter_group_call(room, true).await.unwrap();
    let entered = SystemTime::now();
    alice
        .join_existing_group_call(room, Duration::from_secs(10))
        .await
        .unwrap();
    let (alice_sees, bob_sees) = tokio::join!(
        alice.first_frame("@bob:localhost", LIMIT),
        bob.first_frame("@alice:localhost", LIMIT)
    );
    alice.leave_group_call().await.unwrap();
    bob.terminate_group_call().await.unwrap();
    Join {
        joiner_sees: ms_since(entered, alice_sees.unwrap()),
        joined_sees: ms_since(entered, bob_sees.unwrap()),
    }
}

fn ms_since(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_both(joins: &[Join]) -> f64 {
    median(joins.iter().map(Join::both).collect())
}

fn report(what: &str, joins: &[Join]) {
    let joiner = median(joins.iter().map(|j| j.joiner_sees).collect());
    let joined = median(joins.iter().map(|j| j.joined_sees).collect());
    let both: Vec<f64> = joins.iter().map(Join::both).collect();
    let (min, max) = (
        both.iter().copied().fold(f64::INFINITY, f64::min),
        both.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "  {what}: median {:.0} ms both ways (joiner sees {joiner:.0} ms, is seen {joined:.0} ms), \
         min {min:.0}, max {max:.0}",
        median(both.clone())
    );
}
