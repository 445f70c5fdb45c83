//! matrix-sdk glue: carries out the core's Matrix commands and reports their results.

mod outbox;
mod requests;
mod session_file;
mod sync;

use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{Client, SessionMeta, SessionTokens};

pub use outbox::Outbox;
pub use requests::{
    join, openid_token, rtc_transports, send_state, turn_servers, update_delayed,
    well_known_rtc_foci,
};
use session_file::SavedSession;

use crate::config::{LoginSecret, MatrixConfig, Secret};
use roomd_core::{FailureKind, Input, MatrixFailure};

/// How long the homeserver may hold a sync request open.
const SYNC_LONG_POLL: Duration = Duration::from_secs(30);

/// The login secret, read once at start.
pub enum Credential {
    Password(Secret),
    AccessToken(Secret),
}

impl Credential {
    /// Reads the configured secret and tells the logger never to print it.
    pub fn load(login: &LoginSecret) -> Result<Self, crate::config::SecretError> {
        let credential = match login {
            LoginSecret::Password(source) => Credential::Password(source.read("password file")?),
            LoginSecret::AccessToken(source) => {
                Credential::AccessToken(source.read("access token file")?)
            }
        };
        crate::logging::redact(credential.secret().expose());
        Ok(credential)
    }

    fn secret(&self) -> &Secret {
        match self {
            Credential::Password(s) | Credential::AccessToken(s) => s,
        }
    }
}

/// Builds a client on the state directory's store and signs in as the configured device: from
/// the saved session when there is one (no new login, no new token), else with the password or
/// access token. `fresh` discards the saved session first (the homeserver refused it).
pub async fn log_in(
    config: &MatrixConfig,
    credential: &Credential,
    fresh: bool,
) -> Result<Client, MatrixFailure> {
    let local = |message: String| MatrixFailure {
        kind: FailureKind::Other,
        message,
    };
    let state_dir = &config.state_dir;
    session_file::ensure_state_dir(state_dir)
        .map_err(|e| local(format!("cannot make {}: {e}", state_dir.display())))?;
    let store = state_dir.join("matrix");
    let client = Client::builder()
        .homeserver_url(config.homeserver.as_str())
        .sqlite_store(&store, None)
        // The core owns retries and their backoff.
        .request_config(RequestConfig::new().disable_retry())
        .build()
        .await
        .map_err(|e| {
            local(format!(
                "cannot open the Matrix store in {}: {e}",
                store.display()
            ))
        })?;

    if fresh {
        session_file::discard(state_dir);
    }
    let token = match credential {
        Credential::AccessToken(token) => Some(token.expose().to_owned()),
        Credential::Password(_) => session_file::load(state_dir)
            .filter(|s| {
                s.homeserver == config.homeserver.as_str()
                    && s.user_id == config.user_id.as_str()
                    && s.device_id == config.device_id.as_str()
            })
            .map(|s| {
                crate::logging::redact(&s.access_token);
                log::info!("restoring the saved session of device {}", config.device_id);
                s.access_token
            }),
    };
    match (token, credential) {
        (Some(token), credential) => {
            restore(&client, config, token).await?;
            if let Credential::AccessToken(_) = credential {
                check_token_owner(&client, config).await?;
            }
        }
        (None, Credential::Password(password)) => {
            let response = client
                .matrix_auth()
                .login_username(&config.user_id, password.expose())
                .device_id(config.device_id.as_str())
                .initial_device_display_name(&config.display_name)
                .send()
                .await
                .map_err(|e| login_failure("login", &e))?;
            crate::logging::redact(&response.access_token);
            let saved = SavedSession {
                homeserver: config.homeserver.to_string(),
                user_id: config.user_id.to_string(),
                device_id: config.device_id.to_string(),
                access_token: response.access_token,
            };
            if let Err(e) = session_file::save(state_dir, &saved) {
                log::warn!("cannot save the session (the next start logs in again): {e}");
            }
        }
        (None, Credential::AccessToken(_)) => unreachable!("an access token is always a token"),
    }
    set_display_name(&client, &config.display_name).await;
    Ok(client)
}

async fn restore(
    client: &Client,
    config: &MatrixConfig,
    token: String,
) -> Result<(), MatrixFailure> {
    let session = MatrixSession {
        meta: SessionMeta {
            user_id: config.user_id.clone(),
            device_id: config.device_id.clone(),
        },
        tokens: SessionTokens {
            access_token: token,
            refresh_token: None,
        },
    };
    client
        .matrix_auth()
        .restore_session(session, RoomLoadSettings::default())
        .await
        .map_err(|e| login_failure("restoring the session", &e))
}

/// An admin-provided token must be for the configured account and device.
async fn check_token_owner(client: &Client, config: &MatrixConfig) -> Result<(), MatrixFailure> {
    let whoami = client
        .whoami()
        .await
        .map_err(|e| requests::http_failure("checking the access token", &e))?;
    if whoami.user_id != config.user_id || whoami.device_id.as_deref() != Some(&*config.device_id) {
        return Err(MatrixFailure {
            kind: FailureKind::Unauthorized,
            message: format!(
                "the access token belongs to {} device {}, not {} device {}",
                whoami.user_id,
                whoami.device_id.as_deref().map_or("(none)", |d| d.as_str()),
                config.user_id,
                config.device_id
            ),
        });
    }
    Ok(())
}

async fn set_display_name(client: &Client, name: &str) {
    let account = client.account();
    match account.get_display_name().await {
        Ok(current) if current.as_deref() == Some(name) => {}
        _ => {
            if let Err(e) = account.set_display_name(Some(name)).await {
                log::warn!("cannot set the display name to {name:?}: {e}");
            }
        }
    }
}

/// One sync request; the store keeps the position between calls. Returns the core's inputs
/// from it, in order.
pub async fn sync_once(client: &Client, full_state: bool) -> Result<Vec<Input>, MatrixFailure> {
    // A full-state sync is the start of a run: answer at once rather than long-poll.
    let wait = if full_state {
        Duration::ZERO
    } else {
        SYNC_LONG_POLL
    };
    let settings = SyncSettings::default().timeout(wait).full_state(full_state);
    let response = client
        .sync_once(settings)
        .await
        .map_err(|e| requests::failure("sync", &e))?;
    let own_user = client.user_id().ok_or_else(|| MatrixFailure {
        kind: FailureKind::Unauthorized,
        message: "synced without a session".to_owned(),
    })?;
    Ok(sync::inputs(&response, own_user))
}

/// A login error: a refused password counts as refused credentials.
fn login_failure(what: &str, e: &matrix_sdk::Error) -> MatrixFailure {
    let mut failure = requests::failure(what, e);
    if matches!(e.client_api_error_kind(), Some(ErrorKind::Forbidden)) {
        failure.kind = FailureKind::Unauthorized;
    }
    failure
}
