//! What reaches the media engine's thread: the daemon's commands, and word from GStreamer's
//! threads that something the engine started has finished.

use std::sync::mpsc::Sender;

use roomd_core::media::MediaCommand;

pub enum Inbox {
    /// From the daemon's loop, through `MediaEngine::send` (which bounds how many wait).
    Command(MediaCommand),
    /// A peer's answer is made and set (on its webrtcbin's thread): link its media in now.
    Answered { serial: u64 },
    /// A removed peer's branches are off the tees (from an idle probe): finish removing it.
    Detached { serial: u64 },
    /// The engine's handle is gone: tear the call down and end the thread.
    Stop,
}

/// How GStreamer's threads post to the engine's thread. Never blocks; unbounded, but what is
/// posted is bounded by the peers: one `Answered` per answer, one `Detached` per removal.
#[derive(Clone)]
pub struct Post(pub(super) Sender<Inbox>);

impl Post {
    pub fn answered(&self, serial: u64) {
        let _ = self.0.send(Inbox::Answered { serial });
    }

    pub fn detached(&self, serial: u64) {
        let _ = self.0.send(Inbox::Detached { serial });
    }
}
