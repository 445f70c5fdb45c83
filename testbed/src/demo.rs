//! The README's first command: a local Synapse, a visitor with a meeting room, and roomd on test
//! sources serving it. It says plainly how far roomd gets today.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::roomd::RoomdConfig;
use crate::synapse::SERVER_NAME;
use crate::{Roomd, Synapse, Visitor};

pub struct Options {
    /// The roomd binary to run.
    pub roomd: PathBuf,
    /// Stop once roomd is in service, instead of running until Ctrl-C.
    pub until_ready: bool,
}

/// What a demo run measured.
pub struct Report {
    pub ready_after: Duration,
    /// From the visitor's call membership landing to roomd's.
    pub joined_call_after: Duration,
}

const ROOM_PASSWORD: &str = "demo-room-password";

pub async fn run(options: Options) -> anyhow::Result<Report> {
    say("starting a local Synapse");
    let synapse = tokio::task::block_in_place(Synapse::start)?;
    say(&format!("Synapse is up at {}", synapse.url()));
    synapse.register("meeting-room", ROOM_PASSWORD).await?;
    let room_user = format!("@meeting-room:{SERVER_NAME}");
    let visitor = Visitor::new(&synapse, "visitor", "VISITOR").await?;
    let room_id = visitor
        .create_call_room("Demo meeting", &[&room_user])
        .await?;
    say(&format!(
        "{} created {room_id} and invited {room_user}",
        visitor.user_id()
    ));

    let mut config = RoomdConfig::new(&synapse, "meeting-room", ROOM_PASSWORD);
    config.display_name = "Meeting Room (demo)".to_owned();
    config.rooms = vec![room_id.to_string()];
    let dir = tempfile::Builder::new().prefix("roomd-demo-").tempdir()?;
    say(&format!(
        "starting roomd (test camera, test tone, no speaker, no display): {}",
        options.roomd.display()
    ));
    let started = Instant::now();
    let mut roomd = Roomd::spawn(&options.roomd, &config, dir.path(), &[], &[])?;
    let mut shown = 0;
    let ready = loop {
        shown = echo_log(&roomd, shown);
        if roomd.notifications().iter().any(|n| n == "READY=1") {
            break true;
        }
        if !roomd.running() || started.elapsed() > Duration::from_secs(120) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shown = echo_log(&roomd, shown);
    if !ready {
        anyhow::bail!("roomd did not get into service; its log is above");
    }
    let ready_after = started.elapsed();
    say(&format!(
        "roomd is logged in as {room_user} and synced, {} ms after it started",
        ready_after.as_millis()
    ));

    // The visitor starts a call the way matrix-js-sdk's GroupCall does.
    let call_started = Instant::now();
    visitor.join_mesh_call(&room_id, "demo-call").await?;
    say(&format!("{} started a call in the room", visitor.user_id()));
    let joined = visitor
        .wait_for_state(
            &room_id,
            "org.matrix.msc3401.call.member",
            &room_user,
            Duration::from_secs(30),
            |c| c.is_some_and(|c| c["m.calls"][0]["m.call_id"] == "demo-call"),
        )
        .await?;
    shown = echo_log(&roomd, shown);
    if joined.is_none() {
        anyhow::bail!("roomd did not join the call; its log is above");
    }
    // Polled every 100 ms, so this is late by up to that.
    let joined_call_after = call_started.elapsed();
    say(&format!(
        "roomd joined the call {} ms after it started (as a call member: it sends and receives \
         no media yet)",
        joined_call_after.as_millis()
    ));
    let status = roomd.ctl(&["status"]);
    say("roomd ctl status:");
    print!("{}", String::from_utf8_lossy(&status.stdout));

    if !options.until_ready {
        say("roomd keeps running; Ctrl-C stops the demo");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    shown = echo_log(&roomd, shown);
                    if !roomd.running() {
                        anyhow::bail!("roomd exited");
                    }
                }
            }
        }
    }
    let status = tokio::task::block_in_place(|| roomd.terminate());
    echo_log(&roomd, shown);
    say(&format!(
        "roomd stopped ({})",
        status.map_or("killed".to_owned(), |s| s.to_string())
    ));
    Ok(Report {
        ready_after,
        joined_call_after,
    })
}

fn say(line: &str) {
    println!("demo: {line}");
}

/// Prints roomd's log from byte `from` on; returns where it got to.
fn echo_log(roomd: &Roomd, from: usize) -> usize {
    let log = roomd.log();
    if log.len() > from {
        print!("{}", &log[from..]);
    }
    log.len()
}
