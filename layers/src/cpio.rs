//! A deterministic newc (`070701`) cpio writer for a [`FileTree`], the format the Linux kernel
//! unpacks as an initramfs.
//!
//! Entries come in tree order with relative names (`etc/zoo.cfg`), inode numbers are assigned
//! from 1 in that order, mtimes are clamped to `SOURCE_DATE_EPOCH` like in
//! [`crate::tar::write_tar`], and dev numbers are 0. Members of a hard-link group share one
//! inode and `nlink`; the first (smallest path) carries the data and the others have size 0,
//! which is what the kernel's initramfs unpacker expects. newc has no room for xattrs: they
//! are not written. Values must fit 32 bits (mtime, file size), otherwise
//! [`Error::Unrepresentable`].

use crate::tar::{clamp_mtime, Links};
use crate::{Entry, EntryKind, Error, FileTree, IoError, Result};
use std::collections::HashMap;
use std::io::Write;

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFDIR: u32 = 0o040000;
const S_IFBLK: u32 = 0o060000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

const TRAILER: &str = "TRAILER!!!";

/// Writes `tree` as a newc cpio archive to `out`; returns the number of bytes written.
pub fn write_cpio<W: Write>(tree: &FileTree, source_date_epoch: u64, mut out: W) -> Result<u64> {
    let links = Links::resolve(tree)?;
    // Directory link counts: 2 plus one per subdirectory, as a real filesystem reports.
    let mut subdirs: HashMap<&str, u32> = HashMap::new();
    for (path, e) in tree.iter() {
        if e.kind == EntryKind::Dir {
            if let Some((parent, _)) = path.rsplit_once('/') {
                *subdirs.entry(parent).or_default() += 1;
            }
        }
    }
    let mut group_inode: HashMap<usize, u32> = HashMap::new();
    let mut next_ino = 1u32;
    let mut written = 0u64;
    for (path, entry) in tree.iter() {
        let link = links.get(path);
        let ino = match link {
            Some(info) => *group_inode.entry(info.group).or_insert_with(|| {
                next_ino += 1;
                next_ino - 1
            }),
            None => {
                next_ino += 1;
                next_ino - 1
            }
        };
        let (e, nlink, with_data): (&Entry, u32, bool) = match link {
            Some(info) => (info.content, info.nlink, info.leader == path),
            None => (entry, 1, true),
        };
        let (ftype, data, rdev): (u32, &[u8], (u32, u32)) = match &e.kind {
            EntryKind::File(d) => (S_IFREG, if with_data { d } else { &[] }, (0, 0)),
            EntryKind::Dir => (S_IFDIR, &[], (0, 0)),
            EntryKind::Symlink(t) => (S_IFLNK, t.as_bytes(), (0, 0)),
            EntryKind::CharDevice(a, b) => (S_IFCHR, &[], (*a, *b)),
            EntryKind::BlockDevice(a, b) => (S_IFBLK, &[], (*a, *b)),
            EntryKind::Fifo => (S_IFIFO, &[], (0, 0)),
            EntryKind::Hardlink(_) => {
                return Err(Error::BadHardlink {
                    path: path.to_string(),
                    target: String::new(),
                    reason: "unresolved hard link",
                })
            }
        };
        let nlink = if ftype == S_IFDIR {
            2 + subdirs.get(path).copied().unwrap_or(0)
        } else {
            nlink
        };
        let mtime = clamp_mtime(e.mtime, source_date_epoch);
        let unrepresentable = |reason: String| Error::Unrepresentable {
            path: path.to_string(),
            format: "cpio",
            reason,
        };
        let mtime = u32::try_from(mtime)
            .map_err(|_| unrepresentable(format!("mtime {mtime} does not fit 32 bits")))?;
        let size = u32::try_from(data.len())
            .map_err(|_| unrepresentable(format!("size {} does not fit 32 bits", data.len())))?;
        let hdr = Header {
            ino,
            mode: ftype | (e.mode & 0o7777),
            uid: e.uid,
            gid: e.gid,
            nlink,
            mtime,
            size,
            rdev,
        };
        written += write_member(&mut out, &path[1..], &hdr, data)?;
    }
    let trailer = Header {
        ino: 0,
        mode: 0,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 0,
        size: 0,
        rdev: (0, 0),
    };
    written += write_member(&mut out, TRAILER, &trailer, &[])?;
    Ok(written)
}

struct Header {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    rdev: (u32, u32),
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn write_member<W: Write>(out: &mut W, name: &str, h: &Header, data: &[u8]) -> Result<u64> {
    let namesize = name.len() + 1;
    let mut buf = format!(
        "070701{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}{:08X}",
        h.ino,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        h.mtime,
        h.size,
        0,
        0,
        h.rdev.0,
        h.rdev.1,
        namesize,
        0
    )
    .into_bytes();
    buf.extend_from_slice(name.as_bytes());
    buf.push(0);
    buf.resize(buf.len() + pad4(buf.len()), 0);
    let err = || IoError::new(format!("writing cpio member {name}"));
    out.write_all(&buf).map_err(err())?;
    out.write_all(data).map_err(err())?;
    let pad = pad4(data.len());
    out.write_all(&[0u8; 3][..pad]).map_err(err())?;
    Ok((buf.len() + data.len() + pad) as u64)
}

/// Reads a `newc` (`070701`/`070702`) cpio archive (an initramfs, an rpm payload) into a
/// tree. Names are normalised like tar names (leading `/` and `.` dropped); a `..` component
/// is refused; hard links (newc puts the data on the last link) become tree hard links.
pub fn read_cpio(b: &[u8]) -> Result<FileTree> {
    let bad = |offset: usize, reason: String| Error::Malformed {
        offset: offset as u64,
        reason,
    };
    let mut tree = FileTree::new();
    // (dev, ino) → path of the entry carrying the data, for hard links.
    let mut data_of: HashMap<(u64, u64), String> = HashMap::new();
    let mut pending: Vec<((u64, u64), String, Entry)> = Vec::new();
    let mut pos = 0usize;
    loop {
        let h = b
            .get(pos..pos + 110)
            .ok_or_else(|| bad(pos, "cpio header truncated".into()))?;
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(bad(pos, "not a newc cpio header".into()));
        }
        let field = |k: usize| -> Result<u64> {
            let s = std::str::from_utf8(&h[6 + 8 * k..14 + 8 * k])
                .map_err(|_| bad(pos, "bad cpio field".into()))?;
            u64::from_str_radix(s, 16).map_err(|_| bad(pos, format!("bad cpio field {s:?}")))
        };
        let (ino, mode, uid, gid, nlink, mtime, size) = (
            field(0)?,
            field(1)?,
            field(2)?,
            field(3)?,
            field(4)?,
            field(5)?,
            field(6)?,
        );
        let dev = (field(7)? << 32) | field(8)?;
        let rdev = (field(9)? as u32, field(10)? as u32);
        let namesize = field(11)? as usize;
        let name_start = pos + 110;
        let raw_name = b
            .get(name_start..name_start + namesize)
            .ok_or_else(|| bad(pos, "cpio name truncated".into()))?;
        let name = String::from_utf8_lossy(&raw_name[..namesize.saturating_sub(1)]).into_owned();
        let data_start = (name_start + namesize).div_ceil(4) * 4;
        let size = usize::try_from(size).map_err(|_| bad(pos, "entry too large".into()))?;
        let data = b
            .get(data_start..data_start + size)
            .ok_or_else(|| bad(pos, format!("cpio entry {name} truncated")))?;
        pos = (data_start + size).div_ceil(4) * 4;
        if name == "TRAILER!!!" {
            break;
        }
        let mut parts = Vec::new();
        for part in name.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    return Err(Error::UnsafeEntry {
                        entry: name.clone(),
                        reason: "path has a '..' component".into(),
                    })
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            continue;
        }
        let path = format!("/{}", parts.join("/"));
        let kind = match mode & 0o170000 {
            0o100000 => EntryKind::File(data.to_vec()),
            0o040000 => EntryKind::Dir,
            0o120000 => EntryKind::Symlink(String::from_utf8_lossy(data).into_owned()),
            0o020000 => EntryKind::CharDevice(rdev.0, rdev.1),
            0o060000 => EntryKind::BlockDevice(rdev.0, rdev.1),
            0o010000 => EntryKind::Fifo,
            other => return Err(bad(pos, format!("{name}: unsupported file type {other:o}"))),
        };
        let is_file = matches!(kind, EntryKind::File(_));
        let mut entry = Entry::file(Vec::new(), 0).owned(uid as u32, gid as u32);
        entry.kind = kind;
        entry.mode = (mode & 0o7777) as u32;
        entry.mtime = Some(mtime);
        if is_file && nlink > 1 {
            if size == 0 {
                pending.push(((dev, ino), path, entry));
                continue;
            }
            data_of.entry((dev, ino)).or_insert_with(|| path.clone());
        }
        tree.insert(&path, entry)?;
    }
    for (key, path, mut entry) in pending {
        if let Some(target) = data_of.get(&key) {
            entry.kind = EntryKind::Hardlink(target.clone());
        }
        tree.insert(&path, entry)?;
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_a_small_archive() {
        let mut t = FileTree::new();
        t.insert("/init", Entry::file("#!/bin/sh\n", 0o755))
            .unwrap();
        t.insert("/bin/sh", Entry::symlink("busybox")).unwrap();
        let mut v = Vec::new();
        let n = write_cpio(&t, 1_000, &mut v).unwrap();
        assert_eq!(n as usize, v.len());
        assert_eq!(v.len() % 4, 0);
        let s = String::from_utf8_lossy(&v);
        // bin (ino 1, dir with nlink 2), bin/sh (ino 2), init (ino 3), trailer.
        assert!(s.starts_with("07070100000001000041ED"), "{s}");
        assert!(s.contains("bin/sh\0"));
        assert!(s.contains("busybox"));
        assert!(s.contains("07070100000003000081ED"));
        assert!(s.trim_end_matches('\0').ends_with("TRAILER!!!"));
    }

    #[test]
    fn reads_back_what_it_writes_and_refuses_escapes() {
        let mut t = FileTree::new();
        t.insert("/init", Entry::file("#!/bin/sh\n", 0o755))
            .unwrap();
        t.insert("/bin/sh", Entry::symlink("busybox")).unwrap();
        let mut v = Vec::new();
        write_cpio(&t, 1_000, &mut v).unwrap();
        let back = read_cpio(&v).unwrap();
        assert_eq!(back.get("/init").unwrap().mode, 0o755);
        assert_eq!(
            back.get("/bin/sh").unwrap().kind,
            EntryKind::Symlink("busybox".into())
        );
        let evil = String::from_utf8_lossy(&v).replace("bin/sh", "../shx");
        assert!(read_cpio(evil.as_bytes()).is_err());
    }

    #[test]
    fn mtime_beyond_32_bits_is_refused() {
        let mut t = FileTree::new();
        t.insert("/a", Entry::file("", 0o644)).unwrap();
        assert!(matches!(
            write_cpio(&t, 1 << 33, Vec::new()),
            Err(Error::Unrepresentable { .. })
        ));
    }
}
