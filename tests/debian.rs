//! `kiln build` on a real Debian base: mmdebstrap with Debian's etcd, ZooKeeper, Docker 20.10
//! and CNI plugins. The presence check runs against the real packages, and every unit kiln
//! rendered passes `systemd-analyze verify` inside the unpacked image (its programs are the
//! real ones, not stand-ins). mmdebstrap reaches Debian's mirror (the package registry); its
//! output is cached under target/ so later runs are offline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::kiln_code;
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
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kiln-debian-full-cache");
    // A copy: kiln writes kiln.lock beside the spec, which must not land in the source tree.
    let spec = tmp.path().join("debian.toml");
    fs::copy(crate::util::fixture("specs/debian.toml"), &spec).unwrap();
    let dist = tmp.path().join("dist");
    let (s, d, c) = (
        spec.to_str().unwrap(),
        dist.to_str().unwrap(),
        cache.to_str().unwrap(),
    );
    kiln_code(&["build", s, "-o", d, "--cache", c], 0);

    let bundle = tmp.path().join("bundle");
    let image = format!("{}:deb-master-agent", dist.join("oci").display());
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image", &image])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = bundle.join("rootfs");
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
