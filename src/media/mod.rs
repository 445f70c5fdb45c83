//! GStreamer: the camera and microphone encoded once into every peer's WebRTC connection, every
//! peer's media into the speaker and display. Driven by the core's media commands; decides
//! nothing about calls. The engine runs on its own thread (`actor`), beside the daemon's loop.

mod actor;
mod call;
pub mod check;
pub mod devices;
mod elements;
pub mod encoder;
mod engine;
pub mod events;
pub mod hooks;
pub mod ice;
mod layout;
mod mailbox;
mod peer;
mod sdp;

pub use actor::{COMMAND_QUEUE, MediaEngine, NotTaken};
pub use call::MediaSettings;
pub use devices::{Devices, VideoFormat};
pub use events::{EventReceiver, EventSender, event_channels};
pub use hooks::TestHooks;
