//! Whether the media engine still answers. It runs beside the daemon's loop, so the loop cannot
//! see it hang; instead the core asks it for a report every [`REPORT_PERIOD`], through the same
//! queue as every other media command. A report that does not come back means the engine is
//! stuck on something (a wedged pipeline, a webrtcbin that never returns), not merely idle: after
//! [`ANSWER_LIMIT`] the status says so and the watchdog is withheld, so systemd restarts roomd.
//! The reports are also what `roomd ctl status` shows of the engine, with their age.

use std::time::{Duration, Instant};

use super::media::{EngineReport, MediaCommand};
use super::status::MediaStatus;
use super::{Output, Outputs};

/// How often the engine is asked for a report (its statistics are about this old).
pub const REPORT_PERIOD: Duration = Duration::from_secs(1);
/// How long a report request may stay unanswered before the engine counts as not answering.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Engine {
    /// The daemon is starting it (GStreamer and the encoder probe); not yet supervised.
    Starting,
    Running {
        encoder: String,
    },
    Unavailable {
        reason: String,
    },
}

#[derive(Debug)]
pub struct MediaHealth {
    engine: Engine,
    /// The last request ID handed out.
    requests: u64,
    /// The request in flight and when it went out: one at a time, so a stuck engine's queue
    /// does not fill with them.
    waiting: Option<(u64, Instant)>,
    /// When the next request goes out, while none is in flight.
    next_request: Option<Instant>,
    /// The last report and when it came.
    latest: Option<(EngineReport, Instant)>,
    /// The engine has been declared not answering, until it answers again.
    silent: bool,
}

impl MediaHealth {
    pub fn new() -> Self {
        MediaHealth {
            engine: Engine::Starting,
            requests: 0,
            waiting: None,
            next_request: None,
            latest: None,
            silent: false,
        }
    }

    /// The engine is up; it is asked for its first report at once.
    pub fn on_started(&mut self, now: Instant, encoder: String) {
        self.engine = Engine::Running { encoder };
        self.waiting = None;
        self.next_request = Some(now);
    }

    /// The engine could not start: nothing runs, so nothing is supervised.
    pub fn on_unavailable(&mut self, reason: String) {
        self.engine = Engine::Unavailable { reason };
        self.waiting = None;
        self.next_request = None;
        self.silent = false;
    }

    pub fn unavailable(&self) -> bool {
        matches!(self.engine, Engine::Unavailable { .. })
    }

    pub fn on_report(&mut self, now: Instant, request: u64, report: EngineReport) {
        if let Some((waiting, sent)) = self.waiting
            && request >= waiting
        {
            self.waiting = None;
            // Every period from the last request, however long the answer took.
            self.next_request = Some((sent + REPORT_PERIOD).max(now));
            if self.silent {
                log::warn!(
                    "the media engine answers again, after {}s",
                    (now - sent).as_secs()
                );
                self.silent = false;
            }
        }
        self.latest = Some((report, now));
    }

    /// Asks for a report when one is due; declares the engine not answering once a request is
    /// overdue.
    pub fn step(&mut self, now: Instant, out: &mut Outputs) {
        if !matches!(self.engine, Engine::Running { .. }) {
            return;
        }
        if self.waiting.is_none() && self.next_request.is_some_and(|at| now >= at) {
            self.requests += 1;
            self.waiting = Some((self.requests, now));
            self.next_request = None;
            out.push_back(Output::Media(MediaCommand::Report {
                request: self.requests,
            }));
        }
        if let Some((_, sent)) = self.waiting
            && now >= sent + ANSWER_LIMIT
            && !self.silent
        {
            self.silent = true;
            log::error!(
                "the media engine has not answered for {}s: its pipeline is wedged",
                (now - sent).as_secs()
            );
        }
    }

    /// Whether the engine has left a request unanswered for longer than [`ANSWER_LIMIT`].
    pub fn not_answering(&self) -> bool {
        self.silent
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        match self.waiting {
            Some((_, sent)) if !self.silent => Some(sent + ANSWER_LIMIT),
            Some(_) => None,
            None => self.next_request,
        }
    }

    /// The engine's part of `roomd ctl status`: its last report, how old that is, and whether
    /// it still answers.
    pub fn status(&self, now: Instant) -> MediaStatus {
        let mut status = MediaStatus {
            encoder: None,
            unavailable: None,
            mic_muted: false,
            camera_off: false,
            video_encoders: 0,
            peers: Vec::new(),
            ice_servers: Vec::new(),
            report_age_ms: None,
            not_answering_s: None,
        };
        match &self.engine {
            Engine::Starting => status.unavailable = Some("starting".to_owned()),
            Engine::Unavailable { reason } => status.unavailable = Some(reason.clone()),
            Engine::Running { encoder } => status.encoder = Some(encoder.clone()),
        }
        if let Some((report, at)) = &self.latest {
            status.encoder = Some(report.encoder.clone());
            status.mic_muted = report.mic_muted;
            status.camera_off = report.camera_off;
            status.video_encoders = report.video_encoders;
            status.peers = report.peers.clone();
            status.ice_servers = report.ice_servers.clone();
            status.report_age_ms = Some(now.saturating_duration_since(*at).as_millis() as u64);
        }
        if self.silent
            && let Some((_, sent)) = self.waiting
        {
            status.not_answering_s = Some(now.saturating_duration_since(sent).as_secs());
        }
        status
    }
}

impl Default for MediaHealth {
    fn default() -> Self {
        Self::new()
    }
}
