//! The LiveKit I/O layer: carries out the core's LiveKit commands. Token requests go to the
//! transport's token service over HTTPS; each connection is a task holding the signalling
//! WebSocket (LiveKit's v0 protocol, protobuf frames), reporting what the SFU says and sending
//! what the core asks. It decides nothing: when to connect, what to send and what a closed
//! socket means are the core's (roomd_core::rtc).

mod convert;
mod token;

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use roomd_core::Input;
use roomd_core::rtc::signal::SignalRequest;
use roomd_core::rtc::{ConnId, LiveKitCommand, LiveKitEvent};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The LiveKit protocol roomd speaks: v0's two peer connections, as livekit-client 2.22 does.
const PROTOCOL: u32 = 17;
/// A WebSocket that has not opened by then has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests waiting for one connection's socket; more means the socket is stuck.
const OUTGOING_BOUND: usize = 256;

pub struct LiveKit {
    http: reqwest::Client,
    conns: HashMap<ConnId, mpsc::Sender<SignalRequest>>,
    /// Where results and what the SFUs say go, for the daemon's loop.
    inputs: mpsc::Sender<Input>,
}

impl LiveKit {
    pub fn new(inputs: mpsc::Sender<Input>) -> Self {
        LiveKit {
            http: reqwest::Client::new(),
            conns: HashMap::new(),
            inputs,
        }
    }

    pub fn handle(&mut self, command: LiveKitCommand) {
        match command {
            LiveKitCommand::FetchToken {
                request,
                service_url,
                room_id,
                device_id,
                openid,
            } => {
                let (http, inputs) = (self.http.clone(), self.inputs.clone());
                tokio::spawn(async move {
                    let result =
                        token::fetch(&http, &service_url, room_id.as_str(), &device_id, &openid)
                            .await;
                    let _ = inputs.send(Input::SfuToken { request, result }).await;
                });
            }
            LiveKitCommand::Connect { conn, url, jwt } => {
                let (tx, rx) = mpsc::channel(OUTGOING_BOUND);
                // A connection replaced by a new one: dropping its sender ends its task.
                self.conns.insert(conn, tx);
                let inputs = self.inputs.clone();
                tokio::spawn(run(conn, url, jwt.expose().to_owned(), rx, inputs));
            }
            LiveKitCommand::Send { conn, request } => {
                let Some(tx) = self.conns.get(&conn) else {
                    return log::debug!("{conn}: a request for a closed connection dropped");
                };
                if tx.try_send(request).is_err() {
                    log::warn!("{conn}: the SFU is not taking our messages; dropping the link");
                    self.conns.remove(&conn);
                }
            }
            LiveKitCommand::Close { conn } => {
                self.conns.remove(&conn);
            }
        }
    }
}

/// The URL of the signalling endpoint: `{url}/rtc` with the token and client parameters.
fn signal_url(url: &str, jwt: &str) -> String {
    format!(
        "{}/rtc?access_token={jwt}&auto_subscribe=1&sdk=rust&version={}&protocol={PROTOCOL}\
         &adaptive_stream=0",
        url.trim_end_matches('/'),
        env!("CARGO_PKG_VERSION"),
    )
}

/// One connection's task: reports every message, and the close, as inputs.
async fn run(
    conn: ConnId,
    url: String,
    jwt: String,
    mut outgoing: mpsc::Receiver<SignalRequest>,
    inputs: mpsc::Sender<Input>,
) {
    let closed = |reason: String| Input::LiveKit {
        conn,
        event: LiveKitEvent::Closed { reason },
    };
    let connecting = tokio_tungstenite::connect_async(signal_url(&url, &jwt));
    let mut socket = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((socket, _))) => socket,
        Ok(Err(e)) => {
            let _ = inputs
                .send(closed(format!("could not connect to {url}: {e}")))
                .await;
            return;
        }
        Err(_) => {
            let _ = inputs
                .send(closed(format!("{url} did not open in time")))
                .await;
            return;
        }
    };
    loop {
        tokio::select! {
            frame = socket.next() => {
                let reason = match frame {
                    Some(Ok(Message::Binary(bytes))) => {
                        match livekit_protocol::SignalResponse::decode(&bytes[..])
                            .map_err(|e| e.to_string())
                            .and_then(convert::response)
                        {
                            Ok(message) => {
                                let event = LiveKitEvent::Message(message);
                                if inputs.send(Input::LiveKit { conn, event }).await.is_err() {
                                    return;
                                }
                            }
                            Err(why) => log::warn!("{conn}: an unreadable message from the SFU: {why}"),
                        }
                        continue;
                    }
                    Some(Ok(Message::Close(frame))) => format!(
                        "the SFU closed the connection{}",
                        frame.map(|f| format!(" ({})", f.reason)).unwrap_or_default()
                    ),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => format!("the connection to the SFU broke: {e}"),
                    None => "the connection to the SFU ended".to_owned(),
                };
                let _ = inputs.send(closed(reason)).await;
                return;
            }
            request = outgoing.recv() => {
                let Some(request) = request else {
                    // The core closed the connection.
                    let _ = socket.close(None).await;
                    return;
                };
                let bytes = convert::request(request).encode_to_vec();
                if let Err(e) = socket.send(Message::Binary(bytes.into())).await {
                    let _ = inputs.send(closed(format!("sending to the SFU failed: {e}"))).await;
                    return;
                }
            }
        }
    }
}
