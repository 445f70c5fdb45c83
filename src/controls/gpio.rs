//! The buttons and LEDs on the header, behind a trait: rppal today (no longer maintained
//! upstream), so a gpio-cdev backend can replace it without touching anything else, and a
//! simulated backend for machines without GPIO.

use std::time::Instant;

use tokio::sync::mpsc;

use crate::config::{ButtonsConfig, GpioBackend as Backend, LedsConfig, Pull};
use roomd_core::{Button, ButtonEdge, Led};

/// Where button edges go: the daemon's loop. Cheap to clone; never blocks the sender.
#[derive(Clone)]
pub struct EdgeSender(mpsc::Sender<ButtonEdge>);

/// Edges waiting for the loop before more are dropped (a floating pin can chatter).
pub const EDGE_QUEUE: usize = 1024;

impl EdgeSender {
    pub fn channel() -> (EdgeSender, mpsc::Receiver<ButtonEdge>) {
        let (tx, rx) = mpsc::channel(EDGE_QUEUE);
        (EdgeSender(tx), rx)
    }

    pub fn send(&self, button: Button, pressed: bool, at: Instant) {
        let edge = ButtonEdge {
            button,
            pressed,
            at,
        };
        if self.0.try_send(edge).is_err() {
            log::warn!("button {button}: edge dropped (the loop is behind or stopping)");
        }
    }
}

/// One LED's output line.
pub trait LedLine: Send {
    fn set(&mut self, on: bool);
}

/// A source of button edges and LED lines. Keeps what it opened alive while it lives.
pub trait Gpio: Send {
    /// Watches each `(button, BCM pin)` and sends its level changes (true = pressed).
    fn watch_buttons(
        &mut self,
        buttons: &[(Button, u8)],
        pull: Pull,
        active_low: bool,
        edges: EdgeSender,
    ) -> anyhow::Result<()>;

    fn led(&mut self, led: Led, pin: u8, active_low: bool) -> anyhow::Result<Box<dyn LedLine>>;
}

/// The Raspberry Pi header through rppal's GPIO character device.
pub struct RppalGpio {
    gpio: rppal::gpio::Gpio,
    /// Interrupt callbacks run while their pins are held.
    inputs: Vec<rppal::gpio::InputPin>,
}

impl RppalGpio {
    pub fn open() -> anyhow::Result<RppalGpio> {
        Ok(RppalGpio {
            gpio: rppal::gpio::Gpio::new()?,
            inputs: Vec::new(),
        })
    }
}

impl Gpio for RppalGpio {
    fn watch_buttons(
        &mut self,
        buttons: &[(Button, u8)],
        pull: Pull,
        active_low: bool,
        edges: EdgeSender,
    ) -> anyhow::Result<()> {
        use rppal::gpio::Trigger;
        for &(button, pin) in buttons {
            let pin_handle = self
                .gpio
                .get(pin)
                .map_err(|e| anyhow::anyhow!("GPIO {pin} for the {button} button: {e}"))?;
            let mut input = match pull {
                Pull::Up => pin_handle.into_input_pullup(),
                Pull::Down => pin_handle.into_input_pulldown(),
                Pull::Off => pin_handle.into_input(),
            };
            let edges = edges.clone();
            // The core debounces, with the time of each edge; rppal's own debounce stays off.
            input
                .set_async_interrupt(Trigger::Both, None, move |event| {
                    let high = event.trigger == Trigger::RisingEdge;
                    edges.send(button, high != active_low, Instant::now());
                })
                .map_err(|e| anyhow::anyhow!("GPIO {pin} for the {button} button: {e}"))?;
            self.inputs.push(input);
        }
        Ok(())
    }

    fn led(&mut self, led: Led, pin: u8, active_low: bool) -> anyhow::Result<Box<dyn LedLine>> {
        let pin_handle = self
            .gpio
            .get(pin)
            .map_err(|e| anyhow::anyhow!("GPIO {pin} for the {} LED: {e}", led.name()))?;
        // Start dark: the core lights what should be lit straight away.
        let output = if active_low {
            pin_handle.into_output_high()
        } else {
            pin_handle.into_output_low()
        };
        Ok(Box::new(RppalLed { output, active_low }))
    }
}

struct RppalLed {
    output: rppal::gpio::OutputPin,
    active_low: bool,
}

impl LedLine for RppalLed {
    fn set(&mut self, on: bool) {
        if on != self.active_low {
            self.output.set_high();
        } else {
            self.output.set_low();
        }
    }
}

/// No hardware: buttons come only from `roomd ctl press`, LEDs go to the log.
pub struct SimulatedGpio;

impl Gpio for SimulatedGpio {
    fn watch_buttons(
        &mut self,
        _: &[(Button, u8)],
        _: Pull,
        _: bool,
        _: EdgeSender,
    ) -> anyhow::Result<()> {
        Ok(())
    }

    fn led(&mut self, led: Led, _: u8, _: bool) -> anyhow::Result<Box<dyn LedLine>> {
        Ok(Box::new(SimulatedLed(led)))
    }
}

struct SimulatedLed(Led);

impl LedLine for SimulatedLed {
    fn set(&mut self, on: bool) {
        log::debug!(
            "simulated LED {} {}",
            self.0.name(),
            if on { "on" } else { "off" }
        );
    }
}

/// The buttons and LEDs as configured, opened. Dropping it releases the pins.
pub struct Panel {
    _gpio: Vec<Box<dyn Gpio>>,
    leds: Vec<(Led, Box<dyn LedLine>)>,
}

impl Panel {
    /// Opens what the config wires. A GPIO that cannot be opened is an error unless the
    /// config calls it optional; then roomd logs it and carries on without.
    pub fn open(
        buttons: &ButtonsConfig,
        leds: &LedsConfig,
        edges: EdgeSender,
    ) -> anyhow::Result<Panel> {
        let mut panel = Panel {
            _gpio: Vec::new(),
            leds: Vec::new(),
        };
        let wired = wired_buttons(buttons);
        match open_backend(buttons.backend, "buttons") {
            Ok(Some(mut gpio)) => {
                match gpio.watch_buttons(&wired, buttons.pull, buttons.active_low, edges) {
                    Ok(()) => panel._gpio.push(gpio),
                    Err(e) => skip_or_fail(buttons.optional, "buttons", e)?,
                }
            }
            Ok(None) => {}
            Err(e) => skip_or_fail(buttons.optional, "buttons", e)?,
        }
        match open_backend(leds.backend, "leds") {
            Ok(Some(mut gpio)) => {
                let mut lines = Vec::new();
                for (led, pin) in wired_leds(leds) {
                    match gpio.led(led, pin, leds.active_low) {
                        Ok(line) => lines.push((led, line)),
                        Err(e) => {
                            lines.clear();
                            skip_or_fail(leds.optional, "leds", e)?;
                            break;
                        }
                    }
                }
                panel.leds = lines;
                panel._gpio.push(gpio);
            }
            Ok(None) => {}
            Err(e) => skip_or_fail(leds.optional, "leds", e)?,
        }
        Ok(panel)
    }

    pub fn set_led(&mut self, led: Led, on: bool) {
        for (_, line) in self.leds.iter_mut().filter(|(l, _)| *l == led) {
            line.set(on);
        }
    }
}

fn open_backend(backend: Backend, section: &str) -> anyhow::Result<Option<Box<dyn Gpio>>> {
    match backend {
        Backend::None => Ok(None),
        Backend::Simulated => Ok(Some(Box::new(SimulatedGpio))),
        Backend::Gpio => match RppalGpio::open() {
            Ok(gpio) => Ok(Some(Box::new(gpio))),
            Err(e) => Err(anyhow::anyhow!(
                "cannot open the GPIO header ({e}); on a machine without one set \
                 {section}.backend = \"simulated\" or \"none\""
            )),
        },
    }
}

fn skip_or_fail(optional: bool, section: &str, e: anyhow::Error) -> anyhow::Result<()> {
    if optional {
        log::error!("{e:#}; carrying on without {section} ({section}.optional = true)");
        Ok(())
    } else {
        Err(e.context(format!("{section}.optional = false")))
    }
}

pub fn wired_buttons(c: &ButtonsConfig) -> Vec<(Button, u8)> {
    let p = &c.pins;
    [
        (Button::Mute, p.mute),
        (Button::Hangup, p.hangup),
        (Button::Join, p.join),
        (Button::VolumeUp, p.volume_up),
        (Button::VolumeDown, p.volume_down),
    ]
    .into_iter()
    .filter_map(|(b, pin)| Some((b, pin?)))
    .collect()
}

fn wired_leds(c: &LedsConfig) -> Vec<(Led, u8)> {
    let p = &c.pins;
    [
        (Led::InCall, p.in_call),
        (Led::Muted, p.muted),
        (Led::Status, p.status),
    ]
    .into_iter()
    .filter_map(|(l, pin)| Some((l, pin?)))
    .collect()
}
