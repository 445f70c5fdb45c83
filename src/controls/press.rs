//! `roomd ctl press`: the edges a finger on a button makes, fed into the same queue as the
//! GPIO backend's, so a simulated press goes through the same debouncing and meaning.

use std::time::{Duration, Instant};

use super::gpio::EdgeSender;
use crate::core::Button;

/// How long a simulated press holds the button down.
pub fn hold_time(long: bool, debounce: Duration, long_press: Duration) -> Duration {
    if long {
        long_press + Duration::from_millis(200)
    } else {
        // Long enough to pass the debounce, well short of a long press.
        (debounce * 2 + Duration::from_millis(20)).min(long_press / 2)
    }
}

/// Presses `button` now and lets go after `hold`.
pub fn press(edges: &EdgeSender, button: Button, hold: Duration) {
    edges.send(button, true, Instant::now());
    let edges = edges.clone();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        edges.send(button, false, Instant::now());
    });
}
