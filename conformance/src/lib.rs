//! The content of the Matrix VoIP `m.call.*` events as JSON Schemas (draft 2020-12), owned by
//! this repository, and a validator for them.
//!
//! The schemas (`schemas/m.call.<name>.json`, with the fields every call event shares in
//! `schemas/call_event.json`) are written from the Matrix specification's event schemas at
//! matrix-org/matrix-spec commit d0ba2aaef801e0134a4e5c6054a2c2f41bb55531 (see README.md). They
//! describe an event's `content` only, so one schema serves an event sent in a room and the same
//! content sent as a to-device message. They are compiled in: nothing is read at run time, and
//! every `$ref` resolves among them.
//!
//! The schemas allow properties they do not name, as the spec's do, so the MSC3401 to-device
//! fields (`conf_id`, `device_id`, `seq`, `sender_session_id`, `dest_session_id`,
//! `org.matrix.msgid`) pass unchecked.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use jsonschema::{Retrieve, Uri, Validator};
use serde_json::Value;

/// The call event types there is a schema for (`schemas/<type>.json` each).
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

/// Every schema file, by its name under `schemas/`, compiled in.
const SCHEMA_FILES: [(&str, &str); 9] = [
    (
        "call_event.json",
        include_str!("../schemas/call_event.json"),
    ),
    (
        "m.call.invite.json",
        include_str!("../schemas/m.call.invite.json"),
    ),
    (
        "m.call.candidates.json",
        include_str!("../schemas/m.call.candidates.json"),
    ),
    (
        "m.call.answer.json",
        include_str!("../schemas/m.call.answer.json"),
    ),
    (
        "m.call.select_answer.json",
        include_str!("../schemas/m.call.select_answer.json"),
    ),
    (
        "m.call.negotiate.json",
        include_str!("../schemas/m.call.negotiate.json"),
    ),
    (
        "m.call.reject.json",
        include_str!("../schemas/m.call.reject.json"),
    ),
    (
        "m.call.hangup.json",
        include_str!("../schemas/m.call.hangup.json"),
    ),
    (
        "m.call.sdp_stream_metadata_changed.json",
        include_str!("../schemas/m.call.sdp_stream_metadata_changed.json"),
    ),
];

/// The URI each schema file is known by: `<BASE_URI><file name>`. A name, not a place: `.invalid`
/// never resolves, and only [`CompiledIn`] is asked for what is under it.
const BASE_URI: &str = "https://roomd.invalid/conformance/schemas/";

/// Validates the content of an `m.call.*` event (as sent in a room event or a to-device message)
/// against the schema for `event_type`.
///
/// `Err` holds one line per violation, each naming the JSON pointer into `content`, the message,
/// and the schema keyword with where it is (`file.json#/pointer`), e.g.
/// `"/offer/type": "answer" is not one of "offer" (enum at
/// m.call.invite.json#/properties/offer/properties/type/enum)`. An event type with no schema is an
/// `Err` too, with one line naming the known types.
pub fn validate_call_event(event_type: &str, content: &Value) -> Result<(), Vec<String>> {
    let validators = validators().as_ref().map_err(|e| vec![e.clone()])?;
    let Some(validator) = validators.get(event_type) else {
        return Err(vec![format!(
            "no schema for event type {event_type:?}: known types are {}",
            CALL_EVENT_TYPES.join(", ")
        )]);
    };
    let errors: Vec<String> = validator
        .iter_errors(content)
        .map(|error| describe(event_type, &error))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// One line for one violation: `"/offer/type": "answer" is not one of "offer" (enum at
/// m.call.invite.json#/properties/offer/properties/type/enum)`.
fn describe(event_type: &str, error: &jsonschema::ValidationError<'_>) -> String {
    let pointer = error.instance_path().as_str();
    let rule = error.kind().keyword();
    let location = match error.absolute_keyword_location() {
        Some(uri) => {
            let uri = uri.as_str();
            uri.strip_prefix(BASE_URI).unwrap_or(uri).to_owned()
        }
        None => format!("{event_type}.json#{}", error.schema_path().as_str()),
    };
    format!("{pointer:?}: {error} ({rule} at {location})")
}

/// The validators, one per event type, compiled on first use. An `Err` (a schema that does not
/// compile) is a bug in the schemas, which the tests catch; it is reported, not panicked on.
fn validators() -> &'static Result<HashMap<&'static str, Validator>, String> {
    static VALIDATORS: OnceLock<Result<HashMap<&'static str, Validator>, String>> = OnceLock::new();
    VALIDATORS.get_or_init(compile)
}

/// Hands out the compiled-in schema files, parsed, by their URI under [`BASE_URI`]; nothing else.
struct CompiledIn(Arc<HashMap<String, Value>>);

impl Retrieve for CompiledIn {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0.get(uri.as_str()).cloned().ok_or_else(|| {
            format!("$ref to {uri}: no such file among roomd-conformance's schemas").into()
        })
    }
}

/// Parses every schema file, keyed by its URI.
fn parse_files() -> Result<HashMap<String, Value>, String> {
    SCHEMA_FILES
        .iter()
        .map(|(name, text)| {
            let schema =
                serde_json::from_str(text).map_err(|e| format!("schemas/{name}: not JSON: {e}"))?;
            Ok((format!("{BASE_URI}{name}"), schema))
        })
        .collect()
}

fn compile() -> Result<HashMap<&'static str, Validator>, String> {
    let files = Arc::new(parse_files()?);
    CALL_EVENT_TYPES
        .iter()
        .map(|&event_type| {
            let uri = format!("{BASE_URI}{event_type}.json");
            let schema = files
                .get(&uri)
                .ok_or_else(|| format!("no schemas/{event_type}.json compiled in"))?;
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_base_uri(uri.clone())
                .with_retriever(CompiledIn(Arc::clone(&files)))
                .build(schema)
                .map_err(|e| format!("schemas/{event_type}.json: not a usable schema: {e}"))?;
            Ok((event_type, validator))
        })
        .collect()
}

#[cfg(test)]
mod tests;
