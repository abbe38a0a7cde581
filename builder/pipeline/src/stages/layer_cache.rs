//! Compressed layers cached by the digest of what went into them: the layer's content (the
//! sha256 of its uncompressed tar, or of the base tarball it is streamed from), the
//! compression and its level, `SOURCE_DATE_EPOCH`, the layer writer's format version and
//! kiln's version. An unchanged layer is never compressed twice, across builds and specs.
//!
//! Entries live under `CACHE/layers/`: `KEY.json` (the layer's digests and size) and the blob
//! under `blobs/sha256/HEX`. A hit is copied into the output, checked against its digest (a
//! reflink where the filesystem can, else a copy): output and cache never share an inode, so
//! a write to one cannot corrupt the other. An entry whose blob is missing, has the wrong size
//! or the wrong content is a miss and is rewritten.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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
    /// whole; `None` on a miss. The copy is checked against the layer's digest: a corrupt
    /// entry is named, removed and reported as a miss, so the layer is compressed anew and
    /// the entry rewritten.
    pub fn fetch(&self, key: &str, oci: &Path) -> Option<CachedLayer> {
        let entry = self.entry(key)?;
        let text = fs::read_to_string(&entry).ok()?;
        let layer: CachedLayer = serde_json::from_str(&text).ok()?;
        let hex = layer.digest.hex();
        let src = self.blob(&hex)?;
        if fs::metadata(&src).ok()?.len() != layer.size {
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
                tracing::warn!(
                    "layer cache entry {} is corrupt (its sha256 is {}); removed it, the layer \
                     is compressed anew",
                    src.display(),
                    actual.hex()
                );
                let _ = fs::remove_file(&src);
                let _ = fs::remove_file(&entry);
                None
            }
            Err(_) => None,
        }
    }

    /// Records a layer just written into the OCI layout at `oci`. Failures only cost a later
    /// recompression, so they are logged, not fatal.
    pub fn store(&self, key: &str, blob: &LayerBlob, oci: &Path) {
        let (Some(entry), Some(dst)) = (self.entry(key), self.blob(&blob.digest.hex())) else {
            return;
        };
        let result = (|| -> io::Result<()> {
            if let Some(dir) = dst.parent() {
                fs::create_dir_all(dir)?;
            }
            if !fs::metadata(&dst).is_ok_and(|m| m.len() == blob.size) {
                let tmp = dst.with_extension("partial");
                fs::copy(oci.join("blobs/sha256").join(blob.digest.hex()), &tmp)?;
                fs::rename(&tmp, &dst)?;
            }
            let json = serde_json::to_string(&CachedLayer::from(blob)).map_err(io::Error::other)?;
            let tmp = entry.with_extension("json.partial");
            fs::write(&tmp, json)?;
            fs::rename(&tmp, &entry)
        })();
        if let Err(e) = result {
            tracing::warn!("layer cache: could not record {}: {e}", blob.digest);
        }
    }
}
