//! matrix-sdk glue: carries out the core's Matrix commands and reports their results.

use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::store::RoomLoadSettings;
use matrix_sdk::{Client, SessionMeta, SessionTokens};

use crate::config::{LoginSecret, MatrixConfig, Secret};
use crate::core::MatrixFailure;

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

/// Builds a client on the state directory's store and logs in as the configured device.
pub async fn log_in(
    config: &MatrixConfig,
    credential: &Credential,
) -> Result<Client, MatrixFailure> {
    let store = config.state_dir.join("matrix");
    let client = Client::builder()
        .homeserver_url(config.homeserver.as_str())
        .sqlite_store(&store, None)
        // The core owns retries and their backoff.
        .request_config(RequestConfig::new().disable_retry())
        .build()
        .await
        .map_err(|e| MatrixFailure {
            unauthorized: false,
            message: format!("cannot open the Matrix store in {}: {e}", store.display()),
        })?;

    match credential {
        Credential::Password(password) => {
            let response = client
                .matrix_auth()
                .login_username(&config.user_id, password.expose())
                .device_id(config.device_id.as_str())
                .initial_device_display_name(&config.display_name)
                .send()
                .await
                .map_err(|e| failure("login", &e))?;
            crate::logging::redact(&response.access_token);
        }
        Credential::AccessToken(token) => {
            let session = MatrixSession {
                meta: SessionMeta {
                    user_id: config.user_id.clone(),
                    device_id: config.device_id.clone(),
                },
                tokens: SessionTokens {
                    access_token: token.expose().to_owned(),
                    refresh_token: None,
                },
            };
            client
                .matrix_auth()
                .restore_session(session, RoomLoadSettings::default())
                .await
                .map_err(|e| failure("restoring the session", &e))?;
            let whoami = client.whoami().await.map_err(|e| MatrixFailure {
                unauthorized: e.client_api_error_kind().is_some_and(refuses_credentials),
                message: format!("checking the access token: {e}"),
            })?;
            if whoami.user_id != config.user_id
                || whoami.device_id.as_deref() != Some(&*config.device_id)
            {
                return Err(MatrixFailure {
                    unauthorized: true,
                    message: format!(
                        "the access token belongs to {} device {}, not {} device {}",
                        whoami.user_id,
                        whoami.device_id.as_deref().map_or("(none)", |d| d.as_str()),
                        config.user_id,
                        config.device_id
                    ),
                });
            }
        }
    }
    set_display_name(&client, &config.display_name).await;
    Ok(client)
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

/// One sync request; the store keeps the position between calls.
pub async fn sync_once(client: &Client) -> Result<(), MatrixFailure> {
    let settings = SyncSettings::default().timeout(SYNC_LONG_POLL);
    client
        .sync_once(settings)
        .await
        .map(|_| ())
        .map_err(|e| failure("sync", &e))
}

fn refuses_credentials(kind: &ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::Forbidden
            | ErrorKind::UnknownToken(_)
            | ErrorKind::MissingToken
            | ErrorKind::UserDeactivated
            | ErrorKind::UserLocked
            | ErrorKind::UserSuspended
    )
}

fn failure(what: &str, e: &matrix_sdk::Error) -> MatrixFailure {
    MatrixFailure {
        unauthorized: e.client_api_error_kind().is_some_and(refuses_credentials),
        message: format!("{what}: {e}"),
    }
}
