//! Per-host cloud-init NoCloud seeds under `cloud-init/`: the three files rendered by
//! [`kiln_provision::cloudinit`] from the identity tree placed on the role image (written by
//! [`super::provision`]), and an
//! ISO 9660 volume labelled `cidata` made by `xorriso` (Debian package `xorriso`), byte-identical
//! across builds under one `SOURCE_DATE_EPOCH`. Every file is mode 0600: a seed is per host
//! and is where secrets (SSH keys, password hashes) will go.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use kiln_layers::{EntryKind, FileTree, IoError};
use kiln_provision::cloudinit::IdentityFile;

use super::{BuildError, Dist};

/// Fails early, before anything is built, when `xorriso` cannot run.
pub(super) fn require_xorriso() -> Result<(), BuildError> {
    let ok = Command::new("xorriso")
        .arg("-version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(BuildError::Tool {
            tool: "xorriso",
            package: "xorriso",
            why: "it makes each host's cloud-init seed ISO (cloud-init/HOST-cidata.iso)",
        })
    }
}

/// The regular files of a host's identity tree, for its seed (directories are the image's
/// already; anything but a file or directory is refused). The networkd file is left out: the
/// seed's `network-config` describes the same network and cloud-init renders it before
/// networkd starts, while `write_files` runs too late for networkd's first start.
pub fn identity_files(host: &str, placed: &FileTree) -> Result<Vec<IdentityFile>, BuildError> {
    let mut files = Vec::new();
    for (path, e) in placed.iter() {
        if path == crate::components::NETWORK_FILE {
            continue;
        }
        match &e.kind {
            EntryKind::File(data) => files.push(IdentityFile {
                path: path.to_string(),
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                data: data.clone(),
            }),
            EntryKind::Dir => {}
            other => {
                return Err(BuildError::Source(format!(
                    "identity of host {host}: {path} is a {}; a cloud-init seed carries regular files only",
                    other.name()
                )))
            }
        }
    }
    Ok(files)
}

/// Makes `cloud-init/HOST-cidata.iso` from the seed files [`super::provision::write`] put in
/// `cloud-init/HOST/` — unless `reuse` (those files are the previous output's and so is the
/// volume, made by this kiln version under this `SOURCE_DATE_EPOCH`) and the volume is there.
/// Made under a temporary name and renamed, so a volume shared with the previous output is
/// never written into. Returns whether it was made.
pub(super) fn write_iso(
    dist: &Dist,
    host: &str,
    epoch: u64,
    reuse: bool,
) -> Result<bool, BuildError> {
    let iso = dist.seed_iso(host);
    let rel = Dist::seed_iso_rel(host);
    if reuse && iso.is_file() {
        return Ok(false);
    }
    let tmp = dist.cloud_init().join(format!(
        ".{host}-cidata.iso.kiln-tmp-{}",
        std::process::id()
    ));
    let made = make_iso(&dist.seed_dir(host), &tmp, &rel, epoch).and_then(|()| {
        fs::rename(&tmp, &iso).map_err(IoError::new(format!("writing {rel}")))?;
        Ok(())
    });
    if made.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    made.map(|()| true)
}

/// xorriso: the files of `dir` as a `cidata` volume at `out` (mode 0600).
fn make_iso(dir: &Path, out: &Path, rel: &str, epoch: u64) -> Result<(), BuildError> {
    // Created 0600 first: xorriso writes into it and the mode stays (no readable moment).
    write_private(out, b"")?;
    let status = Command::new("xorriso")
        .env("SOURCE_DATE_EPOCH", epoch.to_string())
        .args([
            "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet", "-rock",
        ])
        // SOURCE_DATE_EPOCH fixes the volume's dates, not the files': those and the owners
        // would come from the build machine.
        .args(["-uid", "0", "-gid", "0", "--set_all_file_dates"])
        .arg(format!("={epoch}"))
        .arg("-o")
        .arg(out)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(IoError::new(format!("running xorriso for {rel}")))?;
    if !status.status.success() {
        return Err(BuildError::Source(format!(
            "xorriso failed making {rel} ({}): {}",
            status.status,
            String::from_utf8_lossy(&status.stderr).trim()
        )));
    }
    // In case the file was replaced rather than written into.
    fs::set_permissions(out, fs::Permissions::from_mode(0o600))
        .map_err(IoError::new(format!("setting the mode of {rel}")))?;
    Ok(())
}

/// Writes `path` with mode 0600 from the start (never readable by others, even briefly).
fn write_private(path: &Path, data: &[u8]) -> Result<(), BuildError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = || IoError::at("writing", path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err())?;
    f.write_all(data).map_err(err())?;
    Ok(())
}
