//! The `call_signalling` fuzz target's interpreter (fuzz/ops.rs) over a few thousand
//! deterministic pseudo-random inputs, so CI checks its invariants on stable Rust without
//! cargo-fuzz. A failure names the seed; `fuzz_input(seed, len)` rebuilds the input.

#[path = "../fuzz/ops.rs"]
mod ops;

use std::time::Instant;

/// xorshift64*: enough for test inputs, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn fuzz_input(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..len).map(|_| (rng.next() >> 56) as u8).collect()
}

fn run_seeds(seeds: std::ops::Range<u64>, len: impl Fn(u64) -> usize) -> ops::Stats {
    let mut total = ops::Stats::default();
    for seed in seeds {
        let input = fuzz_input(seed, len(seed));
        let result = std::panic::catch_unwind(|| ops::run(&input));
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                eprintln!(
                    "seed {seed} (input of {} bytes) broke an invariant; rerun it with \
                     FUZZ_SEED={seed} FUZZ_TRACE=1 cargo test --test fuzz_smoke one_input",
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
        total.max_peer_calls = total.max_peer_calls.max(stats.max_peer_calls);
        total.max_state_bytes = total.max_state_bytes.max(stats.max_state_bytes);
    }
    total
}

/// Mostly short inputs (a few dozen operations each), some as long as libFuzzer's default.
fn input_len(seed: u64) -> usize {
    match seed % 10 {
        0 => 4096,
        1..=3 => 1024,
        _ => 256,
    }
}

/// 1000 inputs (about 3 s unoptimised); `FUZZ_SEEDS=n` for more, say
/// `FUZZ_SEEDS=200000 cargo test --release --test fuzz_smoke`.
#[test]
fn call_signalling_invariants_hold_for_pseudo_random_inputs() {
    let started = Instant::now();
    let seeds = std::env::var("FUZZ_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let stats = run_seeds(0..seeds, input_len);
    eprintln!("{stats:?} in {:?}", started.elapsed());
    // The operations reach the calls: peers are made and signalling goes out.
    assert!(stats.ops > 40 * seeds as usize, "{stats:?}");
    assert!(stats.peers_added > seeds as usize, "{stats:?}");
    assert!(stats.invites_answered > seeds as usize / 10, "{stats:?}");
    assert!(stats.signalling_sent > seeds as usize, "{stats:?}");
}

/// One input, to read or shrink a failure: `FUZZ_SEED=n` (that seed's input), `FUZZ_FILE=path`
/// (say a cargo-fuzz crash artifact) or `FUZZ_HEX=...`. With `FUZZ_TRACE=1` every input and
/// output is shown; with `FUZZ_MINIMIZE=1` the input is shrunk while it breaks the same
/// invariant, and what is left is printed as hex.
#[test]
fn one_input() {
    let var = |name| std::env::var(name).ok();
    let input = if let Some(seed) = var("FUZZ_SEED").and_then(|s| s.parse().ok()) {
        fuzz_input(seed, input_len(seed))
    } else if let Some(path) = var("FUZZ_FILE") {
        std::fs::read(path).expect("FUZZ_FILE")
    } else if let Some(hex) = var("FUZZ_HEX") {
        (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("FUZZ_HEX"))
            .collect()
    } else {
        return;
    };
    if var("FUZZ_MINIMIZE").is_none() {
        eprintln!("{:?}", ops::run(&input));
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
    // Which invariant: the message up to its first number.
    let failure = |input: &[u8]| {
        std::panic::catch_unwind(|| ops::run(input)).err().map(|e| {
            let text = panic_text(&e);
            text[..text
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(text.len())]
                .to_owned()
        })
    };
    let mut input = input;
    let kind = failure(&input).expect("the input breaks no invariant");
    let mut chunk = input.len() / 2;
    while chunk > 0 {
        let mut at = 0;
        while at < input.len() {
            let mut shorter = input.clone();
            shorter.drain(at..(at + chunk).min(input.len()));
            if failure(&shorter).as_ref() == Some(&kind) {
                input = shorter;
            } else {
                at += chunk;
            }
        }
        chunk /= 2;
    }
    let _ = std::panic::take_hook();
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("{} bytes still break \"{kind}\": {hex}", input.len());
}

fn panic_text(e: &Box<dyn std::any::Any + Send>) -> &str {
    e.downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| e.downcast_ref::<&str>().copied())
        .unwrap_or("?")
}

#[test]
fn empty_and_tiny_inputs_are_fine() {
    ops::run(&[]);
    for b in 0..=255u8 {
        ops::run(&[b]);
        ops::run(&[b, b]);
    }
}
