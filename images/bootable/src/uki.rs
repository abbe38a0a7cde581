//! The unified kernel image (UKI): one PE binary that UEFI firmware starts directly, made of
//! the role image's own systemd EFI stub (`linuxx64.efi.stub`, Debian package
//! `systemd-boot-efi`) with four sections added: `.osrel` (the image's `os-release`),
//! `.cmdline` (the kernel command line, root hash included), `.linux` (the image's kernel)
//! and `.initrd` (kiln's initramfs). The stub hands the kernel its embedded command line;
//! systemd 252's stub takes a command line from the boot loader or firmware instead only when
//! Secure Boot is off, so once the UKI is signed the root hash cannot be changed from outside.
//!
//! The sections are added by binutils' `objcopy` at addresses computed here: after the stub's
//! image, each at the next 4 KiB boundary, the kernel at the next 2 MiB one. objcopy stamps
//! the header with the current time; kiln sets it back to the stub's (0) and computes the
//! checksum again ([`settle_header`]), so the same inputs give the same bytes (tested).

use std::path::Path;

use super::tools::{self, OBJCOPY};
use crate::{Error, Result};
use kiln_layers::IoError;

/// Where a Debian image has the stub.
pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// The package that has it.
pub const STUB_PACKAGE: &str = "systemd-boot-efi";
/// The stub's copy among the bootable outputs, beside the UKI made from it.
pub const STUB_FILE: &str = "linuxx64.efi.stub";

/// What the PE headers of the stub say about where its image ends in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeImage {
    /// `ImageBase`.
    pub image_base: u64,
    /// `SizeOfImage`.
    pub size_of_image: u64,
}

/// The little-endian `u16` at `o` of `pe`, if the file is that long.
fn le16(pe: &[u8], o: usize) -> Option<u16> {
    pe.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]))
}

/// The little-endian `u32` at `o` of `pe`, if the file is that long.
fn le32(pe: &[u8], o: usize) -> Option<u32> {
    pe.get(o..o + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads the PE32+ optional header of `pe` (an EFI application).
pub fn pe_image(pe: &[u8]) -> Result<PeImage> {
    let bad = |why: &str| Error::invalid("EFI stub", why.to_string());
    let u16_at = |o: usize| le16(pe, o).ok_or_else(|| bad("truncated"));
    let u32_at = |o: usize| le32(pe, o).ok_or_else(|| bad("truncated"));
    if pe.get(0..2) != Some(b"MZ") {
        return Err(bad("not a PE file (no MZ header)"));
    }
    let pe_at = u32_at(0x3c)? as usize;
    if pe.get(pe_at..pe_at + 4) != Some(b"PE\0\0") {
        return Err(bad("not a PE file (no PE signature)"));
    }
    let opt = pe_at + 4 + 20;
    if u16_at(opt)? != 0x20b {
        return Err(bad("not PE32+ (a 64-bit EFI application)"));
    }
    let base_lo = u64::from(u32_at(opt + 24)?);
    let base_hi = u64::from(u32_at(opt + 28)?);
    Ok(PeImage {
        image_base: base_lo | (base_hi << 32),
        size_of_image: u64::from(u32_at(opt + 56)?),
    })
}

/// One entry of a PE section table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name (up to 8 bytes, NULs cut).
    pub name: String,
    /// `VirtualSize`: the bytes loaded into memory.
    pub virtual_size: u32,
    /// `VirtualAddress`.
    pub virtual_address: u32,
    /// `SizeOfRawData`: the bytes in the file.
    pub raw_size: u32,
    /// `PointerToRawData`.
    pub raw_offset: u32,
}

impl Section {
    /// The section as the loader puts it in memory: its file data, cut or zero-padded to
    /// its virtual size.
    pub fn loaded(&self, pe: &[u8]) -> Result<Vec<u8>> {
        let n = self.raw_size.min(self.virtual_size) as usize;
        let at = self.raw_offset as usize;
        let mut data = pe
            .get(at..at + n)
            .ok_or_else(|| {
                Error::invalid("PE file", format!("section {} is truncated", self.name))
            })?
            .to_vec();
        data.resize(self.virtual_size as usize, 0);
        Ok(data)
    }
}

/// The section table of the PE file `pe`.
pub fn sections(pe: &[u8]) -> Result<Vec<Section>> {
    pe_image(pe)?;
    let bad = || Error::invalid("PE file", "truncated section table");
    let u16_at = |o: usize| le16(pe, o).ok_or_else(bad);
    let u32_at = |o: usize| le32(pe, o).ok_or_else(bad);
    let pe_at = u32_at(0x3c)? as usize;
    let count = usize::from(u16_at(pe_at + 4 + 2)?);
    let table = pe_at + 4 + 20 + usize::from(u16_at(pe_at + 4 + 16)?);
    (0..count)
        .map(|i| {
            let e = table + i * 40;
            let name = pe.get(e..e + 8).ok_or_else(bad)?;
            let end = name.iter().position(|&b| b == 0).unwrap_or(8);
            Ok(Section {
                name: String::from_utf8_lossy(&name[..end]).into_owned(),
                virtual_size: u32_at(e + 8)?,
                virtual_address: u32_at(e + 12)?,
                raw_size: u32_at(e + 16)?,
                raw_offset: u32_at(e + 20)?,
            })
        })
        .collect()
}

/// The contents of section `name` of the PE file `pe` as the stub reads it (its loaded bytes,
/// the zero padding after the data cut); `None` when there is no such section.
pub fn section_bytes(pe: &[u8], name: &str) -> Result<Option<Vec<u8>>> {
    let Some(s) = sections(pe)?.into_iter().find(|s| s.name == name) else {
        return Ok(None);
    };
    let mut data = s.loaded(pe)?;
    while data.last() == Some(&0) {
        data.pop();
    }
    Ok(Some(data))
}

/// The address of each added section (`.osrel`, `.cmdline`, `.linux`, `.initrd`), given the
/// stub's image and the sizes of the first three.
pub fn section_addresses(stub: PeImage, osrel: u64, cmdline: u64, linux: u64) -> [u64; 4] {
    const PAGE: u64 = 0x1000;
    const KERNEL_ALIGN: u64 = 0x20_0000;
    let up = |n: u64, to: u64| n.div_ceil(to) * to;
    let osrel_at = up(stub.image_base + stub.size_of_image, PAGE);
    let cmdline_at = up(osrel_at + osrel, PAGE);
    let linux_at = up(cmdline_at + cmdline, KERNEL_ALIGN);
    let initrd_at = up(linux_at + linux, PAGE);
    [osrel_at, cmdline_at, linux_at, initrd_at]
}

/// Writes the UKI `out` from `stub` (the stub's bytes), `os_release`, `cmdline`, `kernel` and
/// `initrd` (files), using `scratch` for the two small sections.
pub fn build_uki(
    stub: &[u8],
    os_release: &[u8],
    cmdline: &str,
    kernel: &Path,
    initrd: &Path,
    scratch: &Path,
    out: &Path,
) -> Result<()> {
    let image = pe_image(stub)?;
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(IoError::at("reading size of", p))
    };
    std::fs::create_dir_all(scratch).map_err(IoError::at("creating", scratch))?;
    let write = |name: &str, data: &[u8]| {
        let p = scratch.join(name);
        std::fs::write(&p, data)
            .map(|()| p.clone())
            .map_err(IoError::at("writing", &p))
    };
    let stub_file = write("stub.efi", stub)?;
    let osrel = write("osrel", os_release)?;
    // NUL-terminated, as the stub reads it.
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    let cmd = write("cmdline", &line)?;
    let at = section_addresses(
        image,
        os_release.len() as u64,
        line.len() as u64,
        size(kernel)?,
    );
    let _ = std::fs::remove_file(out);
    let mut c = tools::command(OBJCOPY)?;
    for ((name, file), vma) in [
        (".osrel", osrel.as_path()),
        (".cmdline", cmd.as_path()),
        (".linux", kernel),
        (".initrd", initrd),
    ]
    .into_iter()
    .zip(at)
    {
        // An image without os-release gets no `.osrel` (objcopy would drop an empty one).
        if name == ".osrel" && os_release.is_empty() {
            continue;
        }
        c.arg("--add-section")
            .arg(format!("{name}={}", file.display()))
            .arg("--change-section-vma")
            .arg(format!("{name}={vma:#x}"));
    }
    tools::run(OBJCOPY, c.arg(&stub_file).arg(out))?;
    let mut pe = std::fs::read(out).map_err(IoError::at("reading", out))?;
    settle_header(&mut pe)?;
    std::fs::write(out, &pe).map_err(IoError::at("writing", out))?;
    let _ = std::fs::remove_dir_all(scratch);
    Ok(())
}

/// objcopy stamps the PE header with the time it runs (binutils 2.40 ignores
/// `SOURCE_DATE_EPOCH` there) and sums the file with it: the time stamp is set back to 0, as
/// Debian's stub has it, and the checksum computed again, so equal inputs give equal bytes.
pub fn settle_header(pe: &mut [u8]) -> Result<()> {
    pe_image(pe)?;
    let pe_at = le32(pe, 0x3c).unwrap_or_default() as usize;
    let time_stamp = pe_at + 4 + 4;
    let checksum = pe_at + 4 + 20 + 64;
    if pe.len() < checksum + 4 {
        return Err(Error::invalid("UKI", "truncated PE header"));
    }
    pe[time_stamp..time_stamp + 4].fill(0);
    pe[checksum..checksum + 4].fill(0);
    let sum = pe_checksum(pe);
    pe[checksum..checksum + 4].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// The PE/COFF checksum of `pe` (its `CheckSum` field zero): the 16-bit words summed with
/// end-around carry, plus the file's length.
pub fn pe_checksum(pe: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    for w in pe.chunks(2) {
        let word = u64::from(w[0]) | w.get(1).map_or(0, |&b| u64::from(b) << 8);
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(pe.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_the_stub_page_aligned_and_the_kernel_2_mib_aligned() {
        let stub = PeImage {
            image_base: 0,
            size_of_image: 0x19300,
        };
        assert_eq!(
            section_addresses(stub, 0x180, 0x200, 0x7f_0000),
            [0x1a000, 0x1b000, 0x20_0000, 0x9f_0000]
        );
    }

    /// The checksum as binutils writes it: objcopy's own output, its field zeroed and summed
    /// again, gives objcopy's value back.
    #[test]
    fn the_checksum_matches_objcopys() {
        let stub = std::fs::read(STUB).unwrap_or_else(|e| {
            panic!("{STUB}: {e}: install it with `apt-get install {STUB_PACKAGE}`")
        });
        let dir = tempfile::tempdir().unwrap();
        let (input, out) = (dir.path().join("in.efi"), dir.path().join("out.efi"));
        std::fs::write(&input, &stub).unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, b"kiln").unwrap();
        let status = std::process::Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".kiln={}", data.display()))
            .args(["--change-section-vma", ".kiln=0x40000"])
            .arg(&input)
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let mut pe = std::fs::read(&out).unwrap();
        let pe_at = u32::from_le_bytes(pe[0x3c..0x40].try_into().unwrap()) as usize;
        let at = pe_at + 4 + 20 + 64;
        let written = u32::from_le_bytes(pe[at..at + 4].try_into().unwrap());
        pe[at..at + 4].fill(0);
        assert_eq!(pe_checksum(&pe), written);
    }

    #[test]
    fn a_file_that_is_not_pe_is_refused() {
        assert!(pe_image(b"not an EFI program").is_err());
        let mut mz = vec![0u8; 0x100];
        mz[0..2].copy_from_slice(b"MZ");
        mz[0x3c] = 0x40;
        assert!(pe_image(&mz).is_err());
    }
}
