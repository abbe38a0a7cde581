//! `kiln.lock`: every resolved source with its origin and digest, as TOML.
//!
//! ```toml
//! # kiln.lock: written by `kiln lock`/`kiln fetch`; `--locked` refuses anything not listed.
//! version = 1
//!
//! [[artifact]]
//! component = "etcd"
//! origin = "https://github.com/etcd-io/etcd/releases/download/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz"
//! sha256 = "…64 hex digits…"
//! size = 17212735
//! ```
//!
//! Entries are sorted by component, then origin, so the file diffs cleanly. An origin is the
//! upstream URL (never the mirror's), `deb:NAME[=VERSION]`, `file:PATH` (relative to the
//! spec), `image:REF` (the digest is the manifest's) or `debian:<inputs digest>` (the digest
//! is the mmdebstrap tarball's).

use std::fs;
use std::path::Path;

use kiln_layers::IoError;
use serde::{Deserialize, Serialize};

use super::{hex_of, Error, Result};

/// The lock file's format version.
pub const LOCK_VERSION: u32 = 1;

/// One locked artifact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// Component (`etcd`, `calico-cni`, `base`, …).
    pub component: String,
    /// Where it comes from (see the module docs).
    pub origin: String,
    /// sha256 hex of its bytes.
    pub sha256: String,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// The parsed lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    #[serde(default, rename = "artifact")]
    pub artifacts: Vec<LockEntry>,
}

const HEADER: &str =
    "# kiln.lock: every artifact the hosts get, with its sha256. Written by `kiln lock`,\n\
# `kiln fetch` and the first build that fetches an unpinned source; `--locked` refuses anything\n\
# not listed here. Commit it beside the spec.\n";

impl LockFile {
    /// Reads `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<LockFile> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LockFile {
                    version: LOCK_VERSION,
                    artifacts: Vec::new(),
                })
            }
            Err(e) => return Err(IoError::at("reading", path)(e).into()),
        };
        let bad = |reason: String| Error::Lock {
            path: path.to_path_buf(),
            reason,
        };
        let lock: LockFile = toml::from_str(&text).map_err(|e| {
            bad(format!(
                "{} (delete it and run `kiln lock SPEC` to write it anew)",
                e.message()
            ))
        })?;
        if lock.version != LOCK_VERSION {
            return Err(bad(format!(
                "version {} is not supported (this kiln writes version {LOCK_VERSION})",
                lock.version
            )));
        }
        for a in &lock.artifacts {
            if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("{}: sha256 must be 64 hex digits", a.origin)));
            }
        }
        Ok(lock)
    }

    /// The entry for `origin` of `component`.
    pub fn get(&self, component: &str, origin: &str) -> Option<&LockEntry> {
        self.artifacts
            .iter()
            .find(|a| a.component == component && a.origin == origin)
    }

    /// Adds or updates an entry; returns whether the lock changed.
    pub fn upsert(&mut self, mut entry: LockEntry) -> bool {
        entry.sha256 = hex_of(&entry.sha256);
        if let Some(e) = self
            .artifacts
            .iter_mut()
            .find(|a| a.component == entry.component && a.origin == entry.origin)
        {
            if *e == entry {
                return false;
            }
            *e = entry;
        } else {
            self.artifacts.push(entry);
        }
        self.artifacts.sort();
        true
    }

    /// The file's text: a header comment, then the entries in stable order.
    pub fn to_text(&self) -> String {
        let mut sorted = self.clone();
        sorted.version = LOCK_VERSION;
        sorted.artifacts.sort();
        let body = toml::to_string(&sorted).unwrap_or_default();
        format!("{HEADER}{body}")
    }

    /// Writes the lock atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::cache::write_atomic(path, self.to_text().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_sorted_and_stable() {
        let mut l = LockFile::default();
        for (c, o) in [
            ("zookeeper", "https://z"),
            ("etcd", "https://e2"),
            ("etcd", "https://e1"),
        ] {
            assert!(l.upsert(LockEntry {
                component: c.into(),
                origin: o.into(),
                sha256: "a".repeat(64),
                size: Some(1),
            }));
        }
        assert!(!l.upsert(l.artifacts[0].clone()));
        let text = l.to_text();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kiln.lock");
        l.save(&p).unwrap();
        let back = LockFile::load(&p).unwrap();
        assert_eq!(back.to_text(), text);
        let origins: Vec<_> = back.artifacts.iter().map(|a| a.origin.as_str()).collect();
        assert_eq!(origins, ["https://e1", "https://e2", "https://z"]);
        assert!(LockFile::load(&dir.path().join("none"))
            .unwrap()
            .artifacts
            .is_empty());
    }
}
