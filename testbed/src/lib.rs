//! roomd's test bed: real parts on loopback. A Synapse homeserver, roomd itself as a child
//! process with its systemd notify socket and its log captured, the browser visitors, and
//! Element Call's media path (a LiveKit-protocol test SFU, a token service, livekit-client).

pub mod bench;
pub mod browser;
pub mod demo;
pub mod livekit;
pub mod meeting;
pub mod paths;
pub mod roomd;
pub mod synapse;
pub mod visitor;
pub mod webrtc_peer;

pub use roomd::{Roomd, RoomdConfig};
pub use synapse::Synapse;
pub use visitor::Visitor;
