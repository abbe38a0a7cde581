//! Helpers of kiln's integration tests, shared by both test binaries: the fast tier
//! (`tests/fast/`) and the slow tier (`tests/slow/`, QEMU and mmdebstrap). Here: running the
//! binary, fixture paths, the PyPI validators, the SBOM checks; in the submodules, what
//! several test modules build on. Tool checks, Docker, the local registry, busybox,
//! `systemd-analyze verify` and snapshots are in `kiln-test-support` (`tests/support/`),
//! shared with the crates' own tests.
//!
//! Each binary uses a part of these helpers, so unused ones are not warned about here.
#![allow(dead_code)]

pub mod artifact_server;
pub mod render;
pub mod secret_scan;
pub mod shapes;
pub mod sources;
pub mod vm;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace's `tests/` directory.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests")
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

/// `spec` (whose `[calico.node]` table is at the start of a line) with calico-node off: a
/// kickstart for CentOS Stream 8 or 9 cannot install a host running calico-node of Calico
/// 1.x or 2.x (it writes legacy iptables rules and those have no legacy iptables), so
/// tests of Stream kickstarts that are not about Calico run without it.
pub fn without_calico_node(spec: &str) -> String {
    assert!(
        spec.contains("\n[calico.node]\n"),
        "no [calico.node] table:\n{spec}"
    );
    spec.replace("\n[calico.node]\n", "\n[calico.node]\nenabled = false\n")
}

/// `pyspdxtools` (PyPI `spdx-tools`), the independent SPDX validator.
pub fn pyspdxtools() -> PathBuf {
    pypi_tool("pyspdxtools", "spdx-tools")
}

/// A PyPI tool: on PATH, or in the venv `./dev test` makes under `target/<package>`.
fn pypi_tool(tool: &str, package: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|t| t.join(package).join("bin").join(tool));
    kiln_test_support::which(tool)
        .or(venv.filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "this test needs `{tool}` (PyPI package `{package}`): `./dev test` installs it \
                 into target/{package}, or `pip install {package}`"
            )
        })
}

/// Validates the SPDX document `file` with `pyspdxtools -i`; panics with its findings.
pub fn validate_spdx(file: &Path) {
    let out = Command::new(pyspdxtools())
        .arg("-i")
        .arg(file)
        .output()
        .expect("running pyspdxtools");
    assert!(
        out.status.success(),
        "pyspdxtools -i {}: {}\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SBOMs a build lists in its report, checked: each file is there with the sha256 the
/// report gives and passes `pyspdxtools`. Returns profile → parsed document.
pub fn checked_sboms(dist: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    use sha2::{Digest, Sha256};
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dist.join("build-report.json")).unwrap()).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for s in report["sbom"].as_array().expect("the report lists SBOMs") {
        let file = dist.join(s["path"].as_str().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            s["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&bytes)),
            "{}",
            file.display()
        );
        validate_spdx(&file);
        out.insert(
            s["profile"].as_str().unwrap().to_string(),
            serde_json::from_slice(&bytes).unwrap(),
        );
    }
    out
}

/// The package named `name` of an SPDX document.
pub fn spdx_package<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let packages = doc["packages"].as_array().unwrap();
    packages
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| {
            let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
            panic!("no package {name} in the SBOM: {names:?}")
        })
}

/// `ksvalidator` (PyPI `pykickstart`), the independent kickstart checker.
pub fn ksvalidator() -> PathBuf {
    pypi_tool("ksvalidator", "pykickstart")
}

/// `PROPTEST_CASES` if set, else `default`: the number of cases of the property tests.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Every file below `dir` that is not a directory, by path relative to `dir`, mapped by `f`
/// (given its path and metadata, links not followed).
pub fn files_below<T>(
    dir: &Path,
    mut f: impl FnMut(&Path, &std::fs::Metadata) -> T,
) -> std::collections::BTreeMap<String, T> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            out.insert(rel, f(&p, &m));
        }
    }
    out
}

/// Keys whose values differ between `a` and `b`, or that only one has, in order.
pub fn changed_keys<T: PartialEq>(
    a: &std::collections::BTreeMap<String, T>,
    b: &std::collections::BTreeMap<String, T>,
) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
