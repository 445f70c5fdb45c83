//! The README's first command: a local Synapse, roomd on test sources serving a meeting room, and
//! a visitor in headless Chromium (matrix-js-sdk) who starts a call in it. It prints how long
//! roomd took to join and the frames per second each way, saves a PNG of what the visitor sees
//! from the room, and stops everything it started.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::browser::Browser;
use crate::roomd::RoomdConfig;
use crate::synapse::SERVER_NAME;
use crate::{Roomd, Synapse, Visitor};

pub struct Options {
    /// The roomd binary to run.
    pub roomd: PathBuf,
    /// Where the PNG of what the visitor sees goes.
    pub png: PathBuf,
    /// Keep the call going until Ctrl-C after measuring.
    pub stay: bool,
    /// Show everything: roomd's debug log and the visitor's console, besides the demo's lines
    /// and roomd's info.
    pub verbose: bool,
}

/// What a demo run measured.
#[derive(Debug)]
pub struct Report {
    /// From roomd's start to logged in and synced.
    pub ready_after: Duration,
    /// From the visitor entering the call to roomd's membership being in it.
    pub joined_after: Duration,
    /// From the visitor entering the call to its first decoded frame from roomd.
    pub first_frame_after: Duration,
    /// What the visitor decodes from roomd, and roomd from the visitor.
    pub visitor_fps: f64,
    pub visitor_frame: (u64, u64),
    pub visitor_audio_level: f64,
    pub roomd_fps: f64,
    pub png: PathBuf,
    /// `roomd ctl status` during the call, as printed.
    pub status_text: String,
}

const ROOM_PASSWORD: &str = "demo-room-password";
const VISITOR_PASSWORD: &str = "visitor-password";
const WINDOW: Duration = Duration::from_secs(5);

pub async fn run(options: Options) -> anyhow::Result<Report> {
    say("starting a local Synapse");
    let synapse = tokio::task::block_in_place(Synapse::start)?;
    say(&format!("Synapse is up at {}", synapse.url()));
    synapse.register("meeting-room", ROOM_PASSWORD).await?;
    let room_user = format!("@meeting-room:{SERVER_NAME}");
    let host = Visitor::new(&synapse, "visitor", "VISITORHOST").await?;
    let room_id = host.create_call_room("Demo meeting", &[&room_user]).await?;
    say(&format!(
        "{} created {room_id} and invited {room_user}",
        host.user_id()
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
    let roomd_args: &[&str] = if options.verbose { &["-v"] } else { &[] };
    let mut roomd = Roomd::spawn(&options.roomd, &config, dir.path(), roomd_args, &[])?;
    let mut shown = 0;
    let ready = loop {
        shown = echo_log(&roomd, shown);
        if roomd
            .notifications()
            .iter()
            .any(|n| n == "STATUS=in service")
        {
            break true;
        }
        if !roomd.running() || started.elapsed() > Duration::from_secs(120) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shown = echo_log(&roomd, shown);
    anyhow::ensure!(ready, "roomd did not get into service; its log is above");
    let ready_after = started.elapsed();
    say(&format!(
        "roomd is logged in as {room_user} and synced, {} ms after it started",
        ready_after.as_millis()
    ));
    wait_for(&roomd, Duration::from_secs(20), |s| {
        s["rooms"][0]["joined"] == true
    })
    .await
    .context("roomd did not join the meeting room")?;

    say("starting the visitor: headless Chromium running matrix-js-sdk");
    let browser = if options.verbose {
        Browser::start("visitor").await?
    } else {
        Browser::start_quiet("visitor").await?
    };
    browser
        .login(&synapse.url(), "visitor", VISITOR_PASSWORD, "VISITORWEB")
        .await?;
    browser.join_room(room_id.as_str()).await?;

    let call_started = Instant::now();
    browser.enter_group_call(room_id.as_str(), true).await?;
    say("the visitor started a video call in the room (matrix-js-sdk GroupCall)");
    wait_for(&roomd, Duration::from_secs(30), |s| {
        s["rooms"][0]["state"] == "in_call"
    })
    .await
    .context("roomd did not join the call")?;
    // Polled through `roomd ctl status` every 20 ms, so late by up to about that.
    let joined_after = call_started.elapsed();
    shown = echo_log(&roomd, shown);
    browser
        .wait_for_feeds(Duration::from_secs(30), |f| {
            f.iter()
                .any(|f| f.user_id == room_user && f.video_tracks > 0)
        })
        .await?;
    let snapshot = browser.snapshot(Some(&room_user)).await?;
    let first_frame_after = call_started.elapsed();
    say(&format!(
        "roomd joined {} ms after the call started; the visitor saw roomd's first frame after {} ms",
        joined_after.as_millis(),
        first_frame_after.as_millis()
    ));

    let (measured, roomd_fps) = tokio::join!(browser.measure(WINDOW), async {
        tokio::task::block_in_place(|| roomd_video_fps(&roomd, WINDOW))
    });
    let measured = measured?;
    let from_roomd = measured
        .iter()
        .find(|m| m.user_id.as_deref() == Some(room_user.as_str()))
        .context("the visitor has no call with roomd")?;
    say(&format!(
        "the visitor decodes roomd at {:.1} fps ({}x{} {}), sound level {:.2}",
        from_roomd.fps,
        from_roomd.frame_width,
        from_roomd.frame_height,
        from_roomd.codec.as_deref().unwrap_or("?"),
        from_roomd.audio_level
    ));
    say(&format!("roomd decodes the visitor at {roomd_fps:.1} fps"));

    shown = echo_log(&roomd, shown);
    if let Some(parent) = options.png.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&options.png, &snapshot)?;
    say(&format!(
        "saved what the visitor sees from the room: {}",
        options.png.display()
    ));
    let status_text = String::from_utf8_lossy(&roomd.ctl(&["status"]).stdout).into_owned();
    say("roomd ctl status:");
    print!("{status_text}");

    if options.stay {
        say("the call goes on; Ctrl-C ends the demo");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    shown = echo_log(&roomd, shown);
                    anyhow::ensure!(roomd.running(), "roomd exited");
                }
            }
        }
    }
    browser.leave_group_call().await.ok();
    drop(browser);
    let status = tokio::task::block_in_place(|| roomd.terminate());
    echo_log(&roomd, shown);
    say(&format!(
        "roomd stopped ({}); the visitor, Chromium and Synapse are stopped too",
        status.map_or("killed".to_owned(), |s| s.to_string())
    ));
    Ok(Report {
        ready_after,
        joined_after,
        first_frame_after,
        visitor_fps: from_roomd.fps,
        visitor_frame: (from_roomd.frame_width, from_roomd.frame_height),
        visitor_audio_level: from_roomd.audio_level,
        roomd_fps,
        png: options.png,
        status_text,
    })
}

/// Polls `roomd ctl status --json` until `done` holds; returns how long that took.
async fn wait_for(
    roomd: &Roomd,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(status) = tokio::task::block_in_place(|| roomd.status())
            && done(&status)
        {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The video frames per second roomd decodes from its peers, over `window`.
fn roomd_video_fps(roomd: &Roomd, window: Duration) -> f64 {
    let frames = || -> u64 {
        roomd.status().ok().map_or(0, |s| {
            s["media"]["peers"].as_array().map_or(0, |ps| {
                ps.iter()
                    .filter_map(|p| p["video_frames_received"].as_u64())
                    .sum()
            })
        })
    };
    let before = frames();
    std::thread::sleep(window);
    (frames().saturating_sub(before)) as f64 / window.as_secs_f64()
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
