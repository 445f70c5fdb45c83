//! Element Call's media path on loopback: the LiveKit-protocol test SFU and the lk-jwt-service
//! double (crate `roomd-test-sfu`, re-exported here), a Synapse that advertises them as its
//! MatrixRTC transport ([`RtcBackend`]), and a browser page running the real livekit-client
//! ([`LiveKitPage`]).
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use roomd_testbed::livekit::{LiveKitPage, PublishOptions, RtcBackend, TokenRequest};
//! let rtc = RtcBackend::start()?; // SFU + token service + Synapse advertising them
//! rtc.synapse.register("alice", "pw-alice-1").await?;
//! let access_token = rtc.synapse.log_in("alice", "pw-alice-1", "ALICEDEV").await?;
//! let page = LiveKitPage::start("alice").await?;
//! let token = page
//!     .fetch_token(&TokenRequest::sfu_get(&rtc, &access_token, "@alice:localhost", "ALICEDEV", "!room:localhost"))
//!     .await?;
//! page.connect(&token.url, &token.jwt).await?;
//! page.publish(&PublishOptions::default()).await?;
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Synapse;
use crate::browser::{Browser, DEFAULT_TIMEOUT};

pub use roomd_test_sfu::token_service::{CALL_SLOT, hashed_identity, livekit_room_alias};
pub use roomd_test_sfu::{
    ForwardedStats, Issued, ParticipantStats, PublishedStats, SfuConfig, SfuStats, TestSfu,
    TokenService, TokenServiceConfig, jwt,
};

/// The SFU, its token service, and a Synapse that names the token service as its MatrixRTC
/// transport and answers the token service's OpenID checks.
pub struct RtcBackend {
    pub synapse: Synapse,
    pub tokens: TokenService,
    pub sfu: TestSfu,
}

impl RtcBackend {
    pub fn start() -> anyhow::Result<RtcBackend> {
        RtcBackend::start_with(SfuConfig::default())
    }

    pub fn start_with(config: SfuConfig) -> anyhow::Result<RtcBackend> {
        let sfu = TestSfu::start_with(config)?;
        let tokens = TokenService::for_sfu(&sfu, None)?;
        let synapse = Synapse::start_with_rtc_transport(&tokens.url())?;
        tokens.set_homeserver(&synapse.url());
        Ok(RtcBackend {
            synapse,
            tokens,
            sfu,
        })
    }
}

/// What a page asks the token service for.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub homeserver: String,
    /// The Matrix access token the page asks for an OpenID token with.
    pub access_token: String,
    pub user_id: String,
    pub device_id: String,
    pub service_url: String,
    pub room_id: String,
    /// `sfu/get` or `get_token`.
    pub endpoint: String,
}

impl TokenRequest {
    /// A legacy `/sfu/get` request (what Element Call uses for its own connection), against
    /// `rtc`'s Synapse and token service.
    pub fn sfu_get(
        rtc: &RtcBackend,
        access_token: &str,
        user_id: &str,
        device_id: &str,
        room_id: &str,
    ) -> TokenRequest {
        TokenRequest {
            homeserver: rtc.synapse.url(),
            access_token: access_token.to_owned(),
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            service_url: rtc.tokens.url(),
            room_id: room_id.to_owned(),
            endpoint: "sfu/get".to_owned(),
        }
    }

    /// The same as a MatrixRTC 2.0 `/get_token` request.
    pub fn get_token(mut self) -> TokenRequest {
        self.endpoint = "get_token".to_owned();
        self
    }
}

/// What the token service answered, with the JWT's identity and room as the page decoded them.
#[derive(Debug, Clone)]
pub struct SfuToken {
    pub url: String,
    pub jwt: String,
    pub identity: String,
    pub room: String,
}

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub video: bool,
    pub audio: bool,
    /// `vp8` (Element Call's default) or `h264`.
    pub video_codec: String,
    pub simulcast: bool,
    pub width: u32,
    pub height: u32,
}

impl Default for PublishOptions {
    /// Camera and microphone, VP8 with simulcast (as Element Call publishes), 640x360.
    fn default() -> Self {
        PublishOptions {
            video: true,
            audio: true,
            video_codec: "vp8".to_owned(),
            simulcast: true,
            width: 640,
            height: 360,
        }
    }
}

/// A remote track publication as livekit-client sees it.
#[derive(Debug, Clone)]
pub struct RemoteTrack {
    pub identity: String,
    pub participant_sid: String,
    pub track_sid: String,
    /// `audio` or `video`.
    pub kind: String,
    pub source: String,
    pub muted: bool,
    pub subscribed: bool,
    pub mime_type: Option<String>,
}

/// What one subscribed remote track delivered over a window.
#[derive(Debug, Clone)]
pub struct TrackMedia {
    pub identity: String,
    pub track_sid: String,
    pub kind: String,
    pub muted: bool,
    pub window: Duration,
    pub frames_decoded: u64,
    pub frames_decoded_total: u64,
    pub fps: f64,
    pub frame_width: u64,
    pub frame_height: u64,
    pub codec: Option<String>,
    pub packets: u64,
    /// RMS level (0..1) from an analyser on the received track.
    pub audio_level: f64,
    /// RMS level from the receiver's `totalAudioEnergy`.
    pub stats_audio_level: f64,
}

/// A headless Chromium whose page runs livekit-client (`testbed/browser/livekit.js`).
pub struct LiveKitPage {
    browser: Browser,
}

impl LiveKitPage {
    /// Starts Chromium with the livekit-client page; its console goes to stderr.
    pub async fn start(name: &str) -> anyhow::Result<LiveKitPage> {
        Ok(LiveKitPage {
            browser: Browser::start_bundle(name, "livekit", true).await?,
        })
    }

    pub fn browser(&self) -> &Browser {
        &self.browser
    }

    /// The livekit-client version the page runs.
    pub async fn livekit_client_version(&self) -> anyhow::Result<String> {
        let v = self.call("version", json!({})).await?;
        Ok(v["livekitClient"].as_str().unwrap_or_default().to_owned())
    }

    async fn call(&self, cmd: &str, args: Value) -> anyhow::Result<Value> {
        self.browser.call(cmd, args, DEFAULT_TIMEOUT).await
    }

    /// Element Call's way to its SFU: an OpenID token from the homeserver, exchanged at the
    /// token service; all done by the page.
    pub async fn fetch_token(&self, req: &TokenRequest) -> anyhow::Result<SfuToken> {
        let v = self
            .call(
                "fetchToken",
                json!({"homeserver": req.homeserver, "accessToken": req.access_token,
                       "userId": req.user_id, "deviceId": req.device_id,
                       "serviceUrl": req.service_url, "roomId": req.room_id,
                       "endpoint": req.endpoint}),
            )
            .await?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        Ok(SfuToken {
            url: s("url"),
            jwt: s("jwt"),
            identity: s("identity"),
            room: s("room"),
        })
    }

    /// `room.connect(url, jwt)` with Element Call's room options (adaptiveStream, dynacast).
    /// Returns the page's `info`: `{state, roomName, identity, sid, serverVersion,
    /// serverProtocol, remoteParticipants, published}`.
    pub async fn connect(&self, url: &str, jwt: &str) -> anyhow::Result<Value> {
        self.call(
            "connect",
            json!({"url": url, "token": jwt, "timeoutMs": 20_000}),
        )
        .await
    }

    pub async fn info(&self) -> anyhow::Result<Value> {
        self.call("info", json!({})).await
    }

    /// Publishes the fake camera and microphone; returns the local publications.
    pub async fn publish(&self, opts: &PublishOptions) -> anyhow::Result<Value> {
        self.call(
            "publish",
            json!({"video": opts.video, "audio": opts.audio, "videoCodec": opts.video_codec,
                   "simulcast": opts.simulcast, "width": opts.width, "height": opts.height}),
        )
        .await
    }

    pub async fn set_mic_muted(&self, muted: bool) -> anyhow::Result<()> {
        self.call("setMicMuted", json!({"muted": muted})).await?;
        Ok(())
    }

    pub async fn set_camera_muted(&self, muted: bool) -> anyhow::Result<()> {
        self.call("setCameraMuted", json!({"muted": muted})).await?;
        Ok(())
    }

    pub async fn remote_tracks(&self) -> anyhow::Result<Vec<RemoteTrack>> {
        let v = self.call("remoteTracks", json!({})).await?;
        Ok(v.as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|t| RemoteTrack {
                identity: str_of(t, "identity"),
                participant_sid: str_of(t, "participantSid"),
                track_sid: str_of(t, "trackSid"),
                kind: str_of(t, "kind"),
                source: str_of(t, "source"),
                muted: t["muted"].as_bool().unwrap_or(false),
                subscribed: t["subscribed"].as_bool().unwrap_or(false),
                mime_type: t["mimeType"].as_str().map(str::to_owned),
            })
            .collect())
    }

    /// Polls the remote tracks (every 100 ms) until `done` holds, for up to `limit`.
    pub async fn wait_for_tracks(
        &self,
        limit: Duration,
        what: &str,
        done: impl Fn(&[RemoteTrack]) -> bool,
    ) -> anyhow::Result<Vec<RemoteTrack>> {
        let start = Instant::now();
        loop {
            let tracks = self.remote_tracks().await?;
            if done(&tracks) {
                return Ok(tracks);
            }
            if start.elapsed() >= limit {
                bail!(
                    "{}: not {what} within {limit:?}; remote tracks: {tracks:#?}\nits log:\n{}",
                    self.browser.name(),
                    self.browser.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What each subscribed remote track delivered over `window`.
    pub async fn measure(&self, window: Duration) -> anyhow::Result<Vec<TrackMedia>> {
        let v = self
            .browser
            .call(
                "measure",
                json!({"windowMs": window.as_millis() as u64}),
                window + DEFAULT_TIMEOUT,
            )
            .await?;
        let list = v.as_array().context("measure answered no list")?;
        Ok(list
            .iter()
            .map(|m| TrackMedia {
                identity: str_of(m, "identity"),
                track_sid: str_of(m, "trackSid"),
                kind: str_of(m, "kind"),
                muted: m["muted"].as_bool().unwrap_or(false),
                window: Duration::from_millis(m["windowMs"].as_u64().unwrap_or(0)),
                frames_decoded: m["framesDecoded"].as_u64().unwrap_or(0),
                frames_decoded_total: m["framesDecodedTotal"].as_u64().unwrap_or(0),
                fps: m["fps"].as_f64().unwrap_or(0.0),
                frame_width: m["frameWidth"].as_u64().unwrap_or(0),
                frame_height: m["frameHeight"].as_u64().unwrap_or(0),
                codec: m["codec"].as_str().map(str::to_owned),
                packets: m["packets"].as_u64().unwrap_or(0),
                audio_level: m["audioLevel"].as_f64().unwrap_or(0.0),
                stats_audio_level: m["statsAudioLevel"].as_f64().unwrap_or(0.0),
            })
            .collect())
    }

    /// Room events the page saw (`participantConnected`, `trackSubscribed`, `trackMuted`,
    /// `participantDisconnected`, `disconnected`, ...), from index `since` on.
    pub async fn events(&self, since: usize) -> anyhow::Result<Vec<Value>> {
        let v = self.call("events", json!({"since": since})).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// `room.disconnect()`: a client-initiated leave.
    pub async fn leave(&self) -> anyhow::Result<()> {
        self.call("leave", json!({})).await?;
        Ok(())
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}
