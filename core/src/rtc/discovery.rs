//! Which LiveKit transport (an lk-jwt-service) the device publishes on in Element Call sessions:
//! the homeserver's RTC transports (MSC4143 `/rtc/transports`), else `.well-known`'s
//! `org.matrix.msc4143.rtc_foci`, else the config's `[calls] livekit_service_url`. Asked once
//! logged in and hourly after; a failed request backs off and keeps what was found before.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backoff::Backoff;
use crate::{FailureKind, MatrixCommand, MatrixFailure, Output, Outputs};

/// How often a found (or missing) transport is asked for again: deployments change.
const ASK_AGAIN: Duration = Duration::from_secs(3600);
/// A request not answered within this counts as lost, and another may start at the next step
/// (no wakeup of its own: a logged-in core is stepped at least once per sync).
const ANSWER_BUDGET: Duration = Duration::from_secs(120);

/// Where the transport came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Homeserver,
    WellKnown,
    Config,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Homeserver => "from the homeserver",
            Source::WellKnown => "from .well-known",
            Source::Config => "from the config",
        }
    }
}

/// A LiveKit transport: its token service (lk-jwt-service), as memberships name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub service_url: String,
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asking {
    Homeserver,
    WellKnown,
}

#[derive(Debug)]
pub struct Discovery {
    configured: Option<String>,
    found: Option<Transport>,
    /// What is being asked, and when its answer counts as lost.
    asking: Option<(Asking, Instant)>,
    /// When to ask next; `None`: as soon as logged in.
    next_ask: Option<Instant>,
    backoff: Backoff,
    /// The last thing learnt, for status.
    heard: String,
}

/// The first `livekit` transport with a service URL among `transports` (the JSON objects of
/// `rtc_transports` or `rtc_foci`); others, and malformed ones, are skipped.
fn first_livekit(transports: &[Value]) -> Option<String> {
    transports.iter().find_map(|t| {
        (t["type"] == "livekit")
            .then(|| t["livekit_service_url"].as_str())
            .flatten()
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .map(str::to_owned)
    })
}

impl Discovery {
    pub fn new(configured: Option<String>) -> Self {
        Discovery {
            found: configured.clone().map(|service_url| Transport {
                service_url,
                source: Source::Config,
            }),
            configured,
            asking: None,
            next_ask: None,
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(900)),
            heard: "not asked yet".to_owned(),
        }
    }

    /// The transport to publish on, if any is known.
    pub fn transport(&self) -> Option<&Transport> {
        self.found.as_ref()
    }

    /// Asks the homeserver when due, while `logged_in`.
    pub fn step(&mut self, now: Instant, logged_in: bool, out: &mut Outputs) {
        if self.asking.is_some_and(|(_, deadline)| now >= deadline) {
            log::warn!("the RTC transport request got no answer; asking again");
            self.asking = None;
        }
        if logged_in && self.asking.is_none() && self.next_ask.is_none_or(|at| now >= at) {
            self.ask(now, Asking::Homeserver, out);
        }
    }

    fn ask(&mut self, now: Instant, what: Asking, out: &mut Outputs) {
        self.asking = Some((what, now + ANSWER_BUDGET));
        out.push_back(Output::Matrix(match what {
            Asking::Homeserver => MatrixCommand::FetchRtcTransports,
            Asking::WellKnown => MatrixCommand::FetchWellKnownRtcFoci,
        }));
    }

    /// The homeserver's `rtc_transports`.
    pub fn on_transports(
        &mut self,
        now: Instant,
        result: Result<Vec<Value>, MatrixFailure>,
        out: &mut Outputs,
    ) {
        if !matches!(self.asking, Some((Asking::Homeserver, _))) {
            return log::debug!("an RTC transport answer nobody asked for");
        }
        self.asking = None;
        match result {
            Ok(transports) => match first_livekit(&transports) {
                Some(url) => self.settle(now, url, Source::Homeserver),
                None => {
                    log::debug!("the homeserver lists no LiveKit transport; trying .well-known");
                    self.ask(now, Asking::WellKnown, out);
                }
            },
            Err(f) if matches!(f.kind, FailureKind::NotFound | FailureKind::Unsupported) => {
                log::debug!(
                    "no RTC transports endpoint ({}); trying .well-known",
                    f.message
                );
                self.ask(now, Asking::WellKnown, out);
            }
            Err(f) => self.failed(now, f),
        }
    }

    /// `.well-known/matrix/client`'s `org.matrix.msc4143.rtc_foci` (empty when absent).
    pub fn on_well_known(&mut self, now: Instant, result: Result<Vec<Value>, MatrixFailure>) {
        if !matches!(self.asking, Some((Asking::WellKnown, _))) {
            return log::debug!("a .well-known answer nobody asked for");
        }
        self.asking = None;
        match result.map(|foci| first_livekit(&foci)) {
            Ok(Some(url)) => self.settle(now, url, Source::WellKnown),
            Ok(None) => {
                self.backoff.succeed();
                self.next_ask = Some(now + ASK_AGAIN);
                self.heard = "the homeserver offers no LiveKit transport".to_owned();
                self.fall_back_to_config();
            }
            Err(f) if f.kind == FailureKind::NotFound => {
                self.backoff.succeed();
                self.next_ask = Some(now + ASK_AGAIN);
                self.heard = "the homeserver offers no LiveKit transport".to_owned();
                self.fall_back_to_config();
            }
            Err(f) => self.failed(now, f),
        }
    }

    fn settle(&mut self, now: Instant, service_url: String, source: Source) {
        self.backoff.succeed();
        self.next_ask = Some(now + ASK_AGAIN);
        self.heard = format!("found {}", source.describe());
        let transport = Transport {
            service_url,
            source,
        };
        if self.found.as_ref() != Some(&transport) {
            log::info!(
                "LiveKit transport: {} ({})",
                transport.service_url,
                source.describe()
            );
        }
        self.found = Some(transport);
    }

    fn fall_back_to_config(&mut self) {
        let configured = self.configured.clone().map(|service_url| Transport {
            service_url,
            source: Source::Config,
        });
        if configured.is_none() && self.found.is_some() {
            log::warn!("the homeserver no longer offers a LiveKit transport");
        }
        self.found = configured;
    }

    /// A failed request: keep what was found, ask again after a pause.
    fn failed(&mut self, now: Instant, failure: MatrixFailure) {
        let wait = self.backoff.fail();
        log::warn!(
            "could not learn the LiveKit transport: {}; asking again in {}s",
            failure.message,
            wait.as_secs()
        );
        self.heard = format!("failed ({})", failure.message);
        self.next_ask = Some(now + wait);
    }

    pub fn next_wakeup(&self, logged_in: bool) -> Option<Instant> {
        // While asking, the answer brings the core back; while logged out, the login.
        match self.asking {
            None if logged_in => self.next_ask,
            _ => None,
        }
    }

    /// For status: the transport and where it came from, or why there is none.
    pub fn describe(&self) -> String {
        match &self.found {
            Some(t) => format!(
                "{} ({}; {})",
                t.service_url,
                t.source.describe(),
                self.heard
            ),
            None => format!("none ({})", self.heard),
        }
    }
}
