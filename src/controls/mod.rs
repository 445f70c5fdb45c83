//! How people and admins control the device: the buttons and LEDs, the speaker volume, and the
//! control socket. The decisions are the core's; this carries edges and requests in and levels
//! and replies out.

pub mod client;
pub mod gpio;
pub mod press;
pub mod socket;
pub mod volume;
