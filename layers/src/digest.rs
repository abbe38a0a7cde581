//! Content digests in OCI form (`algorithm:hex`), computed while bytes stream past.
//!
//! One [`Digest`] type names blobs everywhere in kiln: layers, the blob store, OCI documents
//! and the registry client. It follows the OCI image-spec descriptor grammar restricted to the
//! registered algorithms: `sha256:` + 64 or `sha512:` + 128 lowercase hex digits. It parses
//! with [`str::parse`], prints and (de)serializes as that string, so JSON holding digests keeps
//! its exact bytes.

use sha2::{Digest as _, Sha256, Sha512};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A digest algorithm registered by the OCI image spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, what kiln writes.
    #[default]
    Sha256,
    /// SHA-512, which registries may serve.
    Sha512,
}

impl Algorithm {
    /// The name in a digest string (`sha256`), also the blob directory in an OCI layout.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the raw digest in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Room for the longest supported digest (sha512); shorter ones are zero-padded so the derived
/// comparisons stay correct.
const MAX_LEN: usize = 64;

/// A content digest: an [`Algorithm`] and the raw hash bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algo: Algorithm,
    bytes: [u8; MAX_LEN],
}

/// A string that is not a valid digest, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {digest:?}: {reason}")]
pub struct ParseDigestError {
    /// The rejected text.
    pub digest: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Digest {
    /// A digest from raw hash bytes; `None` when their length does not fit `algo`.
    pub fn from_bytes(algo: Algorithm, raw: &[u8]) -> Option<Self> {
        (raw.len() == algo.byte_len()).then(|| {
            let mut bytes = [0; MAX_LEN];
            bytes[..raw.len()].copy_from_slice(raw);
            Digest { algo, bytes }
        })
    }

    /// The `algo` digest of `data`.
    pub fn of(algo: Algorithm, data: &[u8]) -> Self {
        let mut h = Hasher::new(algo);
        h.update(data);
        h.finish()
    }

    /// The sha256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self::of(Algorithm::Sha256, data)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algo
    }

    /// The raw hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algo.byte_len()]
    }

    /// Lowercase hex, without the algorithm prefix (the blob file name).
    pub fn hex(&self) -> String {
        hex::encode(self.as_bytes())
    }

    /// Whether `data` hashes to this digest (with this digest's algorithm).
    pub fn verify(&self, data: &[u8]) -> bool {
        Self::of(self.algo, data) == *self
    }
}

impl FromStr for Digest {
    type Err = ParseDigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseDigestError {
            digest: s.to_string(),
            reason,
        };
        let (name, encoded) = s
            .split_once(':')
            .ok_or_else(|| err("expected algorithm:hex, there is no ':'".into()))?;
        let algo = Algorithm::from_name(name).ok_or_else(|| {
            err(format!(
                "unsupported algorithm {name:?} (expected sha256 or sha512)"
            ))
        })?;
        let want = algo.byte_len() * 2;
        if encoded.len() != want {
            return Err(err(format!(
                "{name} needs {want} hex digits, got {}",
                encoded.len()
            )));
        }
        if !encoded
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(err("the hex part must be lowercase 0-9a-f".into()));
        }
        let mut bytes = [0; MAX_LEN];
        hex::decode_to_slice(encoded, &mut bytes[..algo.byte_len()])
            .map_err(|e| err(e.to_string()))?;
        Ok(Digest { algo, bytes })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        other.parse::<Digest>().is_ok_and(|d| d == *self)
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hash of either algorithm.
#[derive(Clone)]
pub struct Hasher(Inner);

#[derive(Clone)]
enum Inner {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hasher").field(&self.algorithm()).finish()
    }
}

impl Hasher {
    /// A fresh hash.
    pub fn new(algo: Algorithm) -> Self {
        Hasher(match algo {
            Algorithm::Sha256 => Inner::Sha256(Sha256::new()),
            Algorithm::Sha512 => Inner::Sha512(Sha512::new()),
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.0 {
            Inner::Sha256(_) => Algorithm::Sha256,
            Inner::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Sha256(h) => h.update(data),
            Inner::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        let mut bytes = [0; MAX_LEN];
        let algo = self.algorithm();
        match self.0 {
            Inner::Sha256(h) => bytes[..32].copy_from_slice(&h.finalize()),
            Inner::Sha512(h) => bytes.copy_from_slice(&h.finalize()),
        }
        Digest { algo, bytes }
    }
}

/// A writer that hashes and counts every byte it passes on to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W> fmt::Debug for HashingWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingWriter")
            .field("hasher", &self.hasher)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`, hashing with sha256.
    pub fn new(inner: W) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }
    /// Wraps `inner`, hashing with `algo`.
    pub fn with_algorithm(inner: W, algo: Algorithm) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(algo),
            count: 0,
        }
    }
    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The inner writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.hasher.update(buf);
        self.count += buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R> fmt::Debug for HashingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashingReader")
            .field("hasher", &self.hasher)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, hashing with sha256.
    pub fn new(inner: R) -> Self {
        Self::with_algorithm(inner, Algorithm::Sha256)
    }
    /// Wraps `inner`, hashing with `algo`.
    pub fn with_algorithm(inner: R, algo: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algo),
            count: 0,
        }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// The digest and byte count of everything read.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
    /// Returns the inner reader, the digest and the byte count.
    pub fn into_parts(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
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

/// Hashes a whole stream with `algo`; returns its digest and size. Reads in large blocks, so
/// an unbuffered file is fine.
pub fn hash_reader(mut reader: impl Read, algo: Algorithm) -> io::Result<(Digest, u64)> {
    let mut h = Hasher::new(algo);
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((h.finish(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const EMPTY_512: &str =
        "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
                             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e";

    #[test]
    fn empty_digest_is_the_well_known_one() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"").unwrap();
        let (_, d, n) = w.finish();
        assert_eq!(n, 0);
        assert_eq!(d.to_string(), EMPTY_256);
        assert_eq!(Digest::sha256_of(b""), d);
        assert_eq!(Digest::of(Algorithm::Sha512, b"").to_string(), EMPTY_512);
    }

    #[test]
    fn writer_hashes_what_it_passes_on() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (inner, d, n) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(n, 11);
        assert_eq!(d, Digest::sha256_of(b"hello world"));
    }

    #[test]
    fn reader_hashes_either_algorithm() {
        let (d, n) = hash_reader(&b"hello world"[..], Algorithm::Sha512).unwrap();
        assert_eq!(n, 11);
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d, Digest::of(Algorithm::Sha512, b"hello world"));
        assert!(d.verify(b"hello world"));
        assert!(!d.verify(b"hello world!"));
        let mut w = HashingWriter::with_algorithm(io::sink(), Algorithm::Sha512);
        w.write_all(b"hello world").unwrap();
        assert_eq!(w.finish().1, d);
    }

    #[test]
    fn parses_good_sha256_and_sha512() {
        let d: Digest = EMPTY_256.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d, Digest::sha256_of(b""));
        assert_eq!(d.to_string(), EMPTY_256);
        assert_eq!(d.hex(), &EMPTY_256[7..]);
        let d: Digest = EMPTY_512.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.as_bytes().len(), 64);
        assert_eq!(d.to_string(), EMPTY_512);
        assert!(d.verify(b""));
    }

    #[test]
    fn rejects_bad_digests_and_says_why() {
        let bad = |s: &str, why: &str| {
            let e = s.parse::<Digest>().expect_err(s);
            let msg = e.to_string();
            assert!(msg.contains(&format!("{s:?}")), "{msg}");
            assert!(msg.contains(why), "{msg}");
        };
        bad("sha256:abc", "needs 64 hex digits, got 3");
        bad(&EMPTY_256[..70], "needs 64 hex digits");
        bad(
            &format!("sha512:{}", &EMPTY_256[7..]),
            "needs 128 hex digits",
        );
        bad(&EMPTY_256.to_uppercase().replace("SHA", "sha"), "lowercase");
        bad(
            &EMPTY_256.replace("sha256", "md5"),
            "unsupported algorithm \"md5\"",
        );
        bad(&EMPTY_256.replace(':', ""), "no ':'");
        bad(&EMPTY_256[7..], "no ':'");
        bad(&EMPTY_256.replace("e3", "g3"), "lowercase");
    }

    #[test]
    fn serde_round_trips_as_the_string_form() {
        for s in [EMPTY_256, EMPTY_512] {
            let d: Digest = s.parse().unwrap();
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        }
        let e = serde_json::from_str::<Digest>("\"sha256:00\"").expect_err("short");
        assert!(e.to_string().contains("invalid digest"), "{e}");
    }

    #[test]
    fn digests_of_different_algorithms_differ() {
        let a = Digest::of(Algorithm::Sha256, b"x");
        let b = Digest::of(Algorithm::Sha512, b"x");
        assert_ne!(a, b);
        assert!(a == a.to_string().as_str());
        assert!(a != b.to_string().as_str());
        assert!(Digest::from_bytes(Algorithm::Sha512, a.as_bytes()).is_none());
        assert_eq!(Digest::from_bytes(Algorithm::Sha256, a.as_bytes()), Some(a));
    }
}
