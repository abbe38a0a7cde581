//! The root image: a squashfs made from the root filesystem tarball by `tar2sqfs` (no root
//! privileges needed: owners, modes and xattrs come from the tar headers), padded to 4096
//! bytes, with its dm-verity hash tree appended by `veritysetup format` in the same file.
//! One partition (or one file to fetch, for a diskless boot) then holds data and hashes;
//! `--hash-offset` on the kernel command line says where the tree starts.
//!
//! Deterministic: tar2sqfs keeps the tarball's mtimes and sets the superblock time (and that
//! of directories the tarball lacks) to `--defaults mtime=`; veritysetup gets a fixed salt and
//! UUID (a random salt would make the root hash random).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Stdio;

use super::tar_filter;
use super::tools::{self, TAR2SQFS, VERITYSETUP};
use crate::{Error, Result};
use kiln_layers::IoError;

/// Block size of data and hash tree.
pub const BLOCK: u64 = 4096;

/// What a verity-protected root image needs to be opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerityInfo {
    /// The root hash (hex): `kiln.roothash=`.
    pub root_hash: String,
    /// The salt (hex), derived from the seed.
    pub salt: String,
    /// Bytes of filesystem data (padded to [`BLOCK`]); equal to `hash_offset`.
    pub data_size: u64,
    /// Where the hash tree (with its superblock) starts: `kiln.hashoffset=`.
    pub hash_offset: u64,
    /// The verity superblock's UUID, derived from the seed.
    pub uuid: String,
    /// Data block size (4096).
    pub data_block_size: u64,
    /// Hash block size (4096).
    pub hash_block_size: u64,
    /// Size of the whole image (data + hash tree).
    pub image_size: u64,
    /// The squashfs compressor used.
    pub compressor: String,
}

/// zstd level of the root image. tar2sqfs' default is 15; measured on a 1.7 GB role root
/// (tar2sqfs -j 2, a 2-core machine): level 15 took 146 s for 543 MB, level 6 16.5 s for
/// 579 MB, level 3 8 s for 610 MB. Level 6 keeps the image within 7 % of level 15 at a
/// ninth of the time; reading it back is as fast (zstd decompression speed barely depends
/// on the level).
pub const ZSTD_LEVEL: u32 = 6;

/// The squashfs compressor to use for a kernel with `config` (its `/boot/config-*`): zstd
/// decompresses fastest, then xz; zlib every squashfs kernel reads.
pub fn compressor_for(config: Option<&str>) -> &'static str {
    let has = |opt: &str| config.is_some_and(|c| c.lines().any(|l| l.trim() == format!("{opt}=y")));
    if has("CONFIG_SQUASHFS_ZSTD") {
        "zstd"
    } else if has("CONFIG_SQUASHFS_XZ") {
        "xz"
    } else {
        "gzip"
    }
}

/// Writes `out`: the squashfs of `rootfs_tar` and its hash tree. `salt` is 32 bytes of hex.
pub fn build_root_image(
    rootfs_tar: &Path,
    out: &Path,
    compressor: &str,
    salt: &str,
    uuid: &str,
    source_date_epoch: u64,
    warnings: &mut Vec<String>,
) -> Result<VerityInfo> {
    let input =
        File::open(rootfs_tar).map_err(IoError::at("opening root filesystem", rootfs_tar))?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cmd = tools::command(TAR2SQFS)?;
    cmd.args([
        "--quiet",
        "--force",
        "--no-skip",
        "--compressor",
        compressor,
    ])
    .arg(format!("--num-jobs={jobs}"))
    .arg(format!(
        "--defaults=uid=0,gid=0,mode=0755,mtime={source_date_epoch}"
    ));
    if compressor == "zstd" {
        cmd.arg(format!("--comp-extra=level={ZSTD_LEVEL}"));
    }
    cmd.arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Tool {
        tool: TAR2SQFS.name,
        detail: format!("cannot run it: {e}"),
    })?;
    // The tarball streams through the xattr filter into tar2sqfs (see `tar_filter`).
    let stdin = child.stdin.take();
    let feeder = std::thread::spawn(move || -> std::io::Result<Vec<String>> {
        let Some(stdin) = stdin else {
            return Ok(Vec::new());
        };
        tar_filter::filter_xattrs(
            std::io::BufReader::with_capacity(1 << 20, input),
            std::io::BufWriter::with_capacity(1 << 20, stdin),
        )
    });
    let output = child.wait_with_output().map_err(|e| Error::Tool {
        tool: TAR2SQFS.name,
        detail: format!("waiting for it: {e}"),
    })?;
    let fed = feeder
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the tar filter thread panicked")));
    if !output.status.success() {
        return Err(tools::failed(TAR2SQFS, &output));
    }
    let dropped = fed.map_err(IoError::at("streaming root filesystem", rootfs_tar))?;
    if !dropped.is_empty() {
        warnings.push(format!(
            "squashfs cannot store POSIX ACLs and other system.* xattrs; dropped: {}",
            dropped.join(", ")
        ));
    }
    // tar2sqfs names tar members it could not store (e.g. sockets) on stderr but succeeds.
    warnings.extend(
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("tar2sqfs: {l}")),
    );
    let file = OpenOptions::new()
        .write(true)
        .open(out)
        .map_err(IoError::at("opening root image", out))?;
    let size = file
        .metadata()
        .map_err(IoError::at("reading size of", out))?
        .len();
    let data_size = size.div_ceil(BLOCK) * BLOCK;
    file.set_len(data_size)
        .map_err(IoError::at("padding root image", out))?;
    drop(file);

    let stdout = tools::run(
        VERITYSETUP,
        tools::command(VERITYSETUP)?
            .arg("format")
            .arg(format!("--hash-offset={data_size}"))
            .arg(format!("--data-blocks={}", data_size / BLOCK))
            .arg(format!("--salt={salt}"))
            .arg(format!("--uuid={uuid}"))
            .arg(format!("--data-block-size={BLOCK}"))
            .arg(format!("--hash-block-size={BLOCK}"))
            .arg(out)
            .arg(out),
    )?;
    let root_hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| Error::Tool {
            tool: VERITYSETUP.name,
            detail: format!("no root hash in its output:\n{stdout}"),
        })?;
    let image_size = std::fs::metadata(out)
        .map_err(IoError::at("reading size of", out))?
        .len();
    Ok(VerityInfo {
        root_hash,
        salt: salt.to_string(),
        data_size,
        hash_offset: data_size,
        uuid: uuid.to_string(),
        data_block_size: BLOCK,
        hash_block_size: BLOCK,
        image_size,
        compressor: compressor.to_string(),
    })
}

/// Checks the image against its root hash with `veritysetup verify` (reads all of it).
pub fn verify(image: &Path, info: &VerityInfo) -> Result<()> {
    tools::run(
        VERITYSETUP,
        tools::command(VERITYSETUP)?
            .arg("verify")
            .arg(format!("--hash-offset={}", info.hash_offset))
            .arg(image)
            .arg(image)
            .arg(&info.root_hash),
    )
    .map(|_| ())
}
