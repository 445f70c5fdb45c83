//! The README's first command (`bash tools/demo.sh` builds roomd and runs this): a local
//! Synapse, roomd on test sources, and a visitor in headless Chromium who starts a call.
//!
//! `--png PATH`: where to save what the visitor sees from the room (default
//! `target/demo/visitor-sees-the-room.png`). `--stay`: keep the call going until Ctrl-C. `-v`:
//! show roomd's debug log and the visitor's console too.

use std::path::PathBuf;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/demo -> target/<profile>/roomd
    let profile = exe
        .parent()
        .and_then(|examples| examples.parent())
        .ok_or_else(|| anyhow::anyhow!("cannot tell where the build went"))?;
    let roomd = profile.join("roomd");
    let target = profile.parent().unwrap_or(profile);
    // Shown as `target/demo/...` when run from the repository, as tools/demo.sh does.
    let cwd = std::env::current_dir()?;
    let target = target.strip_prefix(&cwd).unwrap_or(target);
    anyhow::ensure!(roomd.exists(), "build roomd first: cargo build --bin roomd");
    let args: Vec<String> = std::env::args().collect();
    let png = args
        .iter()
        .position(|a| a == "--png")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("demo/visitor-sees-the-room.png"));
    let stay = args.iter().any(|a| a == "--stay");
    let verbose = args.iter().any(|a| a == "-v" || a == "--verbose");
    let options = roomd_testbed::demo::Options {
        roomd,
        png,
        stay,
        verbose,
    };
    roomd_testbed::demo::run(options).await?;
    Ok(())
}
