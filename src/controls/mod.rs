//! How people and admins control the device: the control socket (and, later, the buttons and
//! LEDs). The decisions are the core's; this carries requests in and replies out.

pub mod client;
pub mod socket;
