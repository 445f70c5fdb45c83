//! The Matrix specification's JSON schemas for the VoIP `m.call.*` events, as a validator.
//!
//! The schemas (YAML, JSON Schema draft 2020-12) live in `../shared/spec/matrix-event-schemas/`
//! beside the repository (`$ROOMD_SPEC_DIR` overrides): `schema/m.call.<name>.yaml` with relative
//! `$ref`s into `schema/core-event-schema/` and `schema/components/`, and `examples/` with the
//! spec's example events.
//!
//! Each schema describes a whole room event (`type`, `content`, `event_id`, `sender`,
//! `origin_server_ts`, `room_id`). [`validate_call_event`] takes only an event's content, as roomd
//! sends it in a room or as a to-device message, puts it into a room event with a fixed,
//! well-formed envelope and the given `type`, and validates that against the type's schema as it
//! stands, `$ref`s resolved among the YAML files. Errors in the envelope cannot arise from the
//! content, so every error names a JSON pointer into the content.
//!
//! The schemas allow properties they do not name (none of the call-event schemas says
//! `additionalProperties: false`), so the MSC3401 to-device fields (`conf_id`, `device_id`,
//! `sender_session_id`, `dest_session_id`, `seq`, `org.matrix.msgid`) pass unchecked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::{Value, json};

/// Environment variable naming the schema folder in place of the default.
pub const SPEC_DIR_ENV: &str = "ROOMD_SPEC_DIR";

/// The call event types the spec's schemas cover (one `schema/<type>.yaml` each).
pub const CALL_EVENT_TYPES: [&str; 8] = [
    "m.call.invite",
    "m.call.candidates",
    "m.call.answer",
    "m.call.select_answer",
    "m.call.negotiate",
    "m.call.reject",
    "m.call.hangup",
    "m.call.sdp_stream_metadata_changed",
];

/// The URI every schema file is known by: `<BASE_URI><path under schema/>`. Not the files' real
/// location, so that the path of the folder (spaces, non-ASCII) never has to be a URI.
const BASE_URI: &str = "file:///matrix-event-schemas/schema/";

/// Where the schemas are looked for: `$ROOMD_SPEC_DIR`, else
/// `<repo>/../shared/spec/matrix-event-schemas`.
pub fn spec_dir() -> PathBuf {
    match std::env::var_os(SPEC_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::paths::repo_root().join("../shared/spec/matrix-event-schemas"),
    }
}

/// Validates the content of an `m.call.*` event against the Matrix spec's schema for
/// `event_type`, from [`spec_dir`].
///
/// `Err` holds one line per violation, each naming the JSON pointer into `content`, the message,
/// and the schema keyword with its location (`file.yaml#/pointer`). An event type with no schema,
/// or a schema folder that is missing or unreadable, is an `Err` too, with one line saying so.
pub fn validate_call_event(event_type: &str, content: &Value) -> Result<(), Vec<String>> {
    validate_call_event_in(&spec_dir(), event_type, content)
}

/// [`validate_call_event`] with the schemas taken from `spec_dir` (the folder holding `schema/`).
pub fn validate_call_event_in(
    spec_dir: &Path,
    event_type: &str,
    content: &Value,
) -> Result<(), Vec<String>> {
    let schemas = load(spec_dir).map_err(|e| vec![e])?;
    let Some(validator) = schemas.validators.get(event_type) else {
        let mut known: Vec<&str> = schemas.validators.keys().map(String::as_str).collect();
        known.sort_unstable();
        return Err(vec![format!(
            "no schema for event type {event_type:?} in {}: known types are {}",
            schemas.schema_dir.display(),
            known.join(", ")
        )]);
    };

    let event = json!({
        "type": event_type,
        "content": content,
        "event_id": "$roomd-spec-check",
        "sender": "@roomd:localhost",
        "origin_server_ts": 0,
        "room_id": "!roomd-spec-check:localhost",
    });
    let errors: Vec<String> = validator.iter_errors(&event).map(describe).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// One line for one violation: `"/offer/type": "answer" is not one of ["offer"] (enum at
/// m.call.invite.yaml#/properties/content/properties/offer/properties/type/enum)`.
fn describe(error: jsonschema::ValidationError<'_>) -> String {
    let event_pointer = error.instance_path().as_str();
    let pointer = match event_pointer.strip_prefix("/content") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{rest:?}"),
        // Only the envelope this module builds sits outside /content.
        _ => format!("{event_pointer:?} (in the event envelope, not the content)"),
    };
    let rule = error.kind().keyword().to_owned();
    let location = match error.absolute_keyword_location() {
        Some(uri) => {
            let uri = uri.as_str();
            uri.strip_prefix(BASE_URI).unwrap_or(uri).to_owned()
        }
        None => format!("#{}", error.schema_path().as_str()),
    };
    format!("{pointer}: {error} ({rule} at {location})")
}

/// The compiled validators for one schema folder.
struct Schemas {
    schema_dir: PathBuf,
    validators: HashMap<String, Validator>,
}

/// Schemas compiled once per folder; failures are not kept, so a folder that appears later is
/// picked up.
static LOADED: Mutex<Vec<(PathBuf, Arc<Schemas>)>> = Mutex::new(Vec::new());

fn load(spec_dir: &Path) -> Result<Arc<Schemas>, String> {
    let mut loaded = LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, schemas)) = loaded.iter().find(|(dir, _)| dir == spec_dir) {
        return Ok(Arc::clone(schemas));
    }
    let schemas = Arc::new(compile(spec_dir)?);
    loaded.push((spec_dir.to_owned(), Arc::clone(&schemas)));
    Ok(schemas)
}

/// Hands out the YAML files, parsed, by their URI under [`BASE_URI`]; nothing else.
struct SchemaFiles(Arc<HashMap<String, Value>>);

impl Retrieve for SchemaFiles {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .get(uri.as_str())
            .cloned()
            .ok_or_else(|| format!("$ref to {uri}: no such file among the spec's schemas").into())
    }
}

fn compile(spec_dir: &Path) -> Result<Schemas, String> {
    let schema_dir = spec_dir.join("schema");
    if !schema_dir.is_dir() {
        return Err(format!(
            "the Matrix spec's event schemas are missing: looked for {} (from ${SPEC_DIR_ENV} if \
             set, else <repo>/../shared/spec/matrix-event-schemas)",
            schema_dir.display()
        ));
    }
    let mut files = HashMap::new();
    read_yaml_tree(&schema_dir, "", &mut files)?;
    let files = Arc::new(files);

    let mut validators = HashMap::new();
    for (uri, schema) in files.iter() {
        let name = &uri[BASE_URI.len()..];
        let Some(event_type) = name
            .strip_suffix(".yaml")
            .filter(|t| t.starts_with("m.call."))
        else {
            continue;
        };
        let validator = jsonschema::options()
            .with_base_uri(uri.clone())
            .with_retriever(SchemaFiles(Arc::clone(&files)))
            .build(schema)
            .map_err(|e| {
                format!(
                    "{}: not a usable schema: {e}",
                    schema_dir.join(name).display()
                )
            })?;
        validators.insert(event_type.to_owned(), validator);
    }
    if validators.is_empty() {
        return Err(format!(
            "no m.call.*.yaml schemas in {}",
            schema_dir.display()
        ));
    }
    Ok(Schemas {
        schema_dir,
        validators,
    })
}

/// Parses every `*.yaml` under `dir` into `files`, keyed by `BASE_URI` + `prefix` + its path.
fn read_yaml_tree(
    dir: &Path,
    prefix: &str,
    files: &mut HashMap<String, Value>,
) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            read_yaml_tree(&path, &format!("{prefix}{name}/"), files)?;
        } else if name.ends_with(".yaml") {
            files.insert(format!("{BASE_URI}{prefix}{name}"), read_yaml(&path)?);
        }
    }
    Ok(())
}

fn read_yaml(path: &Path) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_norway::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_valid(event_type: &str, content: Value) {
        if let Err(errors) = validate_call_event(event_type, &content) {
            panic!(
                "{event_type} {content} should validate:\n{}",
                errors.join("\n")
            );
        }
    }

    /// Asserts `content` fails and that some error names `pointer` and `rule`.
    fn assert_invalid(event_type: &str, content: Value, pointer: &str, rule: &str) {
        let errors = match validate_call_event(event_type, &content) {
            Ok(()) => panic!("{event_type} {content} should fail validation"),
            Err(errors) => errors,
        };
        let wanted = format!("{pointer:?}: ");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(&wanted) && e.contains(&format!("({rule} at "))),
            "{event_type}: wanted an error at {pointer:?} for `{rule}`, got:\n{}",
            errors.join("\n")
        );
    }

    fn base() -> Value {
        json!({"call_id": "c1", "party_id": "p1", "version": "1"})
    }

    fn with(mut content: Value, extra: Value) -> Value {
        let object = content.as_object_mut().unwrap();
        for (k, v) in extra.as_object().unwrap() {
            object.insert(k.clone(), v.clone());
        }
        content
    }

    fn without(mut content: Value, key: &str) -> Value {
        content.as_object_mut().unwrap().remove(key);
        content
    }

    fn invite() -> Value {
        with(
            base(),
            json!({"lifetime": 60000, "offer": {"type": "offer", "sdp": "v=0\r\n"}}),
        )
    }

    #[test]
    fn every_schema_is_there() {
        let mut found: Vec<String> = std::fs::read_dir(spec_dir().join("schema"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(".yaml").map(str::to_owned))
            .filter(|n| n.starts_with("m.call."))
            .collect();
        found.sort();
        let mut wanted: Vec<&str> = CALL_EVENT_TYPES.to_vec();
        wanted.sort_unstable();
        assert_eq!(found, wanted);
    }

    #[test]
    fn every_example_validates() {
        let dir = spec_dir().join("examples");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let example = read_yaml(&path).unwrap();
            let event_type = example["type"].as_str().unwrap().to_owned();
            assert_valid(&event_type, example["content"].clone());
            seen.push(event_type);
        }
        seen.sort();
        let mut wanted: Vec<&str> = CALL_EVENT_TYPES.to_vec();
        wanted.sort_unstable();
        assert_eq!(
            seen,
            wanted,
            "one example per call event type in {}",
            dir.display()
        );
    }

    #[test]
    fn to_device_invite_validates() {
        assert_valid(
            "m.call.invite",
            json!({
                "call_id": "1700000000000abcdef",
                "conf_id": "conf-1",
                "device_id": "ROOMDDEVICE",
                "sender_session_id": "s-1",
                "dest_session_id": "s-2",
                "seq": 0,
                "org.matrix.msgid": "m-1",
                "party_id": "ROOMDDEVICE",
                "version": "1",
                "lifetime": 60000,
                "invitee": "@visitor:localhost",
                "offer": {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"},
                "sdp_stream_metadata": {
                    "roomd-stream": {"purpose": "m.usermedia", "audio_muted": false, "video_muted": true}
                }
            }),
        );
    }

    #[test]
    fn every_type_with_its_required_fields_validates() {
        let sdp = |t: &str| json!({"type": t, "sdp": "v=0\r\n"});
        let metadata = json!({"s": {"purpose": "m.screenshare"}});
        assert_valid("m.call.invite", invite());
        assert_valid(
            "m.call.answer",
            with(base(), json!({"answer": sdp("answer")})),
        );
        assert_valid(
            "m.call.candidates",
            with(
                base(),
                json!({"candidates": [{"candidate": "", "sdpMid": "0"}, {"candidate": "candidate:1"}]}),
            ),
        );
        assert_valid(
            "m.call.select_answer",
            with(base(), json!({"selected_party_id": "p2"})),
        );
        for t in ["offer", "answer"] {
            assert_valid(
                "m.call.negotiate",
                with(base(), json!({"description": sdp(t), "lifetime": 10000})),
            );
        }
        assert_valid("m.call.reject", base());
        for reason in [
            "ice_timeout",
            "ice_failed",
            "invite_timeout",
            "user_hangup",
            "user_media_failed",
            "user_busy",
            "unknown_error",
        ] {
            assert_valid("m.call.hangup", with(base(), json!({"reason": reason})));
        }
        assert_valid(
            "m.call.sdp_stream_metadata_changed",
            with(base(), json!({"sdp_stream_metadata": metadata})),
        );
    }

    #[test]
    fn broken_contents_fail() {
        // Common fields (core-event-schema/call_event.yaml): call_id, version, party_id required
        // strings. version 0 as an integer is what pre-1.7 clients sent; the schema says string.
        for key in ["call_id", "version", "party_id"] {
            assert_invalid(
                "m.call.hangup",
                without(with(base(), json!({"reason": "user_hangup"})), key),
                "",
                "required",
            );
        }
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"version": 1})),
            "/version",
            "type",
        );
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"version": 0})),
            "/version",
            "type",
        );
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"party_id": 7})),
            "/party_id",
            "type",
        );
        assert_invalid(
            "m.call.reject",
            with(base(), json!({"call_id": null})),
            "/call_id",
            "type",
        );

        // invite: offer and lifetime required; offer {type: "offer", sdp}; lifetime an integer;
        // invitee a user ID.
        assert_invalid("m.call.invite", without(invite(), "offer"), "", "required");
        assert_invalid(
            "m.call.invite",
            without(invite(), "lifetime"),
            "",
            "required",
        );
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"lifetime": 1.5})),
            "/lifetime",
            "type",
        );
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"offer": {"type": "answer", "sdp": ""}})),
            "/offer/type",
            "enum",
        );
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"offer": {"type": "offer"}})),
            "/offer",
            "required",
        );
        assert_invalid(
            "m.call.invite",
            with(invite(), json!({"invitee": "visitor"})),
            "/invitee",
            "pattern",
        );

        // answer: answer {type: "answer", sdp} required.
        assert_invalid("m.call.answer", base(), "", "required");
        assert_invalid(
            "m.call.answer",
            with(base(), json!({"answer": {"type": "offer", "sdp": ""}})),
            "/answer/type",
            "enum",
        );

        // candidates: an array of objects with a string `candidate`.
        assert_invalid("m.call.candidates", base(), "", "required");
        assert_invalid(
            "m.call.candidates",
            with(base(), json!({"candidates": {"candidate": ""}})),
            "/candidates",
            "type",
        );
        assert_invalid(
            "m.call.candidates",
            with(base(), json!({"candidates": [{"sdpMid": "0"}]})),
            "/candidates/0",
            "required",
        );
        assert_invalid(
            "m.call.candidates",
            with(
                base(),
                json!({"candidates": [{"candidate": "", "sdpMLineIndex": "0"}]}),
            ),
            "/candidates/0/sdpMLineIndex",
            "type",
        );

        // hangup: reason required, one of seven.
        assert_invalid("m.call.hangup", base(), "", "required");
        assert_invalid(
            "m.call.hangup",
            with(base(), json!({"reason": "user_went_home"})),
            "/reason",
            "enum",
        );

        // select_answer, negotiate, sdp_stream_metadata_changed.
        assert_invalid("m.call.select_answer", base(), "", "required");
        assert_invalid(
            "m.call.negotiate",
            with(base(), json!({"lifetime": 1})),
            "",
            "required",
        );
        assert_invalid(
            "m.call.negotiate",
            with(
                base(),
                json!({"lifetime": 1, "description": {"type": "pranswer", "sdp": ""}}),
            ),
            "/description/type",
            "enum",
        );
        assert_invalid("m.call.sdp_stream_metadata_changed", base(), "", "required");
        assert_invalid(
            "m.call.sdp_stream_metadata_changed",
            with(
                base(),
                json!({"sdp_stream_metadata": {"s": {"audio_muted": true}}}),
            ),
            "/sdp_stream_metadata/s",
            "required",
        );
        assert_invalid(
            "m.call.invite",
            with(
                invite(),
                json!({"sdp_stream_metadata": {"s": {"purpose": "m.camera"}}}),
            ),
            "/sdp_stream_metadata/s/purpose",
            "enum",
        );
        assert_invalid(
            "m.call.answer",
            with(
                base(),
                json!({"answer": {"type": "answer", "sdp": ""}, "sdp_stream_metadata": {"s": {"purpose": "m.usermedia", "video_muted": "yes"}}}),
            ),
            "/sdp_stream_metadata/s/video_muted",
            "type",
        );

        // Content not an object.
        assert_invalid("m.call.reject", json!([]), "", "type");
    }

    #[test]
    fn errors_name_the_schema_location() {
        let errors = validate_call_event("m.call.invite", &with(invite(), json!({"version": 0})))
            .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("core-event-schema/call_event.yaml#/properties/version/type"),
            "{errors:?}"
        );
    }

    #[test]
    fn unknown_type_and_missing_folder_are_errors() {
        let errors = validate_call_event("m.call.member", &base()).unwrap_err();
        assert!(
            errors[0].contains("no schema for event type \"m.call.member\""),
            "{errors:?}"
        );
        assert!(validate_call_event("m.room.message", &json!({"body": "hi"})).is_err());

        let missing = Path::new("/nonexistent/roomd-spec");
        let errors = validate_call_event_in(missing, "m.call.invite", &invite()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("/nonexistent/roomd-spec/schema"),
            "{errors:?}"
        );
        assert!(errors[0].contains(SPEC_DIR_ENV), "{errors:?}");
    }
}
