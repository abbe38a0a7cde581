//! From verified bytes to the files a source places on the host: format detection (tarball,
//! `.deb`, `.rpm`, single file), decompression (gzip, zstd, xz) and selection (`paths` globs,
//! `strip_components`, `dest`, `mode`).

use std::path::Path;

use kiln_layers::{Entry, EntryKind, FileTree, IoError};

use super::{deb, rpm, Error, Result};

/// What a source takes from its artifact and where it puts it.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// Globs relative to the archive root after stripping; empty takes everything.
    pub paths: Vec<String>,
    pub strip_components: u32,
    /// A single file's full path, or the directory archive entries go under (default `/`).
    pub dest: Option<String>,
    /// Mode of the regular files placed.
    pub mode: Option<u32>,
}

/// What kind of artifact some bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Deb,
    Rpm,
    /// A tar, possibly gzip/zstd/xz-compressed.
    Tar,
    /// Anything else: one file (a static binary).
    Single,
}

/// Detects the kind from the content (not the name, which mirrors may change).
pub fn detect(bytes: &[u8]) -> Kind {
    if bytes.starts_with(b"!<arch>\n") {
        Kind::Deb
    } else if bytes.starts_with(&[0xed, 0xab, 0xee, 0xdb]) {
        Kind::Rpm
    } else if kiln_layers::decompress::detect(bytes) != kiln_layers::decompress::Format::Plain
        || bytes.get(257..262) == Some(b"ustar")
    {
        Kind::Tar
    } else {
        Kind::Single
    }
}

/// Reads a (compressed) tarball into a tree, refusing entries that escape the root.
pub fn read_tar(what: &str, bytes: &[u8]) -> Result<FileTree> {
    kiln_layers::read_layer(bytes).map_err(|source| Error::Layer {
        what: what.into(),
        source,
    })
}

/// Reads a base's (compressed) tarball into a tree: like [`read_tar`], but names and
/// hard-link targets must be relative ([`super::base_hint`]).
pub fn read_base_tar(what: &str, bytes: &[u8]) -> Result<FileTree> {
    kiln_layers::read_layer_relative(bytes).map_err(|source| Error::Base {
        what: what.into(),
        source,
    })
}

/// Whose artifact is unpacked: a component's (its files go into layers kiln writes, so a
/// leading `/` in a member name is read as relative, as tar does when it extracts) or the
/// base's (the same rule for every base: relative names only, [`super::base_hint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Of {
    Component,
    Base,
}

/// Turns an artifact into the tree it places on the host. `name` is the artifact's file name
/// (for a single file without `dest`) and what messages call it.
pub fn place(what: &str, name: &str, bytes: &[u8], p: &Placement, of: Of) -> Result<FileTree> {
    let tree = match detect(bytes) {
        Kind::Single => {
            let dest = p.dest.clone().ok_or_else(|| Error::Source {
                key: what.into(),
                reason: format!("{name} is a single file, so the source needs `dest` (its full path on the host, e.g. \"/usr/bin/{name}\")"),
            })?;
            let dest = if dest.ends_with('/') {
                format!("{dest}{name}")
            } else {
                dest
            };
            let mut t = FileTree::new();
            t.insert(&dest, Entry::file(bytes.to_vec(), p.mode.unwrap_or(0o755)))
                .map_err(|source| Error::Tree {
                    component: what.into(),
                    source,
                })?;
            return Ok(t);
        }
        Kind::Tar if of == Of::Base => read_base_tar(&format!("{what} ({name})"), bytes)?,
        Kind::Tar => read_tar(what, bytes)?,
        Kind::Deb => deb::data_tree(what, bytes, of)?,
        Kind::Rpm => rpm::payload_tree(what, bytes)?,
    };
    select(what, &tree, p)
}

/// Reads a local directory into a tree (symlinks kept as links, modes kept, owner root).
pub fn read_dir(what: &str, dir: &Path) -> Result<FileTree> {
    fn walk(tree: &mut FileTree, dir: &Path, rel: &str, what: &str) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(IoError::at("reading directory", dir))?
            .collect::<std::io::Result<_>>()
            .map_err(IoError::at("reading directory", dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let tpath = format!("{rel}/{name}");
            let md = std::fs::symlink_metadata(&path).map_err(IoError::at("reading", &path))?;
            use std::os::unix::fs::PermissionsExt;
            let mode = md.permissions().mode() & 0o7777;
            let entry = if md.file_type().is_symlink() {
                let t = std::fs::read_link(&path).map_err(IoError::at("reading link", &path))?;
                Entry::symlink(t.to_string_lossy().into_owned())
            } else if md.is_dir() {
                Entry::dir(mode)
            } else if md.is_file() {
                Entry::file(
                    std::fs::read(&path).map_err(IoError::at("reading", &path))?,
                    mode,
                )
            } else {
                continue;
            };
            let is_dir = md.is_dir();
            tree.insert(&tpath, entry).map_err(|source| Error::Tree {
                component: what.into(),
                source,
            })?;
            if is_dir {
                walk(tree, &path, &tpath, what)?;
            }
        }
        Ok(())
    }
    let mut tree = FileTree::new();
    walk(&mut tree, dir, "", what)?;
    Ok(tree)
}

/// Applies `paths`, `strip_components`, `dest` and `mode` to an unpacked tree.
pub fn select(what: &str, tree: &FileTree, p: &Placement) -> Result<FileTree> {
    let dest = p.dest.as_deref().unwrap_or("/").trim_end_matches('/');
    let strip = p.strip_components as usize;
    // Old path → new path of every entry taken, for hard links.
    let mut moved = std::collections::HashMap::new();
    let mut out = FileTree::new();
    let mut matched = vec![false; p.paths.len()];
    for (path, entry) in tree.iter() {
        let parts: Vec<&str> = path[1..].split('/').collect();
        if parts.len() <= strip {
            continue;
        }
        let rel = parts[strip..].join("/");
        if !p.paths.is_empty() {
            let mut any = false;
            for (i, pat) in p.paths.iter().enumerate() {
                let pat = pat.trim_start_matches("./").trim_matches('/');
                // A matching directory takes everything below it.
                let hit = glob_match(pat, &rel)
                    || (1..parts.len() - strip)
                        .any(|k| glob_match(pat, &parts[strip..strip + k].join("/")));
                if hit {
                    matched[i] = true;
                    any = true;
                }
            }
            if !any {
                continue;
            }
        }
        let new = format!("{dest}/{rel}");
        let mut e = entry.clone();
        if let (Some(m), EntryKind::File(_)) = (p.mode, &e.kind) {
            e.mode = m & 0o7777;
        }
        moved.insert(path.to_string(), new.clone());
        out.insert(&new, e).map_err(|source| Error::Tree {
            component: what.into(),
            source,
        })?;
    }
    // Hard links: point at the moved target, or become a copy when the target was not taken.
    let links: Vec<(String, String)> = out
        .iter()
        .filter_map(|(path, e)| match &e.kind {
            EntryKind::Hardlink(t) => Some((path.to_string(), t.clone())),
            _ => None,
        })
        .collect();
    for (path, target) in links {
        let mut e = out.get(&path).cloned().unwrap_or_else(|| Entry::dir(0o755));
        e.kind = match moved.get(&target) {
            Some(new) => EntryKind::Hardlink(new.clone()),
            None => match tree.get(&target).map(|t| &t.kind) {
                Some(EntryKind::File(d)) => EntryKind::File(d.clone()),
                _ => continue,
            },
        };
        out.replace(&path, e).map_err(|source| Error::Tree {
            component: what.into(),
            source,
        })?;
    }
    if let Some(i) = matched.iter().position(|m| !m) {
        let sample: Vec<&str> = tree.iter().map(|(p, _)| p).take(8).collect();
        return Err(Error::Source {
            key: what.into(),
            reason: format!(
                "paths[{i}] = {:?} matches nothing in the archive (after strip_components = {strip}); it holds e.g. {}",
                p.paths[i],
                sample.join(", ")
            ),
        });
    }
    if out.is_empty() {
        return Err(Error::Source {
            key: what.into(),
            reason: format!("nothing left after strip_components = {strip}"),
        });
    }
    Ok(out)
}

/// Matches `path` against a glob: `*` and `?` within one component, `**` across components.
pub fn glob_match(pat: &str, path: &str) -> bool {
    fn comp(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => comp(&p[1..], s) || (!s.is_empty() && comp(p, &s[1..])),
            (Some(b'?'), Some(_)) => comp(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => comp(&p[1..], &s[1..]),
            _ => false,
        }
    }
    fn parts(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(&"**"), _) => parts(&p[1..], s) || (!s.is_empty() && parts(p, &s[1..])),
            (Some(a), Some(b)) => comp(a.as_bytes(), b.as_bytes()) && parts(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pat.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    parts(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18, item 12: one rule for every base, said the same way with what to do. A
    /// component's archive is unpacked into kiln's own layers, so a leading `/` there is read
    /// as relative (as tar extracts it); `..` is refused everywhere.
    #[test]
    fn a_base_refuses_absolute_names_like_dotdot_and_says_what_to_do() {
        use kiln_test_support::raw_tar;
        let abs = raw_tar(&[("/etc/passwd", b'0', "", b"x")]);
        let up = raw_tar(&[("etc/../../passwd", b'0', "", b"x")]);
        let p = Placement::default();
        for (tar, wrong) in [(&abs, "is absolute"), (&up, "has a '..' component")] {
            let e = place("base.source", "rootfs.tar", tar, &p, Of::Base).unwrap_err();
            let e = e.to_string();
            assert!(
                e.starts_with("reading base.source (rootfs.tar): unsafe layer entry"),
                "{e}"
            );
            assert!(
                e.contains(wrong) && e.contains("re-create the base with relative"),
                "{e}"
            );
        }
        // The mmdebstrap base, streamed into its layer, is read by the same rule.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.tar");
        std::fs::write(&path, &abs).unwrap();
        let base = super::super::BaseSource::Tarball {
            path: path.clone(),
            sha256: String::new(),
        };
        let e = base.metadata_tree().unwrap_err().to_string();
        let want = format!(
            "reading the base tarball {}: unsafe layer entry \"/etc/passwd\": name is absolute",
            path.display()
        );
        assert!(e.starts_with(&want), "{e}");
        assert!(e.contains("re-create the base with relative names"), "{e}");
        // A component's archive: normalised, and `..` refused.
        let t = place("etcd.source", "etcd.tar", &abs, &p, Of::Component).unwrap();
        assert!(t.get("/etc/passwd").is_some());
        let e = place("etcd.source", "etcd.tar", &up, &p, Of::Component).unwrap_err();
        assert!(e.to_string().contains("'..'"), "{e}");
        assert!(!e.to_string().contains("re-create the base"), "{e}");
    }

    #[test]
    fn globs() {
        assert!(glob_match("etcd", "etcd"));
        assert!(!glob_match("etcd", "etcdctl"));
        assert!(glob_match("etcd*", "etcdctl"));
        assert!(glob_match("bin/*", "bin/x"));
        assert!(!glob_match("bin/*", "bin/x/y"));
        assert!(glob_match("**/calico", "a/b/calico"));
        assert!(glob_match("**/calico", "calico"));
        assert!(glob_match("lib/?.so", "lib/a.so"));
    }

    #[test]
    fn select_strips_filters_and_moves() {
        let mut t = FileTree::new();
        t.insert("/etcd-v1/etcd", Entry::file("e", 0o700)).unwrap();
        t.insert("/etcd-v1/etcdctl", Entry::file("c", 0o700))
            .unwrap();
        t.insert("/etcd-v1/README.md", Entry::file("r", 0o644))
            .unwrap();
        let p = Placement {
            paths: vec!["etcd".into(), "etcdctl".into()],
            strip_components: 1,
            dest: Some("/usr/bin".into()),
            mode: Some(0o755),
        };
        let out = select("etcd", &t, &p).unwrap();
        assert_eq!(out.get("/usr/bin/etcd").unwrap().mode, 0o755);
        assert!(out.get("/usr/bin/etcdctl").is_some());
        assert!(out.get("/usr/bin/README.md").is_none());
        let bad = Placement {
            paths: vec!["nope".into()],
            ..p
        };
        let e = select("etcd", &t, &bad).unwrap_err().to_string();
        assert!(e.contains("matches nothing"), "{e}");
    }
}
