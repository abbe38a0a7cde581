//! Hand-made hostile layers: every escape attempt is refused with an error naming the entry,
//! and nothing is ever written outside the target directory.

use crate::util::*;
use kiln_layers::{apply_layer, extract_to_dir, read_layer, Entry, Error, FileTree};

fn refused(layer: &[u8], entry: &str) -> String {
    match read_layer(layer) {
        Err(Error::UnsafeEntry { entry: e, reason }) => {
            assert_eq!(e, entry, "error names the wrong entry ({reason})");
            reason
        }
        other => panic!("expected {entry:?} to be refused, got {other:?}"),
    }
}

#[test]
fn dot_dot_components_are_refused() {
    refused(&raw_tar(&[("../evil", b'0', "", b"x")]), "../evil");
    refused(
        &raw_tar(&[("a/../../evil", b'0', "", b"x")]),
        "a/../../evil",
    );
    refused(&raw_tar(&[("ok/..", b'5', "", b"")]), "ok/..");
}

#[test]
fn absolute_names_stay_inside_the_root() {
    let tree = read_layer(&raw_tar(&[("/abs/file", b'0', "", b"in")])[..]).unwrap();
    assert_eq!(tree.get("/abs/file").unwrap().data(), Some(&b"in"[..]));
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("root");
    extract_to_dir(&tree, &target).unwrap();
    assert_eq!(std::fs::read(target.join("abs/file")).unwrap(), b"in");
    assert!(!std::path::Path::new("/abs/file").exists());
}

/// A base's tarball (kept verbatim as a layer, or read as a base tree) must have relative
/// names: a reader that does not normalise would write `/abs/file` outside its root. The same
/// name in an archive kiln only unpacks into layers of its own is normalised (above).
#[test]
fn absolute_names_are_refused_in_a_tarball_kept_verbatim() {
    let layer = raw_tar(&[("/abs/file", b'0', "", b"in")]);
    let mut t = FileTree::new();
    match kiln_layers::apply_layer_metadata_relative(&mut t, &layer[..]) {
        Err(Error::UnsafeEntry { entry, .. }) => assert_eq!(entry, "/abs/file"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let ok = raw_tar(&[("./rel/file", b'0', "", b"in")]);
    kiln_layers::apply_layer_metadata_relative(&mut FileTree::new(), &ok[..]).unwrap();
}

/// `(entry, reason)` of the refusal of `layer` by the base readers (with contents, metadata
/// only, flattened), which must agree.
fn refused_as_base(layer: &[u8]) -> (String, String) {
    let read = kiln_layers::read::read_layer_relative(layer);
    let meta = kiln_layers::apply_layer_metadata_relative(&mut FileTree::new(), layer);
    let flat = kiln_layers::flatten_tar(layer, &FileTree::new(), 1, Vec::new());
    let (Err(Error::UnsafeEntry { entry, reason }), Err(m), Err(f)) = (read, meta, flat) else {
        panic!("not refused alike by every base reader");
    };
    assert_eq!(m.to_string(), f.to_string());
    (entry, reason)
}

/// Regression (issue 18, item 12): a base layer's absolute member was accepted (normalised)
/// and the layer published unchanged, while `..` was refused. In a base both are refused, by
/// every reader of a base, naming the member and what is wrong with it.
#[test]
fn absolute_path_member_in_base_layer_is_refused_like_dotdot() {
    for (name, wrong) in [
        ("/etc/passwd", "is absolute"),
        ("../etc/passwd", "has a '..' component"),
        ("etc/../../passwd", "has a '..' component"),
    ] {
        let (entry, reason) = refused_as_base(&raw_tar(&[(name, b'0', "", b"x")]));
        assert_eq!(entry, name);
        assert!(
            reason.starts_with("name ") && reason.contains(wrong),
            "{reason}"
        );
    }
    // Relative spellings are fine, and symlink targets may be absolute or climb: they are
    // resolved inside the root filesystem, never on the machine that reads the layer.
    // The root directory's own entry (`/`, written by some image builders) names nothing
    // outside any root: let through, its metadata dropped like that of `./`.
    let ok = raw_tar(&[
        ("/", b'5', "", b""),
        ("./etc/", b'5', "", b""),
        ("etc/passwd", b'0', "", b"root:x:0:0::/root:/bin/sh\n"),
        ("etc/abs", b'2', "/etc/passwd", b""),
        ("etc/up", b'2', "../../../etc/passwd", b""),
        ("etc/hard", b'1', "./etc/passwd", b""),
    ]);
    let t = kiln_layers::read::read_layer_relative(&ok[..]).unwrap();
    assert_eq!(
        t.get("/etc/abs").unwrap().kind,
        kiln_layers::EntryKind::Symlink("/etc/passwd".into())
    );
    kiln_layers::flatten_tar(&ok[..], &FileTree::new(), 1, Vec::new()).unwrap();
}

/// Regression (issue 18, item 12): a hard link whose target had `..` was refused with "path
/// has a '..' component", as if the member's own name were wrong. The message names the
/// member, says that its hard-link target is the problem, quotes it and says what is wrong.
#[test]
fn hard_link_error_names_the_link_target() {
    let files = |link: &'static str| raw_tar(&[("f", b'0', "", b"x"), ("h", b'1', link, b"")]);
    for (link, wrong) in [
        ("../f", "has a '..' component"),
        ("a/../../f", "has a '..' component"),
        ("/", "is the root directory"),
        ("missing", "is not a member before it"),
    ] {
        let reason = refused(&files(link), "h");
        let want = format!("hard link target {link:?} {wrong}");
        assert!(
            reason.starts_with(&want),
            "{reason:?} does not say {want:?}"
        );
    }
    let reason = refused(
        &raw_tar(&[("d", b'5', "", b""), ("h", b'1', "d", b"")]),
        "h",
    );
    assert_eq!(reason, "hard link target \"d\" is a directory");
    // In a base, an absolute target is refused like `..`, and said to be the target's fault.
    let (entry, reason) = refused_as_base(&files("/f"));
    assert_eq!(entry, "h");
    assert_eq!(
        reason,
        "hard link target \"/f\" is absolute (starts with '/')"
    );
    let (entry, reason) = refused_as_base(&files("../f"));
    assert_eq!(entry, "h");
    assert_eq!(reason, "hard link target \"../f\" has a '..' component");
}

#[test]
fn writing_through_a_symlinked_parent_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap();
    let reason = refused(
        &raw_tar(&[("link", b'2', out, b""), ("link/pwned", b'0', "", b"x")]),
        "link/pwned",
    );
    assert!(reason.contains("symlink"), "{reason}");
    refused(
        &raw_tar(&[("up", b'2', "..", b""), ("up/evil", b'0', "", b"x")]),
        "up/evil",
    );
    // The symlink may also come from a lower layer.
    let mut base = FileTree::new();
    base.insert("/etc", Entry::symlink(out)).unwrap();
    let before = base.clone();
    let err = apply_layer(&mut base, &raw_tar(&[("etc/passwd", b'0', "", b"x")])[..]);
    assert!(matches!(err, Err(Error::UnsafeEntry { .. })), "{err:?}");
    assert_eq!(base, before, "a refused layer leaves the tree alone");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn hard_links_must_stay_inside_and_point_backwards() {
    refused(&raw_tar(&[("h", b'1', "../x", b"")]), "h");
    refused(&raw_tar(&[("h", b'1', "etc/passwd", b"")]), "h");
    refused(
        &raw_tar(&[("h", b'1', "later", b""), ("later", b'0', "", b"x")]),
        "h",
    );
    refused(
        &raw_tar(&[("d", b'5', "", b""), ("h", b'1', "d", b"")]),
        "h",
    );
    refused(
        &raw_tar(&[("link", b'2', "/etc", b""), ("h", b'1', "link/passwd", b"")]),
        "h",
    );
    // A hard link to an earlier entry is fine.
    let t = read_layer(&raw_tar(&[("f", b'0', "", b"x"), ("h", b'1', "/f", b"")])[..]).unwrap();
    assert_eq!(t.len(), 2);
}

#[test]
fn whiteouts_of_dot_and_dot_dot_are_refused() {
    refused(&raw_tar(&[(".wh...", b'0', "", b"")]), ".wh...");
    refused(&raw_tar(&[("a/.wh..", b'0', "", b"")]), "a/.wh..");
    refused(&raw_tar(&[("a/.wh.", b'0', "", b"")]), "a/.wh.");
}

#[test]
fn malformed_archives_are_errors() {
    let mut bad = raw_tar(&[("f", b'0', "", b"data")]);
    bad[148] ^= 1;
    assert!(matches!(read_layer(&bad[..]), Err(Error::Malformed { .. })));
    let truncated = &raw_tar(&[("f", b'0', "", &[1u8; 2000])])[..1024];
    assert!(matches!(
        read_layer(truncated),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn extraction_replaces_planted_symlinks_instead_of_following_them() {
    let outside = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("root");
    std::fs::create_dir(&target).unwrap();
    // Someone left symlinks where the tree has a directory and a file.
    std::os::unix::fs::symlink(outside.path(), target.join("etc")).unwrap();
    std::fs::write(outside.path().join("victim"), "untouched").unwrap();
    std::os::unix::fs::symlink(outside.path().join("victim"), target.join("victim")).unwrap();
    let mut tree = FileTree::new();
    tree.insert(
        "/etc/passwd",
        Entry::file("root:x:0:0::/root:/bin/sh\n", 0o644),
    )
    .unwrap();
    tree.insert("/victim", Entry::file("new", 0o644)).unwrap();
    tree.insert("/ro", Entry::dir(0o555)).unwrap();
    tree.insert("/ro/inside", Entry::file("ok", 0o444)).unwrap();
    extract_to_dir(&tree, &target).unwrap();
    assert!(std::fs::symlink_metadata(target.join("etc"))
        .unwrap()
        .is_dir());
    assert_eq!(std::fs::read(target.join("victim")).unwrap(), b"new");
    assert_eq!(
        std::fs::read(outside.path().join("victim")).unwrap(),
        b"untouched"
    );
    let names: Vec<_> = std::fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["victim"]);
    assert_eq!(std::fs::read(target.join("ro/inside")).unwrap(), b"ok");
}
