//! A role image depends only on what goes into it (issue 18, item 16). Before, every role
//! image carried the label `io.kiln.spec-sha256`, so a comment in the spec or one agent's new
//! address changed every image's digest: both roles' bootable outputs were made again, every
//! root hash changed, and with it every host's PXE config — on a real cluster every host
//! would have rebooted into a "new" image.
//!
//! Each test builds the bootable fixture (`common/workspace.rs`: a master, an agent, real
//! disks and root images with their dm-verity hashes, a PXE tree) into one output, changes the
//! spec, builds into a second output with the same cache, and compares the two trees file by
//! file: only the changed host's files and the lists of hosts may differ.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::common::workspace::{bootable_workspace, build, report};
use crate::common::{changed_keys, files_below};

/// Every file under `dir` (relative path → sha256 of its bytes).
fn tree(dir: &Path) -> BTreeMap<String, String> {
    files_below(dir, |p, _| {
        let mut h = Sha256::new();
        std::io::copy(&mut fs::File::open(p).unwrap(), &mut h).unwrap();
        hex::encode(h.finalize())
    })
}

/// Paths whose bytes differ between `a` and `b`, or that only one has.
fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    changed_keys(a, b)
}

/// Profile → (role image manifest digest, root hash), from the build report.
fn images(dist: &Path) -> BTreeMap<String, (String, String)> {
    let rep = report(dist);
    let root_hash = |profile: &str| {
        rep["boot"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["profile"] == profile)
            .map(|b| b["root_hash"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no boot outputs for {profile}"))
    };
    rep["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "role")
        .map(|i| {
            let profile = i["of"].as_str().unwrap();
            (
                profile.to_string(),
                (
                    i["manifest_digest"].as_str().unwrap().to_string(),
                    root_hash(profile),
                ),
            )
        })
        .collect()
}

/// What may differ between two builds whatever changed in the spec: the report (it holds the
/// spec's sha256) and the list of sums.
const BUILD_FILES: &[&str] = &["SHA256SUMS", "build-report.json"];

/// ... and when a host changes, the lists of hosts: the PXE tree's `hosts.json`, its DHCP
/// reservations (MAC → address of every host) and what `kiln boot` starts
/// (`boot/manifest.json`).
const HOST_LISTS: &[&str] = &[
    "pxe/hosts.json",
    "pxe/dhcp/dhcpd-hosts.conf",
    "pxe/dhcp/dnsmasq-hosts.conf",
    "boot/manifest.json",
];

/// Whether `path` is one of `host`'s own files (seed, seed volume, identity archive, PXE
/// configs by its MAC).
fn of_host(path: &str, host: &str, mac: &str) -> bool {
    path.starts_with(&format!("cloud-init/{host}/"))
        || path.starts_with(&format!("cloud-init/mac/{mac}/"))
        || path == format!("cloud-init/{host}-cidata.iso")
        || path == format!("identity/{host}.tar")
        || (path.starts_with("pxe/") && path.contains(mac))
}

/// Builds `text` into `name` beside the spec (same cache as every build of the workspace).
fn build_text(spec: &Path, text: &str, name: &str) -> std::path::PathBuf {
    fs::write(spec, text).unwrap();
    let dist = spec.with_file_name(name);
    build(spec, &dist, &[]);
    dist
}

#[test]
fn spec_comment_changes_no_role_image() {
    let (_tmp, spec) = bootable_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let first = build_text(&spec, &text, "dist1");
    let commented = format!("# A comment changes the spec's bytes, not what it says.\n{text}");
    let second = build_text(&spec, &commented, "dist2");

    assert_eq!(images(&first), images(&second));
    let (a, b) = (tree(&first), tree(&second));
    assert!(a.keys().any(|p| p.ends_with("disk.raw")), "{:?}", a.keys());
    assert_eq!(changed(&a, &b), BUILD_FILES, "only the build's own files");
    // The report still says which spec was built.
    assert_ne!(
        report(&first)["spec_sha256"],
        report(&second)["spec_sha256"]
    );
}

#[test]
fn agent_address_change_touches_only_that_hosts_files() {
    let (_tmp, spec) = bootable_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let first = build_text(&spec, &text, "dist1");
    assert!(text.contains("10.9.0.21/24"));
    let second = build_text(
        &spec,
        &text.replace("10.9.0.21/24", "10.9.0.41/24"),
        "dist2",
    );

    assert_eq!(images(&first), images(&second));
    let (a, b) = (tree(&first), tree(&second));
    let diff = changed(&a, &b);
    let stray: Vec<&String> = diff
        .iter()
        .filter(|p| {
            !of_host(p, "a1", "52-54-00-09-00-21")
                && !BUILD_FILES.contains(&p.as_str())
                && !HOST_LISTS.contains(&p.as_str())
        })
        .collect();
    assert!(
        stray.is_empty(),
        "files of no changed host differ: {stray:?}"
    );
    for must in [
        "cloud-init/a1/network-config",
        "cloud-init/a1-cidata.iso",
        "identity/a1.tar",
    ] {
        assert!(diff.iter().any(|p| p == must), "{must} unchanged: {diff:?}");
    }
}

#[test]
fn adding_or_removing_an_agent_changes_no_role_image() {
    let (_tmp, spec) = bootable_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let first = build_text(&spec, &text, "dist1");
    let a2 = "\n[[hosts]]\nname = \"a2\"\nroles = [\"agent\"]\naddress = \"10.9.0.22/24\"\n\
              mac = \"52:54:00:09:00:22\"\n";
    let added = build_text(&spec, &format!("{text}{a2}"), "dist2");
    let removed = build_text(&spec, &text, "dist3");

    assert_eq!(images(&first), images(&added));
    let (a, b, c) = (tree(&first), tree(&added), tree(&removed));
    let diff = changed(&a, &b);
    let stray: Vec<&String> = diff
        .iter()
        .filter(|p| {
            !of_host(p, "a2", "52-54-00-09-00-22")
                && !BUILD_FILES.contains(&p.as_str())
                && !HOST_LISTS.contains(&p.as_str())
        })
        .collect();
    assert!(stray.is_empty(), "files of other hosts differ: {stray:?}");
    assert!(
        diff.iter().any(|p| p == "cloud-init/a2-cidata.iso"),
        "{diff:?}"
    );
    // Removing it again gives the first output back, byte for byte.
    assert_eq!(changed(&a, &c), Vec::<String>::new());
}
