//! The channels from the media engine to the daemon's loop, and what happens when they fill.
//!
//! - Events the core must not miss (connection states, our descriptions and candidates, the
//!   microphone's and camera's confirmations, errors, refusals) go through one bounded channel,
//!   in order, [`EVENT_QUEUE`] deep. When it is full, the thread sending (a GStreamer streaming
//!   thread, a webrtcbin's thread, the bus thread or the engine's) waits for room: dropping one
//!   would leave a call half set up, or an LED wrong. Waiting cannot deadlock, because the loop
//!   that empties the channel never waits on the engine or on GStreamer, so it always gets round
//!   to it; meanwhile the backpressure slows the media, the honest result of a loop that cannot
//!   keep up (and one wedged for good stops feeding the watchdog). The queue is far deeper than
//!   a call ever fills between two turns of the loop: a peer gathers a few dozen candidates.
//! - Reports (the engine's answer to `MediaCommand::Report`: settings and statistics) only
//!   matter as the latest, so they go through a single slot that a newer one overwrites. It is
//!   never full and never waits. The core asks for one report at a time, so none it waits for is
//!   overwritten unseen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, watch};

use roomd_core::media::{EngineReport, MediaEvent};

/// How many events may wait for the loop before their senders wait too.
pub const EVENT_QUEUE: usize = 1024;

/// The engine's answer to one report request.
#[derive(Debug, Clone)]
pub struct Report {
    pub request: u64,
    pub report: EngineReport,
}

/// The engine's end: cloned into every GStreamer callback that reports something.
#[derive(Clone)]
pub struct EventSender {
    events: mpsc::Sender<MediaEvent>,
    reports: Arc<watch::Sender<Option<Report>>>,
    /// A full queue has been logged, until the next event goes straight in.
    full_logged: Arc<AtomicBool>,
}

/// The loop's end.
pub struct EventReceiver {
    pub events: mpsc::Receiver<MediaEvent>,
    pub reports: watch::Receiver<Option<Report>>,
}

pub fn event_channels() -> (EventSender, EventReceiver) {
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (reports_tx, reports) = watch::channel(None);
    (
        EventSender {
            events: events_tx,
            reports: Arc::new(reports_tx),
            full_logged: Arc::default(),
        },
        EventReceiver { events, reports },
    )
}

impl EventSender {
    /// Sends an event the core must see; waits for room when the queue is full. Called from
    /// GStreamer's threads and the engine's, never from an async task.
    pub fn send(&self, event: MediaEvent) {
        let event = match self.events.try_send(event) {
            Ok(()) => {
                self.full_logged.store(false, Ordering::Relaxed);
                return;
            }
            Err(TrySendError::Closed(_)) => return, // the loop has stopped
            Err(TrySendError::Full(event)) => event,
        };
        if !self.full_logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "media: {EVENT_QUEUE} events are waiting for the daemon's loop; holding the \
                 media thread until there is room"
            );
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Waiting here would block a runtime's worker; no GStreamer thread is one.
            log::error!("media: an event was dropped: sent from an async task into a full queue");
            return;
        }
        let _ = self.events.blocking_send(event);
    }

    /// Replaces the latest report; never waits.
    pub fn report(&self, request: u64, report: EngineReport) {
        self.reports.send_replace(Some(Report { request, report }));
    }
}

impl Report {
    /// The report as the core takes it.
    pub fn into_event(self) -> MediaEvent {
        MediaEvent::Report {
            request: self.request,
            report: Box::new(self.report),
        }
    }
}

impl EventReceiver {
    /// The latest report, if one came since the last call (for polling; an async loop awaits
    /// `reports.changed()` and reads `reports` instead).
    pub fn take_report(&mut self) -> Option<MediaEvent> {
        if !self.reports.has_changed().unwrap_or(false) {
            return None;
        }
        self.reports
            .borrow_and_update()
            .clone()
            .map(Report::into_event)
    }
}
