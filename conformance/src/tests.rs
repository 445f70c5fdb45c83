use serde_json::{Value, json};

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

fn sdp(t: &str) -> Value {
    json!({"type": t, "sdp": "v=0\r\n"})
}

fn invite() -> Value {
    with(base(), json!({"lifetime": 60000, "offer": sdp("offer")}))
}

/// Each type's content with its required fields and nothing else.
fn minimal(event_type: &str) -> Value {
    let extra = match event_type {
        "m.call.invite" => return invite(),
        "m.call.candidates" => json!({"candidates": [{"candidate": ""}]}),
        "m.call.answer" => json!({"answer": sdp("answer")}),
        "m.call.select_answer" => json!({"selected_party_id": "p2"}),
        "m.call.negotiate" => json!({"description": sdp("offer"), "lifetime": 10000}),
        "m.call.reject" => json!({}),
        "m.call.hangup" => json!({"reason": "user_hangup"}),
        "m.call.sdp_stream_metadata_changed" => {
            json!({"sdp_stream_metadata": {"s": {"purpose": "m.usermedia"}}})
        }
        other => panic!("no minimal content for {other}"),
    };
    with(base(), extra)
}

/// The parsed schema file `name`.
fn schema_file(name: &str) -> Value {
    let (_, text) = SCHEMA_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no schema file {name}"));
    serde_json::from_str(text).unwrap()
}

#[test]
fn every_schema_is_compiled_in_and_compiles() {
    let validators = validators().as_ref().unwrap_or_else(|e| panic!("{e}"));
    let mut compiled: Vec<&str> = validators.keys().copied().collect();
    compiled.sort_unstable();
    let mut wanted: Vec<&str> = CALL_EVENT_TYPES.to_vec();
    wanted.sort_unstable();
    assert_eq!(compiled, wanted);

    // Every file under schemas/ is compiled in, and nothing else is.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut compiled_in: Vec<&str> = SCHEMA_FILES.iter().map(|(name, _)| *name).collect();
    compiled_in.sort_unstable();
    assert_eq!(on_disk, compiled_in, "schemas/ against SCHEMA_FILES");
}

#[test]
fn every_schema_says_which_spec_it_follows() {
    for (name, _) in SCHEMA_FILES {
        let schema = schema_file(name);
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        let comment = schema["$comment"].as_str().unwrap_or_default();
        assert!(
            comment
                .contains("matrix-org/matrix-spec commit d0ba2aaef801e0134a4e5c6054a2c2f41bb55531"),
            "{name}: $comment {comment:?}"
        );
    }
}

/// Collects every `$ref` under `node`.
fn refs<'a>(node: &'a Value, found: &mut Vec<&'a str>) {
    match node {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

#[test]
fn every_ref_resolves_among_the_compiled_in_files() {
    let mut checked = 0;
    for (name, _) in SCHEMA_FILES {
        let schema = schema_file(name);
        let mut found = Vec::new();
        refs(&schema, &mut found);
        for target in found {
            let (file, pointer) = target.split_once('#').unwrap_or((target, ""));
            assert!(
                !file.contains(':') && !file.starts_with('/'),
                "{name}: $ref {target:?} is not relative"
            );
            let file = if file.is_empty() { name } else { file };
            assert!(
                schema_file(file).pointer(pointer).is_some(),
                "{name}: $ref {target:?}: no {pointer:?} in {file}"
            );
            checked += 1;
        }
    }
    // call_event.json from the seven that extend it (reject is only it), sdp_stream_metadata
    // from invite, answer, negotiate and sdp_stream_metadata_changed.
    assert_eq!(checked, 12);
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
    for event_type in CALL_EVENT_TYPES {
        assert_valid(event_type, minimal(event_type));
    }
    assert_valid(
        "m.call.candidates",
        with(
            base(),
            json!({"candidates": [{"candidate": "", "sdpMid": "0"}, {"candidate": "candidate:1", "sdpMLineIndex": 0}]}),
        ),
    );
    assert_valid(
        "m.call.negotiate",
        with(
            base(),
            json!({"description": sdp("answer"), "lifetime": 10000}),
        ),
    );
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
        with(
            base(),
            json!({"sdp_stream_metadata": {"s": {"purpose": "m.screenshare"}}}),
        ),
    );
}

#[test]
fn every_required_field_is_required() {
    for event_type in CALL_EVENT_TYPES {
        let content = minimal(event_type);
        for key in content.as_object().unwrap().keys() {
            assert_invalid(event_type, without(content.clone(), key), "", "required");
        }
    }
}

#[test]
fn broken_contents_fail() {
    // Common fields (call_event.json): call_id, version, party_id strings. version 0 as an
    // integer is what pre-1.7 clients sent; the schema says string.
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

    // invite: offer {type: "offer", sdp}; lifetime an integer; invitee a user ID.
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

    // answer: answer {type: "answer", sdp}.
    assert_invalid(
        "m.call.answer",
        with(base(), json!({"answer": {"type": "offer", "sdp": ""}})),
        "/answer/type",
        "enum",
    );
    assert_invalid(
        "m.call.answer",
        with(base(), json!({"answer": {"type": "answer", "sdp": 0}})),
        "/answer/sdp",
        "type",
    );

    // candidates: an array of objects with a string `candidate`.
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

    // hangup: reason one of seven.
    assert_invalid(
        "m.call.hangup",
        with(base(), json!({"reason": "user_went_home"})),
        "/reason",
        "enum",
    );

    // select_answer, negotiate, sdp_stream_metadata (in four types).
    assert_invalid(
        "m.call.select_answer",
        with(base(), json!({"selected_party_id": ["p2"]})),
        "/selected_party_id",
        "type",
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
            minimal("m.call.answer"),
            json!({"sdp_stream_metadata": {"s": {"purpose": "m.usermedia", "video_muted": "yes"}}}),
        ),
        "/sdp_stream_metadata/s/video_muted",
        "type",
    );
    assert_invalid(
        "m.call.negotiate",
        with(
            minimal("m.call.negotiate"),
            json!({"sdp_stream_metadata": {"s": "m.usermedia"}}),
        ),
        "/sdp_stream_metadata/s",
        "type",
    );

    // Content not an object.
    for event_type in CALL_EVENT_TYPES {
        assert_invalid(event_type, json!([]), "", "type");
    }
}

#[test]
fn errors_name_the_schema_location() {
    let errors =
        validate_call_event("m.call.invite", &with(invite(), json!({"version": 0}))).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("(type at call_event.json#/properties/version/type)"),
        "{errors:?}"
    );

    let errors = validate_call_event(
        "m.call.invite",
        &with(invite(), json!({"offer": {"type": "answer", "sdp": ""}})),
    )
    .unwrap_err();
    assert_eq!(
        errors,
        ["\"/offer/type\": \"answer\" is not one of \"offer\" \
             (enum at m.call.invite.json#/properties/offer/properties/type/enum)"]
    );

    let errors = validate_call_event(
        "m.call.sdp_stream_metadata_changed",
        &with(
            base(),
            json!({"sdp_stream_metadata": {"s": {"purpose": "m.camera"}}}),
        ),
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(
            "(enum at call_event.json#/$defs/sdp_stream_metadata/additionalProperties/properties/purpose/enum)"
        ),
        "{errors:?}"
    );
}

#[test]
fn unknown_type_is_an_error() {
    let errors = validate_call_event("m.call.member", &base()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("no schema for event type \"m.call.member\""),
        "{errors:?}"
    );
    for event_type in CALL_EVENT_TYPES {
        assert!(errors[0].contains(event_type), "{errors:?}");
    }
    assert!(validate_call_event("m.room.message", &json!({"body": "hi"})).is_err());
    assert!(validate_call_event("", &json!({})).is_err());
}
