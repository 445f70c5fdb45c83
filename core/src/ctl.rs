//! The control socket's requests and replies: one JSON object per line each way.

use serde::{Deserialize, Serialize};

use super::buttons::Button;
use super::panel::VolumeChange;
use super::status::Status;

/// The longest request line the socket reads; anything longer is refused.
pub const MAX_REQUEST_BYTES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CtlRequest {
    Status,
    /// Leave the call (in `room`, or wherever we are in one) and stay out until it ends.
    Hangup {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Join the room's call (in `room`, or any served room), ending a hang-up or
    /// do-not-disturb.
    Join {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    Mute,
    Unmute,
    ToggleMute,
    /// Change the speaker volume, or (without a change) say what it is.
    Volume {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        change: Option<VolumeChange>,
    },
    /// Press a button as its GPIO backend would report it: down, then up after a short or a
    /// long press.
    Press {
        button: Button,
        #[serde(default)]
        long: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlReply {
    pub ok: bool,
    /// Boxed: a status is much larger than any other reply or output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CtlReply {
    pub fn status(status: Status) -> Self {
        CtlReply {
            ok: true,
            status: Some(Box::new(status)),
            message: None,
            error: None,
        }
    }

    pub fn done(message: impl Into<String>) -> Self {
        CtlReply {
            ok: true,
            status: None,
            message: Some(message.into()),
            error: None,
        }
    }

    pub fn error(error: impl Into<String>) -> Self {
        CtlReply {
            ok: false,
            status: None,
            message: None,
            error: Some(error.into()),
        }
    }
}
