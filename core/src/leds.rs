//! The LEDs: what each shows is decided elsewhere as a pattern; this turns patterns into on/off
//! levels over time and says when the next change is due, so blinking runs on the core's
//! timers, not on sleeps.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Led {
    InCall,
    Muted,
    Status,
}

impl Led {
    pub const ALL: [Led; 3] = [Led::InCall, Led::Muted, Led::Status];

    /// The name used in the config (`leds.pins.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Led::InCall => "in_call",
            Led::Muted => "muted",
            Led::Status => "status",
        }
    }
}

/// What an LED shows. The blinking ones are distinct at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    Off,
    On,
    /// Logging in, syncing after a failure: a slow, even blink (1 Hz).
    Connecting,
    /// Something needs the admin: a fast blink (5 Hz).
    Error,
    /// A call the device is not in is waiting to be joined: two short flashes a second.
    Ringing,
    /// Do not disturb (a long hang-up press): one short flash every two seconds.
    DoNotDisturb,
}

impl Pattern {
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Off => "off",
            Pattern::On => "on",
            Pattern::Connecting => "connecting",
            Pattern::Error => "error",
            Pattern::Ringing => "ringing",
            Pattern::DoNotDisturb => "do-not-disturb",
        }
    }

    /// One cycle as (lit, how long) segments; `None` for a steady level.
    fn cycle(self) -> Option<&'static [(bool, u64)]> {
        match self {
            Pattern::Off | Pattern::On => None,
            Pattern::Connecting => Some(&[(true, 500), (false, 500)]),
            Pattern::Error => Some(&[(true, 100), (false, 100)]),
            Pattern::Ringing => Some(&[(true, 120), (false, 120), (true, 120), (false, 640)]),
            Pattern::DoNotDisturb => Some(&[(true, 100), (false, 1900)]),
        }
    }

    /// Whether the LED is lit `elapsed` into the pattern, and how long until that changes.
    fn level(self, elapsed: Duration) -> (bool, Option<Duration>) {
        let Some(cycle) = self.cycle() else {
            return (self == Pattern::On, None);
        };
        const MS: u128 = 1_000_000;
        let period: u128 = cycle.iter().map(|&(_, ms)| u128::from(ms) * MS).sum();
        let at = elapsed.as_nanos() % period;
        let mut end = 0;
        for &(lit, ms) in cycle {
            end += u128::from(ms) * MS;
            if at < end {
                return (lit, Some(Duration::from_nanos((end - at) as u64)));
            }
        }
        unreachable!("at < period")
    }
}

#[derive(Debug, Clone, Copy)]
struct LedState {
    pattern: Pattern,
    since: Instant,
    /// The level last sent out, if any.
    shown: Option<bool>,
}

/// A level to put an LED at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedLevel {
    pub led: Led,
    pub on: bool,
}

#[derive(Debug)]
pub struct Leds {
    leds: [LedState; 3],
}

impl Leds {
    pub fn new(now: Instant) -> Self {
        let off = LedState {
            pattern: Pattern::Off,
            since: now,
            shown: None,
        };
        Leds { leds: [off; 3] }
    }

    /// Shows `pattern` on `led` from `now` (a pattern already showing carries on unchanged).
    pub fn set(&mut self, led: Led, pattern: Pattern, now: Instant) {
        let state = &mut self.leds[led as usize];
        if state.pattern != pattern {
            state.pattern = pattern;
            state.since = now;
        }
    }

    pub fn pattern(&self, led: Led) -> Pattern {
        self.leds[led as usize].pattern
    }

    /// The levels that must change now.
    pub fn step(&mut self, now: Instant) -> Vec<LedLevel> {
        let mut changes = Vec::new();
        for led in Led::ALL {
            let state = &mut self.leds[led as usize];
            let (on, _) = state
                .pattern
                .level(now.saturating_duration_since(state.since));
            if state.shown != Some(on) {
                state.shown = Some(on);
                changes.push(LedLevel { led, on });
            }
        }
        changes
    }

    /// When a blinking LED next changes, as seen from `now` (the time of the last step).
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.leds
            .iter()
            .filter_map(|s| {
                let (_, left) = s.pattern.level(now.saturating_duration_since(s.since));
                left.map(|l| now + l)
            })
            .min()
    }
}
