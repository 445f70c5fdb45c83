//! The transport's token service (lk-jwt-service): an OpenID token in, the SFU's URL and a
//! LiveKit JWT out (`POST {service}/sfu/get`, what Element Call uses for the connection it
//! publishes on, whose identity `@user:server:DEVICE` its members map LiveKit participants by).

use std::time::Duration;

use roomd_core::Secret;
use roomd_core::rtc::{OpenIdToken, SfuAccess};
use serde::Deserialize;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Deserialize)]
struct Answer {
    url: String,
    jwt: String,
}

#[derive(Deserialize)]
struct Refusal {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    error: String,
}

pub async fn fetch(
    http: &reqwest::Client,
    service_url: &str,
    room_id: &str,
    device_id: &str,
    openid: &OpenIdToken,
) -> Result<SfuAccess, String> {
    let endpoint = format!("{}/sfu/get", service_url.trim_end_matches('/'));
    let body = json!({
        "room": room_id,
        "openid_token": {
            "access_token": openid.access_token.expose(),
            "token_type": "Bearer",
            "matrix_server_name": openid.matrix_server_name,
            "expires_in": openid.expires_in_s,
        },
        "device_id": device_id,
    });
    let response = http
        .post(&endpoint)
        .timeout(TIMEOUT)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{endpoint}: {}", e.without_url()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("{endpoint}: {}", e.without_url()))?;
    if !status.is_success() {
        let why = serde_json::from_str::<Refusal>(&text)
            .map(|r| format!("{} {}", r.errcode, r.error))
            .unwrap_or_else(|_| text.chars().take(200).collect());
        return Err(format!("{endpoint} answered {status}: {}", why.trim()));
    }
    let answer: Answer = serde_json::from_str(&text)
        .map_err(|e| format!("{endpoint} answered something other than {{url, jwt}}: {e}"))?;
    crate::logging::redact_rotating("LiveKit token", &answer.jwt);
    Ok(SfuAccess {
        url: answer.url,
        jwt: Secret::new(answer.jwt),
    })
}
