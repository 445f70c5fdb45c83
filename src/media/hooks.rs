//! Test hooks: ways to make the media engine misbehave on purpose, so that tests can show the
//! daemon copes. Each is off unless its `ROOMD_TEST_*` environment variable is set, and each one
//! in use is logged as a warning at start. Never set them on a device.

use std::time::Duration;

/// `<ms>,<peer ID prefix>`: every local description (offer or answer) of the peers whose ID
/// starts with the prefix is held that long on the peer's own webrtcbin thread, as a slow
/// webrtcbin would. Peer IDs are `<user>/<device>/<call ID>`.
pub const SLOW_PEER_VAR: &str = "ROOMD_TEST_SLOW_PEER";
/// `<ms>`: that long after it starts, the engine's thread stops dead (for an hour), as a wedged
/// pipeline would.
pub const WEDGE_VAR: &str = "ROOMD_TEST_WEDGE_MEDIA_AFTER_MS";

/// How long a wedged engine stays wedged: far past any watchdog.
pub const WEDGED_FOR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Default)]
pub struct TestHooks {
    /// The peer ID prefix whose descriptions are held, and for how long.
    pub slow_peer: Option<(String, Duration)>,
    /// When the engine's thread stops dead, from its start.
    pub wedge_after: Option<Duration>,
}

impl TestHooks {
    /// The hooks the environment asks for; a malformed value is an error naming the variable.
    pub fn from_env() -> anyhow::Result<TestHooks> {
        let mut hooks = TestHooks::default();
        if let Ok(value) = std::env::var(SLOW_PEER_VAR) {
            let (ms, prefix) = value
                .split_once(',')
                .and_then(|(ms, prefix)| Some((ms.trim().parse::<u64>().ok()?, prefix)))
                .ok_or_else(|| {
                    anyhow::anyhow!("{SLOW_PEER_VAR}: expected <ms>,<peer ID prefix>")
                })?;
            log::warn!("test hook {SLOW_PEER_VAR}: holding {prefix}*'s descriptions for {ms} ms");
            hooks.slow_peer = Some((prefix.to_owned(), Duration::from_millis(ms)));
        }
        if let Ok(value) = std::env::var(WEDGE_VAR) {
            let ms = value
                .trim()
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("{WEDGE_VAR}: expected milliseconds"))?;
            log::warn!("test hook {WEDGE_VAR}: the media engine wedges {ms} ms after it starts");
            hooks.wedge_after = Some(Duration::from_millis(ms));
        }
        Ok(hooks)
    }
}
