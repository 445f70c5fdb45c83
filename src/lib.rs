//! roomd: the firmware of a wall-mounted Matrix conference-room appliance.
//!
//! `core` decides; `matrix`, `controls`, `systemd` and (later) `media` carry out; `daemon`
//! is the loop between them. See DESIGN.md in the shared docs for the whole picture.

pub mod config;
pub mod controls;
pub mod core;
pub mod daemon;
pub mod logging;
pub mod matrix;
pub mod media;
pub mod systemd;
