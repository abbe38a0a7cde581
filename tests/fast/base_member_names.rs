//! Issue 18, item 12: the paths a base's tar members carry. Every kind of base (an image's
//! layers from an OCI layout or a docker-archive, a tarball as `base.source`; the mmdebstrap
//! tarball is checked by kiln-pipeline's own tests) refuses a member whose name or hard-link
//! target is absolute exactly as it refuses `..`, and the error names the base, the layer,
//! the member, which of its paths is wrong and how, and what to do.

use std::fs;
use std::path::Path;

use crate::common::kiln_code;
use crate::common::workspace::{
    build_args, busybox_tree, debian_iptables, fixture_workspace, STAND_INS,
};
use kiln_layers::{Entry, LayerOptions};
use kiln_oci::archive::{write_docker_archive_file, ArchiveImage};
use kiln_oci::oci::layout::LayoutWriter;
use kiln_oci::{BlobStore, ImageSpec};
use kiln_test_support::raw_tar;

/// Rewrites the fixture base `DIR/base-oci` as the fixture tree plus a second, hand-made
/// (uncompressed) layer `raw`; also writes it as the docker-archive `DIR/base.tar`.
fn base_with_layer(dir: &Path, raw: &[u8]) {
    let layout_dir = dir.join("base-oci");
    fs::remove_dir_all(&layout_dir).unwrap();
    let mut tree = busybox_tree();
    for prog in STAND_INS {
        tree.insert(prog, Entry::file("#!/bin/sh\n# kiln test fixture\n", 0o755))
            .unwrap();
    }
    debian_iptables(&mut tree);
    let opts = LayerOptions {
        source_date_epoch: 1_600_000_000,
        ..LayerOptions::default()
    };
    let first = kiln_layers::write_layer_to_dir(&tree, &opts, &layout_dir).unwrap();
    let store = BlobStore::open(layout_dir.join("blobs")).unwrap();
    let (digest, size) = store.put_bytes(raw).unwrap();
    let layers = vec![
        kiln_oci::Layer {
            digest: first.digest,
            diff_id: first.diff_id,
            size: first.size,
            media_type: first.media_type.into(),
        },
        kiln_oci::Layer {
            digest,
            diff_id: digest,
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        },
    ];
    let spec = ImageSpec::new("kiln-fixture/base", "1", layers, 1_600_000_000);
    let mut layout = LayoutWriter::create(&layout_dir).unwrap();
    let written = layout.add_image(&spec, &store, Some("base")).unwrap();
    layout.finish().unwrap();
    let image = ArchiveImage {
        manifest: written.manifest,
        repo_tags: vec!["kiln-fixture/base:1".into()],
    };
    write_docker_archive_file(&dir.join("base.tar"), &store, &[image], 1_600_000_000).unwrap();
}

/// `kiln build` of `spec` with its base source replaced by `source`: the refusal's stderr.
fn refused(spec: &Path, source: &str) -> String {
    let text = fs::read_to_string(spec).unwrap();
    let changed = text.replace("source = { oci = \"oci:base-oci:base\" }", source);
    let spec = spec.with_file_name("case.toml");
    fs::write(&spec, changed).unwrap();
    let dir = spec.parent().unwrap();
    // Each case's base is another image: the lock the previous case recorded does not hold.
    let _ = fs::remove_file(dir.join("kiln.lock"));
    let (dist, cache) = (dir.join("dist"), dir.join("cache"));
    let (_, err) = kiln_code(&build_args(&spec, &dist, cache.to_str().unwrap()), 1);
    assert!(!dist.exists(), "a refused base left an output");
    err
}

const HINT: &str = "re-create the base with relative names";

/// Regression: a base layer with a member named `/etc/passwd` was accepted (kiln read it as
/// `etc/passwd`) and the layer published unchanged in every role image, while `../etc/passwd`
/// was refused. Both are refused now, alike, in every kind of base, with the fix.
#[test]
fn absolute_path_member_in_base_layer_is_refused_like_dotdot() {
    let (tmp, spec) = fixture_workspace();
    for (member, wrong) in [
        ("/etc/passwd", "name is absolute (starts with '/')"),
        ("../etc/passwd", "name has a '..' component"),
    ] {
        let raw = raw_tar(&[(member, b'0', "", b"root:x:0:0::/root:/bin/sh\n")]);
        base_with_layer(tmp.path(), &raw);
        let layer = format!("sha256:{}", kiln_pipeline::sources::cache::sha256_hex(&raw));
        let said = format!("unsafe layer entry {member:?}: {wrong}");
        for (source, base) in [
            (
                "source = { oci = \"oci:base-oci:base\" }",
                "oci:base-oci:base",
            ),
            (
                "source = { oci = \"docker-archive:base.tar\" }",
                "docker-archive:base.tar",
            ),
        ] {
            let err = refused(&spec, source);
            let want = format!("base image {base}, layer {layer}: {said}");
            assert!(
                err.contains(&want),
                "{member} in {base}: no {want:?} in\n{err}"
            );
            assert!(err.contains(HINT), "{err}");
        }
        // A tarball as `base.source` (kiln writes its files again, but one rule holds for
        // every kind of base).
        fs::write(tmp.path().join("rootfs.tar"), &raw).unwrap();
        let err = refused(&spec, "source = { file = \"rootfs.tar\" }");
        let want = format!("base.source (rootfs.tar): {said}");
        assert!(
            err.contains(&want),
            "{member} in a tarball: no {want:?} in\n{err}"
        );
        assert!(err.contains(HINT), "{err}");
    }
}

/// Regression: a base member that is a hard link to `../x` was refused with "path has a '..'
/// component", naming the member as if its own name were wrong. The error now says that the
/// link's target is wrong, quotes it, and says how; an absolute target is refused alike.
#[test]
fn hard_link_error_names_the_link_target() {
    let (tmp, spec) = fixture_workspace();
    for (target, wrong) in [
        ("../bin/busybox", "has a '..' component"),
        ("/bin/busybox", "is absolute (starts with '/')"),
    ] {
        let raw = raw_tar(&[("bin/sh2", b'1', target, b"")]);
        base_with_layer(tmp.path(), &raw);
        let err = refused(&spec, "source = { oci = \"oci:base-oci:base\" }");
        let want = format!("unsafe layer entry \"bin/sh2\": hard link target {target:?} {wrong}");
        assert!(err.contains(&want), "no {want:?} in\n{err}");
        assert!(err.contains(HINT), "{err}");
    }
    // A relative target inside the root, and absolute or climbing symlink targets (resolved
    // inside the root filesystem), are fine.
    let raw = raw_tar(&[
        ("bin/sh2", b'1', "bin/busybox", b""),
        ("bin/sh3", b'2', "/bin/busybox", b""),
        ("bin/sh4", b'2', "../../bin/busybox", b""),
    ]);
    base_with_layer(tmp.path(), &raw);
    let _ = fs::remove_file(tmp.path().join("kiln.lock"));
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    kiln_code(&build_args(&spec, &dist, cache.to_str().unwrap()), 0);
}
