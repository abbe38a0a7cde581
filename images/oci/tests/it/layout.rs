//! OCI layout: skopeo and umoci read what we write; writing is deterministic.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use kiln_oci::oci::layout::{Layout, LayoutWriter};
use kiln_oci::{BlobStore, ImageSpec, WrittenImage};

use crate::util::{sample_layers, EPOCH};
use kiln_test_support::{require_tool, run};

/// Writes images `a` = base+a and `b` = base+b into a layout at `dir`.
pub fn write_sample_layout(
    dir: &std::path::Path,
) -> (WrittenImage, WrittenImage, Vec<kiln_oci::Layer>) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let src = BlobStore::open(scratch.path()).expect("store");
    let (base, a, b) = sample_layers(&src);
    let mut writer = LayoutWriter::create(dir).expect("create layout");
    let mut spec_a = ImageSpec::new("kiln/a", "v1", vec![base.clone(), a.clone()], EPOCH);
    spec_a.env = vec!["PATH=/bin".into(), "ROLE=a".into()];
    spec_a.cmd = Some(vec!["/bin/tool".into()]);
    spec_a.labels.insert("org.example.role".into(), "a".into());
    spec_a.history = vec!["base".into(), "app a".into()];
    let mut spec_b = ImageSpec::new("kiln/b", "v1", vec![base.clone(), b.clone()], EPOCH);
    spec_b.entrypoint = Some(vec!["/bin/alias".into()]);
    spec_b.working_dir = Some("/srv".into());
    let wa = writer.add_image(&spec_a, &src, Some("a")).expect("add a");
    let wb = writer.add_image(&spec_b, &src, Some("b")).expect("add b");
    writer.finish().expect("finish");
    (wa, wb, vec![base, a, b])
}

#[test]
fn layout_with_two_images_sharing_a_layer_is_read_by_skopeo_and_umoci() {
    require_tool("skopeo", "skopeo");
    require_tool("umoci", "umoci");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("oci");
    let (wa, wb, layers) = write_sample_layout(&dir);

    // The shared base layer is stored once: 3 layers + 2 configs + 2 manifests.
    let blobs = std::fs::read_dir(dir.join("blobs/sha256"))
        .expect("ls")
        .count();
    assert_eq!(blobs, 7);

    let layout = Layout::open(&dir).expect("open");
    assert_eq!(layout.refs(), vec!["a".to_string(), "b".to_string()]);
    let ra = layout.resolve("a").expect("resolve a");
    assert_eq!(ra.manifest_descriptor.digest, wa.manifest.digest);
    assert_eq!(ra.config_descriptor.digest, wa.config.digest);
    assert_eq!(ra.layers, vec![layers[0].clone(), layers[1].clone()]);

    for (name, written, top) in [("a", &wa, &layers[1]), ("b", &wb, &layers[2])] {
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{name}", dir.display())));
        let v: serde_json::Value = serde_json::from_str(&out).expect("skopeo json");
        assert_eq!(
            v["Digest"],
            written.manifest.digest.to_string(),
            "skopeo digest of {name}"
        );
        let got: Vec<&str> = v["Layers"]
            .as_array()
            .expect("layers")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert_eq!(
            got,
            vec![layers[0].digest.to_string(), top.digest.to_string()]
        );
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["Architecture"], "amd64");
    }
    let cfg = run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:a", dir.display())));
    let cfg: serde_json::Value = serde_json::from_str(&cfg).expect("config json");
    assert_eq!(cfg["config"]["Env"][1], "ROLE=a");
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");

    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:a", dir.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let tool = std::fs::symlink_metadata(rootfs.join("bin/tool")).expect("bin/tool");
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        std::fs::read(rootfs.join("bin/tool")).expect("read"),
        b"#!/bin/sh\necho tool\n"
    );
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/alias"))
            .expect("link")
            .to_str(),
        Some("tool")
    );
    let config = std::fs::symlink_metadata(rootfs.join("etc/config")).expect("etc/config");
    assert_eq!(config.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        std::fs::read(rootfs.join("srv/a.txt")).expect("a.txt"),
        b"image a\n"
    );
    assert!(!rootfs.join("srv/b.txt").exists());
}

#[test]
fn writing_the_same_images_twice_gives_identical_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (wa1, wb1, _) = write_sample_layout(&tmp.path().join("one"));
    let (wa2, wb2, _) = write_sample_layout(&tmp.path().join("two"));
    assert_eq!((wa1, wb1), (wa2, wb2));
    for f in ["index.json", "oci-layout"] {
        let one = std::fs::read(tmp.path().join("one").join(f)).expect("read");
        let two = std::fs::read(tmp.path().join("two").join(f)).expect("read");
        assert_eq!(one, two, "{f} differs");
    }
    let names = |d: &str| {
        let mut v: Vec<_> = std::fs::read_dir(tmp.path().join(d).join("blobs/sha256"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("one"), names("two"));
}

#[test]
fn resolve_detects_a_corrupted_layer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("oci");
    let (_, _, layers) = write_sample_layout(&dir);
    let path = dir.join("blobs/sha256").join(layers[1].digest.hex());
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    let err = Layout::open(&dir)
        .expect("open")
        .resolve("a")
        .expect_err("corruption detected");
    assert!(
        matches!(err, kiln_oci::Error::DigestMismatch { .. }),
        "{err}"
    );
}
