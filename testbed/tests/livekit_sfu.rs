//! The LiveKit test SFU and token service, proven against the real livekit-client (the version
//! Element Call bundles) in two headless Chromiums: media both ways (VP8 simulcast as Element
//! Call publishes, and H.264 simulcast), mute and leave as the other side sees them, and the token
//! service end to end (Synapse OpenID token -> token service -> SFU).
//!
//! Needs what `bash tools/setup.sh` installs (Chromium, the npm packages and page bundles,
//! Synapse); a missing part fails the test saying so.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use roomd_testbed::livekit::{
    LiveKitPage, PublishOptions, RtcBackend, SfuConfig, TestSfu, TokenRequest, TrackMedia,
    hashed_identity, livekit_room_alias,
};
use roomd_testbed::synapse::SERVER_NAME;

/// Two Chromiums encoding and decoding at once fill this project's 2-core machines: the tests
/// in this file take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SUBSCRIBE_LIMIT: Duration = Duration::from_secs(20);
const MEDIA_LIMIT: Duration = Duration::from_secs(30);
const MEASURE_WINDOW: Duration = Duration::from_secs(3);
const MIN_FPS: f64 = 10.0;
const MIN_AUDIO_LEVEL: f64 = 0.01;
const LIVEKIT_CLIENT_VERSION: &str = "2.22.3";

/// Measures what `page` receives from `from` until video is decoded above [`MIN_FPS`] and audio
/// is heard above [`MIN_AUDIO_LEVEL`], for up to [`MEDIA_LIMIT`]. Returns (video, audio).
async fn wait_for_media(
    page: &LiveKitPage,
    from: &str,
    audio: bool,
) -> anyhow::Result<(TrackMedia, Option<TrackMedia>)> {
    let start = Instant::now();
    let mut last = Vec::new();
    while start.elapsed() < MEDIA_LIMIT {
        let m = page.measure(MEASURE_WINDOW).await?;
        let video = m.iter().find(|t| t.identity == from && t.kind == "video");
        let heard = m.iter().find(|t| t.identity == from && t.kind == "audio");
        if let Some(v) = video {
            // frames_decoded is the increase of framesDecoded over the window.
            let audio_ok = !audio || heard.is_some_and(|a| a.audio_level > MIN_AUDIO_LEVEL);
            if v.frames_decoded > 0 && v.fps > MIN_FPS && audio_ok {
                return Ok((v.clone(), heard.cloned()));
            }
        }
        last = m;
    }
    bail!(
        "{}: media from {from} not decoded/heard within {MEDIA_LIMIT:?} (video > {MIN_FPS} fps, \
         audio level > {MIN_AUDIO_LEVEL}); last measured: {last:#?}\nits log:\n{}",
        page.browser().name(),
        page.browser().log_tail(60)
    )
}

async fn wait_for_event(page: &LiveKitPage, kind: &str, identity: &str) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let events = page.events(0).await?;
        if events
            .iter()
            .any(|e| e["type"] == kind && e["identity"] == identity)
        {
            return Ok(());
        }
        if start.elapsed() > SUBSCRIBE_LIMIT {
            bail!(
                "{}: no {kind} event for {identity} within {SUBSCRIBE_LIMIT:?}; events: {events:#?}",
                page.browser().name()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Both pages connect straight to the SFU with its own tokens, publish, see and hear each
/// other; then A mutes, then A leaves, as B sees it.
async fn both_ways(opts: PublishOptions, expect_codec: &str) -> anyhow::Result<()> {
    let sfu = TestSfu::start()?;
    let room = "fidelity";
    let (a, b) = (
        LiveKitPage::start("lk-alice").await?,
        LiveKitPage::start("lk-bob").await?,
    );
    assert_eq!(a.livekit_client_version().await?, LIVEKIT_CLIENT_VERSION);

    let t0 = Instant::now();
    let info = a.connect(&sfu.url(), &sfu.token("alice", room)).await?;
    ensure!(info["state"] == "connected", "A: {info}");
    ensure!(info["serverProtocol"] == 17, "A: {info}");
    b.connect(&sfu.url(), &sfu.token("bob", room)).await?;
    eprintln!("both connected in {:?}", t0.elapsed());

    let t1 = Instant::now();
    a.publish(&opts).await?;
    b.publish(&opts).await?;
    eprintln!("both published in {:?}", t1.elapsed());

    let subscribed_to = |who: &'static str| {
        move |ts: &[roomd_testbed::livekit::RemoteTrack]| {
            ["audio", "video"].iter().all(|k| {
                ts.iter()
                    .any(|t| t.identity == who && t.kind == *k && t.subscribed)
            })
        }
    };
    let tracks = b
        .wait_for_tracks(
            SUBSCRIBE_LIMIT,
            "subscribed to alice",
            subscribed_to("alice"),
        )
        .await?;
    a.wait_for_tracks(SUBSCRIBE_LIMIT, "subscribed to bob", subscribed_to("bob"))
        .await?;
    eprintln!("both subscribed after {:?}", t1.elapsed());

    let (video, audio) = wait_for_media(&b, "alice", true).await?;
    eprintln!("B gets A: {video:?}\n           {audio:?}");
    let (video2, audio2) = wait_for_media(&a, "bob", true).await?;
    eprintln!("A gets B: {video2:?}\n           {audio2:?}");
    eprintln!("media both ways after {:?}", t1.elapsed());
    for v in [&video, &video2] {
        ensure!(
            v.codec.as_deref() == Some(expect_codec),
            "codec {:?}, expected {expect_codec}",
            v.codec
        );
        ensure!(v.frame_width >= 320 && v.frame_height >= 180, "{v:?}");
    }

    // The SFU forwards one simulcast layer, the best one flowing (B's page shows A's video
    // 480 px wide, so adaptiveStream asks for a layer at least that wide).
    let stats = sfu.stats().await?;
    let alice = stats
        .participants
        .iter()
        .find(|p| p.identity == "alice")
        .context("alice at the SFU")?;
    let bob = stats
        .participants
        .iter()
        .find(|p| p.identity == "bob")
        .context("bob at the SFU")?;
    let published = alice
        .published
        .iter()
        .find(|t| t.kind == "video")
        .context("alice's video at the SFU")?;
    eprintln!(
        "SFU: alice publishes {published:?}; bob is sent {:?}",
        bob.forwarded
    );
    let forwarded = bob
        .forwarded
        .iter()
        .find(|f| f.track_sid == published.sid)
        .context("alice's video forwarded to bob")?;
    if opts.simulcast {
        ensure!(
            published.rids.len() >= 2,
            "simulcast: layers seen {:?}",
            published.rids
        );
        ensure!(
            forwarded.rid.as_deref() == published.rids.last().map(String::as_str),
            "forwarded layer {:?} of {:?}",
            forwarded.rid,
            published.rids
        );
        ensure!(video.frame_width >= 480, "the top layer arrives: {video:?}");
    }

    // A mutes the microphone: B's publication shows it.
    let audio_sid = tracks
        .iter()
        .find(|t| t.identity == "alice" && t.kind == "audio")
        .map(|t| t.track_sid.clone())
        .context("alice's audio")?;
    a.set_mic_muted(true).await?;
    b.wait_for_tracks(SUBSCRIBE_LIMIT, "alice's audio muted", |ts| {
        ts.iter().any(|t| t.track_sid == audio_sid && t.muted)
    })
    .await?;
    wait_for_event(&b, "trackMuted", "alice").await?;
    a.set_mic_muted(false).await?;
    b.wait_for_tracks(SUBSCRIBE_LIMIT, "alice's audio unmuted", |ts| {
        ts.iter().any(|t| t.track_sid == audio_sid && !t.muted)
    })
    .await?;

    // A leaves: B sees the participant go, and its tracks with it.
    a.leave().await?;
    wait_for_event(&b, "participantDisconnected", "alice").await?;
    b.wait_for_tracks(SUBSCRIBE_LIMIT, "rid of alice's tracks", |ts| {
        ts.iter().all(|t| t.identity != "alice")
    })
    .await?;
    let start = Instant::now();
    while sfu
        .stats()
        .await?
        .participants
        .iter()
        .any(|p| p.identity == "alice")
    {
        ensure!(start.elapsed() < SUBSCRIBE_LIMIT, "alice still at the SFU");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test]
async fn livekit_client_vp8_simulcast_both_ways_mute_and_leave() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    both_ways(PublishOptions::default(), "video/VP8").await
}

#[tokio::test]
async fn livekit_client_h264_simulcast_both_ways() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let opts = PublishOptions {
        video_codec: "h264".to_owned(),
        ..PublishOptions::default()
    };
    both_ways(opts, "video/H264").await
}

/// A second connection with the same identity evicts the first, as LiveKit does.
#[tokio::test]
async fn duplicate_identity_evicts_the_first_connection() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let sfu = TestSfu::start()?;
    let (first, second) = (
        LiveKitPage::start("lk-first").await?,
        LiveKitPage::start("lk-second").await?,
    );
    first.connect(&sfu.url(), &sfu.token("same", "r")).await?;
    second.connect(&sfu.url(), &sfu.token("same", "r")).await?;
    let start = Instant::now();
    loop {
        let events = first.events(0).await?;
        if events.iter().any(|e| e["type"] == "disconnected") {
            break;
        }
        ensure!(
            start.elapsed() < SUBSCRIBE_LIMIT,
            "the first connection was not ended: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = sfu.stats().await?;
    ensure!(stats.participants.len() == 1, "{stats:?}");
    ensure!(second.info().await?["state"] == "connected");
    Ok(())
}

/// A raw HTTP request to 127.0.0.1:`port`; (status, headers and body).
fn http(port: u16, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1:1\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status = reply
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("not an HTTP reply: {reply}"))?;
    Ok((status, reply))
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// The HTTP contract the client relies on: v1 refused with a readable 404 (so it falls back to
/// v0), tokens checked on `/rtc/validate` and `/rtc`.
#[test]
fn sfu_http_contract() -> anyhow::Result<()> {
    let sfu = TestSfu::start_with(SfuConfig::default())?;
    let port = sfu.port();
    let good = sfu.token("alice", "r");
    let (status, reply) = http(port, "GET", "/rtc/v1/validate", "")?;
    ensure!(status == 404, "{reply}");
    ensure!(
        reply
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{reply}"
    );
    ensure!(!reply.contains("requested room does not exist"));
    let (status, _) = http(
        port,
        "GET",
        &format!("/rtc/validate?access_token={good}"),
        "",
    )?;
    ensure!(status == 200);
    let (status, _) = http(port, "GET", "/rtc/validate?access_token=nope", "")?;
    ensure!(status == 401);
    let (status, _) = http(port, "GET", "/rtc/validate", "")?;
    ensure!(status == 401);
    let forged = roomd_testbed::livekit::jwt::encode(
        &roomd_testbed::livekit::jwt::Claims::join(&sfu.config().api_key, "mallory", "r", 60),
        "not-the-secret",
    );
    let (status, _) = http(port, "GET", &format!("/rtc?access_token={forged}"), "")?;
    ensure!(status == 401);
    Ok(())
}

/// Synapse advertises the token service; a page gets an OpenID token from Synapse, exchanges it
/// at the token service (`/sfu/get` for one, `/get_token` for the other) and connects to the
/// SFU with what it got; media flows. Forged OpenID tokens are refused.
#[tokio::test]
async fn token_service_end_to_end() -> anyhow::Result<()> {
    let _turn = SERIAL.lock().await;
    let rtc = RtcBackend::start()?;
    let service = rtc.tokens.url();

    // Synapse names the token service both ways it can.
    rtc.synapse.register("alice", "alice-password-1").await?;
    rtc.synapse.register("bob", "bob-password-1").await?;
    let alice_token = rtc
        .synapse
        .log_in("alice", "alice-password-1", "ALICEDEV")
        .await?;
    let bob_token = rtc
        .synapse
        .log_in("bob", "bob-password-1", "BOBDEV")
        .await?;
    let (status, body) = rtc.synapse.request(
        "GET",
        "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports",
        &alice_token,
        "",
    )?;
    ensure!(status == 200, "{body}");
    let transports: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(
        transports["rtc_transports"][0]["type"] == "livekit"
            && transports["rtc_transports"][0]["livekit_service_url"] == service.as_str(),
        "{body}"
    );
    let (status, body) = rtc
        .synapse
        .request("GET", "/.well-known/matrix/client", "", "")?;
    ensure!(status == 200, "{body}");
    let wk: serde_json::Value = serde_json::from_str(&body)?;
    ensure!(
        wk["org.matrix.msc4143.rtc_foci"][0]["livekit_service_url"] == service.as_str(),
        "{body}"
    );

    // A forged OpenID token gets a 401 with lk-jwt-service's error shape.
    let (status, reply) = http(
        port_of(&service),
        "POST",
        "/sfu/get",
        r#"{"room":"!r:localhost","openid_token":{"access_token":"forged","token_type":"Bearer","matrix_server_name":"localhost","expires_in":3600},"device_id":"X"}"#,
    )?;
    ensure!(status == 401 && reply.contains("M_UNAUTHORIZED"), "{reply}");
    let (status, reply) = http(port_of(&service), "POST", "/sfu/get", "{}")?;
    ensure!(status == 400 && reply.contains("M_BAD_JSON"), "{reply}");

    let room_id = "!call:localhost";
    let alice_id = format!("@alice:{SERVER_NAME}");
    let bob_id = format!("@bob:{SERVER_NAME}");
    let (a, b) = (
        LiveKitPage::start("lk-alice").await?,
        LiveKitPage::start("lk-bob").await?,
    );
    let ta = a
        .fetch_token(&TokenRequest::sfu_get(
            &rtc,
            &alice_token,
            &alice_id,
            "ALICEDEV",
            room_id,
        ))
        .await?;
    let tb = b
        .fetch_token(
            &TokenRequest::sfu_get(&rtc, &bob_token, &bob_id, "BOBDEV", room_id).get_token(),
        )
        .await?;
    let alias = livekit_room_alias(room_id, "m.call#ROOM");
    ensure!(ta.url == rtc.sfu.url(), "{ta:?}");
    ensure!(ta.identity == format!("{alice_id}:ALICEDEV"), "{ta:?}");
    ensure!(ta.room == alias && tb.room == alias, "{ta:?} {tb:?}");
    ensure!(
        tb.identity == hashed_identity(&bob_id, "BOBDEV", &format!("{bob_id}:BOBDEV")),
        "{tb:?}"
    );
    let issued = rtc.tokens.issued();
    ensure!(issued.len() == 2, "{issued:?}");
    ensure!(issued[0].user_id == alice_id && issued[1].user_id == bob_id);

    a.connect(&ta.url, &ta.jwt).await?;
    b.connect(&tb.url, &tb.jwt).await?;
    a.publish(&PublishOptions::default()).await?;
    b.wait_for_tracks(SUBSCRIBE_LIMIT, "subscribed to alice", |ts| {
        ts.iter()
            .any(|t| t.identity == ta.identity && t.kind == "video" && t.subscribed)
    })
    .await?;
    let (video, _) = wait_for_media(&b, &ta.identity, true).await?;
    eprintln!("B gets A through the token service: {video:?}");
    Ok(())
}
