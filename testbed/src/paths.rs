use std::path::PathBuf;

/// The repository's top directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testbed/ sits in the repository")
        .to_owned()
}

/// Where `tools/setup.sh` installs the test dependencies (`$ROOMD_TESTENV` overrides).
pub fn testenv() -> PathBuf {
    std::env::var_os("ROOMD_TESTENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".testenv"))
}
