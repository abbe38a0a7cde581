//! Materialising a [`FileTree`] in a real directory without ever writing outside it.
//!
//! Every parent of an entry is checked with `lstat` to be a real directory (never a symlink)
//! before anything is created under it; files are created with `O_CREAT | O_EXCL`, which
//! refuses to follow a symlink; a non-directory already at an entry's path is removed (the
//! link itself, never what it points to) and replaced. Modes are applied in full (setuid,
//! setgid, sticky) after ownership, since `chown` clears setuid bits and file capabilities;
//! owners are applied only when running as root; xattrs are set last. Directory modes and
//! mtimes are applied after all their content exists, so a read-only directory can be filled.
//! Explicit mtimes are restored (a symlink's own, not its target's).
//!
//! This protects against hostile trees, not against another process racing to swap
//! directories under the target while it is being written.

use crate::tar::Links;
use crate::{EntryKind, Error, FileTree, IoError, Result};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Writes every entry of `tree` below `dir` (created if missing). Hard links become real
/// hard links within `dir`; devices and fifos are created with `mknod` (devices need root).
pub fn extract_to_dir(tree: &FileTree, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(IoError::at("creating", dir))?;
    let links = Links::resolve(tree)?;
    let as_root = rustix::process::geteuid().is_root();
    let mut checked: HashSet<String> = HashSet::new();
    let mut dirs: Vec<(&str, PathBuf)> = Vec::new();
    for (path, entry) in tree.iter() {
        check_parents(dir, path, &mut checked)?;
        let dest = dir.join(&path[1..]);
        clear_for(&dest, entry.kind == EntryKind::Dir)?;
        let (e, link_to) = match links.get(path) {
            Some(info) if info.leader != path => (info.content, Some(info.leader)),
            Some(info) => (info.content, None),
            None => (entry, None),
        };
        if let Some(leader) = link_to {
            // The leader sorts first, so it is already written (and its parents checked).
            let src = dir.join(&leader[1..]);
            fs::hard_link(&src, &dest).map_err(IoError::at("hard-linking", &dest))?;
            continue;
        }
        match &e.kind {
            EntryKind::File(data) => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&dest)
                    .map_err(IoError::at("creating", &dest))?;
                f.write_all(data).map_err(IoError::at("writing", &dest))?;
                if as_root {
                    rustix::fs::fchown(
                        &f,
                        Some(rustix::process::Uid::from_raw(e.uid)),
                        Some(rustix::process::Gid::from_raw(e.gid)),
                    )
                    .map_err(|err| IoError::at("changing owner of", &dest)(err.into()))?;
                }
                f.set_permissions(fs::Permissions::from_mode(e.mode & 0o7777))
                    .map_err(IoError::at("setting mode of", &dest))?;
                for (name, value) in &e.xattrs {
                    rustix::fs::fsetxattr(
                        &f,
                        name.as_str(),
                        value,
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(|err| IoError::at("setting xattr", dest.join(name))(err.into()))?;
                }
                if let Some(m) = e.mtime {
                    f.set_modified(UNIX_EPOCH + Duration::from_secs(m))
                        .map_err(IoError::at("setting mtime of", &dest))?;
                }
                continue;
            }
            EntryKind::Dir => {
                if fs::symlink_metadata(&dest).is_err() {
                    fs::create_dir(&dest).map_err(IoError::at("creating", &dest))?;
                }
                // Owner-writable until the end, so children can be created.
                fs::set_permissions(&dest, fs::Permissions::from_mode(0o700))
                    .map_err(IoError::at("setting mode of", &dest))?;
                dirs.push((path, dest.clone()));
            }
            EntryKind::Symlink(target) => {
                std::os::unix::fs::symlink(target, &dest)
                    .map_err(IoError::at("creating symlink", &dest))?;
            }
            EntryKind::CharDevice(..) | EntryKind::BlockDevice(..) | EntryKind::Fifo => {
                let (ty, dev) = match e.kind {
                    EntryKind::CharDevice(a, b) => (
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::makedev(a, b),
                    ),
                    EntryKind::BlockDevice(a, b) => {
                        (rustix::fs::FileType::BlockDevice, rustix::fs::makedev(a, b))
                    }
                    _ => (rustix::fs::FileType::Fifo, 0),
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &dest,
                    ty,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(|err| IoError::at("creating node", &dest)(err.into()))?;
            }
            EntryKind::Hardlink(_) => {
                return Err(Error::BadHardlink {
                    path: path.to_string(),
                    target: String::new(),
                    reason: "unresolved hard link",
                })
            }
        }
        if as_root {
            rustix::fs::chownat(
                rustix::fs::CWD,
                &dest,
                Some(rustix::process::Uid::from_raw(e.uid)),
                Some(rustix::process::Gid::from_raw(e.gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|err| IoError::at("changing owner of", &dest)(err.into()))?;
        }
        let is_link = matches!(e.kind, EntryKind::Symlink(_));
        if !is_link && e.kind != EntryKind::Dir {
            fs::set_permissions(&dest, fs::Permissions::from_mode(e.mode & 0o7777))
                .map_err(IoError::at("setting mode of", &dest))?;
        }
        for (name, value) in &e.xattrs {
            rustix::fs::lsetxattr(&dest, name.as_str(), value, rustix::fs::XattrFlags::empty())
                .map_err(|err| IoError::at("setting xattr", dest.join(name))(err.into()))?;
        }
        if let (Some(m), false) = (e.mtime, e.kind == EntryKind::Dir) {
            set_mtime_nofollow(&dest, m)?;
        }
    }
    // Deepest first, so a directory's mtime is set after its children are in place.
    for (path, dest) in dirs.iter().rev() {
        let Some(e) = tree.get(path) else { continue };
        if let Some(m) = e.mtime {
            let f = File::open(dest).map_err(IoError::at("opening", dest))?;
            f.set_modified(UNIX_EPOCH + Duration::from_secs(m))
                .map_err(IoError::at("setting mtime of", dest))?;
        }
        fs::set_permissions(dest, fs::Permissions::from_mode(e.mode & 0o7777))
            .map_err(IoError::at("setting mode of", dest))?;
    }
    Ok(())
}

/// Sets atime and mtime of `dest` itself (a symlink's own times, not its target's).
fn set_mtime_nofollow(dest: &Path, secs: u64) -> Result<()> {
    let t = rustix::fs::Timespec {
        tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        dest,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|err| IoError::at("setting mtime of", dest)(err.into()))?;
    Ok(())
}

/// Checks with `lstat` that every parent of `path` below `dir` is a real directory.
fn check_parents(dir: &Path, path: &str, checked: &mut HashSet<String>) -> Result<()> {
    let mut idx = 0;
    while let Some(off) = path[idx + 1..].find('/') {
        idx += 1 + off;
        let parent = &path[..idx];
        if checked.contains(parent) {
            continue;
        }
        let p = dir.join(&parent[1..]);
        let meta = fs::symlink_metadata(&p).map_err(IoError::at("inspecting", &p))?;
        if !meta.file_type().is_dir() {
            return Err(Error::UnsafeEntry {
                entry: path.to_string(),
                reason: format!("parent {} is not a real directory", p.display()),
            });
        }
        checked.insert(parent.to_string());
    }
    Ok(())
}

/// Removes whatever is at `dest` unless it is a directory and a directory is wanted there.
/// Symlinks are removed themselves, never followed.
fn clear_for(dest: &Path, want_dir: bool) -> Result<()> {
    let Ok(meta) = fs::symlink_metadata(dest) else {
        return Ok(());
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        if !want_dir {
            fs::remove_dir_all(dest).map_err(IoError::at("removing", dest))?;
        }
    } else {
        fs::remove_file(dest).map_err(IoError::at("removing", dest))?;
    }
    Ok(())
}
