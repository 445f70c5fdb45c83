//! Runs the call-signalling fuzz interpreter (fuzz/ops.rs) over one input, to read or shrink a
//! failure:
//!
//! ```sh
//! cargo run -p roomd-core --example fuzz_one_input -- seed 17        # the smoke test's seed 17
//! cargo run -p roomd-core --example fuzz_one_input -- file fuzz/artifacts/call_signalling/crash-...
//! cargo run -p roomd-core --example fuzz_one_input -- hex 0a1b2c --minimize
//! ```
//!
//! With `FUZZ_TRACE=1` every input and output is shown. `--minimize` shrinks the input while it
//! breaks the same invariant and prints what is left as hex. Exits 1 when the input breaks an
//! invariant.

#[path = "../../fuzz/ops.rs"]
mod ops;
#[path = "../../fuzz/seeds.rs"]
mod seeds;

use std::process::ExitCode;

const USAGE: &str = "usage: fuzz_one_input (seed N | file PATH | hex HEX) [--minimize]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let minimize = args.iter().any(|a| a == "--minimize");
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--minimize")
        .collect();
    let input = match read_input(&args) {
        Ok(input) => input,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if minimize {
        return shrink(input);
    }
    match std::panic::catch_unwind(|| ops::run(&input)) {
        Ok(stats) => {
            println!("no invariant broken: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::FAILURE,
    }
}

fn read_input(args: &[&str]) -> Result<Vec<u8>, String> {
    match args {
        ["seed", n] => n
            .parse()
            .map(seeds::fuzz_input)
            .map_err(|e| format!("seed {n:?}: {e}")),
        ["file", path] => std::fs::read(path).map_err(|e| format!("{path}: {e}")),
        ["hex", hex] if hex.len() % 2 == 0 => (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("hex: {e}")),
        _ => Err(format!("cannot read an input from {args:?}")),
    }
}

/// Drops ever smaller chunks of the input while it still breaks the same invariant.
fn shrink(mut input: Vec<u8>) -> ExitCode {
    std::panic::set_hook(Box::new(|_| {}));
    let Some(kind) = broken_invariant(&input) else {
        let _ = std::panic::take_hook();
        println!("the input breaks no invariant");
        return ExitCode::SUCCESS;
    };
    let mut chunk = input.len() / 2;
    while chunk > 0 {
        let mut at = 0;
        while at < input.len() {
            let mut shorter = input.clone();
            shorter.drain(at..(at + chunk).min(input.len()));
            if broken_invariant(&shorter).as_ref() == Some(&kind) {
                input = shorter;
            } else {
                at += chunk;
            }
        }
        chunk /= 2;
    }
    let _ = std::panic::take_hook();
    let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
    println!("{} bytes still break \"{kind}\": {hex}", input.len());
    ExitCode::FAILURE
}

/// Which invariant the input breaks, if any: the panic message up to its first number.
fn broken_invariant(input: &[u8]) -> Option<String> {
    let e = std::panic::catch_unwind(|| ops::run(input)).err()?;
    let text = e
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| e.downcast_ref::<&str>().copied())
        .unwrap_or("?");
    let end = text
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(text.len());
    Some(text[..end].to_owned())
}
