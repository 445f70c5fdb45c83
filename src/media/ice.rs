//! The core's ICE servers in webrtcbin's forms: `stun://host:port` and
//! `turn(s)://user:password@host:port?transport=...`, credentials percent-encoded (webrtcbin 1.22
//! decodes them; a `:` in Synapse's `timestamp:@user:server` usernames would otherwise end the
//! username).

use gst::prelude::*;
use roomd_core::ice_uri::{IceServer, IceUri};
use roomd_core::media::PeerId;

use crate::percent::encode_userinfo;

/// `uri` as webrtcbin takes it, with `credentials` (username, password) for TURN.
pub fn webrtcbin_uri(uri: &IceUri, credentials: Option<(&str, &str)>) -> String {
    let auth = credentials
        .map(|(user, pass)| format!("{}:{}@", encode_userinfo(user), encode_userinfo(pass)))
        .unwrap_or_default();
    let query = uri
        .transport
        .as_deref()
        .map(|t| format!("?transport={t}"))
        .unwrap_or_default();
    format!("{}://{auth}{}{query}", uri.scheme.as_str(), uri.host_port())
}

/// STUN and TURN servers for new peer connections. The TURN entries hold passwords: never log
/// them; `shown` is the form without credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IceServers {
    stun: Vec<String>,
    /// (webrtcbin's form, the form shown).
    turn: Vec<(String, String)>,
    shown: Vec<String>,
}

impl IceServers {
    pub fn new(servers: &[IceServer]) -> Self {
        let mut ice = IceServers::default();
        for server in servers {
            let shown = server.uri.to_string();
            match &server.credentials {
                Some((user, password)) => {
                    let uri = webrtcbin_uri(&server.uri, Some((user, password.expose())));
                    ice.turn.push((uri, shown.clone()));
                }
                None => ice.stun.push(webrtcbin_uri(&server.uri, None)),
            }
            ice.shown.push(shown);
        }
        ice
    }

    /// The servers with the credentials left out, for status.
    pub fn without_credentials(&self) -> Vec<String> {
        self.shown.clone()
    }

    /// Sets the servers on a webrtcbin before it makes its ICE streams. webrtcbin takes one
    /// STUN server; the first TURN server goes in `turn-server` (so it can be read back), the
    /// others through `add-turn-server`.
    pub fn apply(&self, webrtc: &gst::Element, peer: &PeerId) {
        if let Some(stun) = self.stun.first() {
            webrtc.set_property("stun-server", stun);
        }
        for (i, (turn, shown)) in self.turn.iter().enumerate() {
            let taken = if i == 0 {
                webrtc.set_property("turn-server", turn);
                webrtc.property::<Option<String>>("turn-server").is_some()
            } else {
                webrtc.emit_by_name::<bool>("add-turn-server", &[turn])
            };
            if !taken {
                log::warn!("media: {peer}: webrtcbin refused the TURN server {shown}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roomd_core::Secret;

    #[test]
    fn credentials_are_percent_encoded_for_webrtcbin() {
        let u = IceUri::parse("turn:turn.example.org:3478?transport=tcp").unwrap();
        assert_eq!(
            webrtcbin_uri(&u, Some(("1759000000:@room:localhost", "a+b/c=~x"))),
            "turn://1759000000%3A%40room%3Alocalhost:a%2Bb%2Fc%3D~x@turn.example.org:3478?transport=tcp"
        );
        let s = IceUri::parse("stun:stun.example.org").unwrap();
        assert_eq!(webrtcbin_uri(&s, None), "stun://stun.example.org");
    }

    #[test]
    fn status_shows_no_credentials() {
        let turn = IceServer {
            uri: IceUri::parse("turns:[2001:db8::1]:5349").unwrap(),
            credentials: Some(("room".to_owned(), Secret::new("hunter2".to_owned()))),
        };
        let ice = IceServers::new(&[turn]);
        assert_eq!(ice.without_credentials(), ["turns:[2001:db8::1]:5349"]);
        assert_eq!(ice.turn[0].0, "turns://room:hunter2@[2001:db8::1]:5349");
    }
}
