//! Content-addressed blob store: `DIR/sha256/<hex>`, the `blobs/` directory of an OCI layout.
//!
//! Every write goes to a temporary file in the same directory and is renamed into place only
//! after its digest has been checked, so a blob path never holds partial or wrong content.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// Returns the hex part of a `sha256:<hex>` digest after checking its form.
pub fn digest_hex(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| Error::InvalidDigest(digest.to_string()))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::InvalidDigest(digest.to_string()));
    }
    Ok(hex)
}

/// `sha256:<hex>` of a byte slice.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A reader that hashes (sha256) and counts what passes through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `sha256:<hex>` and byte count of everything read.
    pub fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes a whole stream; returns `(sha256:<hex>, size)`.
pub fn hash_reader(reader: impl Read) -> io::Result<(String, u64)> {
    let mut h = HashingReader::new(reader);
    io::copy(&mut h, &mut io::sink())?;
    Ok(h.finish())
}

/// A blob directory laid out as `ROOT/sha256/<hex>`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) a blob store rooted at `root` (the `blobs` directory).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let dir = root.join("sha256");
        fs::create_dir_all(&dir).map_err(|e| Error::io("creating blob store", &dir, e))?;
        Ok(BlobStore { root })
    }

    /// The store's root (the `blobs` directory).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("sha256").join(digest_hex(digest)?))
    }

    /// Whether the blob is present (not verified).
    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Size of a present blob.
    pub fn size(&self, digest: &str) -> Result<u64> {
        let path = self.path(digest)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingBlob(digest.into())),
            Err(e) => Err(Error::io("reading blob metadata", path, e)),
        }
    }

    /// Opens a blob for streaming (not verified; see [`BlobStore::verify`]).
    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let path = self.path(digest)?;
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingBlob(digest.to_string())
            } else {
                Error::io("opening blob", path, e)
            }
        })
    }

    /// Reads a (small) blob whole and checks its digest.
    pub fn read_verified(&self, digest: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let path = self.path(digest)?;
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("reading blob", &path, e))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Streams a blob through sha256 and checks it; returns its size.
    pub fn verify(&self, digest: &str) -> Result<u64> {
        let path = self.path(digest)?;
        let (actual, size) = hash_reader(self.open_blob(digest)?)
            .map_err(|e| Error::io("reading blob", &path, e))?;
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(size)
    }

    /// Stores bytes; returns `(digest, size)`. Idempotent.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(String, u64)> {
        let digest = sha256_digest(bytes);
        if !self.contains(&digest) {
            self.put_reader(bytes, Some(&digest))?;
        }
        Ok((digest, bytes.len() as u64))
    }

    /// Streams `reader` into the store. With `expected`, the content must hash to it (otherwise
    /// nothing is stored and [`Error::DigestMismatch`] is returned). Returns `(digest, size)`.
    pub fn put_reader(&self, reader: impl Read, expected: Option<&str>) -> Result<(String, u64)> {
        if let Some(d) = expected {
            digest_hex(d)?;
        }
        let dir = self.root.join("sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("creating temporary blob", &dir, e))?;
        let mut hashing = HashingReader::new(reader);
        io::copy(&mut hashing, tmp.as_file_mut())
            .map_err(|e| Error::io("writing blob", tmp.path().to_path_buf(), e))?;
        let (digest, size) = hashing.finish();
        if let Some(expected) = expected {
            if expected != digest {
                return Err(Error::DigestMismatch {
                    what: "blob being stored".into(),
                    expected: expected.into(),
                    actual: digest,
                });
            }
        }
        let dest = self.path(&digest)?;
        tmp.as_file_mut()
            .flush()
            .map_err(|e| Error::io("writing blob", &dest, e))?;
        tmp.persist(&dest)
            .map_err(|e| Error::io("renaming blob into place", &dest, e.error))?;
        Ok((digest, size))
    }

    /// Copies a blob from another store, verifying its digest. The copy is a reflink where the
    /// filesystem has them (`FICLONE`: its own inode, extents shared copy-on-write), else a
    /// plain copy; never a hard link, so a write to one store's file cannot change the other's
    /// (a user's OCI layout, the cache, an output). A blob already in this store is kept.
    pub fn copy_from(&self, other: &BlobStore, digest: &str) -> Result<()> {
        let dest = self.path(digest)?;
        if dest.is_file() {
            return Ok(());
        }
        let src = other.path(digest)?;
        if src == dest {
            return Ok(());
        }
        let file = other.open_blob(digest)?;
        if self.reflink_in(&file, &src, digest)? {
            return Ok(());
        }
        self.put_reader(file, Some(digest)).map_err(|e| match e {
            // Name the blob that is wrong: the source.
            Error::DigestMismatch {
                expected, actual, ..
            } => Error::DigestMismatch {
                what: src.display().to_string(),
                expected,
                actual,
            },
            e => e,
        })?;
        Ok(())
    }

    /// Reflinks `src` into the store as `digest` after checking the clone's content; `false`
    /// when the filesystem cannot reflink it (nothing is left behind then).
    fn reflink_in(&self, src: &File, src_path: &Path, digest: &str) -> Result<bool> {
        let dir = self.root.join("sha256");
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("creating temporary blob", &dir, e))?;
        if rustix::fs::ioctl_ficlone(tmp.as_file(), src).is_err() {
            return Ok(false);
        }
        let (actual, _) = hash_reader(tmp.as_file_mut())
            .map_err(|e| Error::io("reading blob", tmp.path().to_path_buf(), e))?;
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: src_path.display().to_string(),
                expected: digest.into(),
                actual,
            });
        }
        let dest = self.path(digest)?;
        tmp.persist(&dest)
            .map_err(|e| Error::io("renaming blob into place", &dest, e.error))?;
        Ok(true)
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating temporary file", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .map_err(|e| Error::io("writing", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("renaming into place", path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_checks_form() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_hex(&d).is_ok());
        assert!(digest_hex("sha256:abc").is_err());
        assert!(digest_hex("sha512:e3b0").is_err());
        assert!(digest_hex(&d.to_uppercase()).is_err());
    }

    /// Regression: blobs were hard-linked between stores, so the cache shared inodes with a
    /// user's OCI layout and outputs with the cache.
    #[test]
    fn copy_from_never_shares_an_inode_and_checks_the_content() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let a = BlobStore::open(dir.path().join("a")).expect("store");
        let b = BlobStore::open(dir.path().join("b")).expect("store");
        let (d, _) = a.put_bytes(b"layer").expect("put");
        b.copy_from(&a, &d).expect("copy");
        let ino = |s: &BlobStore| fs::metadata(s.path(&d).expect("path")).expect("stat").ino();
        assert_ne!(ino(&a), ino(&b));
        assert_eq!(b.read_verified(&d).expect("read"), b"layer");
        // A corrupt source is refused, named, and nothing is stored.
        let (d2, _) = a.put_bytes(b"other").expect("put");
        fs::write(a.path(&d2).expect("path"), b"0ther").expect("corrupt");
        let c = BlobStore::open(dir.path().join("c")).expect("store");
        let e = c.copy_from(&a, &d2).expect_err("corrupt source");
        assert!(
            e.to_string()
                .contains(&a.path(&d2).expect("path").display().to_string()),
            "{e}"
        );
        assert_eq!(
            fs::read_dir(dir.path().join("c/sha256"))
                .expect("ls")
                .count(),
            0
        );
    }

    #[test]
    fn put_reader_rejects_wrong_digest_and_stores_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("store");
        let wrong = sha256_digest(b"other");
        let err = store
            .put_reader(&b"content"[..], Some(&wrong))
            .expect_err("mismatch");
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert_eq!(
            fs::read_dir(dir.path().join("sha256")).expect("ls").count(),
            0
        );
        let (d, n) = store.put_bytes(b"content").expect("put");
        assert_eq!(n, 7);
        assert_eq!(store.read_verified(&d).expect("read"), b"content");
    }
}
