//! The SFU's HTTP side: `/rtc` (the v0 WebSocket), `/rtc/validate`, and a plain 404 for the
//! v1 paths so that livekit-client falls back to v0. Every answer carries
//! `Access-Control-Allow-Origin: *`: the client's validate `fetch` comes from the page's origin
//! and would otherwise fail as unreachable instead of reading the 404.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use livekit_protocol as lk;
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use crate::SfuConfig;
use crate::jwt::{self, Claims};
use crate::sfu::{Cmd, JoinParams, Joined, Out};

/// Largest signalling message taken from a client.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Clone)]
pub(crate) struct AppState {
    pub config: Arc<SfuConfig>,
    pub cmds: mpsc::Sender<Cmd>,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/rtc", get(rtc))
        .route("/rtc/validate", get(validate))
        .route("/rtc/v1", get(not_here))
        .route("/rtc/v1/validate", get(not_here))
        .fallback(not_here)
        .with_state(state)
        .layer(axum::middleware::map_response(cors))
}

pub(crate) async fn cors(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    res
}

async fn not_here() -> Response {
    // Not "requested room does not exist": that body would stop the client's fallback.
    (StatusCode::NOT_FOUND, "not served by the test SFU").into_response()
}

fn token<'a>(query: &'a HashMap<String, String>, headers: &'a HeaderMap) -> Option<&'a str> {
    query.get("access_token").map(String::as_str).or_else(|| {
        headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
    })
}

fn authorise(
    config: &SfuConfig,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, (StatusCode, String)> {
    let Some(token) = token(query, headers) else {
        return Err((StatusCode::UNAUTHORIZED, "no access token".to_owned()));
    };
    jwt::verify_join(token, &config.api_key, &config.api_secret)
        .map_err(|e| (StatusCode::UNAUTHORIZED, e.0))
}

async fn validate(
    State(st): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match authorise(&st.config, &query, &headers) {
        Ok(_) => (StatusCode::OK, "success").into_response(),
        Err(r) => r.into_response(),
    }
}

async fn rtc(
    State(st): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let claims = match authorise(&st.config, &query, &headers) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let Ok(ws) = ws else {
        return (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade").into_response();
    };
    let params = JoinParams {
        auto_subscribe: query
            .get("auto_subscribe")
            .is_none_or(|v| v != "0" && v != "false"),
    };
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| session(st, claims, params, socket))
}

/// One client's signalling: requests go to the SFU task, its responses come back here.
async fn session(st: AppState, claims: Claims, params: JoinParams, mut socket: WebSocket) {
    let (reply, joined) = oneshot::channel();
    let join = Cmd::Join {
        claims,
        params,
        reply,
    };
    if st.cmds.send(join).await.is_err() {
        return;
    }
    let Joined { pid, mut rx } = match joined.await {
        Ok(Ok(j)) => j,
        Ok(Err(why)) => {
            log::debug!("test SFU: join refused: {why}");
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        Err(_) => return,
    };
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Out::Msg(m)) => {
                    let bytes = lk::SignalResponse { message: Some(*m) }.encode_to_vec();
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) | None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(lk::SignalRequest { message: Some(m) }) = lk::SignalRequest::decode(&b[..])
                        && st.cmds.send(Cmd::Signal { pid, msg: Box::new(m) }).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = st.cmds.send(Cmd::Gone { pid }).await;
}
