//! The README's first command: a local Synapse, a visitor with a meeting room, and roomd on test
//! sources serving it. It says plainly how far roomd gets today.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use matrix_sdk::Client;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::{OwnedRoomId, UserId};

use crate::roomd::RoomdConfig;
use crate::synapse::SERVER_NAME;
use crate::{Roomd, Synapse};

pub struct Options {
    /// The roomd binary to run.
    pub roomd: PathBuf,
    /// Stop once roomd is in service, instead of running until Ctrl-C.
    pub until_ready: bool,
}

/// What a demo run measured.
pub struct Report {
    pub ready_after: Duration,
}

const ROOM_PASSWORD: &str = "demo-room-password";
const VISITOR_PASSWORD: &str = "demo-visitor-password";

pub async fn run(options: Options) -> anyhow::Result<Report> {
    say("starting a local Synapse");
    let synapse = tokio::task::block_in_place(Synapse::start)?;
    say(&format!("Synapse is up at {}", synapse.url()));
    synapse.register("meeting-room", ROOM_PASSWORD).await?;
    synapse.register("visitor", VISITOR_PASSWORD).await?;

    let room_user = format!("@meeting-room:{SERVER_NAME}");
    let visitor = Client::builder()
        .homeserver_url(synapse.url())
        .build()
        .await?;
    visitor
        .matrix_auth()
        .login_username("visitor", VISITOR_PASSWORD)
        .device_id("VISITOR")
        .send()
        .await?;
    let room_id = create_meeting_room(&visitor, &room_user).await?;
    say(&format!(
        "@visitor:{SERVER_NAME} created {room_id} and invited {room_user}"
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
    say(
        "not yet built: joining the room and its calls (issues 3-5), so the visitor starts no \
         call and roomd sends no media yet",
    );

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
    Ok(Report { ready_after })
}

async fn create_meeting_room(visitor: &Client, room_user: &str) -> anyhow::Result<OwnedRoomId> {
    let mut request = create_room::v3::Request::new();
    request.name = Some("Demo meeting".to_owned());
    request.invite = vec![UserId::parse(room_user)?];
    let room = visitor.create_room(request).await?;
    Ok(room.room_id().to_owned())
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
