//! The content-addressed cache: `CACHE/blobs/sha256/<hex>` (the layout of an OCI blob store,
//! so image blobs and file artifacts share it), `CACHE/partial/` for resumable downloads and
//! `CACHE/refs/` for small name → digest records (e.g. a `debian` base's inputs → its tarball).
//!
//! A blob is written to a temporary file in the blob directory and renamed into place only
//! after its digest was checked, so a blob path never holds partial or wrong content and two
//! builds filling the cache at once are safe: both renames put identical bytes in place.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kiln_layers::IoError;
use kiln_oci::BlobStore;

use super::{hex_of, Error, Result};

/// An opened cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    store: BlobStore,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Streams `r` through sha256; returns `(hex, size)`.
pub fn hash_reader(r: impl Read) -> io::Result<(String, u64)> {
    let (digest, n) = kiln_layers::hash_reader(r, kiln_layers::Algorithm::Sha256)?;
    Ok((digest.hex(), n))
}

/// sha256 hex of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    kiln_layers::Digest::sha256_of(bytes).hex()
}

impl Cache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache> {
        for sub in ["blobs/sha256", "partial", "refs"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(IoError::at("creating cache directory", &d))?;
        }
        let store = BlobStore::open(root.join("blobs")).map_err(|source| Error::Image {
            reference: "cache".into(),
            source,
        })?;
        Ok(Cache {
            root: root.to_path_buf(),
            store,
        })
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store (`CACHE/blobs`), shared with images.
    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// Where the blob with this digest lives.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex_of(digest))
    }

    /// Whether a blob is present (not verified).
    pub fn contains(&self, digest: &str) -> bool {
        is_hex64(&hex_of(digest)) && self.blob_path(digest).is_file()
    }

    /// Reads a blob whole after checking its digest. A corrupt entry is removed and reported
    /// as [`Error::CorruptCache`].
    pub fn read_verified(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).map_err(IoError::at("reading cache entry", &path))?;
        let actual = sha256_hex(&bytes);
        if actual != hex_of(digest) {
            let _ = fs::remove_file(&path);
            return Err(Error::CorruptCache { path, actual });
        }
        Ok(bytes)
    }

    /// Streams a blob through sha256 (for large blobs); removes it when corrupt.
    pub fn verify(&self, digest: &str) -> Result<u64> {
        let path = self.blob_path(digest);
        let f = File::open(&path).map_err(IoError::at("opening cache entry", &path))?;
        let (actual, size) = hash_reader(f).map_err(IoError::at("reading cache entry", &path))?;
        if actual != hex_of(digest) {
            let _ = fs::remove_file(&path);
            return Err(Error::CorruptCache { path, actual });
        }
        Ok(size)
    }

    /// Moves a finished file (on the cache's filesystem, e.g. a completed partial download)
    /// into the store after hashing it. With `expected`, a mismatch deletes the file and
    /// returns [`Error::DigestMismatch`] naming `origin`. Returns `(hex, size)`.
    pub fn adopt(
        &self,
        file: &Path,
        expected: Option<(&str, &str)>,
        origin: &str,
    ) -> Result<(String, u64)> {
        let f = File::open(file).map_err(IoError::at("opening", file))?;
        let (actual, size) = hash_reader(f).map_err(IoError::at("reading", file))?;
        if let Some((want, pinned_by)) = expected {
            if hex_of(want) != actual {
                let _ = fs::remove_file(file);
                return Err(Error::DigestMismatch {
                    origin: origin.into(),
                    expected: hex_of(want),
                    actual,
                    pinned_by: pinned_by.into(),
                });
            }
        }
        let dest = self.blob_path(&actual);
        fs::rename(file, &dest).map_err(IoError::at("moving into the cache", &dest))?;
        Ok((actual, size))
    }

    /// Copies `reader` into the store through a temporary file, checked like [`Cache::adopt`].
    pub fn put_reader(
        &self,
        mut reader: impl Read,
        expected: Option<(&str, &str)>,
        origin: &str,
    ) -> Result<(String, u64)> {
        let dir = self.root.join("blobs/sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(IoError::at("creating temporary file in", &dir))?;
        io::copy(&mut reader, tmp.as_file_mut())
            .and_then(|_| tmp.as_file_mut().flush())
            .map_err(IoError::at("writing", tmp.path()))?;
        let (file, path) = tmp
            .keep()
            .map_err(|e| IoError::at("keeping temporary file", &dir)(e.error))?;
        drop(file);
        let r = self.adopt(&path, expected, origin);
        if r.is_err() {
            let _ = fs::remove_file(&path);
        }
        r
    }

    /// `kiln cache import FILE`: adds a file by its digest; returns `sha256:<hex>`.
    pub fn import(&self, file: &Path) -> Result<String> {
        let f = File::open(file).map_err(IoError::at("opening", file))?;
        let (hex, _) = self.put_reader(f, None, &file.display().to_string())?;
        Ok(format!("sha256:{hex}"))
    }

    /// A resumable partial download for `key` (a URL).
    pub fn partial_path(&self, key: &str) -> PathBuf {
        self.root
            .join("partial")
            .join(format!("{}.part", &sha256_hex(key.as_bytes())[..32]))
    }

    /// A recorded reference (`name` → digest), if any.
    pub fn get_ref(&self, name: &str) -> Option<String> {
        let p = self.root.join("refs").join(name);
        let s = fs::read_to_string(p).ok()?;
        let d = hex_of(s.trim());
        is_hex64(&d).then(|| format!("sha256:{d}"))
    }

    /// Records a reference atomically.
    pub fn set_ref(&self, name: &str, digest: &str) -> Result<()> {
        let text = format!("sha256:{}\n", hex_of(digest));
        write_atomic(&self.root.join("refs").join(name), text.as_bytes())
    }
}

/// Writes `bytes` to `dest` through a temporary file in the same directory and a rename, so a
/// reader sees the old content or the new, never a partial file.
pub(crate) fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(IoError::at("creating temporary file in", dir))?;
    tmp.write_all(bytes).map_err(IoError::at("writing", dest))?;
    tmp.persist(dest)
        .map_err(|e| IoError::at("writing", dest)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_adopt_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let f = dir.path().join("x");
        fs::write(&f, b"hello").unwrap();
        let d = cache.import(&f).unwrap();
        assert_eq!(d, format!("sha256:{}", sha256_hex(b"hello")));
        assert_eq!(cache.read_verified(&d).unwrap(), b"hello");
        fs::write(cache.blob_path(&d), b"hellp").unwrap();
        let e = cache.read_verified(&d).unwrap_err();
        assert!(matches!(e, Error::CorruptCache { .. }), "{e}");
        assert!(!cache.contains(&d));
        let wrong = sha256_hex(b"other");
        let e = cache
            .put_reader(&b"hello"[..], Some((&wrong, "the spec")), "x")
            .unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }));
        // Nothing but the directory is left behind.
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}
