//! The room's panel: what a button press means, what the LEDs show, the speaker volume and
//! do-not-disturb. The core carries the resulting actions out; this decides them.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::buttons::{ButtonEdge, Buttons, Gesture};
use super::leds::{Led, LedLevel, Leds, Pattern};
use super::{Button, Output, Outputs};

#[derive(Debug, Clone)]
pub struct PanelSettings {
    pub debounce: Duration,
    pub long_press: Duration,
    /// How long a long press on hang-up keeps the device out of calls.
    pub do_not_disturb: Duration,
    /// The speaker volume at start (the remembered one, else the config's), in percent.
    pub volume: u8,
    /// How much one volume press changes it, in percent.
    pub volume_step: u8,
    /// Whether any LED is wired: without one, no levels are sent and nothing blinks.
    pub leds_wired: bool,
}

/// What a press asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ToggleMute,
    HangUp,
    /// Hang up and stay out of new calls for the configured time.
    DoNotDisturb,
    Join,
    VolumeUp,
    VolumeDown,
}

/// How a volume request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeChange {
    Up,
    Down,
    Set(u8),
}

/// What the LEDs reflect, as the core sees it at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct View {
    pub stopping: bool,
    pub in_service: bool,
    /// Something needs the admin (login refused, media unavailable).
    pub error: bool,
    pub in_call: bool,
    /// A call the device is not in is waiting in a served room (or someone rang).
    pub call_waiting: bool,
    /// What the media engine last confirmed of the microphone.
    pub mic_muted: bool,
}

#[derive(Debug)]
pub struct Panel {
    settings: PanelSettings,
    buttons: Buttons,
    leds: Leds,
    volume: u8,
    do_not_disturb_until: Option<Instant>,
    /// When the LEDs were last stepped: blinking is timed from there.
    last_step: Instant,
}

impl Panel {
    pub fn new(now: Instant, settings: PanelSettings, out: &mut Outputs) -> Self {
        let volume = settings.volume.min(100);
        out.push_back(Output::SetVolume(volume));
        Panel {
            buttons: Buttons::new(settings.debounce, settings.long_press),
            leds: Leds::new(now),
            settings,
            volume,
            do_not_disturb_until: None,
            last_step: now,
        }
    }

    pub fn on_edge(&mut self, edge: ButtonEdge) {
        self.buttons.on_edge(edge);
    }

    /// The actions that the buttons' settled gestures ask for by `now`.
    pub fn actions(&mut self, now: Instant) -> Vec<Action> {
        self.buttons
            .poll(now)
            .into_iter()
            .filter_map(|(button, gesture)| {
                log::debug!("button {button}: {gesture:?}");
                match (button, gesture) {
                    (Button::Mute, Gesture::Press) => Some(Action::ToggleMute),
                    // Hang up at once; holding on asks for do-not-disturb as well.
                    (Button::Hangup, Gesture::Press) => Some(Action::HangUp),
                    (Button::Hangup, Gesture::LongPress) => Some(Action::DoNotDisturb),
                    (Button::Join, Gesture::Press) => Some(Action::Join),
                    (Button::VolumeUp, Gesture::Press) => Some(Action::VolumeUp),
                    (Button::VolumeDown, Gesture::Press) => Some(Action::VolumeDown),
                    _ => None,
                }
            })
            .collect()
    }

    pub fn volume(&self) -> u8 {
        self.volume
    }

    /// Changes the volume within 0–100 %; returns the new level.
    pub fn change_volume(&mut self, change: VolumeChange, out: &mut Outputs) -> u8 {
        let step = self.settings.volume_step;
        let volume = match change {
            VolumeChange::Up => self.volume.saturating_add(step),
            VolumeChange::Down => self.volume.saturating_sub(step),
            VolumeChange::Set(v) => v,
        }
        .min(100);
        if volume != self.volume {
            self.volume = volume;
            out.push_back(Output::SetVolume(volume));
        }
        volume
    }

    pub fn start_do_not_disturb(&mut self, now: Instant) -> Duration {
        self.do_not_disturb_until = Some(now + self.settings.do_not_disturb);
        self.settings.do_not_disturb
    }

    /// Ends do-not-disturb early; whether it was on.
    pub fn end_do_not_disturb(&mut self) -> bool {
        self.do_not_disturb_until.take().is_some()
    }

    /// How much longer do-not-disturb lasts, if it is on.
    pub fn do_not_disturb_left(&self, now: Instant) -> Option<Duration> {
        self.do_not_disturb_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Lifts a do-not-disturb whose time is up; whether it just ended.
    pub fn expire(&mut self, now: Instant) -> bool {
        if self.do_not_disturb_until.is_some() && self.do_not_disturb_left(now).is_none() {
            self.do_not_disturb_until = None;
            return true;
        }
        false
    }

    /// Sets the LEDs from `view` and sends out the levels that changed.
    pub fn show(&mut self, now: Instant, view: &View, out: &mut Outputs) {
        let status = if view.stopping {
            Pattern::Off
        } else if view.error {
            Pattern::Error
        } else if !view.in_service {
            Pattern::Connecting
        } else if self.do_not_disturb_left(now).is_some() {
            Pattern::DoNotDisturb
        } else if view.call_waiting && !view.in_call {
            Pattern::Ringing
        } else {
            Pattern::On
        };
        let lit = |on: bool| if on { Pattern::On } else { Pattern::Off };
        self.last_step = now;
        self.leds.set(Led::Status, status, now);
        self.leds
            .set(Led::InCall, lit(view.in_call && !view.stopping), now);
        self.leds
            .set(Led::Muted, lit(view.mic_muted && !view.stopping), now);
        if !self.settings.leds_wired {
            return;
        }
        for LedLevel { led, on } in self.leds.step(now) {
            out.push_back(Output::Led { led, on });
        }
    }

    pub fn pattern(&self, led: Led) -> Pattern {
        self.leds.pattern(led)
    }

    pub fn next_wakeup(&self) -> Option<Instant> {
        [
            self.buttons.next_wakeup(),
            self.leds
                .next_wakeup(self.last_step)
                .filter(|_| self.settings.leds_wired),
            self.do_not_disturb_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
