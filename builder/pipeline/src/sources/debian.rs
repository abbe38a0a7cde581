//! The `debian` base: a root filesystem built by `mmdebstrap` in root mode from a suite, a
//! variant and a package list (plus the kernel package), as a tarball in the cache, keyed by
//! the digest of its inputs. `SOURCE_DATE_EPOCH` is set, so the same inputs and the same
//! archive state give the same files and mtimes.
//!
//! The base carries nothing of the machine that built it. mmdebstrap copies the build
//! machine's `/etc/resolv.conf` and `/etc/hostname` into the tree and leaves them there
//! (mmdebstrap(1), section `SOURCE_DATE_EPOCH`: "you need to manually either delete both files
//! from the output"), and it picks the native architecture and adds `signed-by` to
//! `sources.list` depending on the build machine. So kiln passes the architecture, skips the
//! `signed-by` check, and removes in a customize hook what a build leaves behind (see
//! [`CUSTOMIZE_HOOKS`]). Every argument, and the mmdebstrap version, go into the cache key.
//!
//! mmdebstrap needs root (or a user namespace setup) and the Debian mirror; on Debian
//! `apt-get install mmdebstrap`. A minbase with one small package takes ~30–80 s.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::spec::DebianBase;

use super::cache::sha256_hex;
use super::{Error, Result};

/// Names the way kiln builds the base; bump it when a change to the build is not visible in
/// the arguments (for example how the tarball is post-processed).
const FORMAT: &str = "kiln-debian-v2";

/// Role images are `linux/amd64`; without `--architectures` mmdebstrap would use the build
/// machine's native one.
const ARCH: &str = "amd64";

/// Shell commands mmdebstrap runs after every package is installed, `$1` being the root.
/// mmdebstrap ≥ 1.0 already removes some of these in its own `cleanup` step (apt lists and
/// caches, its logs, `aux-cache`, the D-Bus machine id); they are removed here as well so the
/// result does not depend on the mmdebstrap version's cleanup list.
pub const CUSTOMIZE_HOOKS: &[&str] = &[
    // Copied from the build machine by mmdebstrap's setup step. The host's identity tree
    // writes /etc/hostname; name resolution comes from the host's network config.
    r#"rm -f "$1/etc/resolv.conf" "$1/etc/hostname""#,
    // An empty /etc/machine-id, as machine-id(5) recommends for images: systemd generates the
    // id at boot (bind-mounted over the file when / is read-only) and, unlike a missing or
    // "uninitialized" file, it is not a first boot, so no `preset-all` re-enables units.
    r#"rm -f "$1/var/lib/dbus/machine-id" && : > "$1/etc/machine-id""#,
    // apt's package lists and caches: state of the mirror at build time.
    r#"find "$1/var/lib/apt/lists" "$1/var/cache/apt" -type f ! -name lock -delete"#,
    // What dpkg, apt and maintainer scripts logged during the build; empty files that
    // packages create (wtmp, btmp, lastlog) stay.
    r#"find "$1/var/log" -type f -size +0 -delete"#,
    // ldconfig's cache of file stats (inode numbers and times of the build machine's disk).
    r#"rm -f "$1/var/cache/ldconfig/aux-cache""#,
    // Backups debconf and dpkg write when they update their databases.
    r#"rm -f "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old"#,
];

/// The digest (hex) of everything that decides the tarball: the mmdebstrap version, every
/// argument kiln passes (suite, variant, architecture, packages, mirror, skipped checks,
/// hooks), the epoch and a format tag.
pub fn inputs_digest(d: &DebianBase, epoch: u64) -> String {
    digest_with(d, epoch, mmdebstrap_version())
}

fn digest_with(d: &DebianBase, epoch: u64, version: &str) -> String {
    let mut text = format!(
        "{FORMAT}\nmmdebstrap={version}\nSOURCE_DATE_EPOCH={epoch}\nsuite={}\nmirror={}\n",
        d.suite,
        d.mirror.as_deref().unwrap_or("")
    );
    for o in options(d) {
        // One option a line; hooks are single-line shell commands.
        text.push_str(&o);
        text.push('\n');
    }
    sha256_hex(text.as_bytes())
}

/// `mmdebstrap --version` ("mmdebstrap 1.3.5"), asked once; "unavailable" when it cannot run
/// (a cache filled elsewhere is then only found by a machine that also lacks it).
fn mmdebstrap_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        Command::new("mmdebstrap")
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unavailable".into())
    })
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

/// mmdebstrap's options (every argument before the suite): what [`build`] passes and
/// [`inputs_digest`] hashes.
fn options(d: &DebianBase) -> Vec<String> {
    let mut args = vec![
        "--mode=root".to_string(),
        format!("--variant={}", d.variant),
        format!("--architectures={ARCH}"),
        "--components=main".to_string(),
        "--format=tar".to_string(),
        // Whether `signed-by` is added to sources.list depends on the build machine's keyrings.
        "--skip=check/signed-by".to_string(),
        "--quiet".to_string(),
    ];
    let pkgs = include_list(d);
    if !pkgs.is_empty() {
        args.push(format!("--include={}", pkgs.join(",")));
    }
    args.extend(
        CUSTOMIZE_HOOKS
            .iter()
            .map(|h| format!("--customize-hook={h}")),
    );
    args
}

/// Runs mmdebstrap, writing the root filesystem as a tarball to `out`.
pub fn build(d: &DebianBase, epoch: u64, out: &Path) -> Result<()> {
    let tool = |detail: String| Error::Tool {
        tool: "mmdebstrap".into(),
        detail,
    };
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(options(d)).arg(&d.suite).arg(out);
    if let Some(m) = &d.mirror {
        cmd.arg(m);
    }
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .stdin(Stdio::null());
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
            include_list(d).join(", "),
            tail.join("\n")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn base() -> DebianBase {
        DebianBase {
            suite: "bookworm".into(),
            variant: "minbase".into(),
            packages: vec!["b".into(), "a".into()],
            kernel: String::new(),
            mirror: None,
        }
    }

    #[test]
    fn inputs_digest_ignores_package_order() {
        let a = base();
        let mut b = a.clone();
        b.packages.reverse();
        assert_eq!(inputs_digest(&a, 1), inputs_digest(&b, 1));
        assert_ne!(inputs_digest(&a, 1), inputs_digest(&a, 2));
    }

    #[test]
    fn inputs_digest_covers_the_tool_version_mirror_and_kernel() {
        let a = base();
        let v = "mmdebstrap 1.3.5";
        assert_ne!(
            digest_with(&a, 1, v),
            digest_with(&a, 1, "mmdebstrap 1.4.0")
        );
        let mut m = a.clone();
        m.mirror = Some("http://mirror.example/debian".into());
        assert_ne!(digest_with(&a, 1, v), digest_with(&m, 1, v));
        let mut k = a.clone();
        k.kernel = "linux-image-amd64".into();
        assert_ne!(digest_with(&a, 1, v), digest_with(&k, 1, v));
    }

    #[test]
    fn options_pin_what_the_build_machine_would_decide_and_carry_every_hook() {
        let args = options(&base());
        assert!(args.contains(&"--architectures=amd64".to_string()));
        assert!(args.contains(&"--skip=check/signed-by".to_string()));
        for h in CUSTOMIZE_HOOKS {
            assert!(args.contains(&format!("--customize-hook={h}")), "{h}");
            assert!(!h.contains('\n'), "one line per hook in the digest: {h}");
        }
    }

    /// The hooks run as mmdebstrap runs them (`sh -c HOOK exec ROOT`) on a tree holding what a
    /// build leaves behind.
    #[test]
    fn customize_hooks_remove_what_the_build_leaves_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let put = |p: &str, text: &str| {
            let p = root.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        };
        put("etc/resolv.conf", "nameserver 10.9.8.7\n");
        put("etc/hostname", "buildhost\n");
        put("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        put(
            "var/lib/dbus/machine-id",
            "0123456789abcdef0123456789abcdef\n",
        );
        put(
            "var/lib/apt/lists/mirror.example_debian_dists_bookworm_InRelease",
            "x",
        );
        put("var/lib/apt/lists/lock", "");
        put("var/cache/apt/pkgcache.bin", "x");
        put("var/cache/apt/archives/hello_2.10-3_amd64.deb", "x");
        put("var/log/dpkg.log", "2024-01-01 install hello\n");
        put("var/log/apt/eipp.log.xz", "x");
        put("var/log/wtmp", "");
        put("var/cache/ldconfig/aux-cache", "x");
        put("var/cache/debconf/config.dat-old", "x");
        put("var/cache/debconf/config.dat", "keep");
        put("var/lib/dpkg/status-old", "x");
        put("var/lib/dpkg/status", "keep");
        for h in CUSTOMIZE_HOOKS {
            let st = Command::new("sh")
                .args(["-c", h, "exec"])
                .arg(root)
                .status()
                .unwrap();
            assert!(st.success(), "{h}");
        }
        for gone in [
            "etc/resolv.conf",
            "etc/hostname",
            "var/lib/dbus/machine-id",
            "var/lib/apt/lists/mirror.example_debian_dists_bookworm_InRelease",
            "var/cache/apt/pkgcache.bin",
            "var/cache/apt/archives/hello_2.10-3_amd64.deb",
            "var/log/dpkg.log",
            "var/log/apt/eipp.log.xz",
            "var/cache/ldconfig/aux-cache",
            "var/cache/debconf/config.dat-old",
            "var/lib/dpkg/status-old",
        ] {
            assert!(!root.join(gone).exists(), "{gone} is left");
        }
        assert_eq!(fs::read(root.join("etc/machine-id")).unwrap(), b"");
        for kept in [
            "var/lib/apt/lists/lock",
            "var/log/wtmp",
            "var/cache/debconf/config.dat",
            "var/lib/dpkg/status",
        ] {
            assert!(root.join(kept).exists(), "{kept} was removed");
        }
    }
}
