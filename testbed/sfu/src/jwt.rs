//! LiveKit access tokens: HS256 JWTs whose claims are LiveKit's (`livekit/protocol`
//! `auth/grants.go`): `iss` the API key, `sub` the identity, `video` the grant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Clock skew tolerated on `nbf` and `exp`, in seconds.
const LEEWAY_SECS: i64 = 10;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VideoGrant {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room_join: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub room: String,
    /// Absent means allowed, as in LiveKit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub video: VideoGrant,
}

impl Claims {
    /// A room-join token for `identity` in `room`, valid for `ttl_secs` from now, with
    /// publish, subscribe and data allowed (what lk-jwt-service issues).
    pub fn join(api_key: &str, identity: &str, room: &str, ttl_secs: i64) -> Claims {
        let now = now_secs();
        Claims {
            iss: api_key.to_owned(),
            sub: identity.to_owned(),
            nbf: Some(now),
            iat: Some(now),
            exp: now + ttl_secs,
            name: String::new(),
            video: VideoGrant {
                room_join: true,
                room: room.to_owned(),
                can_publish: Some(true),
                can_subscribe: Some(true),
                can_publish_data: None,
                can_update_own_metadata: Some(true),
            },
        }
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Signs `claims` with HS256.
pub fn encode(claims: &Claims, secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialise"));
    let signing_input = format!("{header}.{payload}");
    let sig = mac(secret, signing_input.as_bytes())
        .finalize()
        .into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn mac(secret: &str, data: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    m.update(data);
    m
}

/// Why a token was refused (the 401's body).
#[derive(Debug, Clone, PartialEq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Verifies an HS256 token made with `secret` for `api_key`, valid now, that grants joining a
/// named room.
pub fn verify_join(token: &str, api_key: &str, secret: &str) -> Result<Claims, Refused> {
    let refuse = |why: &str| Refused(why.to_owned());
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse("not a JWT"));
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refuse("bad JWT header"))?;
    if header["alg"] != "HS256" {
        return Err(refuse("JWT algorithm is not HS256"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| refuse("bad JWT signature encoding"))?;
    mac(secret, format!("{h}.{p}").as_bytes())
        .verify_slice(&sig)
        .map_err(|_| refuse("invalid token signature"))?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refuse("bad JWT claims"))?;
    let now = now_secs();
    if claims.iss != api_key {
        return Err(refuse("unknown API key"));
    }
    if claims.exp + LEEWAY_SECS < now {
        return Err(refuse("token expired"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
        return Err(refuse("token not valid yet"));
    }
    if !claims.video.room_join || claims.video.room.is_empty() {
        return Err(refuse("token does not grant joining a room"));
    }
    if claims.sub.is_empty() {
        return Err(refuse("token has no identity"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let c = Claims::join("key", "@a:hs:DEV", "room1", 60);
        let t = encode(&c, "secret");
        assert_eq!(verify_join(&t, "key", "secret").unwrap(), c);
        assert!(verify_join(&t, "key", "other").is_err());
        assert!(verify_join(&t, "other", "secret").is_err());
        let mut expired = c.clone();
        expired.exp = now_secs() - 3600;
        assert!(verify_join(&encode(&expired, "secret"), "key", "secret").is_err());
        let mut no_join = c.clone();
        no_join.video.room_join = false;
        assert!(verify_join(&encode(&no_join, "secret"), "key", "secret").is_err());
        let mut no_room = c;
        no_room.video.room.clear();
        assert!(verify_join(&encode(&no_room, "secret"), "key", "secret").is_err());
        assert!(verify_join("a.b", "key", "secret").is_err());
    }

    #[test]
    fn claim_names_are_livekits() {
        let v = serde_json::to_value(Claims::join("k", "id", "r", 60)).unwrap();
        assert_eq!(v["video"]["roomJoin"], true);
        assert_eq!(v["video"]["room"], "r");
        assert_eq!(v["video"]["canPublish"], true);
        assert_eq!(v["sub"], "id");
        assert_eq!(v["iss"], "k");
    }
}
