//! The external programs the boot artifacts are made with: each is looked up before any work
//! starts, and a missing one is an error naming its Debian package.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// An external program and the Debian package that has it.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The program name.
    pub name: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

/// squashfs from a tar stream, without root (squashfs-tools-ng).
pub const TAR2SQFS: Tool = Tool {
    name: "tar2sqfs",
    package: "squashfs-tools-ng",
};
/// dm-verity hash trees.
pub const VERITYSETUP: Tool = Tool {
    name: "veritysetup",
    package: "cryptsetup-bin",
};
/// The FAT boot partition.
pub const MKFS_VFAT: Tool = Tool {
    name: "mkfs.vfat",
    package: "dosfstools",
};
/// Copies files into the FAT image.
pub const MCOPY: Tool = Tool {
    name: "mcopy",
    package: "mtools",
};
/// The BIOS boot loader, installed into the FAT partition.
pub const SYSLINUX: Tool = Tool {
    name: "syslinux",
    package: "syslinux",
};
/// Makes directories in the FAT image (`EFI/BOOT`).
pub const MMD: Tool = Tool {
    name: "mmd",
    package: "mtools",
};
/// Adds the unified kernel image's sections to the EFI stub.
pub const OBJCOPY: Tool = Tool {
    name: "objcopy",
    package: "binutils",
};
/// Signs the unified kernel image (Authenticode).
pub const SBSIGN: Tool = Tool {
    name: "sbsign",
    package: "sbsigntool",
};
/// Checks a signature against the certificate.
pub const SBVERIFY: Tool = Tool {
    name: "sbverify",
    package: "sbsigntool",
};
/// Runs `sbsign` with its clock stopped at `SOURCE_DATE_EPOCH` (libfaketime).
pub const FAKETIME: Tool = Tool {
    name: "faketime",
    package: "faketime",
};
/// The state partition.
pub const MKFS_EXT4: Tool = Tool {
    name: "mkfs.ext4",
    package: "e2fsprogs",
};
/// raw → qcow2.
pub const QEMU_IMG: Tool = Tool {
    name: "qemu-img",
    package: "qemu-utils",
};

/// `/usr/lib/syslinux/mbr/gptmbr.bin`: the boot code of the protective MBR (first 440 bytes
/// of the disk), which boots the GPT partition marked legacy BIOS bootable.
pub const SYSLINUX_MBR: &str = "/usr/lib/syslinux/mbr/gptmbr.bin";
/// The Debian package with [`SYSLINUX_MBR`].
pub const SYSLINUX_MBR_PACKAGE: &str = "syslinux-common";

/// The path of `tool`: on `PATH`, or in the sbin directories a non-root `PATH` may lack.
pub fn find(tool: Tool) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool.name))
        .find(|p| p.is_file())
        .ok_or(Error::MissingTool {
            tool: tool.name,
            package: tool.package,
        })
}

/// Runs `cmd` (made with [`command`]) and returns its stdout; a failure carries the exit
/// status and the end of stderr.
pub fn run(tool: Tool, cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| Error::Tool {
        tool: tool.name,
        detail: format!("cannot run it: {e}"),
    })?;
    if !out.status.success() {
        return Err(failed(tool, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The error for a finished, failed run.
pub fn failed(tool: Tool, out: &std::process::Output) -> Error {
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Error::Tool {
        tool: tool.name,
        detail: format!(
            "{}: {}{}",
            out.status,
            tail,
            if tail.is_empty() { stdout.trim() } else { "" }
        ),
    }
}

/// A `Command` for `tool` with a fixed locale and time zone, so nothing it writes depends on
/// the build machine's settings.
pub fn command(tool: Tool) -> Result<Command> {
    let mut cmd = Command::new(find(tool)?);
    cmd.env("LC_ALL", "C").env("TZ", "UTC");
    Ok(cmd)
}
