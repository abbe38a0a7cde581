//! The disk, bootable on BIOS and on UEFI: a GPT ([`crate::gpt`]) whose protective MBR
//! carries syslinux's `gptmbr.bin` as boot code and a signature derived from the seed, and
//!
//! | # | GPT type | content |
//! |---|------|---------|
//! | 1 | EFI system partition, legacy BIOS bootable (FAT16) | `vmlinuz`, `initrd.img`, `syslinux.cfg`, `ldlinux.sys`, `ldlinux.c32`; `EFI/BOOT/BOOTX64.EFI` (the unified kernel image) |
//! | 2 | Linux data | the root image: squashfs, padded, then its dm-verity hash tree |
//! | 3 | Linux data | ext4 labelled `kiln-state` (only when a state size is asked for) |
//!
//! BIOS: the firmware runs `gptmbr.bin`, which boots partition 1 (its attribute), whose boot
//! sector is syslinux's; syslinux reads `syslinux.cfg`. UEFI: the firmware mounts the EFI
//! system partition and starts `\EFI\BOOT\BOOTX64.EFI`, the default path for a disk without
//! a boot entry. Partitions start on 1 MiB boundaries, and the backup GPT has the last MiB.
//! Each filesystem is made in its own file (FAT with `mkfs.vfat --invariant`, mmd, mcopy and
//! the mtools-based `syslinux` installer; ext4 with `mkfs.ext4` under `E2FSPROGS_FAKE_TIME`)
//! and copied in, skipping zero blocks so the raw disk stays sparse.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::tools::{self, MCOPY, MKFS_EXT4, MKFS_VFAT, MMD, QEMU_IMG, SYSLINUX};
use crate::{Error, Result};
use kiln_layers::IoError;

/// Sector size of the partition table.
pub const SECTOR: u64 = 512;
/// Partition alignment.
pub const ALIGN: u64 = 1 << 20;

/// One partition table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// MBR partition type (`0x0e`, `0x83`).
    pub kind: u8,
    /// The active (bootable) flag.
    pub active: bool,
    /// First sector.
    pub start: u64,
    /// Number of sectors.
    pub sectors: u64,
}

/// The first sector of the disk: `boot_code` (at most 440 bytes), the disk signature at 440
/// (little-endian), up to four partitions, `55 aa`. CHS fields hold the "use LBA" maximum
/// (`fe ff ff`), as partitioning tools write for disks addressed by LBA.
pub fn mbr(boot_code: &[u8], signature: u32, parts: &[Partition]) -> Result<[u8; 512]> {
    if boot_code.len() > 440 || parts.len() > 4 {
        return Err(Error::invalid(
            "MBR",
            format!(
                "{} bytes of boot code (max 440), {} partitions (max 4)",
                boot_code.len(),
                parts.len()
            ),
        ));
    }
    let mut s = [0u8; 512];
    s[..boot_code.len()].copy_from_slice(boot_code);
    s[440..444].copy_from_slice(&signature.to_le_bytes());
    for (i, p) in parts.iter().enumerate() {
        let (start, len) = match (u32::try_from(p.start), u32::try_from(p.sectors)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return Err(Error::invalid("MBR", "partition beyond 2 TiB")),
        };
        let e = &mut s[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = if p.active { 0x80 } else { 0 };
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[4] = p.kind;
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[8..12].copy_from_slice(&start.to_le_bytes());
        e[12..16].copy_from_slice(&len.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    Ok(s)
}

/// `n` rounded up to a multiple of `to`.
pub fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

/// Sets a file's mtime to `epoch` (mcopy `-m` copies it into the FAT entry).
fn set_mtime(path: &Path, epoch: u64) -> Result<()> {
    let f = File::options()
        .write(true)
        .open(path)
        .map_err(IoError::at("opening", path))?;
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
        .map_err(IoError::at("setting mtime of", path))?;
    Ok(())
}

/// An mtools-based program (mmd, mcopy, the syslinux installer) on an image file: no check of
/// the image's geometry, and what it creates stamped with `epoch`.
fn mtools(tool: tools::Tool, epoch: &str) -> Result<std::process::Command> {
    let mut c = tools::command(tool)?;
    c.env("MTOOLS_SKIP_CHECK", "1")
        .env("SOURCE_DATE_EPOCH", epoch);
    Ok(c)
}

/// The FAT boot filesystem (`out`, `size` bytes, FAT16) holding `files` (name in the root
/// directory, source) and syslinux. `hidden` is the partition's first sector, which the
/// boot sector records.
pub fn build_fat(
    out: &Path,
    size: u64,
    volume_id: u32,
    hidden: u64,
    files: &[(&str, &Path)],
    source_date_epoch: u64,
) -> Result<()> {
    let _ = std::fs::remove_file(out);
    tools::run(
        MKFS_VFAT,
        tools::command(MKFS_VFAT)?
            .args(["--invariant", "-F", "16", "-n", "KILN-BOOT"])
            .arg(format!("-i{volume_id:08x}"))
            .arg(format!("-h{hidden}"))
            .arg("-C")
            .arg(out)
            .arg((size / 1024).to_string()),
    )?;
    // mtools stamps new entries with the current time unless told otherwise: sources get
    // the epoch as mtime and `-m` keeps it; SOURCE_DATE_EPOCH covers what mtools creates
    // itself (checked by the determinism test).
    let epoch = source_date_epoch.to_string();
    // The directories of files below the root (`EFI/BOOT/BOOTX64.EFI`), parents first.
    let mut dirs: Vec<String> = Vec::new();
    for (name, _) in files {
        let parts: Vec<&str> = name.split('/').collect();
        for n in 1..parts.len() {
            let d = parts[..n].join("/");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    if !dirs.is_empty() {
        tools::run(
            MMD,
            mtools(MMD, &epoch)?
                .arg("-i")
                .arg(out)
                .args(dirs.iter().map(|d| format!("::/{d}"))),
        )?;
    }
    for (name, src) in files {
        set_mtime(src, source_date_epoch)?;
        tools::run(
            MCOPY,
            mtools(MCOPY, &epoch)?
                .args(["-o", "-m", "-i"])
                .arg(out)
                .arg(src)
                .arg(format!("::/{name}")),
        )?;
    }
    tools::run(
        SYSLINUX,
        mtools(SYSLINUX, &epoch)?.arg("--install").arg(out),
    )?;
    Ok(())
}

/// The ext4 state filesystem (`out`, `size` bytes), labelled `kiln-state`, with the UUID and
/// directory hash seed given, times fixed to the epoch, and mke2fs's built-in defaults (not
/// the build machine's `/etc/mke2fs.conf`).
pub fn build_ext4(
    out: &Path,
    size: u64,
    uuid: &str,
    hash_seed: &str,
    source_date_epoch: u64,
) -> Result<()> {
    let _ = std::fs::remove_file(out);
    let f = File::create(out).map_err(IoError::at("creating", out))?;
    f.set_len(size).map_err(IoError::at("sizing", out))?;
    drop(f);
    let epoch = source_date_epoch.to_string();
    tools::run(
        MKFS_EXT4,
        tools::command(MKFS_EXT4)?
            .env("E2FSPROGS_FAKE_TIME", &epoch)
            .env("SOURCE_DATE_EPOCH", &epoch)
            .env("MKE2FS_CONFIG", "/nonexistent/kiln-uses-builtin-defaults")
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-L",
                "kiln-state",
                "-b",
                "4096",
                "-U",
                uuid,
            ])
            .arg(format!(
                "-Ehash_seed={hash_seed},lazy_itable_init=0,lazy_journal_init=0,nodiscard"
            ))
            .arg(out),
    )?;
    Ok(())
}

/// Copies `src` into `dst` at byte `offset`, leaving all-zero 64 KiB blocks as holes.
pub fn copy_sparse(src: &Path, dst: &mut File, offset: u64) -> Result<()> {
    let mut f = File::open(src).map_err(IoError::at("opening", src))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = offset;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(IoError::at("reading", src)(e).into()),
            }
        }
        if n == 0 {
            return Ok(());
        }
        if buf[..n].iter().any(|&b| b != 0) {
            dst.seek(SeekFrom::Start(at))
                .and_then(|_| dst.write_all(&buf[..n]))
                .map_err(IoError::at("writing disk image at", src))?;
        }
        at += n as u64;
    }
}

/// Writes the raw disk `out` of `size` bytes: each (bytes, byte offset) of `tables`, then each
/// (file, byte offset) of `parts`.
pub fn assemble(
    out: &Path,
    size: u64,
    tables: &[(&[u8], u64)],
    parts: &[(&Path, u64)],
) -> Result<()> {
    let _ = std::fs::remove_file(out);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(out)
        .map_err(IoError::at("creating disk image", out))?;
    f.set_len(size)
        .map_err(IoError::at("sizing disk image", out))?;
    for (bytes, offset) in tables {
        f.seek(SeekFrom::Start(*offset))
            .and_then(|_| f.write_all(bytes))
            .map_err(IoError::at("writing the partition table of", out))?;
    }
    for (src, offset) in parts {
        copy_sparse(src, &mut f, *offset)?;
    }
    f.sync_all()
        .map_err(IoError::at("syncing disk image", out))?;
    Ok(())
}

/// `qemu-img convert -O qcow2`; no compression (deterministic and fast to boot).
pub fn to_qcow2(raw: &Path, out: &Path) -> Result<()> {
    let _ = std::fs::remove_file(out);
    tools::run(
        QEMU_IMG,
        tools::command(QEMU_IMG)?
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(raw)
            .arg(out),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_bytes() {
        let code = [0xeb_u8; 440];
        let parts = [
            Partition {
                kind: 0x0e,
                active: true,
                start: 2048,
                sectors: 65536,
            },
            Partition {
                kind: 0x83,
                active: false,
                start: 67584,
                sectors: 0x0102_0304,
            },
        ];
        let s = mbr(&code, 0x1a2b_3c4d, &parts).unwrap();
        assert_eq!(&s[..440], &code[..]);
        assert_eq!(&s[440..446], &[0x4d, 0x3c, 0x2b, 0x1a, 0, 0]);
        assert_eq!(
            &s[446..462],
            &[0x80, 0xfe, 0xff, 0xff, 0x0e, 0xfe, 0xff, 0xff, 0x00, 0x08, 0, 0, 0, 0, 1, 0]
        );
        assert_eq!(
            &s[462..478],
            &[0, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff, 0x00, 0x08, 1, 0, 4, 3, 2, 1]
        );
        assert!(s[478..510].iter().all(|&b| b == 0), "entries 3 and 4 empty");
        assert_eq!(&s[510..], &[0x55, 0xaa]);
        assert!(mbr(&[0; 441], 1, &[]).is_err());
        let huge = Partition {
            kind: 0x83,
            active: false,
            start: 1 << 32,
            sectors: 1,
        };
        assert!(mbr(&[], 1, &[huge]).is_err());
    }

    #[test]
    fn sparse_copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let mut data = vec![0u8; 300 * 1024];
        data[5] = 1;
        data[200 * 1024] = 2;
        std::fs::write(&src, &data).unwrap();
        let dst = dir.path().join("dst");
        let mut f = File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&dst)
            .unwrap();
        f.set_len(4096 + data.len() as u64).unwrap();
        copy_sparse(&src, &mut f, 4096).unwrap();
        let got = std::fs::read(&dst).unwrap();
        assert_eq!(&got[4096..], &data[..]);
    }
}
