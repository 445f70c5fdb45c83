//! roomd's test bed: real parts on loopback. A Synapse homeserver, roomd itself as a child
//! process with its systemd notify socket and its log captured, and (later) the browser visitor.

pub mod bench;
pub mod browser;
pub mod demo;
pub mod meeting;
pub mod paths;
pub mod roomd;
pub mod synapse;
pub mod visitor;
pub mod webrtc_peer;

pub use roomd::{Roomd, RoomdConfig};
pub use synapse::Synapse;
pub use visitor::Visitor;
