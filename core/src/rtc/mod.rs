//! Element Call sessions (MatrixRTC with a LiveKit SFU): which transport the device publishes
//! on, and (as the issue grows) the session's connections.

pub mod discovery;

pub use discovery::{Discovery, Source, Transport};
