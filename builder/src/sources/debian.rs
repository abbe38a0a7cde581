//! The `debian` base: a root filesystem built by `mmdebstrap` in root mode from a suite, a
//! variant and a package list (plus the kernel package), as a tarball in the cache, keyed by
//! the digest of its inputs. `SOURCE_DATE_EPOCH` is set, so the same inputs and the same
//! archive state give the same files and mtimes.
//!
//! mmdebstrap needs root (or a user namespace setup) and the Debian mirror; on Debian
//! `apt-get install mmdebstrap`. A minbase with one small package takes ~30–80 s.

use std::path::Path;
use std::process::Command;

use crate::spec::DebianBase;

use super::cache::sha256_hex;
use super::{Error, Result};

/// The digest (hex) of everything that decides the tarball: suite, variant, packages (sorted),
/// kernel, mirror, epoch, and a format tag.
pub fn inputs_digest(d: &DebianBase, epoch: u64) -> String {
    let mut pkgs = d.packages.clone();
    pkgs.sort();
    pkgs.dedup();
    let text = format!(
        "kiln-debian-v1\nsuite={}\nvariant={}\npackages={}\nkernel={}\nmirror={}\nepoch={epoch}\n",
        d.suite,
        d.variant,
        pkgs.join(","),
        d.kernel,
        d.mirror.as_deref().unwrap_or("")
    );
    sha256_hex(text.as_bytes())
}

/// The packages mmdebstrap installs on top of the variant.
pub fn include_list(d: &DebianBase) -> Vec<String> {
    let mut pkgs = d.packages.clone();
    if !d.kernel.is_empty() {
        pkgs.push(d.kernel.clone());
    }
    pkgs.sort();
    pkgs.dedup();
    pkgs
}

/// Runs mmdebstrap, writing the root filesystem as a tarball to `out`.
pub fn build(d: &DebianBase, epoch: u64, out: &Path) -> Result<()> {
    let tool = |detail: String| Error::Tool {
        tool: "mmdebstrap".into(),
        detail,
    };
    let mut cmd = Command::new("mmdebstrap");
    cmd.arg("--mode=root")
        .arg(format!("--variant={}", d.variant))
        .arg("--format=tar")
        .arg("--quiet");
    let pkgs = include_list(d);
    if !pkgs.is_empty() {
        cmd.arg(format!("--include={}", pkgs.join(",")));
    }
    cmd.arg(&d.suite).arg(out);
    if let Some(m) = &d.mirror {
        cmd.arg(m);
    }
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string());
    tracing::info!("running {cmd:?}");
    let output = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            tool("mmdebstrap is not installed (Debian package `mmdebstrap`: apt-get install mmdebstrap)".into())
        } else {
            tool(e.to_string())
        }
    })?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = err
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(tool(format!(
            "{} building {} {} with [{}]:\n{}",
            output.status,
            d.suite,
            d.variant,
            pkgs.join(", "),
            tail.join("\n")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_digest_ignores_package_order() {
        let a = DebianBase {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            packages: vec!["b".into(), "a".into()],
            kernel: String::new(),
            mirror: None,
        };
        let mut b = a.clone();
        b.packages.reverse();
        assert_eq!(inputs_digest(&a, 1), inputs_digest(&b, 1));
        assert_ne!(inputs_digest(&a, 1), inputs_digest(&a, 2));
    }
}
