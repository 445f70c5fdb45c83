//! The README's first command, end to end: the demo brings up Synapse and a visitor's room and
//! gets roomd into service.

use roomd_testbed::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_gets_roomd_into_service() {
    let report = demo::run(demo::Options {
        roomd: env!("CARGO_BIN_EXE_roomd").into(),
        until_ready: true,
    })
    .await
    .expect("the demo runs");
    assert!(report.ready_after.as_secs() < 60);
    assert!(report.joined_call_after.as_secs() < 30);
}
