//! ICE servers: the STUN and TURN servers from the config, plus the TURN servers the homeserver
//! hands out (`GET /_matrix/client/v3/voip/turnServer`), whose credentials expire and are fetched
//! again before they do. The media engine is told the combined set whenever it changes; peer
//! connections made after that use it, those already up keep what they started with.
//!
//! A homeserver without TURN is normal (Synapse answers `{}`, others 404): calls go on without,
//! and it is asked again only rarely.

use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::media::MediaCommand;
use super::status::IceStatus;
use super::{FailureKind, MatrixCommand, MatrixFailure, Output, Outputs};
use crate::Secret;
use crate::ice_uri::{IceServer, IceUri, Scheme};

/// The homeserver's credentials are fetched again at this share of their lifetime...
const REFRESH_AT: f64 = 0.9;
/// ...but never sooner than this after the last answer (a ttl of 0 must not make a busy loop)...
const MIN_REFRESH: Duration = Duration::from_secs(60);
/// ...nor later than this (the homeserver's TURN setup may change).
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
/// Credentials are trusted for at most this long, whatever ttl the homeserver gives (a hostile
/// or broken ttl of u64::MAX seconds would overflow the clock).
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often a homeserver that offers no TURN is asked again.
const NO_TURN_RETRY: Duration = Duration::from_secs(3600);
/// A fetch not answered within this is taken as lost, and another may start at the next step
/// (no wakeup of its own: a logged-in core is stepped at least once per sync).
const FETCH_BUDGET: Duration = Duration::from_secs(120);

/// The ICE servers from the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IceSettings {
    pub stun: Vec<IceUri>,
    pub turn: Vec<IceUri>,
    pub turn_username: String,
    /// Read from its file at start; `None` when no TURN server is configured.
    pub turn_password: Option<Secret>,
}

/// The homeserver's answer to [`MatrixCommand::FetchTurnServers`]. An empty `uris` means the
/// homeserver offers no TURN (Synapse's `{}`).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnServers {
    pub uris: Vec<String>,
    pub username: String,
    pub password: Secret,
    pub ttl_s: u64,
}

impl TurnServers {
    pub fn none() -> Self {
        TurnServers {
            uris: Vec::new(),
            username: String::new(),
            password: Secret::new(String::new()),
            ttl_s: 0,
        }
    }
}

/// The homeserver's TURN servers, while their credentials are good.
#[derive(Debug)]
struct Offered {
    stun: Vec<IceUri>,
    turn: Vec<IceUri>,
    username: String,
    password: Secret,
    expires: Instant,
}

/// What the homeserver last said, for status.
#[derive(Debug, Clone)]
enum Heard {
    NotAsked,
    Offered(usize),
    NoTurn(String),
    Failed(String),
}

#[derive(Debug)]
pub struct Ice {
    settings: IceSettings,
    offered: Option<Offered>,
    heard: Heard,
    /// When to ask the homeserver next; `None`: as soon as logged in.
    next_fetch: Option<Instant>,
    /// A fetch is out, and counts as lost after this.
    in_flight: Option<Instant>,
    backoff: Backoff,
    logged_in: bool,
    /// What the media engine was last told, STUN then TURN.
    applied: Vec<IceServer>,
}

impl Ice {
    pub fn new(settings: IceSettings) -> Self {
        Ice {
            settings,
            offered: None,
            heard: Heard::NotAsked,
            next_fetch: None,
            in_flight: None,
            backoff: Backoff::new(Duration::from_secs(5), Duration::from_secs(900)),
            logged_in: false,
            applied: Vec::new(),
        }
    }

    /// Drops expired credentials, asks the homeserver when due (only while `logged_in`), and
    /// tells the media engine when the set of servers changed.
    pub fn step(&mut self, now: Instant, logged_in: bool, out: &mut Outputs) {
        self.logged_in = logged_in;
        if self.offered.as_ref().is_some_and(|o| now >= o.expires) {
            log::warn!("the homeserver's TURN credentials expired before they were renewed");
            self.offered = None;
        }
        if self.in_flight.is_some_and(|deadline| now >= deadline) {
            log::warn!("the TURN server request got no answer; asking again");
            self.in_flight = None;
        }
        if logged_in && self.in_flight.is_none() && self.next_fetch.is_none_or(|at| now >= at) {
            self.in_flight = Some(now + FETCH_BUDGET);
            out.push_back(Output::Matrix(MatrixCommand::FetchTurnServers));
        }
        let servers = self.servers();
        if servers != self.applied {
            log::info!("ICE servers for new calls: {}", self.status(now).servers());
            self.applied = servers.clone();
            out.push_back(Output::Media(MediaCommand::SetIceServers { servers }));
        }
    }

    pub fn on_answer(&mut self, now: Instant, result: Result<TurnServers, MatrixFailure>) {
        self.in_flight = None;
        match result {
            Ok(answer) => {
                self.backoff.succeed();
                let mut stun = Vec::new();
                let mut turn = Vec::new();
                for uri in &answer.uris {
                    match IceUri::parse(uri) {
                        Ok(u) if u.scheme == Scheme::Stun => stun.push(u),
                        Ok(u) => turn.push(u),
                        Err(why) => log::warn!("ignoring the homeserver's TURN URI {uri:?}: {why}"),
                    }
                }
                if turn.is_empty() && stun.is_empty() {
                    log::info!("the homeserver offers no TURN server; calls go without");
                    self.heard = Heard::NoTurn("offers none".into());
                    self.offered = None;
                    self.next_fetch = Some(now + NO_TURN_RETRY);
                    return;
                }
                let ttl = Duration::from_secs(answer.ttl_s).min(MAX_TTL);
                let refresh = ttl.mul_f64(REFRESH_AT).clamp(MIN_REFRESH, MAX_REFRESH);
                log::debug!(
                    "the homeserver offers {} TURN server(s) for {}s",
                    turn.len(),
                    answer.ttl_s
                );
                self.heard = Heard::Offered(turn.len());
                self.offered = Some(Offered {
                    stun,
                    turn,
                    username: answer.username,
                    password: answer.password,
                    expires: now + ttl,
                });
                self.next_fetch = Some(now + refresh);
            }
            Err(f) if matches!(f.kind, FailureKind::NotFound | FailureKind::Unsupported) => {
                log::info!(
                    "the homeserver has no TURN endpoint ({}); calls go without",
                    f.message
                );
                self.heard = Heard::NoTurn(f.message);
                self.next_fetch = Some(now + NO_TURN_RETRY);
            }
            Err(f) => {
                let wait = self.backoff.fail();
                log::warn!(
                    "could not get the homeserver's TURN servers: {}; retrying in {}s",
                    f.message,
                    wait.as_secs()
                );
                self.heard = Heard::Failed(f.message);
                self.next_fetch = Some(now + wait);
            }
        }
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        // While a fetch is out its answer brings the core back; while logged out, the login.
        let fetch = match self.in_flight {
            None if self.logged_in => self.next_fetch,
            _ => None,
        };
        [fetch, self.offered.as_ref().map(|o| o.expires)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The combined servers, STUN then TURN: the config's first, then the homeserver's.
    fn servers(&self) -> Vec<IceServer> {
        let s = &self.settings;
        let offered = self.offered.as_ref();
        let stun = s
            .stun
            .iter()
            .chain(offered.into_iter().flat_map(|o| &o.stun));
        let config_turn = s.turn.iter().map(|u| {
            let password = s
                .turn_password
                .clone()
                .unwrap_or(Secret::new(String::new()));
            (u, (s.turn_username.clone(), password))
        });
        let offered_turn = offered.into_iter().flat_map(|o| {
            o.turn
                .iter()
                .map(|u| (u, (o.username.clone(), o.password.clone())))
        });
        let mut servers: Vec<IceServer> = stun
            .map(|u| IceServer {
                uri: u.clone(),
                credentials: None,
            })
            .chain(
                config_turn
                    .chain(offered_turn)
                    .map(|(u, credentials)| IceServer {
                        uri: u.clone(),
                        credentials: Some(credentials),
                    }),
            )
            .collect();
        dedup(&mut servers);
        servers
    }

    /// The servers in use, without credentials.
    pub fn status(&self, now: Instant) -> IceStatus {
        let s = &self.settings;
        let mut stun: Vec<String> = s.stun.iter().map(ToString::to_string).collect();
        let mut turn: Vec<String> = s.turn.iter().map(ToString::to_string).collect();
        if let Some(o) = &self.offered {
            stun.extend(o.stun.iter().map(ToString::to_string));
            turn.extend(o.turn.iter().map(ToString::to_string));
        }
        dedup(&mut stun);
        dedup(&mut turn);
        let next = self
            .next_fetch
            .map(|at| at.saturating_duration_since(now).as_secs());
        let homeserver = match (&self.heard, next) {
            (_, _) if self.in_flight.is_some() => "asking".to_owned(),
            (Heard::NotAsked, _) => "not asked yet".to_owned(),
            (Heard::Offered(n), Some(next)) => {
                format!("{n} TURN server(s); renewed in {next}s")
            }
            (Heard::Offered(n), None) => format!("{n} TURN server(s)"),
            (Heard::NoTurn(why), Some(next)) => {
                format!("no TURN ({why}); asking again in {next}s")
            }
            (Heard::NoTurn(why), None) => format!("no TURN ({why})"),
            (Heard::Failed(why), Some(next)) => format!("failed ({why}); retrying in {next}s"),
            (Heard::Failed(why), None) => format!("failed ({why})"),
        };
        IceStatus {
            stun,
            turn,
            turn_expires_in_s: self
                .offered
                .as_ref()
                .map(|o| o.expires.saturating_duration_since(now).as_secs()),
            homeserver,
        }
    }
}

fn dedup<T: PartialEq + Clone>(v: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::with_capacity(v.len());
    v.retain(|x| {
        let new = !seen.contains(x);
        if new {
            seen.push(x.clone());
        }
        new
    });
}
