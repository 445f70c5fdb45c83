//! The Matrix spec's example contents (`tests/examples/<type>.json`, the `content` of the spec's
//! `data/event-schemas/examples/<type>.yaml`) validate, one per call event type.

use roomd_conformance::{CALL_EVENT_TYPES, validate_call_event};

#[test]
fn every_example_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let event_type = name
            .strip_suffix(".json")
            .unwrap_or_else(|| panic!("{name}: not a .json file"))
            .to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let content = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Err(errors) = validate_call_event(&event_type, &content) {
            panic!("{name} should validate:\n{}", errors.join("\n"));
        }
        seen.push(event_type);
    }
    seen.sort();
    let mut wanted: Vec<&str> = CALL_EVENT_TYPES.to_vec();
    wanted.sort_unstable();
    assert_eq!(seen, wanted, "one example per call event type in {dir}");
}
