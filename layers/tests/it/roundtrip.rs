//! Trees survive our writer and reader unchanged; whiteouts apply as OCI says.

use crate::util::*;
use kiln_layers::{
    apply_layer, apply_layer_metadata, apply_layer_selected, read_layer, write_layer,
    write_layer_to_dir, write_tar, write_tar_stream, Compression, Entry, EntryKind, FileTree,
    LayerOptions,
};
use sha2::{Digest as _, Sha256};

fn opts(compression: Compression) -> LayerOptions {
    LayerOptions {
        source_date_epoch: EPOCH,
        compression,
        threads: 2,
    }
}

#[test]
fn sample_tree_round_trips_through_tar() {
    let tree = sample_tree();
    let mut tar = Vec::new();
    write_tar(&tree, EPOCH, &mut tar).unwrap();
    let back = read_layer(&tar[..]).unwrap();
    assert_eq!(back, as_read_back(&tree, EPOCH));
    // Spot checks of what matters most.
    assert_eq!(back.get("/usr/bin/sudo").unwrap().mode, 0o4755);
    assert_eq!(back.get("/tmp").unwrap().mode, 0o1777);
    assert_eq!(
        back.get("/usr/bin/sudoedit").unwrap().kind,
        EntryKind::Hardlink("/usr/bin/sudo".into())
    );
    assert_eq!(back.get("/var/big-ids").unwrap().uid, 3_000_000);
    assert_eq!(
        back.get("/etc/zookeeper/zoo.cfg").unwrap().mtime,
        Some(1_600_000_000)
    );
}

#[test]
fn every_compression_reads_back_the_same_tree() {
    let tree = sample_tree();
    for c in [
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 3 },
    ] {
        let mut blob = Vec::new();
        let info = write_layer(&tree, &opts(c), &mut blob).unwrap();
        assert_eq!(info.size, blob.len() as u64);
        assert_eq!(
            info.digest.to_string(),
            format!("sha256:{}", hex::encode(Sha256::digest(&blob)))
        );
        assert_eq!(info.media_type, c.media_type());
        let back = read_layer(&blob[..]).unwrap();
        assert_eq!(back, as_read_back(&tree, EPOCH), "{c:?}");
        let mut tar = Vec::new();
        let n = write_tar(&tree, EPOCH, &mut tar).unwrap();
        assert_eq!(info.uncompressed_size, n);
        assert_eq!(
            info.diff_id.to_string(),
            format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
        );
    }
}

#[test]
fn hardlink_to_a_later_path_is_written_target_first() {
    let mut t = FileTree::new();
    t.insert("/z/data", Entry::file("content", 0o4711)).unwrap();
    t.insert("/a/alias", hardlink("/z/data")).unwrap();
    let mut tar = Vec::new();
    write_tar(&t, EPOCH, &mut tar).unwrap();
    let back = read_layer(&tar[..]).unwrap();
    // The smallest path carries the content now; both still name the same file.
    assert_eq!(back.get("/a/alias").unwrap().data(), Some(&b"content"[..]));
    assert_eq!(back.get("/a/alias").unwrap().mode, 0o4711);
    assert_eq!(
        back.get("/z/data").unwrap().kind,
        EntryKind::Hardlink("/a/alias".into())
    );
}

#[test]
fn whiteouts_remove_lower_entries_and_opaque_dirs_hide_lower_content() {
    let mut base = FileTree::new();
    for p in ["/etc/a", "/etc/b", "/var/lib/x/1", "/var/lib/x/2", "/keep"] {
        base.insert(p, Entry::file(p, 0o644)).unwrap();
    }
    base.insert("/tmp", Entry::dir(0o1777)).unwrap();
    let layer = raw_tar(&[
        ("etc/.wh.a", b'0', "", b""),
        ("var/lib/x/.wh..wh..opq", b'0', "", b""),
        ("var/lib/x/3", b'0', "", b"three"),
        ("tmp/new", b'0', "", b"n"),
        (".wh.keep-not-there", b'0', "", b""),
    ]);
    apply_layer(&mut base, &layer[..]).unwrap();
    let paths: Vec<_> = base.iter().map(|(p, _)| p.to_string()).collect();
    assert_eq!(
        paths,
        [
            "/etc",
            "/etc/b",
            "/keep",
            "/tmp",
            "/tmp/new",
            "/var",
            "/var/lib",
            "/var/lib/x",
            "/var/lib/x/3"
        ]
    );
    // /tmp was only implied by the layer: it keeps its sticky mode from below.
    assert_eq!(base.get("/tmp").unwrap().mode, 0o1777);
}

#[test]
fn metadata_only_application_keeps_whiteouts_and_drops_contents() {
    let mut base = FileTree::new();
    base.insert("/etc/a", Entry::file("a", 0o644)).unwrap();
    base.insert("/etc/b", Entry::file("b", 0o644)).unwrap();
    let layer = raw_tar(&[
        ("etc/.wh.a", b'0', "", b""),
        ("usr/bin/tool", b'0', "", b"#!/bin/sh\n"),
    ]);
    apply_layer_metadata(&mut base, &layer[..]).unwrap();
    assert!(base.get("/etc/a").is_none());
    let tool = base.get("/usr/bin/tool").unwrap();
    assert_eq!(tool.data(), Some(&b""[..]));
    assert_eq!(base.get("/etc/b").unwrap().data(), Some(&b"b"[..]));
}

#[test]
fn selected_application_keeps_only_the_contents_asked_for() {
    let mut base = FileTree::new();
    base.insert("/usr/share/doc/a/copyright", Entry::file("a", 0o644))
        .unwrap();
    let layer = raw_tar(&[
        ("./var/lib/dpkg/status", b'0', "", b"Package: a\n"),
        ("usr/bin/tool", b'0', "", b"#!/bin/sh\n"),
        ("usr/share/doc/.wh.a", b'0', "", b""),
    ]);
    apply_layer_selected(
        &mut base,
        &layer[..],
        |p| p == "/var/lib/dpkg/status",
        false,
    )
    .unwrap();
    let status = base.get("/var/lib/dpkg/status").unwrap();
    assert_eq!(status.data(), Some(&b"Package: a\n"[..]));
    assert_eq!(base.get("/usr/bin/tool").unwrap().data(), Some(&b""[..]));
    assert!(base.get("/usr/share/doc/a/copyright").is_none());
}

#[test]
fn a_whiteout_does_not_remove_its_own_layers_entry() {
    let mut base = FileTree::new();
    base.insert("/d/old", Entry::file("old", 0o644)).unwrap();
    let layer = raw_tar(&[
        ("d/new", b'0', "", b"new"),
        ("d/.wh..wh..opq", b'0', "", b""),
    ]);
    apply_layer(&mut base, &layer[..]).unwrap();
    assert!(base.get("/d/old").is_none());
    assert_eq!(base.get("/d/new").unwrap().data(), Some(&b"new"[..]));
}

#[test]
fn layer_blob_lands_in_the_store_under_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let info =
        write_layer_to_dir(&sample_tree(), &opts(Compression::default()), dir.path()).unwrap();
    let path = dir.path().join("blobs/sha256").join(info.digest.hex());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, info.size);
    assert_eq!(
        info.digest.to_string(),
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    );
    // Only the blob: the temporary file was renamed, not copied.
    let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o644
    );
}

#[test]
fn a_tar_stream_gives_the_same_layer_as_its_tree() {
    let tree = sample_tree();
    let o = opts(Compression::default());
    let mut tar = Vec::new();
    write_tar(&tree, EPOCH, &mut tar).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let from_tree = write_layer(&tree, &o, &mut a).unwrap();
    let from_stream = write_tar_stream(&tar[..], &o, &mut b).unwrap();
    assert_eq!(from_tree, from_stream);
    assert_eq!(a, b);
}
