//! GStreamer: the camera and microphone encoded once into every peer's WebRTC connection, every
//! peer's media into the speaker and display. Driven by the core's media commands; decides
//! nothing about calls.

mod call;
pub mod check;
pub mod devices;
mod elements;
pub mod encoder;
mod engine;
pub mod ice;
mod layout;
mod peer;
mod sdp;

pub use call::MediaSettings;
pub use devices::{Devices, VideoFormat};
pub use engine::MediaEngine;
pub use peer::EventSink;
