//! Button edges to gestures: debouncing and long presses, timed by when each edge happened.
//!
//! The first edge counts at once (a press acts without waiting), then the pin is not listened
//! to for the debounce time, so a bounce train of any length inside that window is one press.
//! At the window's end the pin's level is read again: a button let go inside it is a release.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Button {
    Mute,
    Hangup,
    Join,
    VolumeUp,
    VolumeDown,
}

impl Button {
    pub const ALL: [Button; 5] = [
        Button::Mute,
        Button::Hangup,
        Button::Join,
        Button::VolumeUp,
        Button::VolumeDown,
    ];

    /// The name used in the config (`buttons.pins.<name>`) and by `roomd ctl press`.
    pub fn name(self) -> &'static str {
        match self {
            Button::Mute => "mute",
            Button::Hangup => "hangup",
            Button::Join => "join",
            Button::VolumeUp => "volume_up",
            Button::VolumeDown => "volume_down",
        }
    }

    /// Reads a name as the config or a person typing it would write it.
    pub fn parse(name: &str) -> Option<Button> {
        let name = name.replace('-', "_");
        Button::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl std::fmt::Display for Button {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One change of a button's level, as its backend saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ButtonEdge {
    pub button: Button,
    pub pressed: bool,
    /// When the edge happened (the backend's reading, which may be a little before it is fed).
    pub at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gesture {
    /// The button went down (after debouncing).
    Press,
    /// It has been held down for the long-press time.
    LongPress,
    /// It came back up.
    Release,
}

#[derive(Debug, Clone, Copy)]
struct PinState {
    /// The level the last edge left the pin at.
    raw: bool,
    /// The debounced level.
    pressed: bool,
    /// Edges are not acted on until then (the last accepted one is still bouncing).
    locked_until: Option<Instant>,
    /// When the current press turns into a long press, until that has been reported.
    long_due: Option<Instant>,
}

#[derive(Debug)]
pub struct Buttons {
    debounce: Duration,
    long_press: Duration,
    pins: BTreeMap<Button, PinState>,
    /// Gestures accepted from edges, waiting for [`Buttons::poll`].
    ready: Vec<(Button, Gesture)>,
}

/// At most this many gestures wait to be polled; more is a chattering pin.
const MAX_READY: usize = 64;

impl Buttons {
    pub fn new(debounce: Duration, long_press: Duration) -> Self {
        Buttons {
            debounce,
            long_press,
            pins: BTreeMap::new(),
            ready: Vec::new(),
        }
    }

    pub fn on_edge(&mut self, edge: ButtonEdge) {
        let pin = self.pins.entry(edge.button).or_insert(PinState {
            raw: false,
            pressed: false,
            locked_until: None,
            long_due: None,
        });
        pin.raw = edge.pressed;
        if pin.locked_until.is_some_and(|until| edge.at < until) || pin.raw == pin.pressed {
            return;
        }
        let gesture = Self::accept(pin, edge.at, self.debounce, self.long_press);
        if self.ready.len() < MAX_READY {
            self.ready.push((edge.button, gesture));
        }
    }

    /// Takes the pin's raw level as its debounced one, from `at`.
    fn accept(pin: &mut PinState, at: Instant, debounce: Duration, long: Duration) -> Gesture {
        pin.pressed = pin.raw;
        pin.locked_until = Some(at + debounce);
        if pin.pressed {
            pin.long_due = Some(at + long);
            Gesture::Press
        } else {
            pin.long_due = None;
            Gesture::Release
        }
    }

    /// The gestures that have happened by `now`, in order per button.
    pub fn poll(&mut self, now: Instant) -> Vec<(Button, Gesture)> {
        let mut gestures = std::mem::take(&mut self.ready);
        for (&button, pin) in &mut self.pins {
            // A window ended with the pin at another level than the one accepted.
            if let Some(until) = pin.locked_until
                && now >= until
            {
                pin.locked_until = None;
                if pin.raw != pin.pressed {
                    let gesture = Self::accept(pin, until, self.debounce, self.long_press);
                    gestures.push((button, gesture));
                }
            }
            if pin.pressed && pin.long_due.is_some_and(|due| now >= due) {
                pin.long_due = None;
                gestures.push((button, Gesture::LongPress));
            }
        }
        gestures
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        // `ready` needs no wakeup: the core polls right after feeding an edge.
        self.pins
            .values()
            .filter_map(|pin| {
                let unlock = pin.locked_until.filter(|_| pin.raw != pin.pressed);
                let long = pin.long_due.filter(|_| pin.pressed);
                unlock.into_iter().chain(long).min()
            })
            .min()
    }
}
