//! Deterministic pseudo-random fuzz inputs by seed, shared by the smoke test
//! (core/tests/fuzz_smoke.rs) and the one-input runner (core/examples/fuzz_one_input.rs), so a
//! seed the smoke test names rebuilds the same bytes.

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

/// The input for `seed`: [`input_len`] bytes.
pub fn fuzz_input(seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..input_len(seed))
        .map(|_| (rng.next() >> 56) as u8)
        .collect()
}

/// Mostly short inputs (a few dozen operations each), some as long as libFuzzer's default.
fn input_len(seed: u64) -> usize {
    match seed % 10 {
        0 => 4096,
        1..=3 => 1024,
        _ => 256,
    }
}
