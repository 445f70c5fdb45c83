//! `roomd ctl status` as people read it: words, not Rust's debug formatting.

use super::*;
use crate::media::{ConnectionState, PeerStats};
use crate::status::MediaStatus;

#[test]
fn peers_are_described_in_words() {
    let (h, _) = Harness::new(settings(JoinPolicy::Auto, None));
    let mut status = h.core.status(h.now);
    let peer = |name: &str, state| PeerStats {
        peer: name.to_owned(),
        state,
        video_frames_sent: 300,
        video_frames_received: 200,
        ..PeerStats::default()
    };
    status.media = Some(MediaStatus {
        encoder: Some("x264enc".to_owned()),
        unavailable: None,
        mic_muted: true,
        camera_off: false,
        video_encoders: 1,
        peers: vec![
            peer("alice", Some(ConnectionState::Connected)),
            peer("bob", None),
        ],
        ice_servers: Vec::new(),
        report_age_ms: Some(1500),
        not_answering_s: None,
    });
    let text = status.render();
    assert!(
        text.contains("media: x264enc, microphone muted (figures 1.5 s old)\n"),
        "{text}"
    );
    assert!(
        text.contains("  peer alice: connected, 300 frames sent, 200 received, 0 packets lost\n"),
        "{text}"
    );
    assert!(text.contains("  peer bob: not connected yet,"), "{text}");
    assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
}
