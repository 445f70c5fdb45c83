//! The one loop: results from the I/O tasks and the core's timers go into the core; the core's
//! commands come out and are started as tasks. It decides nothing itself.

use std::sync::Arc;

use matrix_sdk::Client;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::Config;
use crate::core::{Core, Input, MatrixCommand, MatrixFailure, Output, Settings};
use crate::matrix::{self, Credential};
use crate::systemd;

/// What a finished I/O task hands back to the loop.
enum Done {
    LoggedIn(Result<Client, MatrixFailure>),
    Synced(Result<(), MatrixFailure>),
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(config: Config, credential: Credential) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let credential = Arc::new(credential);
    let settings = Settings {
        watchdog_timeout: systemd::watchdog_timeout(),
    };
    let mut core = Core::new(Instant::now().into_std(), settings);
    let (results, mut done) = mpsc::channel::<Done>(16);
    let mut client: Option<Client> = None;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    loop {
        while let Some(output) = core.poll_output() {
            match output {
                Output::Notify(n) => systemd::notify(&n),
                Output::Matrix(MatrixCommand::LogIn) => {
                    let (config, credential, results) =
                        (config.clone(), credential.clone(), results.clone());
                    tokio::spawn(async move {
                        let result = matrix::log_in(&config.matrix, &credential).await;
                        let _ = results.send(Done::LoggedIn(result)).await;
                    });
                }
                Output::Matrix(MatrixCommand::Sync) => {
                    let Some(c) = client.clone() else {
                        log::error!("sync requested before login; ignoring");
                        continue;
                    };
                    let results = results.clone();
                    tokio::spawn(async move {
                        let result = matrix::sync_once(&c).await;
                        let _ = results.send(Done::Synced(result)).await;
                    });
                }
            }
        }

        let wakeup = core.next_wakeup().map(Instant::from_std);
        tokio::select! {
            Some(finished) = done.recv() => {
                let input = match finished {
                    Done::LoggedIn(result) => Input::LoggedIn(result.map(|c| {
                        client = Some(c);
                    })),
                    Done::Synced(result) => Input::Synced(result),
                };
                core.handle(Instant::now().into_std(), input);
            }
            _ = sleep_until(wakeup) => core.handle(Instant::now().into_std(), Input::Tick),
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    systemd::stopping();
    log::info!("stopping");
    let _ = client.take();
    Ok(())
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
