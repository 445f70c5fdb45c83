//! ICE servers: the STUN and TURN servers from the config, plus the TURN servers the homeserver
//! hands out (`GET /_matrix/client/v3/voip/turnServer`), whose credentials expire and are fetched
//! again before they do. The media engine is told the combined set whenever it changes; peer
//! connections made after that use it, those already up keep what they started with.
//!
//! A homeserver without TURN is normal (Synapse answers `{}`, others 404): calls go on without,
//! and it is asked again only rarely.

use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::backoff::Backoff;
use super::media::MediaCommand;
use super::status::IceStatus;
use super::{FailureKind, MatrixCommand, MatrixFailure, Output, Outputs};
use crate::config::Secret;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Stun,
    Turn,
    Turns,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Stun => "stun",
            Scheme::Turn => "turn",
            Scheme::Turns => "turns",
        }
    }
}

/// A STUN or TURN server URI (RFC 7064 / RFC 7065): `stun:host[:port]`,
/// `turn:host[:port][?transport=udp|tcp]`, `turns:...`. Credentials never go in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct IceUri {
    pub scheme: Scheme,
    /// A host name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
    /// `udp` or `tcp`, for TURN.
    pub transport: Option<String>,
}

impl IceUri {
    pub fn parse(text: &str) -> Result<IceUri, String> {
        let (scheme, rest) = text
            .split_once(':')
            .ok_or("not a STUN or TURN URI: expected stun:HOST[:PORT] or turn:HOST[:PORT]")?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => Scheme::Stun,
            "turn" => Scheme::Turn,
            "turns" => Scheme::Turns,
            "stuns" => return Err("stuns: (STUN over TLS) is not supported; use stun:".into()),
            other => {
                return Err(format!(
                    "the scheme must be stun, turn or turns, not {other}:"
                ));
            }
        };
        // GStreamer's spelling (stun://host) is accepted too.
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err(
                "credentials do not go in the URI: set turn_username and turn_password_file".into(),
            );
        }
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or("an IPv6 address must be closed with ]")?;
            if addr.is_empty()
                || !addr
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || ":.".contains(c))
            {
                return Err(format!("`[{addr}]` is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or("expected :PORT after the address")?,
                ),
            };
            (format!("[{addr}]"), port)
        } else {
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err("the URI has no host".into());
            }
            if !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
            {
                return Err(format!("`{host}` is not a host name or address"));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(format!("`{p}` is not a port (1 to 65535)")),
                Ok(p) => Some(p),
            },
        };
        let transport = match query {
            None | Some("") => None,
            Some(_) if scheme == Scheme::Stun => {
                return Err("a STUN URI takes no ?query".into());
            }
            Some(q) => match q.split_once('=') {
                Some(("transport", t)) if t.eq_ignore_ascii_case("udp") => Some("udp".to_owned()),
                Some(("transport", t)) if t.eq_ignore_ascii_case("tcp") => Some("tcp".to_owned()),
                Some(("transport", t)) => {
                    return Err(format!("transport must be udp or tcp, not `{t}`"));
                }
                _ => {
                    return Err(format!(
                        "`?{q}`: the only query allowed is ?transport=udp|tcp"
                    ));
                }
            },
        };
        Ok(IceUri {
            scheme,
            host,
            port,
            transport,
        })
    }

    fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The form webrtcbin takes: `stun://host:port`, or
    /// `turn(s)://user:password@host:port?transport=...` with the credentials percent-encoded
    /// (webrtcbin 1.22 decodes them; a `:` in Synapse's `timestamp:@user:server` usernames would
    /// otherwise end the username).
    pub fn webrtcbin(&self, credentials: Option<(&str, &str)>) -> String {
        let auth = credentials
            .map(|(user, pass)| format!("{}:{}@", percent_encode(user), percent_encode(pass)))
            .unwrap_or_default();
        let query = self
            .transport
            .as_deref()
            .map(|t| format!("?transport={t}"))
            .unwrap_or_default();
        format!(
            "{}://{auth}{}{query}",
            self.scheme.as_str(),
            self.host_port()
        )
    }
}

impl TryFrom<String> for IceUri {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        IceUri::parse(&s)
    }
}

/// The URI as the Matrix spec writes it, without credentials: what status shows.
impl fmt::Display for IceUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme.as_str(), self.host_port())?;
        if let Some(t) = &self.transport {
            write!(f, "?transport={t}")?;
        }
        Ok(())
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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
    /// What the media engine was last told (webrtcbin forms), STUN then TURN.
    applied: (Vec<String>, Vec<String>),
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
            applied: (Vec::new(), Vec::new()),
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
            out.push_back(Output::Media(MediaCommand::SetIceServers {
                stun: servers.0,
                turn: servers.1,
            }));
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

    /// The combined servers in webrtcbin's form: the config's first, then the homeserver's.
    fn servers(&self) -> (Vec<String>, Vec<String>) {
        let s = &self.settings;
        let mut stun: Vec<String> = s.stun.iter().map(|u| u.webrtcbin(None)).collect();
        let mut turn: Vec<String> = Vec::new();
        let password = s.turn_password.as_ref().map_or("", |p| p.expose());
        for u in &s.turn {
            turn.push(u.webrtcbin(Some((&s.turn_username, password))));
        }
        if let Some(o) = &self.offered {
            stun.extend(o.stun.iter().map(|u| u.webrtcbin(None)));
            for u in &o.turn {
                turn.push(u.webrtcbin(Some((&o.username, o.password.expose()))));
            }
        }
        dedup(&mut stun);
        dedup(&mut turn);
        (stun, turn)
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

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_in_the_matrix_and_gstreamer_spellings() {
        let u = IceUri::parse("turn:turn.example.org:3478?transport=udp").unwrap();
        assert_eq!(u.scheme, Scheme::Turn);
        assert_eq!(u.host, "turn.example.org");
        assert_eq!(u.port, Some(3478));
        assert_eq!(u.transport.as_deref(), Some("udp"));
        assert_eq!(u.to_string(), "turn:turn.example.org:3478?transport=udp");
        let s = IceUri::parse("stun://stun.example.org").unwrap();
        assert_eq!((s.scheme, s.port), (Scheme::Stun, None));
        assert_eq!(s.webrtcbin(None), "stun://stun.example.org");
        let v6 = IceUri::parse("turns:[2001:db8::1]:5349").unwrap();
        assert_eq!(v6.host, "[2001:db8::1]");
        assert_eq!(v6.to_string(), "turns:[2001:db8::1]:5349");
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (uri, says) in [
            ("http://example.org", "scheme must be stun, turn or turns"),
            ("stun:", "no host"),
            ("turn:host:99999", "not a port"),
            ("turn:host:0", "not a port"),
            ("turn:u:p@host", "credentials do not go in the URI"),
            ("turn:host?transport=sctp", "udp or tcp"),
            ("turn:host?foo=bar", "only query"),
            ("stun:host?transport=udp", "no ?query"),
            ("stuns:host", "not supported"),
            ("turn:bad host", "not a host"),
            ("example.org", "not a STUN or TURN URI"),
        ] {
            let e = IceUri::parse(uri).unwrap_err();
            assert!(e.contains(says), "{uri}: {e}");
        }
    }

    #[test]
    fn credentials_are_percent_encoded_for_webrtcbin() {
        let u = IceUri::parse("turn:turn.example.org:3478?transport=tcp").unwrap();
        assert_eq!(
            u.webrtcbin(Some(("1759000000:@room:localhost", "a+b/c="))),
            "turn://1759000000%3A%40room%3Alocalhost:a%2Bb%2Fc%3D@turn.example.org:3478?transport=tcp"
        );
    }
}
