//! One decompress-by-magic reader for every archive kiln reads (layers, base tarballs, `.deb`
//! members, `.rpm` payloads, docker-archives): gzip (`1f 8b`), zstd (`28 b5 2f fd`), xz
//! (`fd 37 7a 58 5a 00`), anything else plain.

use std::borrow::Cow;
use std::io::{self, Read};

use crate::{Error, IoError, Result};

/// A compression format, as detected from the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Gzip,
    Zstd,
    Xz,
}

const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];

/// The format of a stream starting with `head` (at least 6 bytes for xz).
pub fn detect(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Zstd
    } else if head.starts_with(XZ_MAGIC) {
        Format::Xz
    } else {
        Format::Plain
    }
}

/// Wraps `r` in the decompressor its first bytes name. gzip and zstd stream; xz (small
/// archives: `.deb` members, `.rpm` payloads) is decoded in memory.
pub fn decompressed<'a, R: Read + 'a>(mut r: R) -> Result<Box<dyn Read + 'a>> {
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(IoError::new("reading archive")(e).into()),
        }
    }
    let stream = io::Cursor::new(head[..n].to_vec()).chain(r);
    Ok(match detect(&head[..n]) {
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Format::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| Error::Compress(format!("starting zstd decoder: {e}")))?,
        ),
        Format::Xz => {
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut io::BufReader::new(stream), &mut out)
                .map_err(|e| Error::Compress(format!("xz: {e}")))?;
            Box::new(io::Cursor::new(out))
        }
        Format::Plain => Box::new(stream),
    })
}

/// `bytes` decompressed as their magic says (borrowed when plain).
pub fn decompress_all(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if detect(bytes) == Format::Plain {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    decompressed(bytes)?
        .read_to_end(&mut out)
        .map_err(IoError::new("decompressing"))?;
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_format_round_trips() {
        let data = b"kiln decompress test".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::stream::encode_all(&data[..], 3).unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &data[..], &mut xz).unwrap();
        for (name, bytes) in [
            ("plain", data.clone()),
            ("gzip", gz),
            ("zstd", zst),
            ("xz", xz),
        ] {
            assert_eq!(
                decompress_all(&bytes).unwrap().as_ref(),
                &data[..],
                "{name}"
            );
        }
        assert_eq!(detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]), Format::Xz);
    }
}
