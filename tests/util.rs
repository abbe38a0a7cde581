//! Shared helpers: running the binary, fixture paths, external tools.

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

/// Panics with a clear message when an external tool the test needs is missing. CI installs
/// every tool, so nothing is skipped there.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        panic!("this test needs `{tool}` (Debian package `{package}`); run .ci/setup or apt-get install {package}")
    })
}

/// The path of `tool` on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// Runs `systemd-analyze verify` on `/etc/systemd/system/UNIT` inside `root`; panics with its
/// output unless it passes silently (unknown keys only warn, so silence is the real check).
pub fn verify_unit(root: &Path, unit: &str) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(format!("/etc/systemd/system/{unit}"))
        .output()
        .expect("running systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify {unit} in {}:\n{text}",
        root.display()
    );
}
