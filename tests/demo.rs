//! The README's first command, end to end: Synapse, roomd on test sources, a visitor in Chromium
//! who starts a call; picture both ways and a PNG of what the visitor sees.

use roomd_testbed::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_puts_roomd_in_the_visitors_call_with_picture_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("room.png");
    let report = demo::run(demo::Options {
        roomd: env!("CARGO_BIN_EXE_roomd").into(),
        png: png.clone(),
        stay: false,
        verbose: true,
    })
    .await
    .expect("the demo runs");
    println!("{report:?}");
    assert!(report.joined_after.as_secs_f64() < 2.0, "{report:?}");
    assert!(report.visitor_fps >= 20.0, "{report:?}");
    assert!(report.roomd_fps >= 10.0, "{report:?}");
    assert!(report.visitor_audio_level > 0.01, "{report:?}");
    // What people read: words, not Rust's debug formatting.
    let status = &report.status_text;
    assert!(status.contains(": connected, "), "{status}");
    assert!(
        !status.contains("Some(") && !status.contains("None"),
        "{status}"
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000,
        "{} bytes",
        bytes.len()
    );
}
