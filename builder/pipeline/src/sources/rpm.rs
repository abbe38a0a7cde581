//! `.rpm` packages: a 96-byte lead, a signature header (padded to 8 bytes), the main header,
//! then the payload: a cpio archive (`newc`), compressed with gzip, xz or zstd. Only what is
//! needed to find and read the payload is parsed; scriptlets are not run.

use std::collections::HashMap;

use kiln_layers::FileTree;

use super::{Error, Result};

const LEAD: usize = 96;
const HEADER_MAGIC: [u8; 3] = [0x8e, 0xad, 0xe8];
const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_PAYLOADFORMAT: u32 = 1124;
const TAG_PAYLOADCOMPRESSOR: u32 = 1125;
/// Type of string tags.
const RPM_STRING: u32 = 6;

/// The parts of an rpm header kiln uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpmInfo {
    pub name: String,
    pub version: String,
    pub release: String,
    /// `cpio` (the only one supported).
    pub payload_format: String,
    /// `gzip`, `xz`, `zstd`, … (absent in old packages: gzip).
    pub compressor: String,
    /// Offset of the payload in the file.
    pub payload_offset: usize,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one header structure at `pos`; returns string tags and the end offset.
fn header(what: &str, b: &[u8], pos: usize) -> Result<(HashMap<u32, String>, usize)> {
    let bad = |reason: String| Error::Archive {
        what: what.into(),
        reason,
    };
    if b.get(pos..pos + 3) != Some(&HEADER_MAGIC[..]) {
        return Err(bad(format!("no rpm header magic at byte {pos}")));
    }
    let n = be32(b, pos + 8).ok_or_else(|| bad("truncated header".into()))? as usize;
    let size = be32(b, pos + 12).ok_or_else(|| bad("truncated header".into()))? as usize;
    if n > 1 << 16 || size > 1 << 28 {
        return Err(bad(format!(
            "implausible header ({n} entries, {size} bytes)"
        )));
    }
    let index = pos + 16;
    let store = index + 16 * n;
    let end = store + size;
    if end > b.len() {
        return Err(bad(format!(
            "header at byte {pos} runs past the end of the file"
        )));
    }
    let mut tags = HashMap::new();
    for i in 0..n {
        let e = index + 16 * i;
        let (tag, ty, off) = (be32(b, e), be32(b, e + 4), be32(b, e + 8));
        let (Some(tag), Some(ty), Some(off)) = (tag, ty, off) else {
            continue;
        };
        if ty != RPM_STRING {
            continue;
        }
        let start = store + off as usize;
        if start >= end {
            return Err(bad(format!("tag {tag} points outside its header")));
        }
        let s = &b[start..end];
        let len = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        tags.insert(tag, String::from_utf8_lossy(&s[..len]).into_owned());
    }
    Ok((tags, end))
}

/// Reads lead and headers.
pub fn info(what: &str, b: &[u8]) -> Result<RpmInfo> {
    if !b.starts_with(&[0xed, 0xab, 0xee, 0xdb]) || b.len() < LEAD {
        return Err(Error::Archive {
            what: what.into(),
            reason: "not an rpm (no lead magic ed ab ee db)".into(),
        });
    }
    let (_, sig_end) = header(what, b, LEAD)?;
    let main = sig_end.div_ceil(8) * 8;
    let (tags, end) = header(what, b, main)?;
    let get = |t: u32| tags.get(&t).cloned().unwrap_or_default();
    let mut compressor = get(TAG_PAYLOADCOMPRESSOR);
    if compressor.is_empty() {
        compressor = "gzip".into();
    }
    let mut payload_format = get(TAG_PAYLOADFORMAT);
    if payload_format.is_empty() {
        payload_format = "cpio".into();
    }
    Ok(RpmInfo {
        name: get(TAG_NAME),
        version: get(TAG_VERSION),
        release: get(TAG_RELEASE),
        payload_format,
        compressor,
        payload_offset: end,
    })
}

/// The files an rpm installs, from its cpio payload.
pub fn payload_tree(what: &str, b: &[u8]) -> Result<FileTree> {
    let i = info(what, b)?;
    let bad = |reason: String| Error::Archive {
        what: what.into(),
        reason,
    };
    if i.payload_format != "cpio" {
        return Err(bad(format!(
            "payload format {:?} is not supported (only cpio)",
            i.payload_format
        )));
    }
    let payload = &b[i.payload_offset..];
    if !matches!(i.compressor.as_str(), "gzip" | "zstd" | "xz") {
        return Err(bad(format!(
            "payload compressor {:?} is not supported (kiln reads gzip, xz and zstd)",
            i.compressor
        )));
    }
    let layer = |source| Error::Layer {
        what: what.into(),
        source,
    };
    let plain = kiln_layers::decompress_all(payload).map_err(layer)?;
    kiln_layers::read_cpio(&plain).map_err(layer)
}

#[cfg(test)]
mod tests {
    use kiln_layers::EntryKind;

    fn newc(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut v =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        )
            .into_bytes();
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn cpio_reads_files_and_refuses_escapes() {
        let mut a = newc("./usr/bin/x", 0o100755, b"bin");
        a.extend(newc("./usr/bin/y", 0o120777, b"x"));
        a.extend(newc("TRAILER!!!", 0, b""));
        let t = kiln_layers::read_cpio(&a).unwrap();
        assert_eq!(t.get("/usr/bin/x").unwrap().mode, 0o755);
        assert_eq!(
            t.get("/usr/bin/y").unwrap().kind,
            EntryKind::Symlink("x".into())
        );
        let mut evil = newc("../etc/passwd", 0o100644, b"x");
        evil.extend(newc("TRAILER!!!", 0, b""));
        assert!(kiln_layers::read_cpio(&evil).is_err());
    }
}
