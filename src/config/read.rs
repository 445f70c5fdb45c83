//! Walks the TOML document key by key so that every syntax error, unknown key and wrongly typed
//! value is reported, not just the first. Each value is still deserialized by serde (through
//! toml's own `ValueDeserializer`), so the messages are serde's and the spans are toml's.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::{
    ButtonPins, ButtonsConfig, CallsConfig, CameraConfig, Config, ControlConfig, Diagnostic,
    DisplayConfig, IceConfig, LedPins, LedsConfig, LoginSecret, MatrixConfig, MicrophoneConfig,
    RoomsConfig, SecretSource, SpeakerConfig, VideoConfig,
};

/// Where each value was found, by dotted key path (`matrix.user_id`, `buttons.pins`).
pub(super) type Spans = HashMap<String, Range<usize>>;

pub(super) fn read(text: &str) -> (Config, Spans, Vec<Diagnostic>) {
    let (c, r) = read_with_schema(text);
    (c, r.spans, r.diagnostics)
}

fn read_with_schema(text: &str) -> (Config, Reader) {
    let (root, errors) = DeTable::parse_recoverable(text);
    let mut r = Reader::default();
    for e in errors {
        r.diagnostics
            .push(Diagnostic::error(e.span(), e.message().trim().to_owned()));
    }
    let mut c = Config::default();
    let root = root.get_ref();
    if let Some(t) = r.table(root, "", "matrix") {
        read_matrix(&mut r, t, &mut c.matrix);
    }
    if let Some(t) = r.table(root, "", "rooms") {
        read_rooms(&mut r, t, &mut c.rooms);
    }
    if let Some(t) = r.table(root, "", "calls") {
        read_calls(&mut r, t, &mut c.calls);
    }
    if let Some(t) = r.table(root, "", "ice") {
        read_ice(&mut r, t, &mut c.ice);
    }
    if let Some(t) = r.table(root, "", "camera") {
        read_camera(&mut r, t, &mut c.camera);
    }
    if let Some(t) = r.table(root, "", "video") {
        read_video(&mut r, t, &mut c.video);
    }
    if let Some(t) = r.table(root, "", "microphone") {
        read_microphone(&mut r, t, &mut c.microphone);
    }
    if let Some(t) = r.table(root, "", "speaker") {
        read_speaker(&mut r, t, &mut c.speaker);
    }
    if let Some(t) = r.table(root, "", "display") {
        read_display(&mut r, t, &mut c.display);
    }
    if let Some(t) = r.table(root, "", "buttons") {
        read_buttons(&mut r, t, &mut c.buttons);
    }
    if let Some(t) = r.table(root, "", "leds") {
        read_leds(&mut r, t, &mut c.leds);
    }
    if let Some(t) = r.table(root, "", "control") {
        read_control(&mut r, t, &mut c.control);
    }
    r.report_unknown(root, "");
    (c, r)
}

fn read_matrix(r: &mut Reader, t: &DeTable, m: &mut MatrixConfig) {
    const P: &str = "matrix";
    r.field(t, P, "homeserver", &mut m.homeserver);
    r.field(t, P, "user_id", &mut m.user_id);
    r.field(t, P, "device_id", &mut m.device_id);
    r.field(t, P, "display_name", &mut m.display_name);
    r.field(t, P, "state_dir", &mut m.state_dir);

    // The four secret keys are one choice: naming any of them replaces the default choice.
    let mut choices: Vec<(&str, LoginSecret)> = SECRET_KEYS
        .iter()
        .filter_map(|key| Some((*key, read_secret_choice(r, t, key)?)))
        .collect();
    if let Some((first, _)) = choices.first() {
        for (extra, _) in &choices[1..] {
            let span = r.spans.get(&format!("{P}.{extra}")).cloned();
            r.diagnostics.push(Diagnostic::error(
                span,
                format!(
                    "{P}.{extra}: the login secret is already given by {P}.{first}; set exactly \
                     one of password_credential, password_file, access_token_credential, \
                     access_token_file"
                ),
            ));
        }
        r.spans.insert(
            format!("{P}.login"),
            r.spans[&format!("{P}.{first}")].clone(),
        );
        m.login = choices.swap_remove(0).1;
    }
}

const SECRET_KEYS: [&str; 4] = [
    "password_credential",
    "password_file",
    "access_token_credential",
    "access_token_file",
];

fn read_secret_choice(r: &mut Reader, t: &DeTable, key: &'static str) -> Option<LoginSecret> {
    let source = if key.ends_with("_file") {
        let mut path: Option<PathBuf> = None;
        r.field(t, "matrix", key, &mut path);
        SecretSource::File(path?)
    } else {
        let mut name: Option<String> = None;
        r.field(t, "matrix", key, &mut name);
        SecretSource::Credential(name?)
    };
    Some(if key.starts_with("password") {
        LoginSecret::Password(source)
    } else {
        LoginSecret::AccessToken(source)
    })
}

fn read_rooms(r: &mut Reader, t: &DeTable, c: &mut RoomsConfig) {
    r.list(t, "rooms", "serve", &mut c.serve);
    r.list(t, "rooms", "invite_from", &mut c.invite_from);
}

fn read_calls(r: &mut Reader, t: &DeTable, c: &mut CallsConfig) {
    const P: &str = "calls";
    r.field(t, P, "join", &mut c.join);
    r.field(t, P, "answer_direct_calls", &mut c.answer_direct_calls);
    r.field(
        t,
        P,
        "join_button_starts_call",
        &mut c.join_button_starts_call,
    );
    r.field(
        t,
        P,
        "join_button_prefers_element_call",
        &mut c.join_button_prefers_element_call,
    );
    r.list(t, P, "direct_call_from", &mut c.direct_call_from);
    r.field(
        t,
        P,
        "do_not_disturb_minutes",
        &mut c.do_not_disturb_minutes,
    );
    r.field(t, P, "conference_focus", &mut c.conference_focus);
    r.field(t, P, "livekit_service_url", &mut c.livekit_service_url);
}

fn read_ice(r: &mut Reader, t: &DeTable, c: &mut IceConfig) {
    const P: &str = "ice";
    r.list(t, P, "stun_servers", &mut c.stun_servers);
    r.list(t, P, "turn_servers", &mut c.turn_servers);
    r.field(t, P, "turn_username", &mut c.turn_username);
    // The two password keys are one choice; the first in the file counts, a second is an error.
    let mut file: Option<PathBuf> = None;
    let mut credential: Option<String> = None;
    r.field(t, P, "turn_password_file", &mut file);
    r.field(t, P, "turn_password_credential", &mut credential);
    let start = |r: &Reader, key: &str| r.spans.get(&format!("{P}.{key}")).map(|s| s.start);
    let mut choices: Vec<(&str, SecretSource)> = [
        file.map(|f| ("turn_password_file", SecretSource::File(f))),
        credential.map(|c| ("turn_password_credential", SecretSource::Credential(c))),
    ]
    .into_iter()
    .flatten()
    .collect();
    choices.sort_by_key(|(key, _)| start(r, key));
    if let Some((first, _)) = choices.first() {
        for (extra, _) in &choices[1..] {
            let span = r.spans.get(&format!("{P}.{extra}")).cloned();
            r.diagnostics.push(Diagnostic::error(
                span,
                format!(
                    "{P}.{extra}: the TURN password is already given by {P}.{first}; set one \
                     of turn_password_file and turn_password_credential"
                ),
            ));
        }
        r.spans.insert(
            format!("{P}.turn_password"),
            r.spans[&format!("{P}.{first}")].clone(),
        );
        c.turn_password = Some(choices.swap_remove(0).1);
    }
}

fn read_camera(r: &mut Reader, t: &DeTable, c: &mut CameraConfig) {
    r.field(t, "camera", "source", &mut c.source);
    r.field(t, "camera", "device", &mut c.device);
}

fn read_video(r: &mut Reader, t: &DeTable, c: &mut VideoConfig) {
    const P: &str = "video";
    r.field(t, P, "width", &mut c.width);
    r.field(t, P, "height", &mut c.height);
    r.field(t, P, "framerate", &mut c.framerate);
    r.field(t, P, "bitrate_kbps", &mut c.bitrate_kbps);
    r.field(t, P, "encoder", &mut c.encoder);
}

fn read_microphone(r: &mut Reader, t: &DeTable, c: &mut MicrophoneConfig) {
    const P: &str = "microphone";
    r.field(t, P, "source", &mut c.source);
    r.field(t, P, "device", &mut c.device);
    r.field(t, P, "echo_cancellation", &mut c.echo_cancellation);
    r.field(t, P, "noise_suppression", &mut c.noise_suppression);
    r.field(t, P, "gain_control", &mut c.gain_control);
}

fn read_speaker(r: &mut Reader, t: &DeTable, c: &mut SpeakerConfig) {
    r.field(t, "speaker", "sink", &mut c.sink);
    r.field(t, "speaker", "device", &mut c.device);
    r.field(t, "speaker", "mixer", &mut c.mixer);
    r.field(t, "speaker", "volume_percent", &mut c.volume_percent);
    r.field(
        t,
        "speaker",
        "volume_step_percent",
        &mut c.volume_step_percent,
    );
}

fn read_display(r: &mut Reader, t: &DeTable, c: &mut DisplayConfig) {
    r.field(t, "display", "sink", &mut c.sink);
}

fn read_buttons(r: &mut Reader, t: &DeTable, c: &mut ButtonsConfig) {
    const P: &str = "buttons";
    r.field(t, P, "backend", &mut c.backend);
    r.field(t, P, "optional", &mut c.optional);
    r.field(t, P, "active_low", &mut c.active_low);
    r.field(t, P, "pull", &mut c.pull);
    r.field(t, P, "debounce_ms", &mut c.debounce_ms);
    r.field(t, P, "long_press_ms", &mut c.long_press_ms);
    if let Some(pins) = r.table(t, P, "pins") {
        // A pins table lists exactly the wired buttons.
        const PP: &str = "buttons.pins";
        c.pins = ButtonPins::default();
        r.field(pins, PP, "mute", &mut c.pins.mute);
        r.field(pins, PP, "hangup", &mut c.pins.hangup);
        r.field(pins, PP, "join", &mut c.pins.join);
        r.field(pins, PP, "volume_up", &mut c.pins.volume_up);
        r.field(pins, PP, "volume_down", &mut c.pins.volume_down);
    }
}

fn read_leds(r: &mut Reader, t: &DeTable, c: &mut LedsConfig) {
    const P: &str = "leds";
    r.field(t, P, "backend", &mut c.backend);
    r.field(t, P, "optional", &mut c.optional);
    r.field(t, P, "active_low", &mut c.active_low);
    if let Some(pins) = r.table(t, P, "pins") {
        const PP: &str = "leds.pins";
        c.pins = LedPins::default();
        r.field(pins, PP, "in_call", &mut c.pins.in_call);
        r.field(pins, PP, "muted", &mut c.pins.muted);
        r.field(pins, PP, "status", &mut c.pins.status);
    }
}

fn read_control(r: &mut Reader, t: &DeTable, c: &mut ControlConfig) {
    r.field(t, "control", "socket", &mut c.socket);
}

#[derive(Default)]
struct Reader {
    diagnostics: Vec<Diagnostic>,
    spans: Spans,
    /// The keys the schema has at each table path, for unknown-key errors and suggestions.
    known: HashMap<String, Vec<&'static str>>,
    /// Table paths that were read, so their contents are checked for unknown keys.
    entered: HashSet<String>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn lookup<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

impl Reader {
    fn know(&mut self, path: &str, key: &'static str) {
        self.known.entry(path.to_owned()).or_default().push(key);
    }

    /// The sub-table `path.key`, if present; a value of another type there is an error.
    fn table<'t, 'i>(
        &mut self,
        parent: &'t DeTable<'i>,
        path: &str,
        key: &'static str,
    ) -> Option<&'t DeTable<'i>> {
        self.know(path, key);
        let value = lookup(parent, key)?;
        let full = join(path, key);
        self.spans.insert(full.clone(), value.span());
        match value.get_ref() {
            DeValue::Table(t) => {
                self.entered.insert(full);
                Some(t)
            }
            other => {
                self.diagnostics.push(Diagnostic::error(
                    Some(value.span()),
                    format!(
                        "{full}: expected a table ([{full}]), found {}",
                        other.type_str()
                    ),
                ));
                None
            }
        }
    }

    /// Deserializes `path.key` into `target` if present; returns whether it was present and valid.
    /// On a type error the default stays in place and the error is recorded.
    fn field<T: DeserializeOwned>(
        &mut self,
        table: &DeTable,
        path: &str,
        key: &'static str,
        target: &mut T,
    ) -> bool {
        self.know(path, key);
        let Some(value) = lookup(table, key) else {
            return false;
        };
        let full = join(path, key);
        self.spans.insert(full.clone(), value.span());
        match self.value(value, &full) {
            Some(v) => {
                *target = v;
                true
            }
            None => false,
        }
    }

    /// Like [`Reader::field`] for an array, but checks each element on its own, so every bad
    /// element is reported at its own place. The list is replaced only if all are good.
    fn list<T: DeserializeOwned>(
        &mut self,
        table: &DeTable,
        path: &str,
        key: &'static str,
        target: &mut Vec<T>,
    ) {
        self.know(path, key);
        let Some(value) = lookup(table, key) else {
            return;
        };
        let full = join(path, key);
        self.spans.insert(full.clone(), value.span());
        let DeValue::Array(items) = value.get_ref() else {
            self.diagnostics.push(Diagnostic::error(
                Some(value.span()),
                format!(
                    "{full}: expected an array, found {}",
                    value.get_ref().type_str()
                ),
            ));
            return;
        };
        let mut parsed = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{full}[{i}]");
            self.spans.insert(item_path.clone(), item.span());
            parsed.extend(self.value(item, &item_path));
        }
        if parsed.len() == items.len() {
            *target = parsed;
        }
    }

    /// Deserializes one value with serde; on failure records where and why.
    fn value<T: DeserializeOwned>(&mut self, value: &Spanned<DeValue>, full: &str) -> Option<T> {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => Some(v),
            Err(e) => {
                let span = e.span().or(Some(value.span()));
                let mut message = e.message().trim().to_owned();
                // ID parsers say what is wrong but not with what; name the value.
                if let Some(text) = value.get_ref().as_str()
                    && !message.contains(text)
                {
                    message = format!("`{text}`: {message}");
                }
                self.diagnostics
                    .push(Diagnostic::error(span, format!("{full}: {message}")));
                None
            }
        }
    }

    fn report_unknown(&mut self, table: &DeTable, path: &str) {
        let known = self.known.get(path).cloned().unwrap_or_default();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let full = join(path, name);
            if !known.contains(&name) {
                let mut message = format!("unknown key `{full}`");
                if let Some(best) = closest(name, &known) {
                    message.push_str(&format!("; did you mean `{}`?", join(path, best)));
                } else if !known.is_empty() {
                    message.push_str(&format!("; expected one of: {}", known.join(", ")));
                }
                self.diagnostics
                    .push(Diagnostic::error(Some(key.span()), message));
            } else if self.entered.contains(&full)
                && let DeValue::Table(t) = value.get_ref()
            {
                self.report_unknown(t, &full);
            }
        }
    }
}

fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_TOML, SecretSource};

    #[test]
    fn every_key_the_reader_knows_is_documented_in_the_default_file() {
        let (_, r) = read_with_schema(DEFAULT_TOML);
        for (table, keys) in &r.known {
            for key in keys {
                let set = format!("\n{key} = ");
                let commented = format!("\n# {key} = ");
                let header = format!("[{}]", join(table, key));
                assert!(
                    DEFAULT_TOML.contains(&set)
                        || DEFAULT_TOML.contains(&commented)
                        || DEFAULT_TOML.contains(&header),
                    "{} is not in default.toml",
                    join(table, key)
                );
            }
        }
    }

    #[test]
    fn a_pins_table_lists_exactly_the_wired_pins() {
        let (c, _, d) = read("[buttons.pins]\nmute = 4\n[leds]\nactive_low = true\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(c.buttons.pins.mute, Some(4));
        assert_eq!(c.buttons.pins.hangup, None);
        assert_eq!(
            c.leds.pins,
            Config::default().leds.pins,
            "no [leds.pins]: defaults"
        );
    }

    #[test]
    fn naming_a_secret_replaces_the_default_choice() {
        let (c, _, d) = read("[matrix]\naccess_token_file = \"/etc/roomd/token\"\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            c.matrix.login,
            LoginSecret::AccessToken(SecretSource::File("/etc/roomd/token".into()))
        );
    }

    #[test]
    fn two_secrets_are_an_error_on_the_second() {
        let text = "[matrix]\npassword_file = \"/a\"\naccess_token_credential = \"t\"\n";
        let (_, _, d) = read(text);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(
            d[0].span.as_ref().unwrap().start,
            text.find("\"t\"").unwrap()
        );
        assert!(
            d[0].message
                .contains("already given by matrix.password_file")
        );
    }

    #[test]
    fn a_scalar_where_a_table_belongs_is_an_error() {
        let (_, _, d) = read("matrix = 5\n");
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(d[0].message.contains("matrix: expected a table"), "{d:?}");
    }
}
