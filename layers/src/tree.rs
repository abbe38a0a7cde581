//! The in-memory file tree: every entry a root filesystem needs, keyed by absolute path.

use std::collections::BTreeMap;
use std::fmt;

/// Errors from building a [`FileTree`].
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A path was not absolute, had `.`/`..` components or a trailing slash.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// Two different entries were added at the same path.
    #[error("conflicting entries at {path}: {existing} already there, tried to add {new}")]
    Conflict {
        path: String,
        existing: &'static str,
        new: &'static str,
    },
    /// A parent of the path is not a directory.
    #[error("parent {parent} of {path} is a {kind}, not a directory")]
    ParentNotDir {
        path: String,
        parent: String,
        kind: &'static str,
    },
}

/// A `Result` alias for tree operations.
pub type Result<T, E = TreeError> = std::result::Result<T, E>;

/// What an entry is.
#[derive(Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file with its content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to `target` (stored verbatim, may be absolute or dangling).
    Symlink(String),
    /// A hard link to another path of the same tree.
    Hardlink(String),
    /// A character device (major, minor).
    CharDevice(u32, u32),
    /// A block device (major, minor).
    BlockDevice(u32, u32),
    /// A named pipe.
    Fifo,
}

impl EntryKind {
    /// A short name for messages and manifests.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File(_) => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink(_) => "symlink",
            EntryKind::Hardlink(_) => "hardlink",
            EntryKind::CharDevice(..) => "chardev",
            EntryKind::BlockDevice(..) => "blockdev",
            EntryKind::Fifo => "fifo",
        }
    }
}

impl fmt::Debug for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryKind::File(data) => write!(f, "File({} bytes)", data.len()),
            EntryKind::Dir => write!(f, "Dir"),
            EntryKind::Symlink(t) => write!(f, "Symlink({t:?})"),
            EntryKind::Hardlink(t) => write!(f, "Hardlink({t:?})"),
            EntryKind::CharDevice(a, b) => write!(f, "CharDevice({a}, {b})"),
            EntryKind::BlockDevice(a, b) => write!(f, "BlockDevice({a}, {b})"),
            EntryKind::Fifo => write!(f, "Fifo"),
        }
    }
}

/// One entry: kind plus the metadata a tar header or inode carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Full mode bits without the file type: permissions plus setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time in seconds since the epoch; `None` means "the build's
    /// `SOURCE_DATE_EPOCH`", decided when the tree is written.
    pub mtime: Option<u64>,
    /// Extended attributes such as `security.capability`, sorted by name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    /// A root-owned regular file.
    pub fn file(data: impl Into<Vec<u8>>, mode: u32) -> Self {
        Self::new(EntryKind::File(data.into()), mode)
    }
    /// A root-owned directory.
    pub fn dir(mode: u32) -> Self {
        Self::new(EntryKind::Dir, mode)
    }
    /// A root-owned symlink (mode 0777, as Linux reports it).
    pub fn symlink(target: impl Into<String>) -> Self {
        Self::new(EntryKind::Symlink(target.into()), 0o777)
    }
    fn new(kind: EntryKind, mode: u32) -> Self {
        Entry {
            kind,
            mode: mode & 0o7777,
            uid: 0,
            gid: 0,
            mtime: None,
            xattrs: BTreeMap::new(),
        }
    }
    /// Sets the owner.
    pub fn owned(mut self, uid: u32, gid: u32) -> Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    /// The content of a regular file, `None` for other kinds.
    pub fn data(&self) -> Option<&[u8]> {
        match &self.kind {
            EntryKind::File(d) => Some(d),
            _ => None,
        }
    }
}

/// A set of entries keyed by absolute, normalised path (`/etc/zoo.cfg`). Iteration is sorted
/// by path, which puts every parent before its children.
///
/// Parent directories are created implicitly (mode 0755, root) when a path is inserted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileTree {
    entries: BTreeMap<String, Entry>,
}

/// Checks that `path` is absolute and normalised; returns it without a trailing slash.
pub fn normalise(path: &str) -> Result<String> {
    let bad = |reason| TreeError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(bad("must be absolute"));
    }
    if path == "/" {
        return Err(bad("the root itself cannot be an entry"));
    }
    if path.ends_with('/') {
        return Err(bad("must not end with '/'"));
    }
    for part in path[1..].split('/') {
        match part {
            "" => return Err(bad("empty component")),
            "." | ".." => return Err(bad("'.' and '..' are not allowed")),
            p if p.contains('\0') => return Err(bad("NUL byte")),
            _ => {}
        }
    }
    Ok(path.to_string())
}

impl FileTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts an entry, creating missing parent directories. Re-inserting an identical entry
    /// is a no-op; a different directory over a directory replaces its metadata; anything else
    /// at an occupied path is a [`TreeError::Conflict`].
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = normalise(path)?;
        self.ensure_parents(&path)?;
        match self.entries.get(&path) {
            None => {}
            Some(existing) if *existing == entry => return Ok(()),
            Some(existing) if existing.kind == EntryKind::Dir && entry.kind == EntryKind::Dir => {}
            Some(existing) => {
                return Err(TreeError::Conflict {
                    path,
                    existing: existing.kind.name(),
                    new: entry.kind.name(),
                })
            }
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Inserts or replaces an entry (a later layer wins), creating missing parents.
    pub fn replace(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = normalise(path)?;
        self.ensure_parents(&path)?;
        if entry.kind != EntryKind::Dir {
            self.remove(&path);
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Removes an entry and everything below it. Returns whether anything was removed.
    pub fn remove(&mut self, path: &str) -> bool {
        let prefix = format!("{path}/");
        let before = self.entries.len();
        self.entries
            .retain(|p, _| p != path && !p.starts_with(&prefix));
        before != self.entries.len()
    }

    fn ensure_parents(&mut self, path: &str) -> Result<()> {
        let mut idx = 0;
        while let Some(off) = path[idx + 1..].find('/') {
            idx += 1 + off;
            let parent = &path[..idx];
            match self.entries.get(parent) {
                None => {
                    self.entries.insert(parent.to_string(), Entry::dir(0o755));
                }
                Some(e) if e.kind == EntryKind::Dir => {}
                Some(e) => {
                    return Err(TreeError::ParentNotDir {
                        path: path.to_string(),
                        parent: parent.to_string(),
                        kind: e.kind.name(),
                    })
                }
            }
        }
        Ok(())
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The stored path and entry at `path`, if any (the path borrowed from the tree).
    pub fn get_key_value(&self, path: &str) -> Option<(&str, &Entry)> {
        self.entries
            .get_key_value(path)
            .map(|(p, e)| (p.as_str(), e))
    }

    /// Entries in path order (parents before children).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// Number of entries, implicit parents included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds every entry of `other` on top of this tree (later wins, like a layer).
    pub fn overlay(&mut self, other: &FileTree) -> Result<()> {
        for (p, e) in other.iter() {
            self.replace(p, e.clone())?;
        }
        Ok(())
    }
}

/// Resolves `path` through the symlinks `base` has at its parents (`/bin` → `usr/bin` on a
/// merged-/usr system, `/etc/zookeeper/conf` → an alternatives link), so that an entry written
/// on top of `base` lands where the base keeps it instead of replacing a symlink with a
/// directory. The last component itself is not resolved. Gives up after 40 links (a loop) and
/// returns the path as far as it got.
pub fn resolve_parents(base: &FileTree, path: &str) -> String {
    let mut parts: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(String::from)
        .collect();
    let mut hops = 0;
    let mut i = 0;
    while i + 1 < parts.len() {
        let prefix = format!("/{}", parts[..=i].join("/"));
        match base.get(&prefix).map(|e| &e.kind) {
            Some(EntryKind::Symlink(target)) if hops < 40 => {
                hops += 1;
                let joined = if target.starts_with('/') {
                    target.clone()
                } else {
                    format!("/{}/{target}", parts[..i].join("/"))
                };
                // Normalise `.` and `..` of the link target lexically.
                let mut resolved: Vec<String> = Vec::new();
                for c in joined.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            resolved.pop();
                        }
                        c => resolved.push(c.to_string()),
                    }
                }
                resolved.extend(parts[i + 1..].iter().cloned());
                parts = resolved;
                i = 0;
            }
            _ => i += 1,
        }
    }
    format!("/{}", parts.join("/"))
}

/// Pseudo filesystems a link may point into at run time; content is never placed there.
const RUNTIME_DIRS: &[&str] = &["/dev", "/proc", "/sys", "/run"];

/// Where a file written at `path` lands when `base` has a symlink there: its target, as `cp`
/// onto an existing link writes through it (Debian's `/var/lib/zookeeper/myid` links to
/// `/etc/zookeeper/conf/myid`). Links into [`RUNTIME_DIRS`] (a masked unit's `/dev/null`, a
/// resolver's `/run/…`) are not followed: the file replaces the link.
fn follow_leaf(base: &FileTree, path: &str) -> String {
    let mut cur = path.to_string();
    for _ in 0..40 {
        let Some(EntryKind::Symlink(t)) = base.get(&cur).map(|e| &e.kind) else {
            return cur;
        };
        let parent = cur.rsplit_once('/').map_or("", |(p, _)| p);
        let joined = if t.starts_with('/') {
            t.clone()
        } else {
            format!("{parent}/{t}")
        };
        let mut parts: Vec<&str> = Vec::new();
        for c in joined.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                c => parts.push(c),
            }
        }
        let target = format!("/{}", parts.join("/"));
        if RUNTIME_DIRS
            .iter()
            .any(|d| target == *d || target.starts_with(&format!("{d}/")))
        {
            return cur;
        }
        cur = resolve_parents(base, &target);
    }
    cur
}

impl FileTree {
    /// This tree as it should be written on top of `base`: every entry moved through the
    /// symlinks `base` has at its parents ([`resolve_parents`]), and directories dropped where
    /// `base` has a symlink (the link stays, its target receives the content).
    pub fn placed_on(&self, base: &FileTree) -> Result<FileTree> {
        let mut out = FileTree::new();
        for (path, e) in self.iter() {
            let mut dest = resolve_parents(base, path);
            if !matches!(e.kind, EntryKind::Dir | EntryKind::Symlink(_)) {
                dest = follow_leaf(base, &dest);
            }
            let base_kind = base.get(&dest).map(|b| &b.kind);
            if e.kind == EntryKind::Dir && matches!(base_kind, Some(EntryKind::Symlink(_))) {
                continue;
            }
            let mut e = e.clone();
            if let EntryKind::Hardlink(t) = &e.kind {
                e.kind = EntryKind::Hardlink(resolve_parents(base, t));
            }
            out.replace(&dest, e)?;
        }
        // Directories the base has keep the base's owner and mode: writing a file into
        // /var/lib/zookeeper must not hand the directory back to root.
        let dirs: Vec<String> = out
            .iter()
            .filter(|(p, e)| {
                e.kind == EntryKind::Dir && base.get(p).is_some_and(|b| b.kind == EntryKind::Dir)
            })
            .map(|(p, _)| p.to_string())
            .collect();
        for d in dirs {
            if let Some(b) = base.get(&d) {
                out.replace(&d, b.clone())?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_sorted_first() {
        let mut t = FileTree::new();
        t.insert("/etc/zookeeper/conf/zoo.cfg", Entry::file("x", 0o644))
            .unwrap();
        let paths: Vec<_> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "/etc",
                "/etc/zookeeper",
                "/etc/zookeeper/conf",
                "/etc/zookeeper/conf/zoo.cfg"
            ]
        );
    }

    #[test]
    fn conflicting_insert_is_an_error() {
        let mut t = FileTree::new();
        t.insert("/a", Entry::file("x", 0o644)).unwrap();
        t.insert("/a", Entry::file("x", 0o644)).unwrap();
        assert!(matches!(
            t.insert("/a", Entry::file("y", 0o644)),
            Err(TreeError::Conflict { .. })
        ));
        assert!(matches!(
            t.insert("/a/b", Entry::file("y", 0o644)),
            Err(TreeError::ParentNotDir { .. })
        ));
    }

    #[test]
    fn bad_paths_are_rejected() {
        for p in ["relative", "/", "/a/../b", "/a//b", "/a/"] {
            assert!(normalise(p).is_err(), "{p}");
        }
    }

    #[test]
    fn entries_follow_the_base_symlinks_of_their_parents() {
        let mut base = FileTree::new();
        base.insert("/bin", Entry::symlink("usr/bin")).unwrap();
        base.insert("/usr/bin", Entry::dir(0o755)).unwrap();
        base.insert(
            "/etc/zookeeper/conf",
            Entry::symlink("/etc/alternatives/zookeeper-conf"),
        )
        .unwrap();
        base.insert(
            "/etc/alternatives/zookeeper-conf",
            Entry::symlink("/etc/zookeeper/conf_example"),
        )
        .unwrap();
        base.insert(
            "/etc/zookeeper/conf_example/environment",
            Entry::file("x", 0o644),
        )
        .unwrap();
        base.insert("/loop", Entry::symlink("loop")).unwrap();
        assert_eq!(resolve_parents(&base, "/bin/etcd"), "/usr/bin/etcd");
        assert_eq!(
            resolve_parents(&base, "/etc/zookeeper/conf/zoo.cfg"),
            "/etc/zookeeper/conf_example/zoo.cfg"
        );
        assert_eq!(
            resolve_parents(&base, "/etc/zookeeper/conf"),
            "/etc/zookeeper/conf"
        );
        assert_eq!(resolve_parents(&base, "/loop/x"), "/loop/x");

        let mut layer = FileTree::new();
        layer
            .insert("/etc/zookeeper/conf/zoo.cfg", Entry::file("cfg", 0o644))
            .unwrap();
        layer
            .insert("/bin/etcd", Entry::file("elf", 0o755))
            .unwrap();
        let placed = layer.placed_on(&base).unwrap();
        let paths: Vec<&str> = placed.iter().map(|(p, _)| p).collect();
        assert!(
            paths.contains(&"/etc/zookeeper/conf_example/zoo.cfg"),
            "{paths:?}"
        );
        assert!(paths.contains(&"/usr/bin/etcd"), "{paths:?}");
        assert!(
            !paths.contains(&"/bin") && !paths.contains(&"/etc/zookeeper/conf"),
            "{paths:?}"
        );

        // A directory the base has keeps the base's owner and mode.
        base.insert("/var/lib/zookeeper", Entry::dir(0o750).owned(107, 112))
            .unwrap();
        let mut layer = FileTree::new();
        layer
            .insert("/var/lib/zookeeper/myid", Entry::file("1\n", 0o644))
            .unwrap();
        let placed = layer.placed_on(&base).unwrap();
        let d = placed.get("/var/lib/zookeeper").unwrap();
        assert_eq!((d.mode, d.uid, d.gid), (0o750, 107, 112));
    }

    /// Regression (issue 8, item 4): Debian's `/var/lib/zookeeper/myid` is a symlink to
    /// `/etc/zookeeper/conf/myid`; the identity's `myid` must land behind it, not replace it.
    /// A link into `/dev` (a masked unit) is replaced instead of written through.
    #[test]
    fn files_are_written_through_a_leaf_symlink_but_not_into_dev() {
        let mut base = FileTree::new();
        base.insert("/etc/zookeeper/conf", Entry::symlink("conf_example"))
            .unwrap();
        base.insert("/etc/zookeeper/conf_example/myid", Entry::file("", 0o644))
            .unwrap();
        base.insert(
            "/var/lib/zookeeper/myid",
            Entry::symlink("/etc/zookeeper/conf/myid"),
        )
        .unwrap();
        base.insert(
            "/etc/systemd/system/docker.service",
            Entry::symlink("/dev/null"),
        )
        .unwrap();
        let mut layer = FileTree::new();
        layer
            .insert("/var/lib/zookeeper/myid", Entry::file("1\n", 0o644))
            .unwrap();
        layer
            .insert(
                "/etc/systemd/system/docker.service",
                Entry::file("[Unit]\n", 0o644),
            )
            .unwrap();
        let placed = layer.placed_on(&base).unwrap();
        assert_eq!(
            placed
                .get("/etc/zookeeper/conf_example/myid")
                .and_then(|e| e.data()),
            Some(&b"1\n"[..])
        );
        assert!(placed.get("/var/lib/zookeeper/myid").is_none());
        assert!(placed
            .get("/etc/systemd/system/docker.service")
            .is_some_and(|e| matches!(e.kind, EntryKind::File(_))));
    }

    #[test]
    fn setuid_bits_survive() {
        let e = Entry::file("x", 0o4755);
        assert_eq!(e.mode, 0o4755);
    }
}
