//! Content-addressed blob store: `DIR/<algorithm>/<hex>` (`sha256`, `sha512`), the `blobs/`
//! directory of an OCI layout.
//!
//! Every write goes to a temporary file in the same directory and is renamed into place only
//! after its digest has been checked, so a blob path never holds partial or wrong content.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use kiln_layers::{hash_reader, Algorithm, Digest, HashingReader, IoError};

use crate::{Error, Result};

/// A blob directory laid out as `ROOT/<algorithm>/<hex>`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating if needed) a blob store rooted at `root` (the `blobs` directory).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let dir = root.join(Algorithm::Sha256.name());
        fs::create_dir_all(&dir).map_err(IoError::at("creating blob store", &dir))?;
        Ok(BlobStore { root })
    }

    /// The store's root (the `blobs` directory).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob named `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.algorithm_dir(digest.algorithm()).join(digest.hex())
    }

    fn algorithm_dir(&self, algo: Algorithm) -> PathBuf {
        self.root.join(algo.name())
    }

    /// Whether the blob is present (not verified).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size of a present blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingBlob(*digest)),
            Err(e) => Err(IoError::at("reading blob metadata", path)(e).into()),
        }
    }

    /// Opens a blob for streaming (not verified; see [`BlobStore::verify`]).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::MissingBlob(*digest)
            } else {
                IoError::at("opening blob", path)(e).into()
            }
        })
    }

    /// Reads a (small) blob whole and checks its digest.
    pub fn read_verified(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let path = self.path(digest);
        self.open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(IoError::at("reading blob", &path))?;
        let actual = Digest::of(digest.algorithm(), &bytes);
        check(&path.display().to_string(), digest, actual)?;
        Ok(bytes)
    }

    /// Streams a blob through its digest's algorithm and checks it; returns its size.
    pub fn verify(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        let (actual, size) = hash_reader(self.open_blob(digest)?, digest.algorithm())
            .map_err(IoError::at("reading blob", &path))?;
        check(&path.display().to_string(), digest, actual)?;
        Ok(size)
    }

    /// Stores bytes under their sha256; returns `(digest, size)`. Idempotent.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64)> {
        let digest = Digest::sha256_of(bytes);
        if !self.contains(&digest) {
            self.put_reader(bytes, Some(&digest))?;
        }
        Ok((digest, bytes.len() as u64))
    }

    /// Streams `reader` into the store. With `expected`, the content is hashed with its
    /// algorithm and must match (otherwise nothing is stored and [`Error::DigestMismatch`] is
    /// returned); without, it is stored under its sha256. Returns `(digest, size)`.
    pub fn put_reader(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let algo = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut tmp = self.temp_file(algo)?;
        let mut hashing = HashingReader::with_algorithm(reader, algo);
        io::copy(&mut hashing, tmp.as_file_mut())
            .map_err(IoError::at("writing blob", tmp.path().to_path_buf()))?;
        let (digest, size) = hashing.finish();
        if let Some(expected) = expected {
            check("blob being stored", expected, digest)?;
        }
        let dest = self.path(&digest);
        tmp.as_file_mut()
            .flush()
            .map_err(IoError::at("writing blob", &dest))?;
        tmp.persist(&dest)
            .map_err(|e| IoError::at("renaming blob into place", &dest)(e.error))?;
        Ok((digest, size))
    }

    /// Copies a blob from another store, verifying its digest. The copy is a reflink where the
    /// filesystem has them (`FICLONE`: its own inode, extents shared copy-on-write), else a
    /// plain copy; never a hard link, so a write to one store's file cannot change the other's
    /// (a user's OCI layout, the cache, an output). A blob already in this store is kept.
    pub fn copy_from(&self, other: &BlobStore, digest: &Digest) -> Result<()> {
        let dest = self.path(digest);
        if dest.is_file() {
            return Ok(());
        }
        let src = other.path(digest);
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
    fn reflink_in(&self, src: &File, src_path: &Path, digest: &Digest) -> Result<bool> {
        let mut tmp = self.temp_file(digest.algorithm())?;
        if rustix::fs::ioctl_ficlone(tmp.as_file(), src).is_err() {
            return Ok(false);
        }
        let (actual, _) = hash_reader(tmp.as_file_mut(), digest.algorithm())
            .map_err(IoError::at("reading blob", tmp.path().to_path_buf()))?;
        check(&src_path.display().to_string(), digest, actual)?;
        let dest = self.path(digest);
        tmp.persist(&dest)
            .map_err(|e| IoError::at("renaming blob into place", &dest)(e.error))?;
        Ok(true)
    }

    /// A temporary file in the directory of `algo`'s blobs (created if needed), to be renamed
    /// into place once its content is checked.
    fn temp_file(&self, algo: Algorithm) -> Result<tempfile::NamedTempFile> {
        let dir = self.algorithm_dir(algo);
        if algo != Algorithm::Sha256 {
            fs::create_dir_all(&dir).map_err(IoError::at("creating blob store", &dir))?;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(shared_mode())
            .tempfile_in(&dir)
            .map_err(IoError::at("creating temporary blob", &dir))?;
        Ok(tmp)
    }
}

/// [`Error::DigestMismatch`] naming `what` unless `actual` is `expected`.
pub(crate) fn check(what: &str, expected: &Digest, actual: Digest) -> Result<()> {
    if actual == *expected {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: Box::new(*expected),
            actual: Box::new(actual),
        })
    }
}

/// Blobs and layout files are shared, never secret: 0644, not the 0600 of a temporary file
/// (a web server publishing `dist/` runs as another user, and `kiln serve` refuses private
/// files on shared paths).
fn shared_mode() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(0o644)
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(shared_mode())
        .tempfile_in(dir)
        .map_err(IoError::at("creating temporary file", dir))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.flush())
        .map_err(IoError::at("writing", path))?;
    tmp.persist(path)
        .map_err(|e| IoError::at("renaming into place", path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_verifies_a_sha512_blob_under_blobs_sha512() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("store");
        let d = Digest::of(Algorithm::Sha512, b"from a sha512 registry");
        let (got, n) = store
            .put_reader(&b"from a sha512 registry"[..], Some(&d))
            .expect("put");
        assert_eq!((got, n), (d, 22));
        assert_eq!(store.path(&d), dir.path().join("sha512").join(d.hex()));
        assert!(store.contains(&d));
        assert_eq!(store.verify(&d).expect("verify"), 22);
        assert_eq!(
            store.read_verified(&d).expect("read"),
            b"from a sha512 registry"
        );
        // The same bytes under sha256 are another blob.
        assert!(!store.contains(&Digest::sha256_of(b"from a sha512 registry")));
        // Content that does not match is refused with both sha512 digests named.
        let wrong = Digest::of(Algorithm::Sha512, b"other");
        let e = store
            .put_reader(&b"content"[..], Some(&wrong))
            .expect_err("mismatch");
        assert!(
            e.to_string().contains(&wrong.to_string())
                && e.to_string()
                    .contains(&Digest::of(Algorithm::Sha512, b"content").to_string()),
            "{e}"
        );
        fs::write(store.path(&d), b"tampered").expect("corrupt");
        assert!(matches!(
            store.verify(&d),
            Err(Error::DigestMismatch { .. })
        ));
        let other = BlobStore::open(dir.path().join("other")).expect("store");
        assert!(other.copy_from(&store, &d).is_err());
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
        let ino = |s: &BlobStore| fs::metadata(s.path(&d)).expect("stat").ino();
        assert_ne!(ino(&a), ino(&b));
        assert_eq!(b.read_verified(&d).expect("read"), b"layer");
        // A corrupt source is refused, named, and nothing is stored.
        let (d2, _) = a.put_bytes(b"other").expect("put");
        fs::write(a.path(&d2), b"0ther").expect("corrupt");
        let c = BlobStore::open(dir.path().join("c")).expect("store");
        let e = c.copy_from(&a, &d2).expect_err("corrupt source");
        assert!(
            e.to_string().contains(&a.path(&d2).display().to_string()),
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
        let wrong = Digest::sha256_of(b"other");
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
