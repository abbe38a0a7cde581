//! One plain tar of a whole root filesystem: a large base tarball streamed entry by entry with
//! a small [`FileTree`] laid over it, as the image's layers would stack. Used for the bootable
//! root image (squashfs from a tar) and the rootfs tarball; memory holds one base file at a
//! time plus the upper tree.
//!
//! Rules, those of layers with no whiteouts (kiln's own layers have none; a base with
//! whiteouts is refused):
//! - an upper entry replaces the base entry at its path; where both are directories the
//!   upper one's metadata is written at the base's place, so parents still come first;
//! - base entries below an upper non-directory are dropped (the upper entry replaced that
//!   directory);
//! - base hard links whose target was replaced are dropped (their content is gone);
//! - upper entries not written yet follow, in path order.
//!
//! The containment rules of a base apply ([`crate::read::read_layer_relative`]): names and
//! hard-link targets must be relative, `..` and a leading `/` are refused alike.

use std::collections::HashSet;
use std::io::{Read, Write};

use crate::read::{clean_name, TarReader};
use crate::tar::{write_entry, write_tree_except, BLOCK};
use crate::{Entry, EntryKind, Error, FileTree, IoError, Result};

/// Streams `base` (plain, gzip or zstd tar) with `upper` over it into `out` as one plain tar;
/// returns the bytes written. Entries without an mtime get `source_date_epoch`; others are
/// clamped to it.
pub fn flatten_tar<R: Read, W: Write>(
    base: R,
    upper: &FileTree,
    source_date_epoch: u64,
    mut out: W,
) -> Result<u64> {
    let mut reader = TarReader::new(crate::decompress::decompressed(base)?);
    let mut written = 0u64;
    let mut done: HashSet<String> = HashSet::new();
    // Base paths dropped because the upper tree replaced them (for hard links to them).
    let mut dropped: HashSet<String> = HashSet::new();
    while let Some(raw) = reader.next_entry()? {
        raw.check_relative()?;
        let Some(path) = clean_name(&raw.name)? else {
            continue;
        };
        let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        if name.starts_with(".wh.") {
            return Err(Error::UnsafeEntry {
                entry: raw.name.clone(),
                reason: "whiteout in a base that is flattened (only single-layer bases can be)"
                    .into(),
            });
        }
        if under_upper_non_dir(upper, &path) {
            dropped.insert(path);
            continue;
        }
        let base_entry = raw.into_entry()?;
        if let Some(up) = upper.get(&path) {
            if up.kind == EntryKind::Dir && base_entry.kind == EntryKind::Dir {
                written += write_entry(&mut out, &path, up, None, source_date_epoch)?;
                done.insert(path);
            } else {
                dropped.insert(path);
            }
            continue;
        }
        written += match &base_entry.kind {
            EntryKind::Hardlink(target) => {
                if dropped.contains(target) || upper.get(target).is_some() {
                    continue;
                }
                write_entry(
                    &mut out,
                    &path,
                    &base_entry,
                    Some(target),
                    source_date_epoch,
                )?
            }
            _ => write_entry(&mut out, &path, &base_entry, None, source_date_epoch)?,
        };
    }
    written += write_tree_except(upper, &done, source_date_epoch, &mut out)?;
    out.write_all(&[0u8; 2 * BLOCK])
        .map_err(IoError::new("writing tar trailer"))?;
    Ok(written + 2 * BLOCK as u64)
}

/// Whether a proper ancestor of `path` is a non-directory in `upper`.
fn under_upper_non_dir(upper: &FileTree, path: &str) -> bool {
    let mut idx = 0;
    while let Some(off) = path[idx + 1..].find('/') {
        idx += 1 + off;
        if upper
            .get(&path[..idx])
            .is_some_and(|e: &Entry| e.kind != EntryKind::Dir)
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_layer, tar::write_tar};

    fn tar_of(t: &FileTree) -> Vec<u8> {
        let mut v = Vec::new();
        write_tar(t, 100, &mut v).unwrap();
        v
    }

    #[test]
    fn upper_replaces_files_and_directories_keep_their_place() {
        let mut base = FileTree::new();
        base.insert("/etc", Entry::dir(0o755)).unwrap();
        base.insert("/etc/hostname", Entry::file("build-machine\n", 0o644))
            .unwrap();
        base.insert("/etc/keep", Entry::file("k", 0o600).owned(5, 6))
            .unwrap();
        base.insert(
            "/lib/systemd/system/etcd.service",
            Entry::file("[Unit]\n", 0o644),
        )
        .unwrap();
        base.insert("/opt/old/file", Entry::file("x", 0o644))
            .unwrap();
        base.insert("/usr/bin/a", Entry::file("aaa", 0o755))
            .unwrap();
        base.insert(
            "/usr/bin/b",
            Entry {
                kind: EntryKind::Hardlink("/usr/bin/a".into()),
                ..Entry::file("", 0o755)
            },
        )
        .unwrap();
        let mut upper = FileTree::new();
        upper.insert("/etc", Entry::dir(0o750)).unwrap();
        upper
            .insert("/etc/hostname", Entry::file("node1\n", 0o644))
            .unwrap();
        upper
            .insert(
                "/lib/systemd/system/etcd.service",
                Entry::symlink("/dev/null"),
            )
            .unwrap();
        upper.insert("/opt/old", Entry::symlink("/srv")).unwrap();
        upper
            .insert("/var/lib/new", Entry::file("n", 0o644))
            .unwrap();

        let mut out = Vec::new();
        flatten_tar(&tar_of(&base)[..], &upper, 100, &mut out).unwrap();
        let t = read_layer(&out[..]).unwrap();
        assert_eq!(t.get("/etc").unwrap().mode, 0o750);
        assert_eq!(
            t.get("/etc/hostname").unwrap().data(),
            Some(&b"node1\n"[..])
        );
        assert_eq!(t.get("/etc/keep").unwrap().uid, 5);
        assert_eq!(
            t.get("/lib/systemd/system/etcd.service").unwrap().kind,
            EntryKind::Symlink("/dev/null".into())
        );
        assert!(t.get("/opt/old/file").is_none());
        assert_eq!(t.get("/var/lib/new").unwrap().data(), Some(&b"n"[..]));
        assert!(matches!(
            t.get("/usr/bin/b").unwrap().kind,
            EntryKind::Hardlink(_)
        ));
        // Every path once.
        let mut r = TarReader::new(&out[..]);
        let mut names = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            names.push(e.name);
        }
        let unique: HashSet<_> = names.iter().collect();
        assert_eq!(names.len(), unique.len(), "{names:?}");
    }

    #[test]
    fn a_base_with_whiteouts_is_refused() {
        let mut base = FileTree::new();
        base.insert("/etc/.wh.foo", Entry::file("", 0o644)).unwrap();
        let err = flatten_tar(&tar_of(&base)[..], &FileTree::new(), 1, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("whiteout"), "{err}");
    }

    #[test]
    fn same_inputs_same_bytes() {
        let mut base = FileTree::new();
        base.insert("/a/b", Entry::file("1", 0o644)).unwrap();
        let mut upper = FileTree::new();
        upper.insert("/a/c", Entry::file("2", 0o644)).unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        flatten_tar(&tar_of(&base)[..], &upper, 7, &mut x).unwrap();
        flatten_tar(&tar_of(&base)[..], &upper, 7, &mut y).unwrap();
        assert_eq!(x, y);
    }
}
