//! The README's first command (`bash tools/demo.sh` builds roomd and runs this): a local
//! Synapse, a visitor and their meeting room, and roomd on test sources.
//!
//! `--until-ready` stops once roomd is in service instead of running until Ctrl-C.

use std::path::PathBuf;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/demo -> target/<profile>/roomd
    let roomd: PathBuf = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("roomd"))
        .filter(|p| p.exists())
        .ok_or_else(|| anyhow::anyhow!("build roomd first: cargo build --bin roomd"))?;
    let until_ready = std::env::args().any(|a| a == "--until-ready");
    roomd_testbed::demo::run(roomd_testbed::demo::Options { roomd, until_ready }).await?;
    Ok(())
}
