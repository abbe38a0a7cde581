//! A streaming pass over a tar archive that drops extended attributes squashfs cannot store.
//!
//! squashfs keeps `user.`, `trusted.` and `security.` xattrs (so file capabilities survive)
//! but not POSIX ACLs (`system.posix_acl_*`), and tar2sqfs refuses the whole archive when it
//! meets one. Debian's systemd puts ACLs on `/var/log/journal`. This rewrites only the PAX
//! extended headers that carry such attributes (fixing their size and checksum); every other
//! byte is copied through unchanged.

use std::io::{self, Read, Write};

/// xattr name prefixes squashfs can store.
const KEPT_PREFIXES: &[&str] = &["user.", "trusted.", "security."];
/// PAX record keys that hold xattrs (GNU tar / star and libarchive spellings).
const XATTR_KEYS: &[&str] = &["SCHILY.xattr.", "LIBARCHIVE.xattr."];

/// Copies the tar stream `r` to `w`, dropping PAX xattr records squashfs cannot store; returns
/// "path: attribute" for each record dropped.
pub fn filter_xattrs<R: Read, W: Write>(mut r: R, mut w: W) -> io::Result<Vec<String>> {
    let mut dropped = Vec::new();
    // Attributes dropped from a PAX header whose member's path (in that header or, for
    // short names, in the next one) is not known yet.
    let mut pending: Vec<String> = Vec::new();
    let mut pending_path: Option<String> = None;
    let mut header = [0u8; 512];
    loop {
        if !read_block(&mut r, &mut header)? {
            break;
        }
        if header.iter().all(|&b| b == 0) {
            // End-of-archive marker: copy it and everything after (the second zero block,
            // padding) verbatim.
            w.write_all(&header)?;
            io::copy(&mut r, &mut w)?;
            break;
        }
        let size = parse_size(&header)?;
        let padded = size.div_ceil(512) * 512;
        if header[156] == b'x' {
            let mut data = vec![0u8; usize::try_from(padded).map_err(invalid)?];
            r.read_exact(&mut data)?;
            data.truncate(size as usize);
            let (kept, names) = filter_records(&data)?;
            if names.is_empty() {
                w.write_all(&header)?;
                w.write_all(&data)?;
                write_padding(&mut w, data.len())?;
            } else {
                pending_path = record_value(&data, "path");
                pending.extend(names);
                // A PAX header with no records left is left out: tar2sqfs rejects size 0.
                if !kept.is_empty() {
                    set_size(&mut header, kept.len() as u64);
                    w.write_all(&header)?;
                    w.write_all(&kept)?;
                    write_padding(&mut w, kept.len())?;
                }
            }
        } else {
            if !pending.is_empty() && !matches!(header[156], b'L' | b'K') {
                let path = pending_path.take().unwrap_or_else(|| ustar_path(&header));
                dropped.extend(pending.drain(..).map(|n| format!("{path}: {n}")));
            }
            w.write_all(&header)?;
            let copied = io::copy(&mut (&mut r).take(padded), &mut w)?;
            if copied != padded {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated tar member",
                ));
            }
        }
    }
    w.flush()?;
    Ok(dropped)
}

/// The member path of a ustar header (prefix and name).
fn ustar_path(h: &[u8; 512]) -> String {
    let field = |r: std::ops::Range<usize>| {
        let f = &h[r];
        let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
        String::from_utf8_lossy(&f[..end]).into_owned()
    };
    let (name, prefix) = (field(0..100), field(345..500));
    if prefix.is_empty() || &h[257..262] != b"ustar" {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

fn invalid<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("tar: {e}"))
}

/// Reads one 512-byte block; `false` at a clean end of stream.
fn read_block<R: Read>(r: &mut R, buf: &mut [u8; 512]) -> io::Result<bool> {
    let mut n = 0;
    while n < 512 {
        match r.read(&mut buf[n..]) {
            Ok(0) if n == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated tar header",
                ))
            }
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn write_padding<W: Write>(w: &mut W, len: usize) -> io::Result<()> {
    w.write_all(&[0u8; 512][..(512 - len % 512) % 512])
}

/// The size field: octal, or base-256 when its first byte has the high bit set.
fn parse_size(h: &[u8; 512]) -> io::Result<u64> {
    let field = &h[124..136];
    if field[0] & 0x80 != 0 {
        return Ok(field[1..]
            .iter()
            .fold(0u64, |a, &b| (a << 8) | u64::from(b)));
    }
    let text = std::str::from_utf8(field).map_err(invalid)?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).map_err(invalid)
}

/// Writes `size` (octal) and recomputes the header checksum.
fn set_size(h: &mut [u8; 512], size: u64) {
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Splits PAX data into records ("LEN key=value\n").
fn records(data: &[u8]) -> io::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let space = data[at..]
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| invalid("PAX record without length"))?;
        let len: usize = std::str::from_utf8(&data[at..at + space])
            .map_err(invalid)?
            .parse()
            .map_err(invalid)?;
        if len == 0 || at + len > data.len() {
            return Err(invalid("bad PAX record length"));
        }
        out.push(&data[at..at + len]);
        at += len;
    }
    Ok(out)
}

/// The key of a record.
fn key(record: &[u8]) -> &[u8] {
    let start = record.iter().position(|&b| b == b' ').map_or(0, |p| p + 1);
    let end = record
        .iter()
        .position(|&b| b == b'=')
        .unwrap_or(record.len());
    &record[start..end.max(start)]
}

/// The value of record `name` (for messages).
fn record_value(data: &[u8], name: &str) -> Option<String> {
    records(data).ok()?.into_iter().find_map(|r| {
        (key(r) == name.as_bytes()).then(|| {
            let eq = r.iter().position(|&b| b == b'=').unwrap_or(0);
            String::from_utf8_lossy(&r[eq + 1..r.len().saturating_sub(1)]).into_owned()
        })
    })
}

/// The records kept, and the xattr names dropped.
fn filter_records(data: &[u8]) -> io::Result<(Vec<u8>, Vec<String>)> {
    let mut kept = Vec::with_capacity(data.len());
    let mut dropped = Vec::new();
    for r in records(data)? {
        let k = String::from_utf8_lossy(key(r)).into_owned();
        let attr = XATTR_KEYS.iter().find_map(|p| k.strip_prefix(p));
        match attr {
            Some(name) if !KEPT_PREFIXES.iter().any(|p| name.starts_with(p)) => {
                dropped.push(name.to_string());
            }
            _ => kept.extend_from_slice(r),
        }
    }
    Ok((kept, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_acls_keeps_capabilities_and_everything_else() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o2755);
        h.set_size(0);
        b.append_pax_extensions([
            ("SCHILY.xattr.system.posix_acl_default", &b"\x02\0\0\0"[..]),
            ("SCHILY.xattr.user.keep", &b"v"[..]),
        ])
        .unwrap();
        b.append_data(&mut h.clone(), "var/log/journal", &[][..])
            .unwrap();
        let mut f = tar::Header::new_ustar();
        f.set_mode(0o755);
        f.set_size(3);
        b.append_pax_extensions([("SCHILY.xattr.security.capability", &b"cap"[..])])
            .unwrap();
        b.append_data(&mut f, "usr/bin/ping", &b"elf"[..]).unwrap();
        let input = b.into_inner().unwrap();

        let mut out = Vec::new();
        let dropped = filter_xattrs(&input[..], &mut out).unwrap();
        assert_eq!(dropped, ["var/log/journal: system.posix_acl_default"]);
        let mut a = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let xattrs: Vec<String> = e
                .pax_extensions()
                .unwrap()
                .into_iter()
                .flatten()
                .map(|x| x.unwrap().key().unwrap().to_string())
                .collect();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            seen.push((e.path().unwrap().display().to_string(), xattrs, data));
        }
        assert_eq!(
            seen,
            [
                (
                    "var/log/journal".into(),
                    vec!["SCHILY.xattr.user.keep".to_string()],
                    vec![]
                ),
                (
                    "usr/bin/ping".into(),
                    vec!["SCHILY.xattr.security.capability".to_string()],
                    b"elf".to_vec()
                ),
            ]
        );
        // Nothing to drop: the same bytes.
        let mut again = Vec::new();
        assert!(filter_xattrs(&out[..], &mut again).unwrap().is_empty());
        assert_eq!(again, out);
    }
}
