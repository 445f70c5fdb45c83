//! Element Call sessions (MatrixRTC with a LiveKit SFU): which transport the device publishes
//! on, and (as the issue grows) the session's connections.

pub mod connection;
pub mod discovery;
pub mod sessions;
pub mod signal;

pub use connection::{
    ConnId, Connection, LiveKitCommand, LiveKitEvent, OpenIdToken, Role, SfuAccess,
};
pub use discovery::{Discovery, Source, Transport};
pub use sessions::{SessionMember, Sessions, WantedSession};
