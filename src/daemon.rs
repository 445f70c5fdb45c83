//! The one loop: results from the I/O tasks, control requests, signals, the media engine's
//! events and the core's timers go into the core; the core's commands come out and are started
//! as tasks or queued for the media engine, which runs on its own thread. It decides nothing,
//! and waits on nothing but its inputs: never on GStreamer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matrix_sdk::Client;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Config, GpioBackend, Secret};
use crate::controls::gpio::{EdgeSender, Panel};
use crate::controls::press;
use crate::controls::socket::{self, ControlSocket};
use crate::controls::volume::Volume;
use crate::livekit::LiveKit;
use crate::matrix::{self, Credential, Outbox};
use crate::media::{
    Devices, EventSender, MediaEngine, MediaSettings, TestHooks, VideoFormat, event_channels,
};
use crate::systemd;
use roomd_core::ice::IceSettings;
use roomd_core::media::{MediaCommand, MediaEvent};
use roomd_core::{
    Core, CtlReply, CtlRequest, FailureKind, Identity, Input, MatrixCommand, MatrixFailure, Now,
    Output, PanelSettings, RoomSettings, Settings, WakeupGuard,
};

/// What a finished I/O task hands back to the loop.
enum Done {
    /// The media engine is up (its encoder probed), or could not start.
    MediaReady(Box<Result<MediaEngine, String>>),
    LoggedIn(Result<Client, MatrixFailure>),
    Synced(Result<Vec<Input>, MatrixFailure>),
    Input(Input),
}

fn now() -> Now {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Now::new(Instant::now().into_std(), unix_ms)
}

fn settings(config: &Config, turn_password: Option<Secret>, volume: u8) -> Settings {
    Settings {
        identity: Identity {
            user_id: config.matrix.user_id.clone(),
            device_id: config.matrix.device_id.clone(),
            session_id: format!("{:032x}", rand::random::<u128>()),
        },
        rooms: RoomSettings {
            serve: config.rooms.serve.clone(),
            invite_from: config.rooms.invite_from.clone(),
            join: config.calls.join,
            answer_direct_calls: config.calls.answer_direct_calls,
            start_calls: config.calls.join_button_starts_call,
            direct_call_from: config.calls.direct_call_from.clone(),
            conference_focus: config.calls.conference_focus.clone(),
            // Not until the LiveKit media path is in: joining a session without it would put
            // a participant with no picture or sound in the call.
            element_call: false,
            start_sessions: config.calls.join_button_prefers_element_call,
        },
        livekit_service_url: config
            .calls
            .livekit_service_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned()),
        watchdog_timeout: systemd::watchdog_timeout(),
        ice: IceSettings {
            stun: config.ice.stun_servers.clone(),
            turn: config.ice.turn_servers.clone(),
            turn_username: config.ice.turn_username.clone(),
            turn_password,
        },
        panel: PanelSettings {
            debounce: Duration::from_millis(config.buttons.debounce_ms.into()),
            long_press: Duration::from_millis(config.buttons.long_press_ms.into()),
            do_not_disturb: Duration::from_secs(
                u64::from(config.calls.do_not_disturb_minutes) * 60,
            ),
            volume,
            volume_step: config.speaker.volume_step_percent,
            leds_wired: config.leds.backend != GpioBackend::None && config.leds.pins.any(),
        },
    }
}

fn media_settings(config: &Config) -> MediaSettings {
    MediaSettings {
        format: VideoFormat {
            width: config.video.width,
            height: config.video.height,
            framerate: config.video.framerate,
        },
        bitrate_kbps: config.video.bitrate_kbps,
        echo_cancellation: config.microphone.echo_cancellation,
        noise_suppression: config.microphone.noise_suppression,
        gain_control: config.microphone.gain_control,
        jitter_latency_ms: 100,
        extra_local_addresses: Vec::new(),
    }
}

/// How long a stopping daemon gives the media engine to tear its call down.
const MEDIA_STOP_LIMIT: Duration = Duration::from_secs(3);

/// Starts the media engine off the loop: initialising GStreamer and probing the encoder take a
/// moment.
fn start_media(config: &Arc<Config>, done: &mpsc::Sender<Done>, events: EventSender) {
    let (config, done) = (config.clone(), done.clone());
    tokio::task::spawn_blocking(move || {
        let engine = TestHooks::from_env()
            .and_then(|hooks| {
                MediaEngine::start(
                    Devices::from_config(&config),
                    media_settings(&config),
                    &config.video.encoder,
                    events,
                    hooks,
                )
            })
            .map_err(|e| format!("{e:#}"));
        if let Err(e) = &engine {
            log::error!("media unavailable: {e}; `roomd media-check` says more");
        }
        let _ = done.blocking_send(Done::MediaReady(Box::new(engine)));
    });
}

/// Runs until SIGTERM or SIGINT, then takes the call memberships back and returns.
/// `turn_password`: for the config's TURN servers, read at start like the login secret.
pub async fn run(
    config: Config,
    credential: Credential,
    turn_password: Option<Secret>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let credential = Arc::new(credential);
    let (done_tx, mut done) = mpsc::channel::<Done>(64);
    let (ctl_tx, mut ctl) = mpsc::channel::<socket::Request>(16);
    let _socket = ControlSocket::bind(&config.control.socket, ctl_tx)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let (edges, mut button_edges) = EdgeSender::channel();
    let mut panel = Panel::open(&config.buttons, &config.leds, edges.clone())?;
    let mut volume = Volume::open(&config.speaker, &config.matrix.state_dir);
    let mut finger = press::Finger::new(
        edges.clone(),
        Duration::from_millis(config.buttons.debounce_ms.into()),
        Duration::from_millis(config.buttons.long_press_ms.into()),
    );
    let start_volume =
        Volume::remembered(&config.matrix.state_dir).unwrap_or(config.speaker.volume_percent);

    let (media_tx, mut media_events) = event_channels();
    start_media(&config, &done_tx, media_tx);
    let mut media: Result<MediaEngine, String> = Err("starting".to_owned());

    let mut core = Core::new(now(), settings(&config, turn_password, start_volume));
    // The latest ICE servers, for an engine that is not up yet when they come.
    let mut ice_servers: Option<MediaCommand> = None;
    let mut client: Option<Client> = None;
    let mut outbox: Option<Outbox> = None;
    let mut replies: HashMap<u64, oneshot::Sender<CtlReply>> = HashMap::new();
    let mut ctl_ids = 0u64;
    let mut stopping = false;
    let mut wakeups = WakeupGuard::default();
    let (livekit_tx, mut livekit_inputs) = mpsc::channel::<Input>(256);
    let mut livekit = LiveKit::new(livekit_tx);

    loop {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Notify(n) => systemd::notify(&n),
                Output::Led { led, on } => panel.set_led(led, on),
                Output::SetVolume(percent) => volume.set(percent),
                Output::Reply { id, reply } => {
                    if let Some(to) = replies.remove(&id) {
                        let _ = to.send(reply);
                    }
                }
                Output::LiveKit(command) => livekit.handle(command),
                Output::Exit => {
                    if let Some(outbox) = outbox.take() {
                        outbox.drain().await;
                    }
                    if let Ok(engine) = std::mem::replace(&mut media, Err("stopped".to_owned())) {
                        let _ = tokio::task::spawn_blocking(move || engine.stop(MEDIA_STOP_LIMIT))
                            .await;
                    }
                    log::info!("stopped");
                    return Ok(());
                }
                Output::Media(command) => {
                    if let MediaCommand::SetIceServers { .. } = command {
                        ice_servers = Some(command.clone());
                    }
                    match &media {
                        Ok(engine) => {
                            if let Err(why) = engine.send(command.clone()) {
                                log::warn!("media command not queued: {why}");
                                refuse_media(command, &why.to_string(), &mut core);
                            }
                        }
                        Err(why) => refuse_media(command, why, &mut core),
                    }
                }
                Output::Matrix(
                    command
                    @ (MatrixCommand::SendToDevice { .. } | MatrixCommand::SendEvent { .. }),
                ) => match &outbox {
                    Some(outbox) => outbox.send(command),
                    None => log::warn!("call signalling dropped: not logged in"),
                },
                Output::Matrix(command) => {
                    start(command, &config, &credential, client.as_ref(), &done_tx)
                }
            }
        }

        let wakeup = wakeups
            .sleep_until(core.next_wakeup(now()))
            .map(Instant::from_std);
        tokio::select! {
            Some(edge) = button_edges.recv() => core.handle(now(), Input::Button(edge)),
            Some(event) = media_events.events.recv() => core.handle(now(), Input::Media(event)),
            Ok(()) = media_events.reports.changed() => {
                let report = media_events.reports.borrow_and_update().clone();
                if let Some(report) = report {
                    core.handle(now(), Input::Media(report.into_event()));
                }
            }
            Some(input) = livekit_inputs.recv() => core.handle(now(), input),
            Some(finished) = done.recv() => match finished {
                Done::MediaReady(engine) => {
                    media = *engine;
                    let event = match &media {
                        Ok(engine) => MediaEvent::Started {
                            encoder: engine.encoder().element.clone(),
                        },
                        Err(why) => MediaEvent::Unavailable { reason: why.clone() },
                    };
                    if let (Ok(engine), Some(command)) = (&media, &ice_servers)
                        && let Err(why) = engine.send(command.clone())
                    {
                        log::warn!("media: the ICE servers were not queued: {why}");
                    }
                    core.handle(now(), Input::Media(event));
                }
                Done::LoggedIn(result) => {
                    let result = result.map(|c| {
                        outbox = Some(Outbox::start(c.clone()));
                        client = Some(c);
                    });
                    core.handle(now(), Input::LoggedIn(result));
                }
                Done::Synced(Ok(inputs)) => {
                    for input in inputs {
                        core.handle(now(), input);
                    }
                    core.handle(now(), Input::Synced(Ok(())));
                }
                Done::Synced(Err(e)) => core.handle(now(), Input::Synced(Err(e))),
                Done::Input(input) => core.handle(now(), input),
            },
            Some(request) = ctl.recv() => {
                if let CtlRequest::Press { button, long } = request.request {
                    let hold = finger.press(button, long, std::time::Instant::now());
                    let how = if long { "long-pressed" } else { "pressed" };
                    let _ = request.reply.send(CtlReply::done(format!(
                        "{how} {button} (held {} ms)",
                        hold.as_millis()
                    )));
                    continue;
                }
                ctl_ids += 1;
                replies.insert(ctl_ids, request.reply);
                core.handle(now(), Input::Ctl { id: ctl_ids, request: request.request });
            }
            _ = sleep_until(wakeup) => {
                let now = now();
                wakeups.ticked(now.mono);
                core.handle(now, Input::Tick);
            }
            _ = sigterm.recv() => stop(&mut core, &mut stopping)?,
            _ = sigint.recv() => stop(&mut core, &mut stopping)?,
        }
    }
}

/// Without a media engine, a call cannot be set up: tell the core at once so it hangs up
/// rather than waiting for media that will never come.
fn refuse_media(command: MediaCommand, why: &str, core: &mut Core) {
    let peer = match &command {
        MediaCommand::AddPeer { peer, .. }
        | MediaCommand::RemoteDescription { peer, .. }
        | MediaCommand::RestartIce { peer } => Some(peer.clone()),
        _ => None,
    };
    if let Some(peer) = peer {
        let event = MediaEvent::Refused {
            command: "set up a call".to_owned(),
            peer: Some(peer),
            reason: format!("media unavailable: {why}"),
        };
        core.handle(now(), Input::Media(event));
    }
}

/// The first signal starts a clean shutdown; a second one ends it at once.
fn stop(core: &mut Core, stopping: &mut bool) -> anyhow::Result<()> {
    if *stopping {
        anyhow::bail!("stopped by a second signal before leaving every call");
    }
    *stopping = true;
    core.handle(now(), Input::Shutdown);
    Ok(())
}

/// Starts the task that carries out `command`; its result comes back through `done`.
fn start(
    command: MatrixCommand,
    config: &Arc<Config>,
    credential: &Arc<Credential>,
    client: Option<&Client>,
    done: &mpsc::Sender<Done>,
) {
    let done = done.clone();
    if let MatrixCommand::LogIn { fresh } = command {
        let (config, credential) = (config.clone(), credential.clone());
        tokio::spawn(async move {
            let result = matrix::log_in(&config.matrix, &credential, fresh).await;
            let _ = done.send(Done::LoggedIn(result)).await;
        });
        return;
    }
    let Some(client) = client.cloned() else {
        let failure = MatrixFailure {
            kind: FailureKind::Other,
            message: "not logged in".to_owned(),
        };
        let input = match command {
            MatrixCommand::Sync { .. } => Done::Synced(Err(failure)),
            MatrixCommand::JoinRoom { request, .. } => Done::Input(Input::RoomJoined {
                request,
                result: Err(failure),
            }),
            MatrixCommand::SendState { request, .. } => Done::Input(Input::StateSent {
                request,
                result: Err(failure),
            }),
            MatrixCommand::UpdateDelayed { request, .. } => Done::Input(Input::DelayedUpdated {
                request,
                result: Err(failure),
            }),
            MatrixCommand::FetchTurnServers => Done::Input(Input::TurnServers(Err(failure))),
            MatrixCommand::FetchRtcTransports => Done::Input(Input::RtcTransports(Err(failure))),
            MatrixCommand::FetchWellKnownRtcFoci => {
                Done::Input(Input::WellKnownRtcFoci(Err(failure)))
            }
            MatrixCommand::RequestOpenIdToken { request } => Done::Input(Input::OpenIdToken {
                request,
                result: Err(failure),
            }),
            MatrixCommand::LogIn { .. }
            | MatrixCommand::SendToDevice { .. }
            | MatrixCommand::SendEvent { .. } => unreachable!("handled elsewhere"),
        };
        tokio::spawn(async move {
            let _ = done.send(input).await;
        });
        return;
    };
    tokio::spawn(async move {
        let result = match command {
            MatrixCommand::Sync { full_state } => {
                Done::Synced(matrix::sync_once(&client, full_state).await)
            }
            MatrixCommand::JoinRoom { request, room } => Done::Input(Input::RoomJoined {
                request,
                result: matrix::join(&client, &room).await,
            }),
            MatrixCommand::SendState {
                request,
                room_id,
                event_type,
                state_key,
                content,
                delay_ms,
            } => Done::Input(Input::StateSent {
                request,
                result: matrix::send_state(
                    &client,
                    room_id,
                    &event_type,
                    &state_key,
                    &content,
                    delay_ms,
                )
                .await,
            }),
            MatrixCommand::UpdateDelayed {
                request,
                delay_id,
                action,
            } => Done::Input(Input::DelayedUpdated {
                request,
                result: matrix::update_delayed(&client, delay_id, action).await,
            }),
            MatrixCommand::FetchTurnServers => {
                Done::Input(Input::TurnServers(matrix::turn_servers(&client).await))
            }
            MatrixCommand::FetchRtcTransports => {
                Done::Input(Input::RtcTransports(matrix::rtc_transports(&client).await))
            }
            MatrixCommand::FetchWellKnownRtcFoci => Done::Input(Input::WellKnownRtcFoci(
                matrix::well_known_rtc_foci(&client).await,
            )),
            MatrixCommand::RequestOpenIdToken { request } => Done::Input(Input::OpenIdToken {
                request,
                result: matrix::openid_token(&client).await,
            }),
            MatrixCommand::LogIn { .. }
            | MatrixCommand::SendToDevice { .. }
            | MatrixCommand::SendEvent { .. } => unreachable!("handled elsewhere"),
        };
        let _ = done.send(result).await;
    });
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
