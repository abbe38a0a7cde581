//! What `kiln serve` exposes of an output directory, and at which paths.
//!
//! Served: `pxe/`, `cloud-init/`, `kickstart/`, `boot/` and `oci/` (nothing else of `dist/`:
//! not `identity/`, the report or the SBOMs). **Per-host** paths are a host's own:
//! `cloud-init/HOST/*`, the same seed by MAC `cloud-init/mac/MAC/*` (where a role's network
//! UKI looks), `cloud-init/HOST-cidata.iso` and `kickstart/HOST.ks` (also answered at
//! `kickstart/` when Anaconda's `X-RHN-Provisioning-MAC-N` header names the host's MAC).
//! Everything else is **shared**. A private file (not readable by others: seeds are 0600) on a
//! shared path means a secret would be served to every host: [`Tree::open`] refuses to start.
//! A host's own paths are served only to the host's address ([`Tree::may_read`]).
//!
//! Paths are checked segment by segment (no `..`, `.`, empty segments, backslashes or NULs),
//! and a file is opened below the root directory's descriptor without following any symbolic
//! link, in the same step that finds it ([`Tree::open_file`]): a link swapped in while the
//! request runs is refused by the kernel, not by an earlier check it could race.

use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use kiln_dist::pxe_hosts::PxeHosts;
use kiln_dist::Dist;
use kiln_layers::IoError;

/// The top-level directories served.
pub const SERVED: &[&str] = &["pxe", "cloud-init", "kickstart", "boot", "oci"];

/// A host as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    /// Lowercase, colon-separated.
    pub mac: String,
    /// Its address on the cluster network: the only peer its own paths are served to.
    /// `None` when `pxe/hosts.json` predates the field (then [`crate::Server::bind`] refuses
    /// to start unless every peer is trusted).
    pub address: Option<Ipv4Addr>,
}

/// Why the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error(
        "{dist} is not kiln build output with hosts (no pxe/hosts.json or boot/manifest.json): {detail}"
    )]
    NoHosts { dist: PathBuf, detail: String },
    #[error(
        "refusing to serve {dist}: {} private file(s) on shared paths would be sent to every host:\n{}\n\
         per-host secrets belong only under cloud-init/HOST/, cloud-init/HOST-cidata.iso or \
         kickstart/HOST.ks; make the file world-readable if it is not secret, or move it",
        paths.len(),
        paths.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    )]
    Exposed { dist: PathBuf, paths: Vec<String> },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// Where a request leads (decided from the path alone; whether the file exists is for
/// [`Tree::open_file`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A file below the root (`rel`), with its digest when the name is one.
    File {
        rel: String,
        digest: Option<String>,
    },
    NotFound,
    /// A path that tries to leave the tree or is malformed.
    Refused(&'static str),
}

/// One file the server exposes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Path below the root (the URL path without its leading `/`).
    pub rel: String,
    /// The host whose own path it is; `None`: shared.
    pub host: Option<String>,
}

/// Who may read a path ([`Tree::may_read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    /// A shared path: anyone.
    Shared,
    /// Host `.0`'s own path, asked for from its address.
    Own(&'a str),
    /// Host `.0`'s own path, asked for from another address: 403.
    Denied(&'a str),
}

/// The served view of an output directory.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    /// The root directory, opened once: every file is opened below it.
    dir: Arc<OwnedFd>,
    pub cluster: String,
    /// `provision.url`, when the build had one.
    pub url: Option<String>,
    pub hosts: Vec<Host>,
}

impl Tree {
    /// Reads the hosts of `dist` and checks that no shared path holds a private file.
    pub fn open(dist: &Path) -> Result<Tree, TreeError> {
        let root = fs::canonicalize(dist).map_err(IoError::at("reading", dist))?;
        let dir = rustix::fs::open(
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| IoError::at("opening", &root)(e.into()))?;
        let dir = Arc::new(dir);
        let d = Dist::new(&root);
        let tree = match fs::read(d.pxe_hosts()) {
            Ok(bytes) => {
                let idx: PxeHosts =
                    serde_json::from_slice(&bytes).map_err(|e| TreeError::NoHosts {
                        dist: dist.to_path_buf(),
                        detail: format!("pxe/hosts.json: {e}"),
                    })?;
                Tree {
                    root,
                    dir,
                    cluster: idx.cluster,
                    url: Some(idx.url),
                    hosts: idx
                        .hosts
                        .into_iter()
                        .map(|h| Host {
                            name: h.name,
                            mac: h.mac.to_lowercase(),
                            address: h.address,
                        })
                        .collect(),
                }
            }
            Err(_) => {
                let m = kiln_dist::boot_manifest::read(&d).map_err(|e| TreeError::NoHosts {
                    dist: dist.to_path_buf(),
                    detail: e.to_string(),
                })?;
                Tree {
                    root,
                    dir,
                    cluster: m.cluster.clone(),
                    url: None,
                    hosts: m
                        .hosts
                        .iter()
                        .map(|h| Host {
                            name: h.name.clone(),
                            mac: h.mac.to_lowercase(),
                            address: Some(h.address),
                        })
                        .collect(),
                }
            }
        };
        let exposed: Vec<String> = tree
            .walk()?
            .into_iter()
            .filter(|(s, mode)| s.host.is_none() && mode & 0o004 == 0)
            .map(|(s, mode)| format!("{} (mode {:04o})", s.rel, mode & 0o7777))
            .collect();
        if !exposed.is_empty() {
            return Err(TreeError::Exposed {
                dist: dist.to_path_buf(),
                paths: exposed,
            });
        }
        Ok(tree)
    }

    /// Every file served, with the host it belongs to (sorted by path).
    pub fn served(&self) -> Result<Vec<Served>, TreeError> {
        Ok(self.walk()?.into_iter().map(|(s, _)| s).collect())
    }

    fn walk(&self) -> Result<Vec<(Served, u32)>, TreeError> {
        let mut out = Vec::new();
        let mut todo: Vec<String> = SERVED.iter().map(|s| s.to_string()).collect();
        while let Some(rel) = todo.pop() {
            let path = self.root.join(&rel);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(IoError::at("reading", path)(source).into()),
            };
            if meta.is_dir() {
                let entries = fs::read_dir(&path).map_err(IoError::at("reading", &path))?;
                for e in entries {
                    let e = e.map_err(|source| IoError::at("reading", &path)(source))?;
                    todo.push(format!("{rel}/{}", e.file_name().to_string_lossy()));
                }
            } else if meta.is_file() {
                let host = self.owner(&rel).map(str::to_string);
                out.push((Served { rel, host }, meta.permissions().mode()));
            }
        }
        out.sort_by(|a, b| a.0.rel.cmp(&b.0.rel));
        Ok(out)
    }

    /// The host whose own path `rel` is.
    pub fn owner(&self, rel: &str) -> Option<&str> {
        let known = |n: &str| {
            self.hosts
                .iter()
                .find(|h| h.name == n)
                .map(|h| h.name.as_str())
        };
        let parts: Vec<&str> = rel.split('/').collect();
        match parts.as_slice() {
            ["cloud-init", host, _] => known(host),
            // A role's network UKI finds the seed by MAC: `cloud-init/mac/MAC/FILE`.
            ["cloud-init", "mac", mac, _] => self.host_by_mac(mac).map(|h| h.name.as_str()),
            ["cloud-init", iso] => iso.strip_suffix("-cidata.iso").and_then(known),
            ["kickstart", ks] => ks.strip_suffix(".ks").and_then(known),
            _ => None,
        }
    }

    /// The host with MAC `mac` (any case, `:` or `-`).
    pub fn host_by_mac(&self, mac: &str) -> Option<&Host> {
        let want = mac.trim().to_lowercase().replace('-', ":");
        self.hosts.iter().find(|h| h.mac == want)
    }

    /// Where `path` (decoded, starting with `/`) leads; `macs` are the values of Anaconda's
    /// `X-RHN-Provisioning-MAC-N` headers (`IFACE MAC`). Looks at no file: a path that exists
    /// and one that does not lead alike, so that [`Tree::may_read`] can refuse another host's
    /// path before anything about it is known.
    pub fn route(&self, path: &str, macs: &[&str]) -> Route {
        let Some(rest) = path.strip_prefix('/') else {
            return Route::Refused("the path does not start with /");
        };
        let segs: Vec<&str> = rest.split('/').collect();
        for (i, s) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            if *s == ".." || *s == "." {
                return Route::Refused("the path has . or .. segments");
            }
            if s.contains(['\\', '\0']) {
                return Route::Refused("the path has a backslash or NUL");
            }
            if s.is_empty() && !last {
                return Route::Refused("the path has an empty segment");
            }
        }
        if !SERVED.contains(&segs[0]) {
            return Route::NotFound;
        }
        // Anaconda with inst.ks=http://SERVER/kickstart/ and inst.ks.sendmac.
        if matches!(segs.as_slice(), ["kickstart"] | ["kickstart", ""]) {
            let host = macs.iter().find_map(|v| {
                let mac = v.split_whitespace().last()?;
                self.host_by_mac(mac)
            });
            return match host {
                Some(h) => Self::file(&format!("kickstart/{}.ks", h.name)),
                None => Route::NotFound,
            };
        }
        if segs.last() == Some(&"") || segs.len() == 1 {
            return Route::NotFound; // no listings
        }
        Self::file(&segs.join("/"))
    }

    fn file(rel: &str) -> Route {
        let digest = content_digest(rel).map(str::to_string);
        Route::File {
            rel: rel.to_string(),
            digest,
        }
    }

    /// Whether `peer` may read `rel`: a host's own path only from the host's address (an
    /// IPv4-mapped IPv6 peer counts as its IPv4 address), unless `trust_any_peer`.
    pub fn may_read(&self, rel: &str, peer: IpAddr, trust_any_peer: bool) -> Access<'_> {
        let Some(name) = self.owner(rel) else {
            return Access::Shared;
        };
        let address = self
            .hosts
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| h.address);
        if trust_any_peer || address.is_some_and(|a| IpAddr::V4(a) == peer.to_canonical()) {
            Access::Own(name)
        } else {
            Access::Denied(name)
        }
    }

    /// Hosts without an address (from a `pxe/hosts.json` that predates it).
    pub fn hosts_without_address(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|h| h.address.is_none())
            .map(|h| h.name.as_str())
            .collect()
    }

    /// Opens the regular file `rel` (as [`Tree::route`] gives it) below the root, never
    /// through a symbolic link, whatever changes in the tree meanwhile: with `openat2`
    /// (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) the kernel resolves the whole path and
    /// refuses any link on it in one step; where `openat2` is missing (Linux < 5.6, or a
    /// seccomp filter that hides it), each component is opened with `O_NOFOLLOW` below the
    /// descriptor of the one before. Anything but a regular file (a link, a directory, a FIFO,
    /// a device) is `NotFound`.
    pub fn open_file(&self, rel: &str) -> io::Result<File> {
        let file = File::from(open_beneath(&self.dir, rel)?);
        if !file.metadata()?.is_file() {
            return Err(io::ErrorKind::NotFound.into());
        }
        Ok(file)
    }
}

/// Whether `openat2` works here; cleared the first time the kernel says it has none.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// Flags of the final open: read-only, no controlling terminal, and `O_NONBLOCK` so that a
/// FIFO in the tree cannot block the open (it is refused as not a regular file afterwards).
fn file_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK
}

/// `rel` opened below `dir` without following links (see [`Tree::open_file`]).
fn open_beneath(dir: &OwnedFd, rel: &str) -> io::Result<OwnedFd> {
    if OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: the kernel could not vouch that a `..` stayed beneath the root while a
        // rename raced it (openat2(2)); routed paths have no `..`, but a retry is the answer.
        for _ in 0..8 {
            match rustix::fs::openat2(dir, rel, file_flags(), Mode::empty(), resolve) {
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) | Err(Errno::PERM) => {
                    OPENAT2.store(false, Ordering::Relaxed);
                    break;
                }
                r => return r.map_err(io::Error::from),
            }
        }
        if OPENAT2.load(Ordering::Relaxed) {
            return Err(Errno::AGAIN.into());
        }
    }
    open_walk(dir, rel)
}

/// `rel` opened one component at a time, each with `O_NOFOLLOW` relative to the descriptor
/// of its parent: a link at any step is refused (`ELOOP`; `ENOTDIR` for a directory's
/// component, opened `O_DIRECTORY | O_NOFOLLOW`), and no step resolves more than one name.
fn open_walk(dir: &OwnedFd, rel: &str) -> io::Result<OwnedFd> {
    let segs: Vec<&str> = rel.split('/').collect();
    let Some((last, parents)) = segs.split_last() else {
        return Err(io::ErrorKind::NotFound.into());
    };
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    let mut at: Option<OwnedFd> = None;
    for s in parents {
        let parent = at.as_ref().map_or(dir.as_fd(), |d| d.as_fd());
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        at = Some(rustix::fs::openat(parent, *s, flags, Mode::empty())?);
    }
    let parent = at.as_ref().map_or(dir.as_fd(), |d| d.as_fd());
    Ok(rustix::fs::openat(
        parent,
        *last,
        file_flags(),
        Mode::empty(),
    )?)
}

/// Whether `rel` is a host's `cloud-init/HOST/vendor-data`, which cloud-init asks for and a
/// seed may lack (then answered empty).
pub fn is_vendor_data(rel: &str) -> bool {
    matches!(
        rel.split('/').collect::<Vec<_>>().as_slice(),
        ["cloud-init", _, "vendor-data"]
    )
}

/// The sha256 a content-addressed path names (`pxe/sha256/HEX`, `oci/blobs/sha256/HEX`).
pub fn content_digest(rel: &str) -> Option<&str> {
    let hex = rel
        .strip_prefix("pxe/sha256/")
        .or_else(|| rel.strip_prefix("oci/blobs/sha256/"))?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The `Content-Type` of a served path.
pub fn content_type(rel: &str) -> &'static str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let text = "text/plain; charset=utf-8";
    if rel.starts_with("pxe/pxelinux.cfg/") || rel.starts_with("pxe/grub/") {
        return text;
    }
    if rel.starts_with("cloud-init/") && !name.ends_with(".iso") {
        return text;
    }
    match rel {
        "oci/index.json" => return "application/vnd.oci.image.index.v1+json",
        "oci/oci-layout" => return "application/json",
        _ => {}
    }
    let ext = |e: &str| name.ends_with(e);
    if ext(".ipxe") || ext(".ks") || ext(".cfg") || name == "SHA256SUMS" {
        text
    } else if ext(".json") {
        "application/json"
    } else if ext(".iso") {
        "application/x-iso9660-image"
    } else if ext(".tar.gz") || ext(".tgz") {
        "application/gzip"
    } else if ext(".tar.xz") {
        "application/x-xz"
    } else if ext(".tar") {
        "application/x-tar"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with `a/file`, a link to a file outside, a link to a directory inside, a link
    /// to a file inside, and a FIFO.
    fn fixture() -> (tempfile::TempDir, OwnedFd) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("a")).unwrap();
        fs::write(root.join("a/file"), "inside").unwrap();
        fs::write(tmp.path().join("secret"), "outside").unwrap();
        symlink(tmp.path().join("secret"), root.join("out")).unwrap();
        symlink("a", root.join("dirlink")).unwrap();
        symlink("file", root.join("a/filelink")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("a/fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let dir =
            rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn no_link_is_followed_at_any_component_either_way() {
        let (_tmp, dir) = fixture();
        for open in [open_beneath, open_walk] {
            let f = open(&dir, "a/file").unwrap();
            let mut s = String::new();
            io::Read::read_to_string(&mut File::from(f), &mut s).unwrap();
            assert_eq!(s, "inside");
            for rel in ["out", "dirlink/file", "a/filelink"] {
                let e = open(&dir, rel).unwrap_err();
                // ENOTDIR: the walk's O_DIRECTORY | O_NOFOLLOW on a link to a directory.
                let refused = [Some(Errno::LOOP), Some(Errno::NOTDIR)];
                assert!(refused.contains(&Errno::from_io_error(&e)), "{rel}: {e}");
            }
            assert!(open(&dir, "a/missing").is_err());
        }
        assert!(open_walk(&dir, "a/../a/file").is_err());
        // openat2 refuses to leave the root whatever the path says.
        assert!(open_beneath(&dir, "../secret").is_err());
    }

    #[test]
    fn only_regular_files_are_opened_and_a_fifo_does_not_block() {
        let (tmp, _) = fixture();
        fs::create_dir_all(tmp.path().join("root/pxe")).unwrap();
        fs::write(
            tmp.path().join("root/pxe/hosts.json"),
            r#"{"cluster":"c","url":"http://x","hosts":[]}"#,
        )
        .unwrap();
        let tree = Tree::open(&tmp.path().join("root")).unwrap();
        assert!(tree.open_file("a/file").is_ok());
        for rel in ["a/fifo", "a", "out"] {
            let e = tree.open_file(rel).unwrap_err();
            assert!(
                e.kind() == io::ErrorKind::NotFound
                    || Errno::from_io_error(&e) == Some(Errno::LOOP),
                "{rel}: {e}"
            );
        }
    }

    #[test]
    fn a_hosts_own_paths_are_its_address_alone() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("pxe")).unwrap();
        fs::write(
            tmp.path().join("pxe/hosts.json"),
            r#"{"cluster":"c","url":"http://x","hosts":[
              {"name":"h1","mac":"52:54:00:00:00:01","address":"10.0.0.11","profile":"p","ipxe":"mac/x.ipxe"},
              {"name":"old","mac":"52:54:00:00:00:02","profile":"p","ipxe":"mac/y.ipxe"}]}"#,
        )
        .unwrap();
        let tree = Tree::open(tmp.path()).unwrap();
        assert_eq!(tree.hosts_without_address(), ["old"]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for rel in [
            "cloud-init/h1/user-data",
            "cloud-init/h1-cidata.iso",
            "kickstart/h1.ks",
        ] {
            assert_eq!(
                tree.may_read(rel, ip("10.0.0.11"), false),
                Access::Own("h1")
            );
            // Listening on [::], an IPv4 client is an IPv4-mapped address.
            assert_eq!(
                tree.may_read(rel, ip("::ffff:10.0.0.11"), false),
                Access::Own("h1")
            );
            assert_eq!(
                tree.may_read(rel, ip("10.0.0.12"), false),
                Access::Denied("h1")
            );
            assert_eq!(tree.may_read(rel, ip("::1"), false), Access::Denied("h1"));
            assert_eq!(tree.may_read(rel, ip("10.0.0.12"), true), Access::Own("h1"));
        }
        // A host without an address gets its files nowhere (the server refuses to start).
        assert_eq!(
            tree.may_read("kickstart/old.ks", ip("10.0.0.12"), false),
            Access::Denied("old")
        );
        assert_eq!(
            tree.may_read("pxe/boot.ipxe", ip("10.9.9.9"), false),
            Access::Shared
        );
        assert_eq!(
            tree.may_read("cloud-init/ghost/user-data", ip("10.9.9.9"), false),
            Access::Shared,
            "not a host's: served to nobody as private (the start check), shared otherwise"
        );
    }
}
