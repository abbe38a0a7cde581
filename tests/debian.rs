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
}
