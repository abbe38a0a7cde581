//! Helpers of kiln's integration tests: running the binary, fixture paths. Tool checks, Docker,
//! the local registry and `systemd-analyze verify` are in `kiln-test-support`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace's `tests/` directory.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests")
}

/// A fixture file under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    tests_dir().join("fixtures").join(rel)
}

/// Runs `kiln ARGS` and returns its output.
pub fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env_remove("KILN_LOG")
        .output()
        .expect("running kiln")
}

/// Runs `kiln ARGS`, asserting exit code `code`; returns (stdout, stderr).
pub fn kiln_code(args: &[&str], code: i32) -> (String, String) {
    let out = kiln(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "kiln {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}
