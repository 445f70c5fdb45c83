//! roomd's LiveKit test bed: a small LiveKit-protocol SFU ([`TestSfu`]) and an
//! lk-jwt-service double ([`TokenService`]), both in-process on 127.0.0.1, on free ports,
//! stopped when dropped. See README.md beside this crate for what they do and do not do.

pub mod jwt;
pub mod token_service;

mod forward;
mod sdp;
mod server;
mod sfu;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

pub use sfu::{ForwardedStats, ParticipantStats, PublishedStats, SfuStats};
pub use token_service::{Issued, TokenService, TokenServiceConfig};

/// How the test SFU is set up. The defaults suit a test: a fixed key pair, small caps.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The API key: a token's `iss` must be this.
    pub api_key: String,
    /// The HS256 secret tokens are signed with.
    pub api_secret: String,
    pub max_rooms: usize,
    pub max_participants_per_room: usize,
    pub max_tracks_per_participant: usize,
    /// `JoinResponse.enabled_publish_codecs` (e.g. `["video/H264", "audio/opus"]`), empty for
    /// no restriction.
    pub publish_codecs: Vec<String>,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            api_key: "roomd-test-key".to_owned(),
            api_secret: "roomd-test-secret-that-is-long-enough".to_owned(),
            max_rooms: 8,
            max_participants_per_room: 16,
            max_tracks_per_participant: 8,
            publish_codecs: Vec::new(),
        }
    }
}

/// A running test SFU: HTTP/WebSocket signalling on one TCP port, all media on one UDP port,
/// both on 127.0.0.1. Its own thread runs it; dropping this stops it.
pub struct TestSfu {
    config: Arc<SfuConfig>,
    http: SocketAddr,
    udp: SocketAddr,
    cmds: mpsc::Sender<sfu::Cmd>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestSfu {
    /// Starts one with [`SfuConfig::default`].
    pub fn start() -> anyhow::Result<TestSfu> {
        TestSfu::start_with(SfuConfig::default())
    }

    pub fn start_with(config: SfuConfig) -> anyhow::Result<TestSfu> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the SFU's TCP port")?;
        let udp = UdpSocket::bind("127.0.0.1:0").context("binding the SFU's UDP port")?;
        listener.set_nonblocking(true)?;
        udp.set_nonblocking(true)?;
        let (http_addr, udp_addr) = (listener.local_addr()?, udp.local_addr()?);
        let config = Arc::new(config);
        let (cmds, cmd_rx) = mpsc::channel(1024);
        let (stop, stopped) = oneshot::channel::<()>();
        let state = server::AppState {
            config: config.clone(),
            cmds: cmds.clone(),
        };
        let sfu_config = (*config).clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("test-sfu".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("a non-blocking listener");
                    let udp = tokio::net::UdpSocket::from_std(udp).expect("a non-blocking socket");
                    let sfu = sfu::Sfu::new(sfu_config, udp).expect("a bound socket");
                    tokio::spawn(sfu.run(cmd_rx));
                    tokio::select! {
                        r = axum::serve(listener, server::router(state)) => {
                            if let Err(e) = r {
                                log::warn!("test SFU: HTTP server stopped: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here ends every WebSocket task and the SFU task.
            })?;
        Ok(TestSfu {
            config,
            http: http_addr,
            udp: udp_addr,
            cmds,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The URL clients connect to (`ws://127.0.0.1:PORT`), as a token service hands it out.
    pub fn url(&self) -> String {
        format!("ws://{}", self.http)
    }

    /// The same server as `http://`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    pub fn port(&self) -> u16 {
        self.http.port()
    }

    /// Where all media goes (one UDP port for every peer connection).
    pub fn media_addr(&self) -> SocketAddr {
        self.udp
    }

    pub fn config(&self) -> &SfuConfig {
        &self.config
    }

    /// A one-hour join token for `identity` in `room`, signed with this SFU's key.
    pub fn token(&self, identity: &str, room: &str) -> String {
        let claims = jwt::Claims::join(&self.config.api_key, identity, room, 3600);
        jwt::encode(&claims, &self.config.api_secret)
    }

    /// Who is connected, what they publish and what each is being sent.
    pub async fn stats(&self) -> anyhow::Result<SfuStats> {
        let (reply, rx) = oneshot::channel();
        self.cmds
            .send(sfu::Cmd::Stats { reply })
            .await
            .map_err(|_| anyhow::anyhow!("the test SFU has stopped"))?;
        Ok(rx.await?)
    }

    /// Stops the SFU (also what dropping does): every client is cut off.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestSfu {
    fn drop(&mut self) {
        self.stop();
    }
}
