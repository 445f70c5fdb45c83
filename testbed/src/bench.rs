//! For the benchmarks in benches/: they are built and started by `cargo test --all-targets` too,
//! which should only check that they build.

/// True under `cargo bench`, which passes `--bench`; otherwise prints how to run the benchmark.
pub fn asked_to_run() -> bool {
    if std::env::args().any(|a| a == "--bench") {
        return true;
    }
    let name = std::env::args()
        .next()
        .and_then(|p| {
            let file = std::path::Path::new(&p).file_name()?.to_str()?.to_owned();
            // target/.../deps/<name>-<hash>
            Some(
                file.rsplit_once('-')
                    .map_or(file.clone(), |(n, _)| n.to_owned()),
            )
        })
        .unwrap_or_default();
    println!("a benchmark, not run as a test: cargo bench --profile dev --bench {name}");
    false
}
