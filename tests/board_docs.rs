//! The Raspberry Pi wiring docs against the default config: board/raspberrypi/wiring.md's table
//! and pinout.svg show every wired button and LED at its BCM GPIO and physical header pin, the
//! reserved pins are the ones listed here, and no default pin is on one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use roomd::config::{ButtonPins, Config, DEFAULT_TOML, GpioBackend, LedPins};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The 40-pin header, physical pin 1 first: "GPIOn" (BCM numbering) or the power/ground name.
const HEADER: [&str; 40] = [
    "3V3", "5V", "GPIO2", "5V", "GPIO3", "GND", "GPIO4", "GPIO14", "GND", "GPIO15", //
    "GPIO17", "GPIO18", "GPIO27", "GND", "GPIO22", "GPIO23", "3V3", "GPIO24", "GPIO10", "GND",
    "GPIO9", "GPIO25", "GPIO11", "GPIO8", "GND", "GPIO7", "GPIO0", "GPIO1", "GPIO5", "GND", //
    "GPIO6", "GPIO12", "GPIO13", "GND", "GPIO19", "GPIO16", "GPIO26", "GPIO20", "GND", "GPIO21",
];

/// GPIOs a room device may need for something else: HAT ID EEPROM / I2C0, I2C1, SPI0, UART, I2S.
const RESERVED: [u8; 15] = [0, 1, 2, 3, 7, 8, 9, 10, 11, 14, 15, 18, 19, 20, 21];

/// The physical header pin of a BCM GPIO.
fn physical(gpio: u8) -> Option<u8> {
    let name = format!("GPIO{gpio}");
    HEADER.iter().position(|p| *p == name).map(|i| i as u8 + 1)
}

fn ground_pins() -> BTreeSet<u8> {
    (1..=40)
        .filter(|&p| HEADER[p as usize - 1] == "GND")
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Button,
    Led,
}

#[derive(Debug)]
struct Wired {
    key: String,
    function: &'static str,
    kind: Kind,
    gpio: u8,
}

/// Every button and LED a config wires to the header. Destructured field by field, so a new
/// button or LED in the config does not compile here until the docs cover it.
fn wired(c: &Config) -> Vec<Wired> {
    let ButtonPins {
        mute,
        hangup,
        join,
        volume_up,
        volume_down,
    } = c.buttons.pins.clone();
    let LedPins {
        in_call,
        muted,
        status,
    } = c.leds.pins.clone();
    let mut all = Vec::new();
    if c.buttons.backend == GpioBackend::Gpio {
        all.extend([
            ("mute", Kind::Button, mute),
            ("hangup", Kind::Button, hangup),
            ("join", Kind::Button, join),
            ("volume_up", Kind::Button, volume_up),
            ("volume_down", Kind::Button, volume_down),
        ]);
    }
    if c.leds.backend == GpioBackend::Gpio {
        all.extend([
            ("in_call", Kind::Led, in_call),
            ("muted", Kind::Led, muted),
            ("status", Kind::Led, status),
        ]);
    }
    all.into_iter()
        .filter_map(|(function, kind, gpio)| {
            let section = if kind == Kind::Button {
                "buttons"
            } else {
                "leds"
            };
            Some(Wired {
                key: format!("{section}.pins.{function}"),
                function,
                kind,
                gpio: gpio?,
            })
        })
        .collect()
}

fn default_wiring() -> Vec<Wired> {
    let config = Config::parse(DEFAULT_TOML)
        .expect("default.toml parses")
        .config;
    let wired = wired(&config);
    assert_eq!(
        wired.len(),
        8,
        "five buttons and three LEDs by default: {wired:?}"
    );
    wired
}

/// The cells of each row of every Markdown table in `text` (header and separator rows too).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|') && l.ends_with('|') && l.len() > 1)
        .map(|l| {
            l[1..l.len() - 1]
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn the_default_pins_are_on_the_header_and_clear_of_the_reserved_pins() {
    for w in default_wiring() {
        assert!(
            physical(w.gpio).is_some(),
            "{}: GPIO{} is not on the header",
            w.key,
            w.gpio
        );
        assert!(
            !RESERVED.contains(&w.gpio),
            "{}: GPIO{} is reserved (I2C, SPI0, UART, I2S or the HAT ID pins)",
            w.key,
            w.gpio
        );
    }
}

#[test]
fn the_board_config_wires_the_default_pins() {
    // wiring.md documents both files; they must not drift apart.
    let (_, loaded) = Config::load(&repo("board/raspberrypi/roomd.toml"))
        .unwrap_or_else(|(_, invalid)| panic!("board config: {invalid:?}"));
    let defaults = Config::parse(DEFAULT_TOML).unwrap().config;
    assert_eq!(loaded.config.buttons.pins, defaults.buttons.pins);
    assert_eq!(loaded.config.leds.pins, defaults.leds.pins);
    assert_eq!(
        loaded.config.buttons.active_low,
        defaults.buttons.active_low
    );
    assert_eq!(loaded.config.buttons.pull, defaults.buttons.pull);
    assert_eq!(loaded.config.leds.active_low, defaults.leds.active_low);
}

#[test]
fn the_wiring_table_lists_every_default_pin_at_its_header_pin() {
    let doc = read("board/raspberrypi/wiring.md");
    let rows = table_rows(&doc);
    let grounds = ground_pins();
    let wiring_rows: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| {
            r.len() == 6 && (r[1].starts_with("`buttons.pins.") || r[1].starts_with("`leds.pins."))
        })
        .collect();

    let documented: BTreeSet<String> = wiring_rows
        .iter()
        .map(|r| r[1].trim_matches('`').to_owned())
        .collect();
    let wired = default_wiring();
    let expected: BTreeSet<String> = wired.iter().map(|w| w.key.clone()).collect();
    assert_eq!(
        documented, expected,
        "wiring.md's table lists exactly the default pins"
    );

    let mut used_grounds = BTreeSet::new();
    for w in &wired {
        let row = wiring_rows
            .iter()
            .find(|r| r[1] == format!("`{}`", w.key))
            .unwrap();
        let what = match w.kind {
            Kind::Button => "(button)",
            Kind::Led => "(LED)",
        };
        assert_eq!(
            row[0],
            format!("{} {what}", w.function),
            "function of {}",
            w.key
        );
        assert_eq!(row[2], format!("GPIO{}", w.gpio), "BCM GPIO of {}", w.key);
        let pin = physical(w.gpio).unwrap();
        assert_eq!(
            row[3],
            pin.to_string(),
            "header pin of {} (GPIO{})",
            w.key,
            w.gpio
        );
        let ground: u8 = row[4]
            .parse()
            .unwrap_or_else(|_| panic!("{}: ground {:?}", w.key, row[4]));
        assert!(
            grounds.contains(&ground),
            "{}: pin {ground} is not a ground pin",
            w.key
        );
        used_grounds.insert(ground);
        match w.kind {
            Kind::Button => assert!(row[5].contains("push button"), "{}: {}", w.key, row[5]),
            Kind::Led => assert!(
                row[5].contains("LED") && row[5].contains("Ω"),
                "{}: an LED with its resistor: {}",
                w.key,
                row[5]
            ),
        }
    }
    assert_eq!(
        used_grounds.len(),
        wired.len(),
        "each part has its own ground pin"
    );
}

#[test]
fn the_reserved_pin_table_lists_the_reserved_pins() {
    let doc = read("board/raspberrypi/wiring.md");
    let start = doc
        .find("## Pins roomd keeps clear of")
        .expect("wiring.md has a reserved-pins section");
    let section = &doc[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut listed = BTreeSet::new();
    for row in table_rows(section) {
        let Some(gpio) = row[0]
            .strip_prefix("GPIO")
            .and_then(|n| n.parse::<u8>().ok())
        else {
            continue;
        };
        assert_eq!(
            row[1],
            physical(gpio).unwrap().to_string(),
            "reserved GPIO{gpio}: header pin"
        );
        listed.insert(gpio);
    }
    assert_eq!(
        listed,
        RESERVED.into_iter().collect(),
        "wiring.md's reserved pins"
    );
    assert!(
        section.contains("no collision"),
        "wiring.md says the defaults are clear of them"
    );
}

/// The `<g id="pin-N" ...>...</g>` element for header pin `n`.
fn svg_pin(svg: &str, n: u8) -> &str {
    let open = format!("<g id=\"pin-{n}\" ");
    let start = svg
        .find(&open)
        .unwrap_or_else(|| panic!("pinout.svg has no pin {n}"));
    let len = svg[start..].find("</g>").expect("pin group closes");
    &svg[start..start + len]
}

fn attr(element: &str, name: &str) -> Option<f64> {
    let key = format!(" {name}=\"");
    let at = element.find(&key)? + key.len();
    element[at..].split('"').next()?.parse().ok()
}

/// Centre of a pin's pad: pin 1 is a square (rect), the rest circles.
fn pad_centre(group: &str) -> (f64, f64) {
    if let Some(at) = group.find("<circle") {
        let c = &group[at..];
        (attr(c, "cx").unwrap(), attr(c, "cy").unwrap())
    } else {
        let r = &group[group.find("<rect").expect("a pad")..];
        let (x, y) = (attr(r, "x").unwrap(), attr(r, "y").unwrap());
        let (w, h) = (attr(r, "width").unwrap(), attr(r, "height").unwrap());
        (x + w / 2.0, y + h / 2.0)
    }
}

#[test]
fn the_pinout_drawing_labels_every_pin_and_the_default_functions() {
    let svg = read("board/raspberrypi/pinout.svg");
    let regenerate = "regenerate it: python3 board/raspberrypi/pinout.py";
    let wired = default_wiring();

    let (left_x, _) = pad_centre(svg_pin(&svg, 1));
    let (right_x, _) = pad_centre(svg_pin(&svg, 2));
    assert!(left_x < right_x, "odd pins on the left");
    let mut last_y = f64::MIN;
    for n in 1..=40u8 {
        let g = svg_pin(&svg, n);
        let (x, y) = pad_centre(g);
        if n % 2 == 1 {
            assert_eq!(x, left_x, "pin {n} in the left column");
            assert!(y > last_y, "pin {n} below pin {}", n.saturating_sub(2));
            last_y = y;
        } else {
            assert_eq!(x, right_x, "pin {n} in the right column");
            assert_eq!(y, last_y, "pin {n} beside pin {}", n - 1);
        }
        assert!(
            g.contains(&format!(">{n}</text>")),
            "pin {n} shows its number"
        );
        let name = HEADER[n as usize - 1];
        assert!(
            g.contains(&format!(">{name}</text>")),
            "pin {n} is labelled {name}"
        );

        let gpio = name.strip_prefix("GPIO").map(|g| g.parse::<u8>().unwrap());
        match gpio {
            Some(gpio) => assert!(g.contains(&format!(" data-gpio=\"{gpio}\"")), "pin {n}"),
            None => assert!(g.contains(&format!(" data-power=\"{name}\"")), "pin {n}"),
        }
        let ours = gpio.and_then(|gpio| wired.iter().find(|w| w.gpio == gpio));
        match ours {
            Some(w) => {
                let role = if w.kind == Kind::Button {
                    "button"
                } else {
                    "led"
                };
                assert!(
                    g.contains(&format!(" data-function=\"{}\"", w.function))
                        && g.contains(&format!(" data-role=\"{role}\""))
                        && g.contains(&format!(">{} (", w.function)),
                    "pin {n} (GPIO{}) shows {}; {regenerate}",
                    w.gpio,
                    w.key
                );
            }
            None => assert!(
                !g.contains("data-function="),
                "pin {n} shows a function the default config does not wire there; {regenerate}"
            ),
        }
        if gpio.is_some_and(|g| RESERVED.contains(&g)) {
            assert!(
                g.contains(" data-role=\"reserved\""),
                "pin {n} is marked reserved"
            );
        }
    }
    for legend in [
        "roomd button",
        "roomd LED",
        "I2C1",
        "SPI0",
        "UART",
        "I2S",
        "HAT ID",
    ] {
        assert!(svg.contains(legend), "the legend explains {legend}");
    }
}

#[test]
fn the_pinout_drawing_is_what_its_script_makes() {
    let has_python = Command::new("python3")
        .args(["-c", "import sys, tomllib"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_python,
        "python3 (3.11 or later) is missing: install Debian's python3 (bash tools/setup.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pinout.svg");
    let run = Command::new("python3")
        .arg(repo("board/raspberrypi/pinout.py"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.stderr.is_empty(),
        "pinout.py warns: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let made = std::fs::read_to_string(&out).unwrap();
    assert!(
        made == read("board/raspberrypi/pinout.svg"),
        "board/raspberrypi/pinout.svg is stale: python3 board/raspberrypi/pinout.py"
    );
}
