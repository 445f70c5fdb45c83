//! roomd: the firmware of a wall-mounted Matrix conference-room appliance.
//!
//! The roomd-core crate decides; `matrix`, `controls`, `media` and `systemd` carry out;
//! `daemon` is the loop between them. README.md's development section has the whole picture.

pub mod config;
pub mod controls;
pub mod daemon;
pub mod livekit;
pub mod logging;
pub mod matrix;
pub mod media;
pub mod percent;
pub mod systemd;
