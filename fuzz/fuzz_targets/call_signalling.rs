//! Arbitrary bytes as a sequence of operations against the core's call signalling: see
//! ../ops.rs, which core/tests/fuzz_smoke.rs also runs on stable Rust.

#![no_main]

#[path = "../ops.rs"]
mod ops;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ops::run(data);
});
