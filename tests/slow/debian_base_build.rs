//! `kiln build` on a real Debian base: mmdebstrap with Debian's etcd, ZooKeeper, Docker 20.10
//! and CNI plugins. The presence check runs against the real packages, and every unit kiln
//! rendered passes `systemd-analyze verify` inside the unpacked image (its programs are the
//! real ones, not stand-ins). mmdebstrap reaches Debian's mirror (the package registry); its
//! output is cached in the machine's test cache (`kiln_test_support::machine_cache`), so later
//! runs are offline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{checked_sboms, kiln_code, spdx_package};
use kiln_test_support::{require_tool, verify_unit};

/// `path` resolved inside `root`, following absolute and relative symlinks there (a plain
/// `fs::read` would follow an absolute link out to this machine's own files).
fn inside(root: &Path, path: &str) -> PathBuf {
    let mut cur = root.to_path_buf();
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(String::from)
        .rev()
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        let next = cur.join(&c);
        match fs::read_link(&next) {
            Ok(target) if hops < 40 => {
                hops += 1;
                if target.is_absolute() {
                    cur = root.to_path_buf();
                }
                let parts = target
                    .to_str()
                    .unwrap()
                    .split('/')
                    .filter(|c| !c.is_empty());
                todo.extend(
                    parts
                        .map(String::from)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev(),
                );
            }
            _ if c == ".." => {
                if cur != root {
                    cur.pop();
                }
            }
            _ => cur = next,
        }
    }
    cur
}

#[test]
fn debian_base_image_runs_real_binaries_and_its_units_verify() {
    require_tool("mmdebstrap", "mmdebstrap");
    require_tool("umoci", "umoci");
    require_tool("systemd-analyze", "systemd");
    let tmp = tempfile::tempdir().unwrap();
    let cache = kiln_test_support::machine_cache();
    // A copy: kiln writes kiln.lock beside the spec, which must not land in the source tree.
    let spec = tmp.path().join("debian.toml");
    fs::copy(crate::common::fixture("specs/debian.toml"), &spec).unwrap();
    let dist = tmp.path().join("dist");
    let (s, d, c) = (
        spec.to_str().unwrap(),
        dist.to_str().unwrap(),
        cache.to_str().unwrap(),
    );
    let base = crate::common::vm::debian_base_lock(&spec);
    kiln_code(&["build", s, "-o", d, "--cache", c], 0);
    drop(base);

    let root = unpack(&dist, "deb-master-agent", &tmp.path().join("bundle"));
    // The real etcd from the base, and zoo.cfg placed behind Debian's alternatives link.
    let etcd = Command::new(root.join("usr/bin/etcd"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&etcd.stdout).contains("etcd Version: 3.4"),
        "{etcd:?}"
    );
    let conf = inside(&root, "/etc/zookeeper/conf");
    assert_ne!(
        conf,
        root.join("etc/zookeeper/conf"),
        "Debian's alternatives link was replaced"
    );
    let zoo = fs::read_to_string(conf.join("zoo.cfg")).unwrap();
    assert!(zoo.contains("server.1=10.0.2.15:2888:3888"), "{zoo}");
    assert!(
        conf.join("log4j.properties").is_file(),
        "Debian's other config files are gone"
    );

    for unit in ["zookeeper.service", "etcd.service", "docker.service"] {
        verify_unit(&root, unit);
    }
    base_carries_nothing_of_the_build_machine(&root);
    // kiln's docker.service binds the socket itself: Debian's docker.socket is masked.
    assert_masked(&root, "docker.socket");
    networkd_is_enabled(&root);
    identity_goes_through_the_base_links(&dist, &root);

    let agent = unpack(&dist, "deb-agent", &tmp.path().join("agent"));
    etcd_of_the_base_is_masked_on_agents(&agent);
    verify_unit(&agent, "etcd-gateway.service");
    verify_unit(&agent, "docker.service");

    // A second build of the same spec (same cache, so the base layer is not compressed again)
    // gives the same SBOM bytes.
    let again = tmp.path().join("dist-again");
    kiln_code(
        &["build", s, "-o", again.to_str().unwrap(), "--cache", c],
        0,
    );
    sboms_list_the_debian_packages(&dist, &again, &root);
}

/// Issue 9, item 8: an SPDX document per role image lists the base's Debian packages with
/// versions (and licenses from their DEP-5 copyright files), passes `pyspdxtools`, and is
/// the same bytes in two builds.
fn sboms_list_the_debian_packages(dist: &Path, again: &Path, root: &Path) {
    let sboms = checked_sboms(dist);
    assert_eq!(
        sboms.keys().collect::<Vec<_>>(),
        ["agent", "master-agent"],
        "one SBOM per role image"
    );
    for (profile, doc) in &sboms {
        let rel = format!("sbom/deb-{profile}.spdx.json");
        assert_eq!(
            fs::read(dist.join(&rel)).unwrap(),
            fs::read(again.join(&rel)).unwrap(),
            "{rel} differs between two builds"
        );
        // Every package dpkg says is installed, with its version as dpkg has it.
        let status = fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
        for name in ["etcd-server", "docker.io", "zookeeper", "systemd"] {
            let para = status
                .split("\n\n")
                .find(|p| p.lines().any(|l| l == format!("Package: {name}")))
                .unwrap_or_else(|| panic!("{name} is not in the base's dpkg status"));
            let field = |f: &str| {
                para.lines()
                    .find_map(|l| l.strip_prefix(&format!("{f}: ")))
                    .unwrap()
            };
            let p = spdx_package(doc, name);
            assert_eq!(p["versionInfo"], field("Version"), "{profile}: {name}");
            let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
            let arch = format!("?arch={}", field("Architecture"));
            assert!(
                purl.starts_with(&format!("pkg:deb/debian/{name}@")) && purl.ends_with(&arch),
                "{purl}"
            );
        }
        let installed = status
            .split("\n\n")
            .filter(|p| p.contains("Status: install ok installed"))
            .count();
        let debs = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-deb-"))
            .count();
        assert_eq!(debs, installed, "{profile}: every installed package once");
        // Licenses come from the packages' DEP-5 copyright files where they have one.
        let zk = spdx_package(doc, "zookeeper")["licenseDeclared"]
            .as_str()
            .unwrap();
        assert!(zk.split(" AND ").any(|l| l == "Apache-2.0"), "{zk}");
        let licensed = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["licenseDeclared"] != "NOASSERTION")
            .count();
        assert!(
            licensed * 2 > debs,
            "{profile}: only {licensed} of {debs} have a license"
        );
        spdx_package(doc, "debian-bookworm-minbase");
    }
}

/// `umoci unpack` of the image `reference` of `dist/oci` into `dir`; returns its rootfs.
fn unpack(dist: &Path, reference: &str, dir: &Path) -> PathBuf {
    let image = format!("{}:{reference}", dist.join("oci").display());
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("rootfs")
}

fn assert_masked(root: &Path, unit: &str) {
    let link = root.join("etc/systemd/system").join(unit);
    assert_eq!(
        fs::read_link(&link).ok(),
        Some(PathBuf::from("/dev/null")),
        "{unit} is not masked"
    );
}

/// Regression (issue 8, item 2): Debian's etcd-server leaves etcd.service enabled; on an
/// agent it won the race for 127.0.0.1:2379 and kiln's gateway restart-looped.
fn etcd_of_the_base_is_masked_on_agents(agent: &Path) {
    assert_masked(agent, "etcd.service");
    assert!(
        agent
            .join("etc/systemd/system/multi-user.target.wants/etcd-gateway.service")
            .exists()
            || fs::symlink_metadata(
                agent.join("etc/systemd/system/multi-user.target.wants/etcd-gateway.service")
            )
            .is_ok(),
        "kiln's gateway is not enabled"
    );
    // Docker runs on the agent: its own unit, not masked.
    let docker = agent.join("etc/systemd/system/docker.service");
    assert!(
        fs::symlink_metadata(&docker).unwrap().is_file(),
        "docker.service must be kiln's unit on an agent"
    );
}

/// Regression (issue 8, item 1): no network config was rendered. networkd is enabled in the
/// image and its program is the base's.
fn networkd_is_enabled(root: &Path) {
    let wants = root.join("etc/systemd/system/multi-user.target.wants/systemd-networkd.service");
    let target = fs::read_link(&wants).expect("systemd-networkd.service is not enabled");
    assert!(
        inside(root, target.to_str().unwrap()).is_file(),
        "{target:?} is not in the image"
    );
    assert!(inside(root, "/lib/systemd/systemd-networkd").is_file());
}

/// Regression (issue 8, item 4): the identity wrote `/var/lib/zookeeper/myid` as a file over
/// Debian's symlink to `/etc/zookeeper/conf/myid`, and declared the data dir root-owned.
fn identity_goes_through_the_base_links(dist: &Path, root: &Path) {
    let tar = dist.join("identity/node1.tar");
    let out = Command::new("tar").arg("-tvf").arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{listing}");
    // Debian's zookeeper package links /var/lib/zookeeper/myid to /etc/zookeeper/conf/myid.
    let target = fs::read_link(root.join("var/lib/zookeeper/myid"))
        .expect("Debian's zookeeper links /var/lib/zookeeper/myid to its conf dir");
    let real = inside(root, target.to_str().unwrap());
    let real = real.strip_prefix(root).unwrap().display().to_string();
    assert!(
        listing.contains(&real),
        "myid not placed at {real}:\n{listing}"
    );
    assert!(
        !listing.contains("var/lib/zookeeper/myid"),
        "myid replaces Debian's link:\n{listing}"
    );
    // The data dir keeps the base's owner (zookeeper) and mode (0750), not 0755 root.
    let dir = listing
        .lines()
        .find(|l| l.trim_end().ends_with("var/lib/zookeeper/"))
        .unwrap_or_else(|| panic!("no data dir entry:\n{listing}"));
    assert!(
        dir.starts_with("drwxr-x---") && !dir.contains(" 0/0 "),
        "{dir}"
    );
    assert!(
        listing.contains("etc/systemd/network/10-kiln.network"),
        "{listing}"
    );
    assert!(listing.contains("etc/resolv.conf"), "{listing}");
}

/// mmdebstrap copies the build machine's resolv.conf and hostname into the tree; kiln's
/// customize hooks remove them and everything else a build leaves behind (issue 8, item 14).
fn base_carries_nothing_of_the_build_machine(root: &Path) {
    for f in ["etc/resolv.conf", "etc/hostname"] {
        let ours = fs::read(Path::new("/").join(f)).unwrap_or_default();
        let image = fs::read(root.join(f));
        assert!(
            fs::symlink_metadata(root.join(f)).is_err(),
            "/{f} is in the image: {image:?}"
        );
        assert!(
            image.map_or(true, |t| t != ours),
            "/{f} is the build machine's"
        );
    }
    assert_eq!(
        fs::read(root.join("etc/machine-id")).unwrap(),
        b"",
        "/etc/machine-id must be an empty file"
    );
    for f in [
        "var/lib/dbus/machine-id",
        "var/cache/ldconfig/aux-cache",
        "var/cache/debconf/config.dat-old",
        "var/cache/debconf/templates.dat-old",
        "var/lib/dpkg/status-old",
    ] {
        assert!(fs::symlink_metadata(root.join(f)).is_err(), "/{f} is left");
    }
    let mut left = Vec::new();
    let mut todo = vec![
        root.join("var/lib/apt/lists"),
        root.join("var/cache/apt"),
        root.join("var/log"),
    ];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).into_iter().flatten() {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else if meta.is_file()
                && e.file_name() != "lock"
                // Empty files packages create (wtmp, btmp, lastlog) and symlinks stay.
                && (!e.path().starts_with(root.join("var/log")) || meta.len() > 0)
            {
                left.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    assert!(
        left.is_empty(),
        "apt lists, apt caches or build logs are left: {left:?}"
    );
}
