//! The media engine as an actor: its own thread owns the call's pipeline and every webrtcbin.
//! The daemon's loop sends it commands through a bounded queue ([`MediaEngine::send`] never
//! waits) and hears back through the channels in `events`. The thread itself never waits on a
//! webrtcbin either: offers, answers and statistics come back through promise change functions
//! on webrtcbin's own threads, which post to this thread's inbox when it has more to do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::call::MediaSettings;
use super::devices::Devices;
use super::encoder;
use super::engine::{Engine, EngineParts};
use super::events::EventSender;
use super::hooks::{TestHooks, WEDGE_VAR, WEDGED_FOR};
use super::mailbox::{Inbox, Post};
use roomd_core::media::MediaCommand;

/// How many commands may wait for the engine; more are refused (see [`NotTaken`]). The core
/// sends a handful per peer and second; a full queue means the engine is stuck.
pub const COMMAND_QUEUE: usize = 256;
/// How often the engine asks every webrtcbin for statistics and checks on removals.
const TICK: Duration = Duration::from_secs(1);

/// Why a command was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotTaken {
    #[error("the media engine is not keeping up ({COMMAND_QUEUE} commands waiting)")]
    QueueFull,
    #[error("the media engine has stopped")]
    Stopped,
}

/// The daemon's handle on the engine's thread.
pub struct MediaEngine {
    inbox: mpsc::Sender<Inbox>,
    /// Commands sent and not yet taken by the thread.
    queued: Arc<AtomicUsize>,
    encoder: encoder::Choice,
    pipeline: Arc<Mutex<Option<gst::Pipeline>>>,
    thread: Option<JoinHandle<()>>,
}

impl MediaEngine {
    /// Initialises GStreamer and probes the encoder (`configured`: "auto" or an element name)
    /// on the calling thread, which takes a moment (so never the daemon's loop), then starts
    /// the engine's thread.
    pub fn start(
        devices: Devices,
        settings: MediaSettings,
        configured_encoder: &str,
        events: EventSender,
        hooks: TestHooks,
    ) -> anyhow::Result<MediaEngine> {
        gst::init().context("initialising GStreamer")?;
        let encoder = encoder::probe(configured_encoder, settings.format, settings.bitrate_kbps)?;
        for r in &encoder.refused {
            log::info!("encoder {} refused: {}", r.element, r.reason);
        }
        log::info!("video encoder: {}", encoder.element);
        let (inbox, taken) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let pipeline = Arc::new(Mutex::new(None));
        let engine = Engine::new(EngineParts {
            devices,
            settings,
            encoder: encoder.clone(),
            reports: events,
            post: Post(inbox.clone()),
            hooks: hooks.clone(),
            shown_pipeline: pipeline.clone(),
        });
        let thread = {
            let queued = queued.clone();
            std::thread::Builder::new()
                .name("media-engine".to_owned())
                .spawn(move || run(engine, &taken, &queued, hooks.wedge_after))
                .context("starting the media engine's thread")?
        };
        Ok(MediaEngine {
            inbox,
            queued,
            encoder,
            pipeline,
            thread: Some(thread),
        })
    }

    pub fn encoder(&self) -> &encoder::Choice {
        &self.encoder
    }

    /// Queues `command` for the engine's thread; never waits.
    pub fn send(&self, command: MediaCommand) -> Result<(), NotTaken> {
        if self.queued.fetch_add(1, Ordering::SeqCst) >= COMMAND_QUEUE {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(NotTaken::QueueFull);
        }
        self.inbox.send(Inbox::Command(command)).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            NotTaken::Stopped
        })
    }

    /// The running call's pipeline, for inspection (tests).
    pub fn pipeline(&self) -> Option<gst::Pipeline> {
        self.pipeline.lock().unwrap().clone()
    }

    /// Stops the engine and waits up to `limit` for its call to be torn down; whether it was.
    /// Blocks the caller: for shutdown and tests, never the daemon's loop while it runs.
    pub fn stop(mut self, limit: Duration) -> bool {
        let _ = self.inbox.send(Inbox::Stop);
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let deadline = Instant::now() + limit;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                log::warn!("media: the engine did not stop within {limit:?}");
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = thread.join();
        true
    }
}

impl Drop for MediaEngine {
    /// The thread tears the call down by itself; nothing waits for it here.
    fn drop(&mut self) {
        let _ = self.inbox.send(Inbox::Stop);
    }
}

/// The engine's thread: one message at a time, and a tick every second.
fn run(
    mut engine: Engine,
    inbox: &Receiver<Inbox>,
    queued: &AtomicUsize,
    wedge_after: Option<Duration>,
) {
    let started = Instant::now();
    let mut next_tick = started + TICK;
    loop {
        if wedge_after.is_some_and(|after| started.elapsed() >= after) {
            log::warn!("test hook {WEDGE_VAR}: the media engine stops answering");
            std::thread::sleep(WEDGED_FOR);
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(wait) {
            Ok(Inbox::Command(command)) => {
                queued.fetch_sub(1, Ordering::SeqCst);
                engine.handle(command);
            }
            Ok(Inbox::Answered { serial }) => engine.on_answered(serial),
            Ok(Inbox::Detached { serial }) => engine.on_detached(serial),
            Ok(Inbox::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            engine.tick(now);
            next_tick = now + TICK;
        }
    }
    // Dropping the engine drops the call: its pipeline goes to NULL.
    drop(engine);
    log::debug!("media engine stopped");
}
