//! Helpers shared by the integration tests (tool checks come from `kiln-test-support`).

#![allow(dead_code)]

use kiln_layers::{Entry, EntryKind, FileTree};
pub use kiln_test_support::{require_tool, run};

/// The `SOURCE_DATE_EPOCH` used throughout the tests.
pub const EPOCH: u64 = 1_700_000_000;

pub fn with_mtime(mut e: Entry, mtime: u64) -> Entry {
    e.mtime = Some(mtime);
    e
}

pub fn xattr(mut e: Entry, name: &str, value: &[u8]) -> Entry {
    e.xattrs.insert(name.to_string(), value.to_vec());
    e
}

pub fn hardlink(target: &str) -> Entry {
    Entry {
        kind: EntryKind::Hardlink(target.to_string()),
        ..Entry::file("", 0o644)
    }
}

/// A small tree with every kind of entry and the tricky metadata: setuid, sticky, owners,
/// xattrs (including a binary file capability), hard and symbolic links, long names.
pub fn sample_tree() -> FileTree {
    let mut t = FileTree::new();
    let long_dir = format!("/opt/{}", "deep-directory-name/".repeat(8));
    let long_dir = long_dir.trim_end_matches('/');
    let cap = [
        1u8, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let items: Vec<(String, Entry)> = vec![
        ("/etc".into(), Entry::dir(0o755)),
        (
            "/etc/zookeeper/zoo.cfg".into(),
            with_mtime(
                Entry::file("tickTime=2000\nclientPort=2181\n", 0o644),
                1_600_000_000,
            ),
        ),
        (
            "/etc/zookeeper/myid".into(),
            Entry::file("1\n", 0o600).owned(1234, 4321),
        ),
        (
            "/usr/bin/sudo".into(),
            Entry::file(vec![0x7f; 3000], 0o4755),
        ),
        (
            "/usr/bin/wall".into(),
            Entry::file("wall", 0o2755).owned(0, 5),
        ),
        (
            "/usr/bin/ping".into(),
            xattr(Entry::file("ping", 0o755), "security.capability", &cap),
        ),
        (
            "/usr/share/doc/readme".into(),
            xattr(
                Entry::file("hello", 0o644),
                "user.kiln.note",
                b"a value with = and \n",
            ),
        ),
        ("/usr/bin/sudoedit".into(), hardlink("/usr/bin/sudo")),
        ("/tmp".into(), Entry::dir(0o1777)),
        ("/bin".into(), Entry::symlink("usr/bin")),
        (
            "/etc/localtime".into(),
            Entry::symlink("/usr/share/zoneinfo/UTC"),
        ),
        (
            "/etc/long-link".into(),
            Entry::symlink(format!("/{}", "t".repeat(150))),
        ),
        (
            format!("{long_dir}/file-with-a-long-name"),
            Entry::file("deep", 0o640),
        ),
        (
            format!("/opt/{}", "n".repeat(180)),
            Entry::file("wide", 0o644),
        ),
        (
            "/var/big-ids".into(),
            Entry::file("ids", 0o644).owned(3_000_000, 2_500_000),
        ),
        (
            "/dev/null".into(),
            Entry {
                kind: EntryKind::CharDevice(1, 3),
                ..Entry::file("", 0o666)
            },
        ),
        (
            "/dev/loop0".into(),
            Entry {
                kind: EntryKind::BlockDevice(7, 0),
                ..Entry::file("", 0o660)
            }
            .owned(0, 6),
        ),
        (
            "/run/initctl".into(),
            Entry {
                kind: EntryKind::Fifo,
                ..Entry::file("", 0o600)
            },
        ),
        ("/var/empty".into(), Entry::file("", 0o644)),
    ];
    for (p, e) in items {
        t.insert(&p, e).unwrap();
    }
    t
}

/// The tree as it reads back from a tar written with `epoch`: every mtime is explicit and
/// clamped.
pub fn as_read_back(tree: &FileTree, epoch: u64) -> FileTree {
    let mut out = FileTree::new();
    for (p, e) in tree.iter() {
        let mut e = e.clone();
        e.mtime = Some(e.mtime.map_or(epoch, |m| m.min(epoch)));
        if let EntryKind::Hardlink(_) = e.kind {
            // A hard link reads back with the metadata of its target.
            let target = match &e.kind {
                EntryKind::Hardlink(t) => tree.get(t).unwrap().clone(),
                _ => unreachable!(),
            };
            e = Entry {
                kind: e.kind.clone(),
                mtime: Some(target.mtime.map_or(epoch, |m| m.min(epoch))),
                xattrs: Default::default(),
                ..target
            };
        }
        out.insert(p, e).unwrap();
    }
    out
}

/// One raw ustar header block (for hand-made, possibly malicious, archives).
pub fn raw_header(name: &str, typeflag: u8, linkname: &str, size: usize) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[..name.len()].copy_from_slice(name.as_bytes());
    b[100..108].copy_from_slice(b"0000755\0");
    b[108..116].copy_from_slice(b"0000000\0");
    b[116..124].copy_from_slice(b"0000000\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"00000000000\0");
    b[156] = typeflag;
    b[157..157 + linkname.len()].copy_from_slice(linkname.as_bytes());
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&c| u32::from(c)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

/// A tar built from raw entries `(name, typeflag, linkname, data)`.
pub fn raw_tar(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, ty, link, data) in entries {
        v.extend_from_slice(&raw_header(name, *ty, link, data.len()));
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(512) * 512, 0);
    }
    v.extend_from_slice(&[0u8; 1024]);
    v
}
