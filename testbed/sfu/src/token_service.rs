//! An lk-jwt-service double: Element Call's token service contract (`POST /sfu/get`, and the
//! newer `POST /get_token`), checking the Matrix OpenID token against the homeserver's
//! federation `openid/userinfo` endpoint and answering `{url, jwt}` with a LiveKit token for
//! the test SFU. Identities and room names are derived as lk-jwt-service derives them.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::jwt;

/// The MatrixRTC slot Element Call's calls use (`m.call` application, room scope).
pub const CALL_SLOT: &str = "m.call#ROOM";
const OPENID_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct TokenServiceConfig {
    /// What the service answers as `url`: the SFU's WebSocket URL.
    pub sfu_url: String,
    pub api_key: String,
    pub api_secret: String,
    /// The homeserver whose federation `openid/userinfo` checks OpenID tokens
    /// (`http://127.0.0.1:PORT`); may be set after start ([`TokenService::set_homeserver`]),
    /// since Synapse's config may need this service's URL first.
    pub homeserver: Option<String>,
    pub token_ttl_secs: i64,
}

impl TokenServiceConfig {
    /// Tokens for `sfu`, signed with its key.
    pub fn for_sfu(sfu: &crate::TestSfu) -> TokenServiceConfig {
        TokenServiceConfig {
            sfu_url: sfu.url(),
            api_key: sfu.config().api_key.clone(),
            api_secret: sfu.config().api_secret.clone(),
            homeserver: None,
            token_ttl_secs: 3600,
        }
    }
}

/// One token the service handed out.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// `/sfu/get` or `/get_token`.
    pub endpoint: String,
    /// The Matrix user the OpenID token resolved to.
    pub user_id: String,
    /// The LiveKit identity (`sub`).
    pub identity: String,
    /// The LiveKit room (`video.room`).
    pub livekit_room: String,
    /// The Matrix room it was asked for.
    pub matrix_room: String,
}

struct Shared {
    config: Mutex<TokenServiceConfig>,
    issued: Mutex<Vec<Issued>>,
}

/// A running token service on 127.0.0.1; dropping it stops it.
pub struct TokenService {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TokenService {
    pub fn start(config: TokenServiceConfig) -> anyhow::Result<TokenService> {
        let listener =
            TcpListener::bind("127.0.0.1:0").context("binding the token service's port")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            issued: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            // A browser's POST with a JSON body is preflighted with OPTIONS.
            .route("/sfu/get", post(sfu_get).options(preflight))
            .route("/get_token", post(get_token).options(preflight))
            .route("/healthz", get(|| async { StatusCode::OK }))
            .fallback(fallback)
            .with_state(shared.clone())
            .layer(axum::middleware::map_response(crate::server::cors));
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("test-token-service".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("a non-blocking listener");
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(TokenService {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Starts one for `sfu`, checking OpenID tokens with `homeserver` (if known yet).
    pub fn for_sfu(sfu: &crate::TestSfu, homeserver: Option<&str>) -> anyhow::Result<Self> {
        let mut config = TokenServiceConfig::for_sfu(sfu);
        config.homeserver = homeserver.map(str::to_owned);
        TokenService::start(config)
    }

    /// The service URL (`livekit_service_url` in MatrixRTC terms): `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_homeserver(&self, url: &str) {
        self.shared.config.lock().unwrap().homeserver = Some(url.to_owned());
    }

    /// Every token handed out so far.
    pub fn issued(&self) -> Vec<Issued> {
        self.shared.issued.lock().unwrap().clone()
    }

    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The LiveKit room for a Matrix room and slot: unpadded base64 of SHA-256 over the JSON array
/// `[room_id, slot_id]` (lk-jwt-service `LiveKitRoomAliasFor`).
pub fn livekit_room_alias(room_id: &str, slot_id: &str) -> String {
    hash_json(&json!([room_id, slot_id]))
}

/// The `/get_token` identity: unpadded base64 of SHA-256 over `[user_id, device_id, member_id]`.
pub fn hashed_identity(user_id: &str, device_id: &str, member_id: &str) -> String {
    hash_json(&json!([user_id, device_id, member_id]))
}

fn hash_json(v: &serde_json::Value) -> String {
    STANDARD_NO_PAD.encode(Sha256::digest(v.to_string().as_bytes()))
}

fn error(status: StatusCode, errcode: &str, msg: &str) -> Response {
    (
        status,
        axum::Json(json!({"errcode": errcode, "error": msg})),
    )
        .into_response()
}

fn fail(status: StatusCode, errcode: &str, msg: &str) -> Box<Response> {
    Box::new(error(status, errcode, msg))
}

async fn preflight() -> StatusCode {
    StatusCode::OK
}

async fn fallback(method: Method) -> Response {
    if method == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such endpoint")
    }
}

#[derive(Deserialize)]
struct OpenIdToken {
    access_token: String,
    #[serde(default)]
    matrix_server_name: String,
}

#[derive(Deserialize)]
struct SfuGet {
    room: String,
    openid_token: OpenIdToken,
    device_id: String,
}

#[derive(Deserialize)]
struct Member {
    id: String,
    claimed_user_id: String,
    claimed_device_id: String,
}

#[derive(Deserialize)]
struct GetToken {
    room_id: String,
    slot_id: String,
    openid_token: OpenIdToken,
    member: Member,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    if body.len() > MAX_BODY {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
            "body too large",
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, "M_BAD_JSON", &e.to_string()))
}

async fn sfu_get(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: SfuGet = match parse(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if req.room.is_empty() || req.device_id.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
            "room and device_id are required",
        );
    }
    let user_id = match verify(&shared, &req.openid_token).await {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let identity = format!("{user_id}:{}", req.device_id);
    let alias = livekit_room_alias(&req.room, CALL_SLOT);
    issue(&shared, "/sfu/get", user_id, identity, alias, req.room)
}

async fn get_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: GetToken = match parse(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    if req.room_id.is_empty() || req.slot_id.is_empty() || req.member.id.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "M_BAD_JSON",
            "room_id, slot_id and member.id are required",
        );
    }
    let user_id = match verify(&shared, &req.openid_token).await {
        Ok(u) => u,
        Err(r) => return *r,
    };
    if req.member.claimed_user_id != user_id {
        return error(
            StatusCode::UNAUTHORIZED,
            "M_UNAUTHORIZED",
            "claimed_user_id does not match the OpenID token",
        );
    }
    let identity = hashed_identity(&user_id, &req.member.claimed_device_id, &req.member.id);
    let alias = livekit_room_alias(&req.room_id, &req.slot_id);
    issue(&shared, "/get_token", user_id, identity, alias, req.room_id)
}

fn issue(
    shared: &Shared,
    endpoint: &str,
    user_id: String,
    identity: String,
    livekit_room: String,
    matrix_room: String,
) -> Response {
    let config = shared.config.lock().unwrap().clone();
    let claims = jwt::Claims::join(
        &config.api_key,
        &identity,
        &livekit_room,
        config.token_ttl_secs,
    );
    let token = jwt::encode(&claims, &config.api_secret);
    shared.issued.lock().unwrap().push(Issued {
        endpoint: endpoint.to_owned(),
        user_id,
        identity,
        livekit_room,
        matrix_room,
    });
    axum::Json(json!({"url": config.sfu_url, "jwt": token})).into_response()
}

/// The Matrix user an OpenID token belongs to, as the homeserver's federation API says.
async fn verify(shared: &Shared, token: &OpenIdToken) -> Result<String, Box<Response>> {
    let unauthorised = |msg: &str| fail(StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED", msg);
    let Some(homeserver) = shared.config.lock().unwrap().homeserver.clone() else {
        return Err(fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "M_UNKNOWN",
            "the token service has no homeserver to check OpenID tokens with",
        ));
    };
    if token.access_token.is_empty() {
        return Err(unauthorised("no OpenID access token"));
    }
    let path = format!(
        "/_matrix/federation/v1/openid/userinfo?access_token={}",
        percent_encode(&token.access_token)
    );
    let (status, body) =
        match tokio::time::timeout(OPENID_TIMEOUT, http_get(&homeserver, &path)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Err(fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    &format!("asking the homeserver: {e}"),
                ));
            }
            Err(_) => {
                return Err(fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "M_UNKNOWN",
                    "the homeserver did not answer",
                ));
            }
        };
    if status != 200 {
        return Err(unauthorised(
            "the homeserver did not accept the OpenID token",
        ));
    }
    let sub = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["sub"].as_str().map(str::to_owned))
        .ok_or_else(|| unauthorised("no user in the homeserver's answer"))?;
    let server = sub.split_once(':').map_or("", |(_, s)| s);
    if !token.matrix_server_name.is_empty() && server != token.matrix_server_name {
        return Err(unauthorised("the user is not on matrix_server_name"));
    }
    Ok(sub)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain HTTP/1.0 GET to a loopback `http://host:port` base URL; (status, body).
async fn http_get(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let authority = base
        .strip_prefix("http://")
        .context("only http:// homeservers are supported")?
        .trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(authority).await?;
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    s.take(1 << 20).read_to_end(&mut reply).await?;
    let reply = String::from_utf8_lossy(&reply);
    let status = reply
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP reply")?;
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_lk_jwt_services() {
        // JSON without spaces, as Go's encoding/json writes it.
        let expected = STANDARD_NO_PAD.encode(Sha256::digest(br#"["!r:hs","m.call#ROOM"]"#));
        assert_eq!(livekit_room_alias("!r:hs", CALL_SLOT), expected);
        let expected = STANDARD_NO_PAD.encode(Sha256::digest(br#"["@u:hs","DEV","@u:hs:DEV"]"#));
        assert_eq!(hashed_identity("@u:hs", "DEV", "@u:hs:DEV"), expected);
        assert!(!expected.contains('='));
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(percent_encode("ab_C-9"), "ab_C-9");
        assert_eq!(percent_encode("a b&c"), "a%20b%26c");
    }
}
