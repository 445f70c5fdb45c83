//! The `call_signalling` fuzz target's interpreter (fuzz/ops.rs) over a few thousand
//! deterministic pseudo-random inputs, so CI checks its invariants on stable Rust without
//! cargo-fuzz. A failure names the seed, and the fuzz_one_input example reruns that one input.

#[path = "../../fuzz/ops.rs"]
mod ops;
#[path = "../../fuzz/seeds.rs"]
mod seeds;

use std::time::Instant;

fn run_seeds(seeds: std::ops::Range<u64>) -> ops::Stats {
    let mut total = ops::Stats::default();
    for seed in seeds {
        let input = seeds::fuzz_input(seed);
        let result = std::panic::catch_unwind(|| ops::run(&input));
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                eprintln!(
                    "seed {seed} (input of {} bytes) broke an invariant; rerun it with \
                     FUZZ_TRACE=1 cargo run -p roomd-core --example fuzz_one_input -- seed {seed}",
                    input.len()
                );
                std::panic::resume_unwind(e)
            }
        };
        total.ops += stats.ops;
        total.inputs += stats.inputs;
        total.ticks += stats.ticks;
        total.peers_added += stats.peers_added;
        total.invites_answered += stats.invites_answered;
        total.signalling_sent += stats.signalling_sent;
        total.sfu_connects += stats.sfu_connects;
        total.max_peer_calls = total.max_peer_calls.max(stats.max_peer_calls);
        total.max_state_bytes = total.max_state_bytes.max(stats.max_state_bytes);
    }
    total
}

/// 1000 inputs (about 3 s unoptimised); `FUZZ_SEEDS=n` for more, say
/// `FUZZ_SEEDS=200000 cargo test -p roomd-core --release --test fuzz_smoke`.
#[test]
fn call_signalling_invariants_hold_for_pseudo_random_inputs() {
    let started = Instant::now();
    let seeds = std::env::var("FUZZ_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let stats = run_seeds(0..seeds);
    eprintln!("{stats:?} in {:?}", started.elapsed());
    // The operations reach the calls: peers are made and signalling goes out.
    assert!(stats.ops > 40 * seeds as usize, "{stats:?}");
    assert!(stats.peers_added > seeds as usize, "{stats:?}");
    assert!(stats.invites_answered > seeds as usize / 10, "{stats:?}");
    assert!(stats.signalling_sent > seeds as usize, "{stats:?}");
    // And the Element Call sessions reach their SFUs.
    assert!(stats.sfu_connects > seeds as usize / 20, "{stats:?}");
}

#[test]
fn empty_and_tiny_inputs_are_fine() {
    ops::run(&[]);
    for b in 0..=255u8 {
        ops::run(&[b]);
        ops::run(&[b, b]);
    }
}
