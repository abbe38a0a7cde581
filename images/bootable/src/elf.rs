//! Just enough of ELF64 (little-endian, the x86-64 images kiln builds) to copy a dynamically
//! linked program into an initramfs: its interpreter (`PT_INTERP`) and the libraries it
//! needs (`DT_NEEDED`), read from the file's own dynamic section.

use crate::{Error, Result};

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

/// What the dynamic loader needs to know to run a program or load a library.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dynamic {
    /// The program interpreter (`/lib64/ld-linux-x86-64.so.2`), if any.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in file order.
    pub needed: Vec<String>,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}
fn cstr_at(b: &[u8], off: usize) -> Option<String> {
    let rest = b.get(off..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// Parses `bytes` (`what` names it in errors). A static program gives an empty [`Dynamic`].
pub fn parse(bytes: &[u8], what: &str) -> Result<Dynamic> {
    let bad = |reason: &str| Error::invalid(format!("ELF file {what}"), reason.to_string());
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(bad("no ELF magic"));
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(bad("not a little-endian 64-bit ELF file"));
    }
    let trunc = || bad("truncated header");
    let phoff = u64_at(bytes, 0x20).ok_or_else(trunc)? as usize;
    let phentsize = u16_at(bytes, 0x36).ok_or_else(trunc)? as usize;
    let phnum = u16_at(bytes, 0x38).ok_or_else(trunc)? as usize;
    let mut segments = Vec::with_capacity(phnum);
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let seg = (|| {
            Some(Segment {
                kind: u32_at(bytes, at)?,
                offset: u64_at(bytes, at + 8)?,
                vaddr: u64_at(bytes, at + 16)?,
                filesz: u64_at(bytes, at + 32)?,
            })
        })()
        .ok_or_else(|| bad("truncated program header"))?;
        segments.push(seg);
    }
    let mut out = Dynamic::default();
    if let Some(interp) = segments.iter().find(|s| s.kind == PT_INTERP) {
        out.interpreter =
            Some(cstr_at(bytes, interp.offset as usize).ok_or_else(|| bad("bad PT_INTERP"))?);
    }
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Ok(out);
    };
    // (tag, value) pairs up to DT_NULL.
    let mut entries = Vec::new();
    let mut at = dynamic.offset as usize;
    let end = (dynamic.offset + dynamic.filesz) as usize;
    while at + 16 <= end {
        let tag = u64_at(bytes, at).ok_or_else(|| bad("truncated dynamic section"))?;
        let val = u64_at(bytes, at + 8).ok_or_else(|| bad("truncated dynamic section"))?;
        if tag == DT_NULL {
            break;
        }
        entries.push((tag, val));
        at += 16;
    }
    let strtab_addr = entries
        .iter()
        .find(|(t, _)| *t == DT_STRTAB)
        .map(|(_, v)| *v)
        .ok_or_else(|| bad("dynamic section without DT_STRTAB"))?;
    // DT_STRTAB is a virtual address: map it through the PT_LOAD segment that holds it.
    let strtab = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find(|s| strtab_addr >= s.vaddr && strtab_addr < s.vaddr + s.filesz)
        .map(|s| (strtab_addr - s.vaddr + s.offset) as usize)
        .ok_or_else(|| bad("DT_STRTAB is outside every loaded segment"))?;
    for (tag, val) in entries {
        if tag == DT_NEEDED {
            let name = cstr_at(bytes, strtab + val as usize)
                .ok_or_else(|| bad("DT_NEEDED outside the string table"))?;
            out.needed.push(name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The build machine's veritysetup (Debian `cryptsetup-bin`, which the boot tests need
    /// anyway): the libraries `ldd`-equivalent reading must find.
    #[test]
    fn reads_interpreter_and_needed_of_a_real_binary() {
        let path = std::path::Path::new("/usr/sbin/veritysetup");
        assert!(
            path.is_file(),
            "this test needs /usr/sbin/veritysetup (Debian package `cryptsetup-bin`)"
        );
        let d = parse(&std::fs::read(path).unwrap(), "veritysetup").unwrap();
        assert_eq!(
            d.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        for lib in ["libcryptsetup.so.12", "libc.so.6", "libpopt.so.0"] {
            assert!(d.needed.iter().any(|n| n == lib), "{lib} not in {d:?}");
        }
        // A library has no interpreter but has needs; a static program has neither.
        let libc = parse(
            &std::fs::read("/lib/x86_64-linux-gnu/libcryptsetup.so.12").unwrap(),
            "libcryptsetup",
        )
        .unwrap();
        assert_eq!(libc.interpreter, None);
        assert!(libc.needed.iter().any(|n| n == "libc.so.6"), "{libc:?}");
        let busybox = parse(&kiln_test_support::busybox(), "busybox").unwrap();
        assert_eq!(busybox, Dynamic::default(), "Debian's busybox is static");
    }

    #[test]
    fn rejects_what_is_not_elf64() {
        assert!(parse(b"#!/bin/sh\n", "script").is_err());
        let mut elf32 = b"\x7fELF\x01\x01".to_vec();
        elf32.resize(64, 0);
        assert!(parse(&elf32, "elf32").is_err());
        let mut truncated = b"\x7fELF\x02\x01".to_vec();
        truncated.resize(0x30, 0);
        assert!(parse(&truncated, "short").is_err());
    }
}
