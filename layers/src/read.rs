//! Safe reading of tar layers into a [`FileTree`], with OCI whiteouts.
//!
//! The reader is small and written here: ustar/GNU/PAX headers (`x` records for `path`,
//! `linkpath`, `size`, `uid`, `gid`, `mtime`, `SCHILY.xattr.*`; GNU `L`/`K` long names; base-256
//! numbers). Global PAX headers (`g`) are skipped. The input may be plain, gzip or zstd: the
//! compression is detected from the magic bytes.
//! File contents are read into memory, since a [`FileTree`] holds them; names must be UTF-8.
//!
//! Containment rules, each violation an [`Error::UnsafeEntry`] naming the entry and, for a
//! hard link, saying that its target is the problem:
//! - a `..` component anywhere in a name or a hard-link target is refused; `.` and empty
//!   components are dropped;
//! - a leading `/` (in a name or a hard-link target) is, by the caller's choice, either
//!   treated as relative to the layer root (`/etc/x` is `etc/x`, as GNU tar and Docker do
//!   when they extract: [`read_layer`], [`apply_layer`], for archives whose files kiln
//!   writes again into layers of its own) or refused like `..` ([`read_layer_relative`],
//!   [`apply_layer_metadata_relative`], for a base, whose layers kiln publishes as they are);
//! - symlink targets are kept as they are, absolute or with `..`: they are resolved inside
//!   the root filesystem (as the kernel resolves them in a container), never on the machine
//!   that reads the layer, and nothing is ever written through a symlink (below);
//! - a hard link must name a non-directory already present: earlier in the same layer or in
//!   the tree the layer is applied to;
//! - an entry whose parent is a symlink (or any non-directory) in the layer or the tree below
//!   is refused: that is how a layer would write through a symlink;
//! - whiteouts `.wh.` (empty name), `.wh..` and `.wh...` are refused.
//!
//! Whiteouts follow the OCI image spec: `DIR/.wh.NAME` removes `DIR/NAME` from the layers
//! below, `DIR/.wh..wh..opq` removes everything below `DIR` from the layers below (keeping
//! `DIR`). Whiteouts never remove entries of their own layer. Other `.wh..wh.*` names (aufs
//! bookkeeping) are ignored. Directories that a layer only implies (entries without a header
//! for their parent) keep the metadata they had below.

use crate::{Entry, EntryKind, Error, FileTree, IoError, Result};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};

const BLOCK: usize = 512;
/// Largest PAX or GNU long-name record accepted (they are read into memory).
const MAX_META: u64 = 1 << 20;

pub use crate::decompress::decompressed;

/// Reads one layer (plain, gzip or zstd tar) into a new tree. Whiteouts have nothing to
/// remove and are dropped.
pub fn read_layer<R: Read>(r: R) -> Result<FileTree> {
    let mut tree = FileTree::new();
    apply_layer(&mut tree, r)?;
    Ok(tree)
}

/// Applies one layer on top of `base` with OCI whiteout semantics. The whole layer is read and
/// checked before `base` is touched, so a malformed or refused layer leaves `base` unchanged.
pub fn apply_layer<R: Read>(base: &mut FileTree, r: R) -> Result<()> {
    apply(base, r, &|_| true, false)
}

/// Like [`read_layer`], but names and hard-link targets with a leading `/` are refused, like
/// `..`, instead of normalised: for a base's tarball, whose names must be what any reader
/// reads.
pub fn read_layer_relative<R: Read>(r: R) -> Result<FileTree> {
    let mut tree = FileTree::new();
    apply(&mut tree, r, &|_| true, true)?;
    Ok(tree)
}

/// Like [`apply_layer`], but regular files are kept empty: for checks that need the paths,
/// kinds, modes and link targets of a large base image without holding its contents.
pub fn apply_layer_metadata<R: Read>(base: &mut FileTree, r: R) -> Result<()> {
    apply(base, r, &|_| false, false)
}

/// Like [`apply_layer_metadata`], for a tarball that goes into an image **as it is** (a base
/// root filesystem streamed into its layer): names (and hard-link targets) with a leading `/`
/// are refused, like `..`, instead of normalised, because the layer keeps them and readers
/// other than kiln's may not normalise.
pub fn apply_layer_metadata_relative<R: Read>(base: &mut FileTree, r: R) -> Result<()> {
    apply(base, r, &|_| false, true)
}

/// Like [`apply_layer_metadata`] (or, with `relative_only`, [`apply_layer_metadata_relative`]),
/// but regular files whose path (`/var/lib/dpkg/status`) `keep` accepts keep their contents: a
/// few files of a large base, read in the same pass.
pub fn apply_layer_selected<R: Read>(
    base: &mut FileTree,
    r: R,
    keep: impl Fn(&str) -> bool,
    relative_only: bool,
) -> Result<()> {
    apply(base, r, &keep, relative_only)
}

fn apply<R: Read>(
    base: &mut FileTree,
    r: R,
    keep: &dyn Fn(&str) -> bool,
    relative_only: bool,
) -> Result<()> {
    let mut reader = TarReader::new(decompressed(r)?);
    let mut layer = Layer::default();
    while let Some(mut raw) = reader.next_entry()? {
        if relative_only {
            raw.check_relative()?;
        }
        if !raw.data.is_empty() && !clean_name(&raw.name)?.is_some_and(|p| keep(&p)) {
            raw.data = Vec::new();
        }
        layer.add(base, raw)?;
    }
    layer.apply(base)
}

/// One entry as read from the stream, after PAX overrides.
pub(crate) struct RawEntry {
    /// Offset of the entry's first header in the stream.
    offset: u64,
    pub(crate) name: String,
    typeflag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    linkname: String,
    dev: (u32, u32),
    xattrs: BTreeMap<String, Vec<u8>>,
    data: Vec<u8>,
    /// Offset of the contents in the stream.
    data_offset: u64,
    /// Size of the contents as the headers give it.
    size: u64,
}

/// The entries of one layer, not yet applied.
#[derive(Default)]
struct Layer {
    upper: FileTree,
    /// Paths that had their own header (the others are implied parents).
    explicit: HashSet<String>,
    whiteouts: HashSet<String>,
    opaque: Vec<String>,
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> Error {
    Error::UnsafeEntry {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// A tar name as an absolute tree path (`None` for the root), with [`clean`]'s checks.
pub(crate) fn clean_name(name: &str) -> Result<Option<String>> {
    clean(name, name, Part::Name)
}

/// Which path of a member is checked: what an error says is wrong.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// The member's own name.
    Name,
    /// The target of a hard link (a member name, like the link's own).
    HardLinkTarget,
}

impl Part {
    /// `name` or `hard link target "T"`, the subject of a refusal.
    fn subject(self, path: &str) -> String {
        match self {
            Part::Name => "name".into(),
            Part::HardLinkTarget => format!("hard link target {path:?}"),
        }
    }
}

impl RawEntry {
    /// Refuses a leading `/` in the name or, for a hard link, in its target: for tarballs
    /// whose names must be relative ([`read_layer_relative`]). Symlink targets may be
    /// absolute: they are resolved inside the root filesystem. An entry for the root
    /// directory itself (`/`, which some image builders write) is let through: it names no
    /// path outside any root, and its metadata is dropped like that of `./`.
    pub(crate) fn check_relative(&self) -> Result<()> {
        let absolute = |part: Part, path: &str| {
            unsafe_entry(
                &self.name,
                format!("{} is absolute (starts with '/')", part.subject(path)),
            )
        };
        let the_root = self.name.split('/').all(|p| p.is_empty() || p == ".");
        if self.name.starts_with('/') && !the_root {
            return Err(absolute(Part::Name, &self.name));
        }
        if self.typeflag == b'1' && self.linkname.starts_with('/') {
            return Err(absolute(Part::HardLinkTarget, &self.linkname));
        }
        Ok(())
    }

    /// The entry, its kind from the type flag; a hard link's target is cleaned but not looked
    /// up (callers with a tree check it).
    pub(crate) fn into_entry(self) -> Result<Entry> {
        let name = self.name.as_str();
        let kind = match self.typeflag {
            b'0' | b'\0' | b'7' => EntryKind::File(self.data),
            b'5' => EntryKind::Dir,
            b'2' => EntryKind::Symlink(self.linkname),
            b'3' => EntryKind::CharDevice(self.dev.0, self.dev.1),
            b'4' => EntryKind::BlockDevice(self.dev.0, self.dev.1),
            b'6' => EntryKind::Fifo,
            b'1' => match clean(name, &self.linkname, Part::HardLinkTarget)? {
                Some(t) => EntryKind::Hardlink(t),
                None => {
                    return Err(unsafe_entry(
                        name,
                        format!(
                            "{} is the root directory",
                            Part::HardLinkTarget.subject(&self.linkname)
                        ),
                    ))
                }
            },
            t => {
                return Err(Error::Malformed {
                    offset: self.offset,
                    reason: format!("entry {name:?} has unsupported type {:?}", t as char),
                })
            }
        };
        Ok(Entry {
            kind,
            mode: self.mode & 0o7777,
            uid: self.uid,
            gid: self.gid,
            mtime: Some(self.mtime),
            xattrs: self.xattrs,
        })
    }
}

/// Normalises `path`, the name of member `entry` or its hard-link target (`part`), to an
/// absolute tree path; `None` for the root itself. Errors name the member and say which of
/// its paths is wrong, and how.
fn clean(entry: &str, path: &str, part: Part) -> Result<Option<String>> {
    let refuse = |what: &str| unsafe_entry(entry, format!("{} {what}", part.subject(path)));
    let mut parts = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(refuse("has a '..' component")),
            p if p.contains('\0') => return Err(refuse("has a NUL byte")),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| format!("/{}", parts.join("/"))))
}

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Layer {
    fn whited_out(&self, path: &str) -> bool {
        self.whiteouts.contains(path)
            || self
                .opaque
                .iter()
                .any(|d| d == "/" || path.starts_with(&format!("{d}/")))
    }

    /// The entry at `path` as this layer sees it: its own, else the one below.
    fn lookup<'a>(&'a self, base: &'a FileTree, path: &str) -> Option<&'a Entry> {
        self.upper
            .get(path)
            .or_else(|| (!self.whited_out(path)).then(|| base.get(path)).flatten())
    }

    fn check_parents(&self, base: &FileTree, entry: &str, path: &str) -> Result<()> {
        let mut idx = 0;
        while let Some(off) = path[idx + 1..].find('/') {
            idx += 1 + off;
            let parent = &path[..idx];
            if let Some(e) = self.lookup(base, parent) {
                if e.kind != EntryKind::Dir {
                    return Err(unsafe_entry(
                        entry,
                        format!("parent {parent} is a {}, not a directory", e.kind.name()),
                    ));
                }
            }
        }
        Ok(())
    }

    fn add(&mut self, base: &FileTree, raw: RawEntry) -> Result<()> {
        let entry_name = raw.name.as_str();
        let Some(path) = clean_name(entry_name)? else {
            // The root directory itself: its metadata has no place in a tree.
            return Ok(());
        };
        self.check_parents(base, entry_name, &path)?;
        let base_name = &path[parent_of(&path).len()..].trim_start_matches('/');
        if let Some(rest) = base_name.strip_prefix(".wh.") {
            let dir = parent_of(&path);
            if rest == ".wh..opq" {
                self.opaque.push(dir.to_string());
            } else if rest.starts_with(".wh.") {
                // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply.
            } else if rest.is_empty() || rest == "." || rest == ".." {
                return Err(unsafe_entry(entry_name, "whiteout of an invalid name"));
            } else {
                let target = if dir == "/" {
                    format!("/{rest}")
                } else {
                    format!("{dir}/{rest}")
                };
                self.whiteouts.insert(target);
            }
            return Ok(());
        }
        let entry_name = raw.name.clone();
        let entry_name = entry_name.as_str();
        let stored_target = raw.linkname.clone();
        let mut entry = raw.into_entry()?;
        if let EntryKind::Hardlink(target) = &entry.kind {
            let found = self.lookup(base, target).ok_or_else(|| {
                unsafe_entry(
                    entry_name,
                    format!(
                        "{} is not a member before it (nor in the layers below)",
                        Part::HardLinkTarget.subject(&stored_target)
                    ),
                )
            })?;
            match &found.kind {
                EntryKind::Dir => {
                    return Err(unsafe_entry(
                        entry_name,
                        format!(
                            "{} is a directory",
                            Part::HardLinkTarget.subject(&stored_target)
                        ),
                    ))
                }
                // Point at the content, not at another link.
                EntryKind::Hardlink(t) => entry.kind = EntryKind::Hardlink(t.clone()),
                _ => {}
            }
        }
        self.upper.replace(&path, entry)?;
        self.explicit.insert(path);
        Ok(())
    }

    fn apply(self, next: &mut FileTree) -> Result<()> {
        for dir in &self.opaque {
            if dir == "/" {
                *next = FileTree::new();
            } else if let Some(keep) = next.get(dir).cloned() {
                next.remove(dir);
                next.replace(dir, keep)?;
            }
        }
        for w in &self.whiteouts {
            next.remove(w);
        }
        for (path, entry) in self.upper.iter() {
            let implied = !self.explicit.contains(path);
            if implied && next.get(path).is_some_and(|e| e.kind == EntryKind::Dir) {
                continue;
            }
            next.replace(path, entry.clone())?;
        }
        Ok(())
    }
}

/// A minimal streaming tar reader.
pub(crate) struct TarReader<R> {
    r: R,
    offset: u64,
    done: bool,
    /// Index mode ([`index`]): file contents are skipped, not read into memory, and names
    /// that are not UTF-8 are taken lossily instead of refused.
    skip_data: bool,
}

/// What a member of a tar archive is, as [`index`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file (type `0`, NUL or `7`).
    File,
    /// A directory.
    Dir,
    /// A symbolic link; [`Member::link`] is its target as stored.
    Symlink,
    /// A hard link; [`Member::link`] names the member it links to.
    Hardlink,
    /// A device, FIFO or anything else.
    Other,
}

/// One member of an uncompressed tar archive: its name as stored (after GNU long names, the
/// ustar prefix and PAX `path`), and where its contents start in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The name as stored, not normalised (`./usr/bin/x`, `usr/bin/x`, …).
    pub name: String,
    pub kind: MemberKind,
    /// Permission bits (`0o7777` of the header's mode).
    pub mode: u32,
    /// Link target for symlinks and hard links, as stored; empty otherwise.
    pub link: String,
    /// Size of the contents (after a PAX `size`); 0 for anything but files.
    pub size: u64,
    /// Byte offset of the contents in the archive.
    pub data_offset: u64,
}

/// Lists the members of an uncompressed tar archive without keeping their contents: for
/// reading members later by offset (a root filesystem's index, a docker-archive). The same
/// header parsing as [`read_layer`] (ustar, GNU, PAX), but no containment checks: names are
/// reported as stored and the caller decides what they mean.
pub fn index<R: Read>(r: R) -> Result<Vec<Member>> {
    let mut reader = TarReader::new(r);
    reader.skip_data = true;
    let mut out = Vec::new();
    while let Some(raw) = reader.next_entry()? {
        let kind = match raw.typeflag {
            b'0' | b'\0' | b'7' => MemberKind::File,
            b'5' => MemberKind::Dir,
            b'2' => MemberKind::Symlink,
            b'1' => MemberKind::Hardlink,
            _ => MemberKind::Other,
        };
        out.push(Member {
            name: raw.name,
            kind,
            mode: raw.mode & 0o7777,
            link: raw.linkname,
            size: if kind == MemberKind::File {
                raw.size
            } else {
                0
            },
            data_offset: raw.data_offset,
        });
    }
    Ok(out)
}

fn malformed(offset: u64, reason: impl Into<String>) -> Error {
    Error::Malformed {
        offset,
        reason: reason.into(),
    }
}

fn cstr(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    &field[..end]
}

fn utf8(offset: u64, bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(offset, "name is not UTF-8"))
}

fn number(offset: u64, field: &[u8]) -> Result<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // GNU base-256: big-endian, first byte's high bit set (negative values refused).
        if field[0] & 0x40 != 0 {
            return Err(malformed(offset, "negative number"));
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| malformed(offset, "number too large"))?;
        }
        return Ok(v);
    }
    let s = cstr(field);
    let s = std::str::from_utf8(s).map_err(|_| malformed(offset, "bad octal field"))?;
    let s = s.trim_matches(|c| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| malformed(offset, format!("bad octal field {s:?}")))
}

fn parse_pax(offset: u64, data: &[u8], into: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or_else(|| malformed(offset, "bad PAX record"))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| malformed(offset, "bad PAX record length"))?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(malformed(offset, "bad PAX record length"));
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or_else(|| malformed(offset, "PAX record without '='"))?;
        let key = utf8(offset, &rec[..eq])?;
        into.insert(key, rec[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(())
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> Self {
        TarReader {
            r,
            offset: 0,
            done: false,
            skip_data: false,
        }
    }

    /// Fills `buf` completely; `Ok(false)` on a clean end of stream before the first byte.
    fn read_full(&mut self, buf: &mut [u8]) -> Result<bool> {
        let mut n = 0;
        while n < buf.len() {
            match self.r.read(&mut buf[n..]) {
                Ok(0) if n == 0 => return Ok(false),
                Ok(0) => return Err(malformed(self.offset, "unexpected end of archive")),
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(IoError::new("reading layer")(e).into()),
            }
        }
        self.offset += buf.len() as u64;
        Ok(true)
    }

    fn read_data(&mut self, size: u64, limit: Option<u64>) -> Result<Vec<u8>> {
        if limit.is_some_and(|l| size > l) {
            return Err(malformed(
                self.offset,
                format!("metadata record of {size} bytes"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| malformed(self.offset, "entry too large"))?;
        let mut data = Vec::new();
        let got = (&mut self.r)
            .take(size)
            .read_to_end(&mut data)
            .map_err(IoError::new("reading layer"))?;
        if got != len {
            return Err(malformed(self.offset, "unexpected end of archive"));
        }
        self.offset += size;
        let pad = (BLOCK - (len % BLOCK)) % BLOCK;
        let mut skip = [0u8; BLOCK];
        if pad > 0 && !self.read_full(&mut skip[..pad])? {
            return Err(malformed(self.offset, "unexpected end of archive"));
        }
        Ok(data)
    }

    /// Skips `size` bytes of contents and their padding.
    fn skip(&mut self, size: u64) -> Result<()> {
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        let got = io::copy(&mut (&mut self.r).take(padded), &mut io::sink())
            .map_err(IoError::new("reading layer"))?;
        if got != padded {
            return Err(malformed(self.offset, "unexpected end of archive"));
        }
        self.offset += padded;
        Ok(())
    }

    pub(crate) fn next_entry(&mut self) -> Result<Option<RawEntry>> {
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let first = self.offset;
        loop {
            if self.done {
                return Ok(None);
            }
            let at = self.offset;
            let mut h = [0u8; BLOCK];
            if !self.read_full(&mut h)? {
                // Lenient like most readers: a clean end at a header boundary also ends the
                // archive (truncation inside an entry is still an error).
                self.done = true;
                if !pax.is_empty() || long_name.is_some() || long_link.is_some() {
                    return Err(malformed(at, "extended header without an entry"));
                }
                return Ok(None);
            }
            if h.iter().all(|&b| b == 0) {
                // End of archive; whatever follows (the second zero block, padding) is ignored.
                self.done = true;
                if !pax.is_empty() || long_name.is_some() {
                    return Err(malformed(at, "extended header without an entry"));
                }
                return Ok(None);
            }
            let stored = number(at, &h[148..156])?;
            let mut sum_u: u64 = 0;
            let mut sum_s: i64 = 0;
            for (i, &b) in h.iter().enumerate() {
                let b = if (148..156).contains(&i) { b' ' } else { b };
                sum_u += u64::from(b);
                sum_s += i64::from(b as i8);
            }
            if stored != sum_u && stored as i64 != sum_s {
                return Err(malformed(at, "header checksum mismatch"));
            }
            let typeflag = h[156];
            let size = number(at, &h[124..136])?;
            match typeflag {
                b'x' => {
                    let data = self.read_data(size, Some(MAX_META))?;
                    parse_pax(at, &data, &mut pax)?;
                    continue;
                }
                b'g' => {
                    self.read_data(size, Some(MAX_META))?;
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.read_data(size, Some(MAX_META))?).to_vec());
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.read_data(size, Some(MAX_META))?).to_vec());
                    continue;
                }
                _ => {}
            }
            let ustar = &h[257..262] == b"ustar";
            let mut name = cstr(&h[0..100]).to_vec();
            if ustar && h[263] == b'0' {
                // POSIX ustar: prefix field (GNU uses these bytes for atime/ctime).
                let prefix = cstr(&h[345..500]);
                if !prefix.is_empty() {
                    let mut full = prefix.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(&name);
                    name = full;
                }
            }
            if let Some(n) = long_name.take() {
                name = n;
            }
            if let Some(p) = pax.remove("path") {
                name = p;
            }
            let mut linkname = cstr(&h[157..257]).to_vec();
            if let Some(l) = long_link.take() {
                linkname = l;
            }
            if let Some(l) = pax.remove("linkpath") {
                linkname = l;
            }
            let pax_num = |pax: &BTreeMap<String, Vec<u8>>, key: &str, dflt: u64| -> Result<u64> {
                match pax.get(key) {
                    None => Ok(dflt),
                    Some(v) => std::str::from_utf8(v)
                        .ok()
                        // mtime may be fractional: keep whole seconds.
                        .and_then(|s| s.split('.').next())
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| malformed(at, format!("bad PAX {key}"))),
                }
            };
            let size = pax_num(&pax, "size", size)?;
            let to32 = |v: u64, what: &str| {
                u32::try_from(v).map_err(|_| malformed(at, format!("{what} {v} too large")))
            };
            let uid = to32(pax_num(&pax, "uid", number(at, &h[108..116])?)?, "uid")?;
            let gid = to32(pax_num(&pax, "gid", number(at, &h[116..124])?)?, "gid")?;
            let mtime = pax_num(&pax, "mtime", number(at, &h[136..148])?)?;
            let mode = to32(number(at, &h[100..108])?, "mode")?;
            let dev = (
                to32(number(at, &h[329..337])?, "devmajor")?,
                to32(number(at, &h[337..345])?, "devminor")?,
            );
            let xattrs = pax
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("SCHILY.xattr.")
                        .map(|n| (n.to_string(), v.clone()))
                })
                .collect();
            let (name, linkname) = if self.skip_data {
                let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (lossy(&name), lossy(&linkname))
            } else {
                (utf8(at, &name)?, utf8(at, &linkname)?)
            };
            let data_offset = self.offset;
            let data = if self.skip_data {
                self.skip(size)?;
                Vec::new()
            } else {
                self.read_data(size, None)?
            };
            let data = if matches!(typeflag, b'0' | b'\0' | b'7') {
                data
            } else {
                Vec::new()
            };
            return Ok(Some(RawEntry {
                offset: first,
                name,
                typeflag,
                mode,
                uid,
                gid,
                mtime,
                linkname,
                dev,
                xattrs,
                data,
                data_offset,
                size,
            }));
        }
    }
}
