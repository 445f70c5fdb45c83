//! roomd: the firmware of a wall-mounted Matrix conference-room appliance.
//!
//! `core` decides; `matrix`, `systemd` and (later) `media` and `controls` carry out; `daemon`
//! is the loop between them. See DESIGN.md in the shared docs for the whole picture.

pub mod config;
pub mod core;
pub mod daemon;
pub mod logging;
pub mod matrix;
pub mod systemd;
