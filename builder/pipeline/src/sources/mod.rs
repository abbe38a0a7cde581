//! Pinned sources: every artifact a host gets is fetched, verified against its sha256, cached
//! by digest and recorded in `kiln.lock`.
//!
//! # The API the build calls
//! - [`SourceOptions`] (cache dir, `--offline`, `--mirror`, `--locked`, lock path, progress).
//! - [`resolve`]`(plan, spec_dir, opts) -> Result<Resolved>`: fetches (or finds in the cache)
//!   every source the plan needs and returns, per component, the [`FileTree`] its sources
//!   place on the host, the base ([`BaseSource`]: a tree or an image in a blob store), the
//!   component images (`calico/node`, …) as [`ImageSource`]s, and the lock entries used.
//! - [`check_presence`]`(plan, profile, rootfs)`: every unit's binary exists and is executable.
//!
//! # Where a component's artifacts come from
//! 1. its `source` in the spec (`url`, `file`, `deb`, `oci`, or `base = true` for "the base
//!    provides it"), plus `source.also` for further artifacts;
//! 2. otherwise the built-in [`catalog`] for its version (upstream release URLs);
//! 3. otherwise nothing: the presence check tells which source to add.
//!
//! # Order of work
//! First every artifact is made available in the cache (downloaded, `apt-get download`ed,
//! pulled or built), collecting every problem (so `--offline` lists *every* missing artifact);
//! only then is anything extracted. Every byte is hashed before it is read: cached blobs are
//! verified on each use, and a corrupt entry is named and removed.
//!
//! # Maintainer scripts
//! `.deb` and `.rpm` payloads are unpacked, their scripts are not run. Users, groups and
//! directories they would create must come from the components (`sysusers.d` / `tmpfiles.d`
//! files, which the components render for etcd, ZooKeeper, Mesos, …).

pub mod cache;
pub mod catalog;
pub mod deb;
pub mod debian;
pub mod fetch;
mod images;
pub mod lock;
pub mod presence;
mod resolve;
pub mod rpm;
pub mod unpack;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_layers::{FileTree, IoError};
use kiln_oci::oci::layout::ResolvedImage;
use kiln_oci::BlobStore;

pub use images::parse_reference;
pub use lock::{LockEntry, LockFile};
pub use presence::{check_presence, PresenceError};
pub(crate) use resolve::file_name_of;
pub use resolve::{lock, resolve};

/// The lock file's name; it lives beside the spec.
pub const LOCK_FILE: &str = "kiln.lock";

/// How sources are resolved. Build it with [`SourceOptions::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// Content-addressed cache (`blobs/sha256/<hex>`, partial downloads, refs).
    pub cache_dir: PathBuf,
    /// Use only the cache: no network, no `apt-get`, no `mmdebstrap`.
    pub offline: bool,
    /// Rewrites upstream URLs: `https://HOST/PATH` becomes `MIRROR/HOST/PATH` (an http(s)
    /// URL or a local directory, `file://` optional).
    pub mirror: Option<String>,
    /// Refuse any artifact that `kiln.lock` does not list.
    pub locked: bool,
    /// The lock file (default `SPEC_DIR/kiln.lock`).
    pub lock_path: PathBuf,
    /// Report downloads: a live line on a terminal, plain lines otherwise. Off in tests.
    pub progress: bool,
    /// Write new lock entries back to `lock_path` (off for a dry run).
    pub write_lock: bool,
    /// HTTP retries, backoff and timeouts.
    pub http: fetch::HttpOptions,
    /// `SOURCE_DATE_EPOCH` for the `debian` base build.
    pub source_date_epoch: u64,
}

impl SourceOptions {
    /// Defaults for a spec in `spec_dir`: XDG cache, online, `spec_dir/kiln.lock`.
    pub fn new(spec_dir: &Path) -> Self {
        SourceOptions {
            cache_dir: default_cache_dir(),
            offline: false,
            mirror: None,
            locked: false,
            lock_path: spec_dir.join(LOCK_FILE),
            progress: false,
            write_lock: true,
            http: fetch::HttpOptions::default(),
            source_date_epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(DEFAULT_EPOCH),
        }
    }
}

/// `SOURCE_DATE_EPOCH` when none is set: the build's (1980-01-01). One default for every
/// command: the mmdebstrap base is keyed by it, and `kiln fetch` with another default filled
/// the cache with a base `kiln build` never found (regression test
/// `fetch_and_build_key_the_debian_base_alike`).
pub const DEFAULT_EPOCH: u64 = crate::stages::DEFAULT_EPOCH;

/// `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`, else `./.kiln-cache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("kiln");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(h).join(".cache").join("kiln");
    }
    PathBuf::from(".kiln-cache")
}

/// An image in a blob store, every digest verified.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// The reference as written (`calico/node:v2.6.12`, `oci:DIR:TAG`, …).
    pub reference: String,
    /// The store holding manifest, config and layers (the cache's).
    pub store: BlobStore,
    /// Manifest, config and layers.
    pub image: ResolvedImage,
}

/// The root filesystem role images start from.
#[derive(Debug, Clone)]
pub enum BaseSource {
    /// A tree (a rootfs tarball or directory source).
    Tree(FileTree),
    /// A verified root filesystem tarball in the cache (a `debian` mmdebstrap build), used as
    /// a layer verbatim and streamed: a base of a few GB never sits in memory.
    Tarball {
        path: PathBuf,
        /// Its sha256 (hex), verified when it was resolved.
        sha256: String,
    },
    /// An image whose layers are used as they are.
    Image(Box<ImageSource>),
}

impl BaseSource {
    /// The base's paths, kinds, modes and link targets (file contents dropped for a tarball,
    /// except the few files the SBOM reads: [`crate::sbom::reads`]).
    pub fn metadata_tree(&self) -> Result<FileTree> {
        match self {
            BaseSource::Tree(t) => Ok(t.clone()),
            BaseSource::Tarball { path, .. } => {
                let f = std::fs::File::open(path)
                    .map_err(IoError::at("reading the base tarball", path))?;
                let mut tree = FileTree::new();
                // Streamed into its layer as it is: names must already be relative.
                let f = std::io::BufReader::new(f);
                kiln_layers::apply_layer_selected(&mut tree, f, crate::sbom::reads, true).map_err(
                    |source| Error::Base {
                        what: format!("the base tarball {}", path.display()),
                        source,
                    },
                )?;
                Ok(tree)
            }
            BaseSource::Image(_) => Ok(FileTree::new()),
        }
    }
}

/// Everything the sources of a plan provide.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Component (`etcd`, `zookeeper`, `mesos`, `marathon`, `docker`, `calico-cni`) → the
    /// files its sources place on the host. Components without sources are absent.
    pub trees: BTreeMap<String, FileTree>,
    /// The base; `None` only when nothing names one (never for a validated plan with a base
    /// image, which is pulled).
    pub base: Option<BaseSource>,
    /// Component (`calico-node`, `calico-libnetwork`) → its container image.
    pub images: BTreeMap<String, ImageSource>,
    /// Every lock entry used, in lock order.
    pub lock: Vec<LockEntry>,
    /// Entries recorded in this run (sources without a pinned digest): report them.
    pub recorded: Vec<LockEntry>,
    /// Corrupt cache entries found in this run, removed and restored from their sources:
    /// report them.
    pub repaired: Vec<Repaired>,
}

/// A cache entry that did not hash to its name: it was removed and restored from its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cache entry {} was corrupt (its sha256 was {actual}); removed it and restored it from {origin}", path.display())]
pub struct Repaired {
    /// The entry (`CACHE/blobs/sha256/<hex>`).
    pub path: PathBuf,
    /// What its content hashed to.
    pub actual: String,
    /// Where it came from again: the lock origin (URL, `deb:…`, `image:…`, `debian:…`).
    pub origin: String,
}

/// Something a source needs that could not be provided, with how to provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Component (`etcd`) or `base`.
    pub component: String,
    /// The origin as recorded in the lock (`https://…`, `deb:etcd-server`, `image:…`).
    pub origin: String,
    /// `sha256:<hex>` when known.
    pub digest: Option<String>,
    /// Why it is missing and how to provide it.
    pub reason: String,
}

/// Errors from resolving sources.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Downloaded or local bytes do not match their pinned digest.
    #[error("sha256 mismatch for {origin}\n  expected sha256:{expected} (from {pinned_by})\n  actual   sha256:{actual}\nnothing was written; if the new artifact is trusted, update the digest in {pinned_by}")]
    DigestMismatch {
        origin: String,
        expected: String,
        actual: String,
        /// `the spec` or the lock file path.
        pinned_by: String,
    },
    /// A cache entry does not hash to its name; it was removed.
    #[error("cache entry {} is corrupt (its sha256 is {actual}); it was removed — run again to restore it from its source, or `kiln cache import FILE`", path.display())]
    CorruptCache { path: PathBuf, actual: String },
    /// An HTTP download failed after retries.
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    /// Artifacts that cannot be provided (offline, `--locked`, failed fetches): all of them.
    #[error("{}", missing_text(.0))]
    Unavailable(Vec<Missing>),
    /// Upstream artifacts with neither a spec source nor a catalog default.
    #[error("{}", gaps_text(.0))]
    NoSource(Vec<catalog::Gap>),
    /// An archive (`.deb`, `.rpm`, tarball) is malformed or unsupported.
    #[error("{what}: {reason}")]
    Archive { what: String, reason: String },
    /// Reading a tar payload failed (including unsafe entries).
    #[error("reading {what}: {source}")]
    Layer {
        what: String,
        #[source]
        source: kiln_layers::Error,
    },
    /// Reading a base's tar failed, or a member of it was refused ([`base_hint`] says what a
    /// base must be).
    #[error("reading {what}: {source}{}", base_hint(.source))]
    Base {
        /// The base and the file it was read from.
        what: String,
        #[source]
        source: kiln_layers::Error,
    },
    /// Placing files failed (two sources of a component put different files at one path).
    #[error("placing files of {component}: {source}")]
    Tree {
        component: String,
        #[source]
        source: kiln_layers::TreeError,
    },
    /// Reading or pulling an image failed.
    #[error("image {reference}: {source}")]
    Image {
        reference: String,
        #[source]
        source: kiln_oci::Error,
    },
    /// An external tool (`apt-get`, `mmdebstrap`) failed.
    #[error("{tool} failed: {detail}")]
    Tool { tool: String, detail: String },
    /// The lock file cannot be read or written.
    #[error("lock file {path}: {reason}")]
    Lock { path: PathBuf, reason: String },
    /// A source cannot be used as written.
    #[error("{key}: {reason}")]
    Source { key: String, reason: String },
    /// An I/O error on a path.
    #[error(transparent)]
    Io(#[from] IoError),
}

/// What to do about a base with a refused member, appended to the error (empty for other
/// errors).
///
/// Every base, whatever it comes in (an image's layers from a registry, an OCI layout or a
/// docker-archive; the mmdebstrap tarball; a tarball or `.deb` as `base.source`), follows one
/// rule: member names and hard-link targets are relative paths inside its root, and a
/// leading `/` is refused exactly like `..`. Refusing rather than normalising, because a
/// base's layers are published byte for byte: kiln could read `/etc/passwd` as `etc/passwd`,
/// but the image it writes would still carry the absolute name to every other reader (GNU tar
/// and Docker strip it, others write outside their root or miss the file), and one rule for
/// every kind of base is simpler to state and to check than normalising some of them.
/// Symlink targets may be absolute: they are resolved inside the root filesystem.
pub fn base_hint(e: &kiln_layers::Error) -> &'static str {
    match e {
        kiln_layers::Error::UnsafeEntry { .. } => {
            "\n  a base's member names and hard-link targets must be relative paths inside its \
             root: a leading '/' is refused like '..', since the base's layers are published \
             as they are; re-create the base with relative names (GNU tar writes them: \
             `tar -C ROOT -cf base.tar .`)"
        }
        _ => "",
    }
}

/// A `Result` alias for source operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether a full disk (or an exhausted quota) caused this: no other source or mirror
    /// helps then, only space.
    pub fn is_disk_full(&self) -> bool {
        IoError::find_disk_full(self).is_some()
    }
}

fn missing_text(m: &[Missing]) -> String {
    let mut s = format!("{} artifact(s) cannot be provided:\n", m.len());
    for x in m {
        let digest = x
            .digest
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        s.push_str(&format!(
            "  - {}: {}{digest}\n    {}\n",
            x.component, x.origin, x.reason
        ));
    }
    s.push_str(
        "provide them with `kiln cache import FILE...` (files with the pinned sha256), point \
`--mirror URL|DIR` at a copy of the upstream files (MIRROR/HOST/PATH), or run `kiln fetch SPEC` \
where the network is reachable and carry the cache over (`--cache DIR`)",
    );
    s
}

fn gaps_text(gaps: &[catalog::Gap]) -> String {
    let mut s = format!(
        "{} upstream artifact(s) have no source to fetch (kiln check names the spec line):",
        gaps.len()
    );
    for g in gaps {
        s.push_str(&format!(
            "\n- {}: {}",
            g.key,
            g.text().replace('\n', "\n  ")
        ));
    }
    s
}

/// `sha256:<hex>` → `<hex>`; a bare hex passes through. Lowercased.
pub fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_ascii_lowercase()
}

#[cfg(test)]
mod epoch_tests {
    /// `kiln fetch` and `kiln lock` take their options from [`super::SourceOptions::new`];
    /// `kiln build` from `build::DEFAULT_EPOCH`: the Debian base's cache key must agree.
    #[test]
    fn fetch_and_build_key_the_debian_base_alike() {
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            let o = super::SourceOptions::new(std::path::Path::new("."));
            assert_eq!(o.source_date_epoch, crate::stages::DEFAULT_EPOCH);
        }
    }
}
