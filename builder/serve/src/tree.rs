//! What `kiln serve` exposes of an output directory, and at which paths.
//!
//! Served: `pxe/`, `cloud-init/`, `kickstart/`, `boot/` and `oci/` (nothing else of `dist/`:
//! not `identity/`, the report or the SBOMs). **Per-host** paths are a host's own:
//! `cloud-init/HOST/*`, `cloud-init/HOST-cidata.iso` and `kickstart/HOST.ks` (also answered at
//! `kickstart/` when Anaconda's `X-RHN-Provisioning-MAC-N` header names the host's MAC).
//! Everything else is **shared**. A private file (not readable by others: seeds are 0600) on a
//! shared path means a secret would be served to every host: [`Tree::open`] refuses to start.
//! Paths are checked segment by segment (no `..`, `.`, empty segments, backslashes or NULs)
//! and symbolic links are never followed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

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

/// Where a request leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A file below the root (`rel`), with its digest when the name is one.
    File {
        rel: String,
        digest: Option<String>,
    },
    /// `cloud-init/HOST/vendor-data` when the seed has none: an empty 200 (cloud-init asks).
    Empty,
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

/// The served view of an output directory.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub cluster: String,
    /// `provision.url`, when the build had one.
    pub url: Option<String>,
    pub hosts: Vec<Host>,
}

impl Tree {
    /// Reads the hosts of `dist` and checks that no shared path holds a private file.
    pub fn open(dist: &Path) -> Result<Tree, TreeError> {
        let root = fs::canonicalize(dist).map_err(IoError::at("reading", dist))?;
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
                    cluster: idx.cluster,
                    url: Some(idx.url),
                    hosts: idx
                        .hosts
                        .into_iter()
                        .map(|h| Host {
                            name: h.name,
                            mac: h.mac.to_lowercase(),
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
                    cluster: m.cluster.clone(),
                    url: None,
                    hosts: m
                        .hosts
                        .iter()
                        .map(|h| Host {
                            name: h.name.clone(),
                            mac: h.mac.to_lowercase(),
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
    /// `X-RHN-Provisioning-MAC-N` headers (`IFACE MAC`).
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
                Some(h) => self.file(&format!("kickstart/{}.ks", h.name)),
                None => Route::NotFound,
            };
        }
        if segs.last() == Some(&"") {
            return Route::NotFound; // no listings
        }
        let rel = segs.join("/");
        match self.file(&rel) {
            Route::NotFound => match segs.as_slice() {
                ["cloud-init", host, "vendor-data"] if self.owner(&rel) == Some(host) => {
                    Route::Empty
                }
                _ => Route::NotFound,
            },
            r => r,
        }
    }

    /// A regular file at `rel`, never through a symbolic link.
    fn file(&self, rel: &str) -> Route {
        let mut p = self.root.clone();
        for s in rel.split('/') {
            p.push(s);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => return Route::NotFound,
                Ok(_) => {}
                Err(_) => return Route::NotFound,
            }
        }
        if !p.is_file() {
            return Route::NotFound;
        }
        let digest = content_digest(rel).map(str::to_string);
        Route::File {
            rel: rel.to_string(),
            digest,
        }
    }
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
