//! `roomd ctl press`: the edges a finger on a button makes, fed into the same queue as the
//! GPIO backend's, so a simulated press goes through the same debouncing and meaning.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::gpio::EdgeSender;
use roomd_core::Button;

/// Presses buttons as a finger would: one press of a button at a time, each let go of before
/// the next (a second `roomd ctl press` waits for the first).
pub struct Finger {
    edges: EdgeSender,
    debounce: Duration,
    long_press: Duration,
    /// When each button is free to be pressed again.
    free_at: HashMap<Button, Instant>,
}

impl Finger {
    pub fn new(edges: EdgeSender, debounce: Duration, long_press: Duration) -> Finger {
        Finger {
            edges,
            debounce,
            long_press,
            free_at: HashMap::new(),
        }
    }

    /// How long a press holds the button down.
    pub fn hold_time(&self, long: bool) -> Duration {
        if long {
            self.long_press + Duration::from_millis(200)
        } else {
            // Long enough to pass the debounce, well short of a long press.
            (self.debounce * 2 + Duration::from_millis(20)).min(self.long_press / 2)
        }
    }

    /// Presses `button` (now, or once its last press is over) and lets go after the hold
    /// time. Returns how long it is held.
    pub fn press(&mut self, button: Button, long: bool, now: Instant) -> Duration {
        let hold = self.hold_time(long);
        let start = self.free_at.get(&button).map_or(now, |&t| t.max(now));
        // Released, and past the release's debounce window, before the next press.
        self.free_at.insert(
            button,
            start + hold + self.debounce + Duration::from_millis(10),
        );
        let edges = self.edges.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            edges.send(button, true, Instant::now());
            tokio::time::sleep(hold).await;
            edges.send(button, false, Instant::now());
        });
        hold
    }
}
