//! STUN and TURN servers as values: the URIs the config and the homeserver give (RFC 7064 /
//! RFC 7065, credentials never in them), and a server with the credentials to use it, as the
//! media engine is handed it. The media layer writes webrtcbin's URI forms from these.

use std::fmt;

use serde::Deserialize;

use crate::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Stun,
    Turn,
    Turns,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
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

    /// `host:port`, or `host` when no port is given.
    pub fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
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

/// A server for the media engine's peer connections: STUN, or TURN with the credentials to
/// use it. Never log one whole: the `Debug` of its password is redacted, but the media engine's
/// URI forms are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    pub uri: IceUri,
    /// For TURN: the username and password.
    pub credentials: Option<(String, Secret)>,
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
        assert_eq!(s.to_string(), "stun:stun.example.org");
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
}
