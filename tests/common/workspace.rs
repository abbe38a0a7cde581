//! The fixture workspace of the build tests: `fixtures/specs/build.toml` copied into a
//! temporary directory beside the two small images it names, written by the test (a base of
//! busybox plus scripts named as FIXTURES standing in for Mesos, Marathon, etcd, … and a
//! calico/node image), and `kiln build` run on it offline.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_layers::{Entry, FileTree, LayerOptions};
use kiln_oci::oci::layout::LayoutWriter;
use kiln_oci::{BlobStore, ImageSpec};
use kiln_test_support::{busybox, require_tool};

use super::{fixture, kiln_code};

/// Programs the units of the fixture spec start; the base carries fixture scripts for them.
pub const STAND_INS: &[&str] = &[
    "/usr/share/zookeeper/bin/zkServer.sh",
    "/usr/bin/etcd",
    "/usr/bin/mesos-init-wrapper",
    "/usr/share/marathon/bin/marathon",
    "/usr/bin/dockerd",
    "/usr/bin/docker",
    "/opt/cni/bin/calico",
    "/opt/cni/bin/calico-ipam",
    "/lib/systemd/systemd-networkd",
];

pub fn busybox_tree() -> FileTree {
    let mut t = FileTree::new();
    t.insert("/bin/busybox", Entry::file(busybox(), 0o755))
        .unwrap();
    for applet in ["sh", "echo", "cat", "ls"] {
        t.insert(&format!("/bin/{applet}"), Entry::symlink("busybox"))
            .unwrap();
    }
    t.insert("/tmp", Entry::dir(0o1777)).unwrap();
    t
}

/// Writes a one-layer OCI layout `dir` with ref `reference`.
pub fn write_fixture_image(dir: &Path, reference: &str, tree: &FileTree, cmd: Option<Vec<String>>) {
    let opts = LayerOptions {
        source_date_epoch: 1_600_000_000,
        ..LayerOptions::default()
    };
    let blob = kiln_layers::write_layer_to_dir(tree, &opts, dir).unwrap();
    let mut layout = LayoutWriter::create(dir).unwrap();
    let store = BlobStore::open(dir.join("blobs")).unwrap();
    let layer = kiln_oci::Layer {
        digest: blob.digest,
        diff_id: blob.diff_id,
        size: blob.size,
        media_type: blob.media_type.into(),
    };
    let mut spec = ImageSpec::new(
        &format!("kiln-fixture/{reference}"),
        "1",
        vec![layer],
        1_600_000_000,
    );
    spec.cmd = cmd;
    layout.add_image(&spec, &store, Some(reference)).unwrap();
    layout.finish().unwrap();
}

/// A temp dir holding the fixture spec and its two fixture images.
pub fn fixture_workspace() -> (tempfile::TempDir, PathBuf) {
    fixture_workspace_with(|_| {})
}

/// [`fixture_workspace`] with `extra` files in the base.
pub fn fixture_workspace_with(extra: impl FnOnce(&mut FileTree)) -> (tempfile::TempDir, PathBuf) {
    require_tool("skopeo", "skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("cluster.toml");
    fs::copy(fixture("specs/build.toml"), &spec).unwrap();
    let mut base = busybox_tree();
    for prog in STAND_INS {
        let script =
            format!("#!/bin/sh\n# kiln test fixture standing in for {prog}\necho fixture {prog}\n");
        base.insert(prog, Entry::file(script, 0o755)).unwrap();
    }
    base.insert("/usr/bin/fixture-suid", Entry::file("#!/bin/sh\n", 0o4755))
        .unwrap();
    // Debian keeps ZooKeeper's config behind an alternatives symlink.
    base.insert("/etc/zookeeper/conf", Entry::symlink("conf_example"))
        .unwrap();
    let env = Entry::file("# fixture: Debian's zkEnv settings\n", 0o644);
    base.insert("/etc/zookeeper/conf_example/environment", env)
        .unwrap();
    extra(&mut base);
    write_fixture_image(&tmp.path().join("base-oci"), "base", &base, None);
    let mut node = busybox_tree();
    node.insert(
        "/etc/calico/fixture",
        Entry::file("kiln test fixture for calico/node\n", 0o644),
    )
    .unwrap();
    write_fixture_image(
        &tmp.path().join("calico-node-oci"),
        "calico-node",
        &node,
        Some(vec!["/bin/sh".into()]),
    );
    (tmp, spec)
}

pub fn report(dist: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dist.join("build-report.json")).unwrap()).unwrap()
}

/// `kiln build SPEC -o DIST --offline` with a cache beside the spec: nothing leaves the machine.
pub fn build_args<'a>(spec: &'a Path, dist: &'a Path, cache: &'a str) -> Vec<&'a str> {
    let (spec, dist) = (spec.to_str().unwrap(), dist.to_str().unwrap());
    vec!["build", spec, "-o", dist, "--offline", "--cache", cache]
}

pub fn build(spec: &Path, dist: &Path, extra: &[&str]) {
    let cache = spec.with_file_name("cache");
    let mut args = build_args(spec, dist, cache.to_str().unwrap());
    args.extend(extra);
    kiln_code(&args, 0);
}
