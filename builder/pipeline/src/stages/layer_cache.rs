//! Compressed layers cached by the digest of what went into them: the layer's content (the
//! sha256 of its uncompressed tar, or of the base tarball it is streamed from), the
//! compression and its level, `SOURCE_DATE_EPOCH`, the layer writer's format version and
//! kiln's version. An unchanged layer is never compressed twice, across builds and specs.
//!
//! Entries live under `CACHE/layers/`: `KEY.json` (the layer's digests and size) and the blob
//! under `blobs/sha256/HEX`. A hit is copied into the output, checked against its digest (a
//! reflink where the filesystem can, else a copy): output and cache never share an inode, so
//! a write to one cannot corrupt the other. An entry whose blob is missing is a miss; one
//! whose blob is truncated, whose record gives another size or whose blob has the wrong
//! content is corrupt: each is said the same way, in one warning line naming the blob and
//! what was wrong, removed, and the layer compressed anew (which rewrites the entry).
//!
//! Both files are written as `NAME.partial` and renamed into place. The writer holds an
//! exclusive `flock` on its partial file while it writes, and removes it on any error (a full
//! disk included: a partial copy of a large layer would otherwise fill the cache's file system
//! for every later build). A writer that dies leaves its partial file unlocked; each build
//! removes, when it opens the cache, the partial files that are unlocked and older than
//! itself, and leaves alone those of builds still writing (several builds may share a cache).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use kiln_layers::{Compression, Digest, FileTree, LayerBlob, LayerOptions};
use kiln_oci::BlobStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Bumped whenever the layer bytes for the same inputs would change.
const FORMAT: &str = "kiln-layer-cache-1";

/// What a layer is made from.
#[derive(Debug, Clone, Copy)]
pub enum LayerInput<'a> {
    /// A file tree, written as a deterministic tar.
    Tree(&'a FileTree),
    /// A root filesystem tarball streamed into a layer, known by its sha256.
    Tarball { sha256: &'a str },
}

/// A cached layer's description.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedLayer {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

impl From<&LayerBlob> for CachedLayer {
    fn from(b: &LayerBlob) -> Self {
        CachedLayer {
            digest: b.digest,
            diff_id: b.diff_id,
            size: b.size,
            media_type: b.media_type.to_string(),
        }
    }
}

/// The layer cache, or none (every layer compressed).
#[derive(Debug, Clone)]
pub struct LayerCache {
    root: Option<PathBuf>,
}

/// The suffix of a file being written; see the module doc.
const PARTIAL: &str = ".partial";

/// `PATH.partial`, where `path` is written before it is renamed into place.
fn partial_of(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(PARTIAL);
    PathBuf::from(p)
}

/// Whether `path` still names the open file `f` (a partial file may be renamed into place, or
/// removed, between someone's `open` and their `flock`).
fn still_at(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Opens `path` without truncating it and takes its `flock` without waiting; `None` when
/// someone else holds it or `path` moved meanwhile. On a file system without `flock` the file
/// is used unlocked (a concurrent writer of the same name writes the same bytes).
fn lock_existing_or_new(path: &Path, create: bool) -> io::Result<Option<File>> {
    let f = OpenOptions::new()
        .create(create)
        .truncate(false)
        .write(true)
        .open(path)?;
    let held = rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive);
    if held == Err(Errno::WOULDBLOCK) {
        return Ok(None);
    }
    Ok(still_at(&f, path).then_some(f))
}

/// Writes `dst` with `write` through `DST.partial`, holding the partial file's `flock`
/// meanwhile, and renames it into place. `Ok(false)`, writing nothing, when another build is
/// writing the same partial file (the same bytes: the name is a digest). On any error the
/// partial file is removed before the lock is released.
fn write_via_partial(
    dst: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<bool> {
    let tmp = partial_of(dst);
    let Some(mut f) = lock_existing_or_new(&tmp, true)? else {
        return Ok(false);
    };
    let written = (|| {
        f.set_len(0)?;
        write(&mut f)?;
        fs::rename(&tmp, dst)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map(|()| true)
}

/// What was wrong with a corrupt entry, found on a lookup.
fn size_fault(blob: &Path, hex: &str, recorded: u64, actual: u64) -> String {
    let whole = File::open(blob)
        .ok()
        .and_then(|f| kiln_layers::hash_reader(f, kiln_layers::Algorithm::Sha256).ok())
        .is_some_and(|(d, _)| d.hex() == hex);
    if whole || actual > recorded {
        // The blob is what its name says: its record is wrong (or the blob grew).
        format!("size mismatch: its record says {recorded} bytes, the blob has {actual}")
    } else {
        format!("truncated: {actual} of {recorded} bytes")
    }
}

/// A writer that only hashes.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LayerCache {
    /// A cache under `root` (`None`: no caching).
    pub fn new(root: Option<PathBuf>) -> Self {
        LayerCache { root }
    }

    /// Removes the partial files that writers which died left (see the module doc): those
    /// nobody holds locked and last written before `build_started`, so that a partial file a
    /// build creates after this one started is never taken for a dead one's. Returns how many
    /// were removed and their bytes. Failures are ignored: they only leave a file behind.
    pub fn remove_stale_partials(&self, build_started: SystemTime) -> (usize, u64) {
        let Some(root) = &self.root else {
            return (0, 0);
        };
        let (mut count, mut bytes) = (0, 0);
        for dir in [root.clone(), root.join("blobs/sha256")] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if !e.file_name().to_string_lossy().ends_with(PARTIAL) {
                    continue;
                }
                // A live writer holds its lock; the kernel dropped a dead one's.
                let Ok(Some(f)) = lock_existing_or_new(&path, false) else {
                    continue;
                };
                let Ok(meta) = f.metadata() else { continue };
                if meta.modified().map_or(true, |m| m >= build_started) {
                    continue;
                }
                if fs::remove_file(&path).is_ok() {
                    count += 1;
                    bytes += meta.len();
                }
            }
        }
        if count > 0 {
            tracing::info!(
                "layer cache: removed {count} partial file(s) ({bytes} bytes) left by builds \
                 that stopped while writing them"
            );
        }
        (count, bytes)
    }

    /// The key of a layer made from `input` with `opts`.
    pub fn key(input: LayerInput, opts: &LayerOptions) -> kiln_layers::Result<String> {
        let content = match input {
            LayerInput::Tree(t) => {
                let mut h = HashWriter(Sha256::new());
                kiln_layers::write_tar(t, opts.source_date_epoch, &mut h)?;
                format!("tree:{}", hex::encode(h.0.finalize()))
            }
            LayerInput::Tarball { sha256 } => format!("tarball:{sha256}"),
        };
        let compression = match opts.compression {
            Compression::None => "none".to_string(),
            Compression::Gzip { level } => format!("gzip-{level}"),
            Compression::Zstd { level } => format!("zstd-{level}"),
        };
        let mut h = Sha256::new();
        for part in [
            FORMAT,
            env!("CARGO_PKG_VERSION"),
            &content,
            &compression,
            &opts.source_date_epoch.to_string(),
        ] {
            h.update(part.as_bytes());
            h.update(b"\n");
        }
        Ok(hex::encode(h.finalize()))
    }

    fn entry(&self, key: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join(format!("{key}.json")))
    }

    fn blob(&self, hex: &str) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join("blobs/sha256").join(hex))
    }

    /// The cached layer for `key`, copied into the OCI layout at `oci` when present and
    /// whole; `None` on a miss. A corrupt entry (a truncated blob, a record giving another
    /// size, a blob with the wrong content: the copy is checked against the layer's digest) is
    /// said in one warning line naming the blob and what was wrong, removed and reported as a
    /// miss, so the layer is compressed anew and the entry rewritten.
    pub fn fetch(&self, key: &str, oci: &Path) -> Option<CachedLayer> {
        let entry = self.entry(key)?;
        let text = fs::read_to_string(&entry).ok()?;
        let layer: CachedLayer = match serde_json::from_str(&text) {
            Ok(l) => l,
            Err(e) => {
                self.corrupt(&entry, None, &format!("unreadable record: {e}"));
                return None;
            }
        };
        let hex = layer.digest.hex();
        let src = self.blob(&hex)?;
        // No blob: nothing is wrong with what is there, it is a miss.
        let len = fs::metadata(&src).ok()?.len();
        if len != layer.size {
            let fault = size_fault(&src, &hex, layer.size, len);
            self.corrupt(&entry, Some(&src), &fault);
            return None;
        }
        let dst = oci.join("blobs/sha256").join(&hex);
        if fs::metadata(&dst).is_ok_and(|m| m.len() == layer.size) {
            return Some(layer);
        }
        let cache = BlobStore::open(self.root.as_ref()?.join("blobs")).ok()?;
        let out = BlobStore::open(oci.join("blobs")).ok()?;
        match out.copy_from(&cache, &layer.digest) {
            Ok(()) => Some(layer),
            Err(kiln_oci::Error::DigestMismatch { actual, .. }) => {
                let fault = format!("digest mismatch: its sha256 is {}", actual.hex());
                self.corrupt(&entry, Some(&src), &fault);
                None
            }
            Err(_) => None,
        }
    }

    /// Says that the entry with record `entry` and blob `blob` is corrupt and why, in one
    /// line, the same for every fault, and removes it.
    fn corrupt(&self, entry: &Path, blob: Option<&Path>, fault: &str) {
        tracing::warn!(
            "layer cache entry {} is corrupt ({fault}); removed it, the layer is compressed anew",
            blob.unwrap_or(entry).display(),
        );
        if let Some(blob) = blob {
            let _ = fs::remove_file(blob);
        }
        let _ = fs::remove_file(entry);
    }

    /// Records a layer just written into the OCI layout at `oci`. Failures only cost a later
    /// recompression, so they are logged, not fatal; they leave no partial file behind.
    pub fn store(&self, key: &str, blob: &LayerBlob, oci: &Path) {
        let (Some(entry), Some(dst)) = (self.entry(key), self.blob(&blob.digest.hex())) else {
            return;
        };
        let src = oci.join("blobs/sha256").join(blob.digest.hex());
        let result = (|| -> io::Result<bool> {
            if let Some(dir) = dst.parent() {
                fs::create_dir_all(dir)?;
            }
            if !fs::metadata(&dst).is_ok_and(|m| m.len() == blob.size) {
                let copied =
                    write_via_partial(&dst, |out| io::copy(&mut File::open(&src)?, out).map(drop))?;
                if !copied {
                    // Another build is storing the same layer, and records it.
                    return Ok(false);
                }
            }
            let json = serde_json::to_string(&CachedLayer::from(blob)).map_err(io::Error::other)?;
            write_via_partial(&entry, |out| out.write_all(json.as_bytes()))
        })();
        if let Err(e) = result {
            let full = kiln_layers::IoError::find_disk_full(&e).is_some();
            tracing::warn!(
                "layer cache: could not record {} in {}: {e}{}; the layer stays uncached",
                blob.digest,
                self.root.as_deref().unwrap_or(Path::new("")).display(),
                if full { " (disk full)" } else { "" },
            );
        }
    }
}
