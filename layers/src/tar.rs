//! A byte-for-byte deterministic tar writer for a [`FileTree`].
//!
//! Written by hand rather than with the `tar` crate because its deterministic mode flattens
//! modes (setuid would be lost). The format:
//! - entries in [`FileTree`] order (sorted, parents first), names relative (`etc/zoo.cfg`),
//!   directories with a trailing `/`;
//! - POSIX ustar headers: full mode (`0o7777`), uid/gid, empty uname/gname, mtime
//!   `min(entry.mtime, SOURCE_DATE_EPOCH)` (the epoch when unset), device numbers;
//! - a PAX extended header (typeflag `x`) before an entry whose name does not fit the ustar
//!   name/prefix split or whose link target exceeds 100 bytes (`path`, `linkpath`), whose
//!   uid/gid/size/mtime do not fit the octal fields, or which has xattrs
//!   (`SCHILY.xattr.NAME`, the GNU tar / star convention);
//! - hard links (`1`) always point at an earlier member: the smallest path of a link group
//!   carries the content, every other member of the group is a link to it;
//! - two zero blocks at the end, no padding to a record size.

use crate::{Entry, EntryKind, Error, FileTree, IoError, Result};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

pub(crate) const BLOCK: usize = 512;

/// Hard-link groups of a tree, resolved so that every member points at one leader.
pub(crate) struct Links<'a> {
    members: HashMap<&'a str, LinkInfo<'a>>,
}

/// Where one member of a hard-link group stands.
#[derive(Clone, Copy)]
pub(crate) struct LinkInfo<'a> {
    /// The smallest path of the group: the member written with the content.
    pub leader: &'a str,
    /// The entry that holds the content and metadata of the group.
    pub content: &'a Entry,
    /// How many paths the group has.
    pub nlink: u32,
    /// Index of the group, in order of leaders (used for cpio inode numbers).
    pub group: usize,
}

impl<'a> Links<'a> {
    /// Resolves every [`EntryKind::Hardlink`] of `tree` (following link chains) to the entry
    /// it names. A link to a missing path or to a directory is an error.
    pub(crate) fn resolve(tree: &'a FileTree) -> Result<Self> {
        // Group root (the non-link entry) -> member paths.
        let mut groups: BTreeMap<&'a str, Vec<&'a str>> = BTreeMap::new();
        for (path, entry) in tree.iter() {
            let EntryKind::Hardlink(first) = &entry.kind else {
                continue;
            };
            let mut target: &'a str = first.as_str();
            let mut hops = 0;
            let root = loop {
                let bad = |reason| Error::BadHardlink {
                    path: path.to_string(),
                    target: first.clone(),
                    reason,
                };
                let Some((tpath, t)) = tree.get_key_value(target) else {
                    return Err(bad("target is not in the tree"));
                };
                match &t.kind {
                    EntryKind::Hardlink(next) => {
                        hops += 1;
                        if hops > tree.len() {
                            return Err(bad("hard link loop"));
                        }
                        target = next.as_str();
                    }
                    EntryKind::Dir => return Err(bad("target is a directory")),
                    _ => break tpath,
                }
            };
            groups.entry(root).or_insert_with(|| vec![root]).push(path);
        }
        let mut members = HashMap::new();
        let mut ordered: Vec<_> = groups.into_iter().collect();
        for (_, paths) in ordered.iter_mut() {
            paths.sort_unstable();
        }
        ordered.sort_by_key(|(_, paths)| paths[0]);
        for (group, (root, paths)) in ordered.iter().enumerate() {
            let content = tree.get(root).ok_or_else(|| Error::BadHardlink {
                path: root.to_string(),
                target: root.to_string(),
                reason: "target is not in the tree",
            })?;
            let info = LinkInfo {
                leader: paths[0],
                content,
                nlink: paths.len() as u32,
                group,
            };
            for p in paths {
                members.insert(*p, info);
            }
        }
        Ok(Links { members })
    }

    /// The link group `path` belongs to, if any.
    pub(crate) fn get(&self, path: &str) -> Option<LinkInfo<'a>> {
        self.members.get(path).copied()
    }
}

/// `min(mtime, epoch)`, or `epoch` when the entry has no mtime.
pub fn clamp_mtime(mtime: Option<u64>, source_date_epoch: u64) -> u64 {
    mtime.map_or(source_date_epoch, |m| m.min(source_date_epoch))
}

/// Writes `tree` as a deterministic tar stream to `out` and returns the number of bytes
/// written. `out` is written in entry-sized pieces; wrap it in a `BufWriter` if it is slow.
pub fn write_tar<W: Write>(tree: &FileTree, source_date_epoch: u64, mut out: W) -> Result<u64> {
    let written = write_tree_except(tree, &Default::default(), source_date_epoch, &mut out)?;
    out.write_all(&[0u8; 2 * BLOCK])
        .map_err(IoError::new("writing tar trailer"))?;
    Ok(written + 2 * BLOCK as u64)
}

/// Writes the entries of `tree` but those in `skip`, without the trailer (for
/// [`crate::flatten`]). Hard links inside `tree` are resolved as in [`write_tar`].
pub(crate) fn write_tree_except<W: Write>(
    tree: &FileTree,
    skip: &std::collections::HashSet<String>,
    source_date_epoch: u64,
    out: &mut W,
) -> Result<u64> {
    let links = Links::resolve(tree)?;
    let mut written = 0u64;
    for (path, entry) in tree.iter() {
        if skip.contains(path) {
            continue;
        }
        let (kind_entry, link_to) = match links.get(path) {
            Some(info) if info.leader == path => (info.content, None),
            Some(info) => (info.content, Some(info.leader)),
            None => (entry, None),
        };
        written += write_entry(out, path, kind_entry, link_to, source_date_epoch)?;
    }
    Ok(written)
}

/// The fields of one ustar header before encoding.
struct Fields<'a> {
    name: String,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    linkname: &'a str,
    dev: (u32, u32),
}

pub(crate) fn write_entry<W: Write>(
    out: &mut W,
    path: &str,
    entry: &Entry,
    hardlink_to: Option<&str>,
    epoch: u64,
) -> Result<u64> {
    let rel = &path[1..];
    let mut f = Fields {
        name: rel.to_string(),
        mode: entry.mode & 0o7777,
        uid: entry.uid.into(),
        gid: entry.gid.into(),
        size: 0,
        mtime: clamp_mtime(entry.mtime, epoch),
        typeflag: b'0',
        linkname: "",
        dev: (0, 0),
    };
    let mut data: &[u8] = &[];
    if let Some(leader) = hardlink_to {
        f.typeflag = b'1';
        f.linkname = &leader[1..];
    } else {
        match &entry.kind {
            EntryKind::File(d) => {
                data = d;
                f.size = d.len() as u64;
            }
            EntryKind::Dir => {
                f.typeflag = b'5';
                f.name.push('/');
            }
            EntryKind::Symlink(t) => {
                f.typeflag = b'2';
                f.linkname = t;
            }
            EntryKind::Hardlink(_) => {
                // Links::resolve maps every hard link to its group, so this is unreachable
                // for trees it resolved; refuse rather than write a dangling link.
                return Err(Error::BadHardlink {
                    path: path.to_string(),
                    target: String::new(),
                    reason: "unresolved hard link",
                });
            }
            EntryKind::CharDevice(a, b) => {
                f.typeflag = b'3';
                f.dev = (*a, *b);
            }
            EntryKind::BlockDevice(a, b) => {
                f.typeflag = b'4';
                f.dev = (*a, *b);
            }
            EntryKind::Fifo => f.typeflag = b'6',
        }
    }
    let xattrs = if hardlink_to.is_some() {
        None
    } else {
        Some(&entry.xattrs)
    };
    let mut n = write_header(out, path, &f, xattrs)?;
    if !data.is_empty() {
        out.write_all(data)
            .map_err(IoError::new(format!("writing tar data of {path}")))?;
        let pad = padding(data.len() as u64);
        out.write_all(&[0u8; BLOCK][..pad])
            .map_err(IoError::new("writing tar padding"))?;
        n += data.len() as u64 + pad as u64;
    }
    Ok(n)
}

fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// Largest value an octal field of `width` bytes holds (width-1 digits plus NUL).
fn octal_max(width: usize) -> u64 {
    (1u64 << (3 * (width as u32 - 1))) - 1
}

/// Splits `name` into ustar (prefix, name) if it fits, at a `/`.
fn ustar_split(name: &str) -> Option<(&str, &str)> {
    if name.len() <= 100 {
        return Some(("", name));
    }
    // The prefix is at most 155 bytes and ends just before a '/'; the rest at most 100 bytes
    // and not empty. Prefer the longest prefix so the rest is as short as possible.
    let bytes = name.as_bytes();
    let max_prefix = bytes.len().min(156);
    (1..max_prefix)
        .rev()
        .find_map(|i| {
            (bytes[i] == b'/' && name.len() - i - 1 <= 100 && i + 1 < name.len())
                .then(|| (&name[..i], &name[i + 1..]))
        })
        .filter(|(_, rest)| !rest.is_empty() && rest.len() <= 100)
}

fn write_header<W: Write>(
    out: &mut W,
    path: &str,
    f: &Fields<'_>,
    xattrs: Option<&BTreeMap<String, Vec<u8>>>,
) -> Result<u64> {
    let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let split = ustar_split(&f.name);
    if split.is_none() {
        pax.insert("path".into(), f.name.as_bytes().to_vec());
    }
    if f.linkname.len() > 100 {
        pax.insert("linkpath".into(), f.linkname.as_bytes().to_vec());
    }
    for (key, value, width) in [
        ("uid", f.uid, 8),
        ("gid", f.gid, 8),
        ("size", f.size, 12),
        ("mtime", f.mtime, 12),
    ] {
        if value > octal_max(width) {
            pax.insert(key.into(), value.to_string().into_bytes());
        }
    }
    for (which, v) in [("major", f.dev.0), ("minor", f.dev.1)] {
        if u64::from(v) > octal_max(8) {
            return Err(Error::Unrepresentable {
                path: path.to_string(),
                format: "tar",
                reason: format!("device {which} number {v} does not fit"),
            });
        }
    }
    for (k, v) in xattrs.into_iter().flatten() {
        pax.insert(format!("SCHILY.xattr.{k}"), v.clone());
    }

    let mut n = 0u64;
    if !pax.is_empty() {
        let records = pax_records(&pax);
        let base = f.name.trim_end_matches('/');
        let base = base.rsplit('/').next().unwrap_or(base);
        let pax_name = truncate(&format!("PaxHeaders/{base}"), 100).to_string();
        let hdr = Fields {
            name: pax_name,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: records.len() as u64,
            mtime: f.mtime.min(octal_max(12)),
            typeflag: b'x',
            linkname: "",
            dev: (0, 0),
        };
        let block = encode(&hdr, ("", &hdr.name));
        out.write_all(&block)
            .map_err(IoError::new(format!("writing pax header of {path}")))?;
        out.write_all(&records)
            .map_err(IoError::new(format!("writing pax header of {path}")))?;
        let pad = padding(records.len() as u64);
        out.write_all(&[0u8; BLOCK][..pad])
            .map_err(IoError::new("writing tar padding"))?;
        n += (BLOCK + records.len() + pad) as u64;
    }
    let (prefix, name) = split.unwrap_or(("", truncate(&f.name, 100)));
    let block = encode(f, (prefix, name));
    out.write_all(&block)
        .map_err(IoError::new(format!("writing tar header of {path}")))?;
    Ok(n + BLOCK as u64)
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Encodes PAX records `"<len> <key>=<value>\n"`, `len` counting the whole record.
pub(crate) fn pax_records(pax: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut buf = Vec::new();
    for (k, v) in pax {
        let rest = 1 + k.len() + 1 + v.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        buf.extend_from_slice(format!("{len} {k}=").as_bytes());
        buf.extend_from_slice(v);
        buf.push(b'\n');
    }
    buf
}

fn put_octal(block: &mut [u8], off: usize, width: usize, value: u64) {
    // Values that do not fit were moved to PAX records; the field then holds 0.
    let value = if value > octal_max(width) { 0 } else { value };
    let s = format!("{value:0w$o}", w = width - 1);
    block[off..off + width - 1].copy_from_slice(s.as_bytes());
    block[off + width - 1] = 0;
}

fn put_str(block: &mut [u8], off: usize, width: usize, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(width);
    block[off..off + n].copy_from_slice(&b[..n]);
}

fn encode(f: &Fields<'_>, (prefix, name): (&str, &str)) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b, 0, 100, name);
    put_octal(&mut b, 100, 8, f.mode.into());
    put_octal(&mut b, 108, 8, f.uid);
    put_octal(&mut b, 116, 8, f.gid);
    put_octal(&mut b, 124, 12, f.size);
    put_octal(&mut b, 136, 12, f.mtime);
    b[156] = f.typeflag;
    put_str(&mut b, 157, 100, truncate(f.linkname, 100));
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty: numeric ids only.
    if matches!(f.typeflag, b'3' | b'4') {
        put_octal(&mut b, 329, 8, f.dev.0.into());
        put_octal(&mut b, 337, 8, f.dev.1.into());
    }
    put_str(&mut b, 345, 155, prefix);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(t: &FileTree) -> Vec<u8> {
        let mut v = Vec::new();
        let n = write_tar(t, 1_700_000_000, &mut v).unwrap();
        assert_eq!(n, v.len() as u64);
        assert_eq!(v.len() % BLOCK, 0);
        v
    }

    fn field(b: &[u8], off: usize, w: usize) -> &str {
        let s = &b[off..off + w];
        let end = s.iter().position(|&c| c == 0).unwrap_or(w);
        std::str::from_utf8(&s[..end]).unwrap()
    }

    #[test]
    fn header_layout_and_clamped_mtime() {
        let mut t = FileTree::new();
        let mut e = Entry::file("hello", 0o4755).owned(1000, 100);
        e.mtime = Some(2_000_000_000);
        t.insert("/usr/bin/x", e).unwrap();
        let v = tar_of(&t);
        // usr/, usr/bin/, usr/bin/x (+1 data block), 2 trailer blocks.
        assert_eq!(v.len(), 6 * BLOCK);
        assert_eq!(field(&v, 0, 100), "usr/");
        assert_eq!(v[156], b'5');
        let x = &v[2 * BLOCK..];
        assert_eq!(field(x, 0, 100), "usr/bin/x");
        assert_eq!(field(x, 100, 8), "0004755");
        assert_eq!(field(x, 108, 8), "0001750");
        assert_eq!(field(x, 124, 12), "00000000005");
        assert_eq!(field(x, 136, 12), format!("{:011o}", 1_700_000_000));
        assert_eq!(&x[257..265], b"ustar\x0000");
        assert_eq!(field(x, 265, 32), "");
        assert_eq!(&x[BLOCK..BLOCK + 5], b"hello");
        assert!(v[4 * BLOCK..].iter().all(|&c| c == 0));
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for vlen in 0..300 {
            let mut m = BTreeMap::new();
            m.insert("path".to_string(), vec![b'a'; vlen]);
            let r = pax_records(&m);
            let s = std::str::from_utf8(&r).unwrap();
            let (len, _) = s.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "{vlen}");
        }
    }

    #[test]
    fn long_names_use_prefix_then_pax() {
        let mid = format!("/{}/{}", "d".repeat(120), "f".repeat(50));
        let long = format!("/{}", "x".repeat(300));
        let mut t = FileTree::new();
        t.insert(&mid, Entry::file("a", 0o644)).unwrap();
        t.insert(&long, Entry::file("b", 0o644)).unwrap();
        let v = tar_of(&t);
        // "d…/" (121 bytes, no inner slash): PAX + truncated name; the file under it fits
        // the prefix split; "x…" (300 bytes): PAX. PAX header names are PaxHeaders/<base>,
        // truncated to 100 bytes.
        let names: Vec<_> = v
            .chunks(BLOCK)
            .filter(|b| b[257..262] == *b"ustar")
            .map(|b| (b[156], field(b, 345, 155).len(), field(b, 0, 100).len()))
            .collect();
        assert_eq!(
            names,
            [
                (b'x', 0, 100),
                (b'5', 0, 100),
                (b'0', 120, 50),
                (b'x', 0, 100),
                (b'0', 0, 100)
            ]
        );
    }

    #[test]
    fn hardlink_points_at_the_smallest_path() {
        let mut t = FileTree::new();
        t.insert("/z/file", Entry::file("data", 0o644)).unwrap();
        t.insert(
            "/a/link",
            Entry {
                kind: EntryKind::Hardlink("/z/file".into()),
                ..Entry::file("", 0o644)
            },
        )
        .unwrap();
        let v = tar_of(&t);
        let hdrs: Vec<_> = v
            .chunks(BLOCK)
            .filter(|b| b[257..262] == *b"ustar")
            .map(|b| {
                (
                    field(b, 0, 100).to_string(),
                    b[156],
                    field(b, 157, 100).to_string(),
                )
            })
            .collect();
        assert_eq!(hdrs[1], ("a/link".into(), b'0', String::new()));
        assert_eq!(hdrs[3], ("z/file".into(), b'1', "a/link".into()));
    }

    #[test]
    fn values_beyond_octal_fields_go_to_pax() {
        let mut t = FileTree::new();
        t.insert("/f", Entry::file("x", 0o644).owned(u32::MAX, 2_097_152))
            .unwrap();
        let mut v = Vec::new();
        write_tar(&t, 9_000_000_000, &mut v).unwrap();
        assert_eq!(v[156], b'x');
        let records = String::from_utf8_lossy(&v[BLOCK..2 * BLOCK]);
        assert!(records.contains(" gid=2097152\n"), "{records}");
        assert!(records.contains(" mtime=9000000000\n"), "{records}");
        assert!(
            records.contains(&format!(" uid={}\n", u32::MAX)),
            "{records}"
        );
        let hdr = &v[2 * BLOCK..3 * BLOCK];
        assert_eq!(field(hdr, 108, 8), "0000000");
        assert_eq!(field(hdr, 0, 100), "f");
    }

    #[test]
    fn dangling_hardlink_is_an_error() {
        let mut t = FileTree::new();
        t.insert(
            "/l",
            Entry {
                kind: EntryKind::Hardlink("/missing".into()),
                ..Entry::file("", 0o644)
            },
        )
        .unwrap();
        assert!(matches!(
            write_tar(&t, 0, Vec::new()),
            Err(Error::BadHardlink { .. })
        ));
    }
}
