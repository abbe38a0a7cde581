//! Helpers shared by kiln's test suites (the integration tests under `tests/` and the crates'
//! own tests): finding external tools, running them, Docker, a local
//! `docker-registry`, Debian's static busybox, `systemd-analyze verify`, and [`snapshot`]: the
//! one way every suite compares its output with committed snapshots (`KILN_BLESS=1` rewrites
//! them).
//!
//! A test that needs an external tool checks for it first and panics naming the Debian
//! package to install; CI (`./dev test`) installs every one, so nothing is skipped there.

use std::path::{Path, PathBuf};
use std::process::Command;

mod registry;
pub mod snapshot;

pub use registry::{free_port, wait_for_port, Registry};

/// The path of `tool` on PATH.
pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

/// The path of `tool`, or a panic naming the Debian package that has it.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        panic!(
            "this test needs `{tool}` (Debian package `{package}`): install it with \
             `apt-get install -y {package}` (`./dev test` installs every tool the tests use)"
        )
    })
}

/// Runs a command; panics with its status, stdout and stderr unless it succeeds. Returns
/// stdout.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where tests keep what is slow to make and keyed by its inputs (mmdebstrap bases, boot
/// outputs), across runs and clones: `$KILN_TEST_CACHE`, else kiln's own default cache
/// (`$XDG_CACHE_HOME/kiln`, `~/.cache/kiln`), which `./dev demo` fills too. Every entry is
/// content-addressed, so sharing it never changes a result, only how long a run takes.
pub fn machine_cache() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_TEST_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("kiln");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache/kiln"),
        None => std::env::temp_dir().join("kiln-test-cache"),
    }
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kiln-test-")
        .tempdir()
        .expect("creating a temporary directory")
}

/// Debian's static busybox (`/bin/busybox`, package busybox-static): the one program of the
/// small fixture images the tests build.
pub fn busybox() -> Vec<u8> {
    std::fs::read(busybox_path()).expect("reading /bin/busybox")
}

/// The machine's static busybox, to run in place: a copy written by a test and executed at
/// once can fail with "Text file busy" when another test thread forks while the copy's write
/// descriptor is open (the child holds it until its exec).
pub fn busybox_path() -> &'static Path {
    let path = Path::new("/bin/busybox");
    assert!(
        path.is_file(),
        "/bin/busybox not found: install it with `apt-get install -y busybox-static`"
    );
    path
}

/// A plain tar of hand-made members `(name, typeflag, linkname, data)`, names and link
/// targets stored exactly as given (absolute, with `..`: what a writer like kiln's never makes),
/// for tests of how hostile archives are refused. Mode 0644, owner 0, mtime 0.
pub fn raw_tar(members: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, typeflag, linkname, data) in members {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = *typeflag;
        h[157..157 + linkname.len()].copy_from_slice(linkname.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&c| u32::from(c)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        v.extend_from_slice(&h);
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(512) * 512, 0);
    }
    v.extend_from_slice(&[0u8; 1024]);
    v
}

/// Docker CLI with an engine behind it, or a panic saying what is missing.
pub fn require_docker() {
    require_tool("docker", "docker.io");
    let out = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "no Docker Engine reachable (`docker info` failed): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run docker: {e}"),
    }
}

/// Removes Docker images by reference on drop.
#[derive(Debug)]
pub struct DockerCleanup(pub Vec<String>);

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        for r in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", r]).output();
        }
    }
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
