//! Every host's provisioning artifacts — its cloud-init seed files (`cloud-init/HOST/`), its
//! kickstart (`kickstart/HOST.ks`, with `[kickstart]`) and the PXE configs (`pxe/` but
//! `pxe/sha256/`, with the PXE tree on) — rendered and written **incrementally** by
//! [`write()`], the one path `kiln build` and the `provision_scale` benchmark take.
//!
//! Incremental: a file whose bytes and mode are already on disk is left alone (same inode,
//! same mtime); any other is written to a temporary name beside it and renamed over it, so a
//! file is never half-written and an inode that another name shares (a hard link from the
//! previous output, see [`carry_over`]) is never changed. Files under those directories that
//! the plan no longer produces (a removed host, kickstarts switched off) are removed, and so
//! are directories left empty. `cloud-init/HOST-cidata.iso` of a current host is left to its
//! maker (`kiln build`, see `seed::write_iso`).
//!
//! Seeds and kickstarts with secrets are mode 0600, other kickstarts and the PXE configs 0644,
//! set exactly (the umask plays no part). Hosts are rendered and written on up to
//! `available_parallelism` threads, each file independently, so the bytes do not depend on
//! the thread count; one host's kickstart is held in memory only while it is written.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use kiln_layers::{Entry, EntryKind, FileTree, IoError};
use kiln_model::plan::{HostPlan, Plan};
use kiln_provision::cloudinit;
use kiln_provision::kickstart::{LiveImage, PostEntry};
use kiln_provision::pxe::{self as pxe_render, PxeProfile};

use super::kickstart::{post_entries, render_with_role};
use super::{place, BuildError, Dist, KickstartReport};
use crate::components::bootable::{
    IDENTITY_SIG, IDENTITY_TAR, PASSWORD_HASH_FILE, SEED_SIGNER_CRT, USER_DATA_SHA_FILE,
};
use crate::components::Rendered;

/// What [`write()`] renders from.
#[derive(Debug, Clone, Copy)]
pub struct Provision<'a> {
    pub plan: &'a Plan,
    pub rendered: &'a Rendered,
    /// The base's tree (metadata is enough): identity trees are placed on it, through its
    /// symlinks, as on the image.
    pub base: &'a FileTree,
    /// The PXE tree's boot files per role (`None`: no PXE tree). Hosts of other profiles get
    /// no PXE configs.
    pub pxe: Option<&'a [PxeProfile]>,
    /// The PXE tree's loaders ([`super::pxe::loaders`]), written with its configs.
    pub pxe_loaders: &'a [super::pxe::LoaderFile],
    /// `image` kickstarts: each profile's rootfs tarball and its sha256.
    pub liveimg: &'a BTreeMap<String, LiveImage>,
    /// `[boot.secure_boot]`: each seed's identity tar is signed with the db key
    /// (`kiln-identity.tar.sig`, beside the signer's certificate `kiln-seed-signer.crt`).
    pub signer: Option<&'a crate::secure_boot::SecureBootFiles>,
}

/// One host's part of what [`write()`] did.
#[derive(Debug, Clone)]
pub struct HostProvisioned {
    pub host: String,
    /// `meta-data`'s `instance-id`.
    pub instance_id: String,
    /// Every file of its seed was already on disk as rendered.
    pub seed_unchanged: bool,
    /// `kickstart/HOST.ks`, when the plan has kickstarts.
    pub kickstart: Option<KickstartReport>,
}

/// The files [`write()`] touched, as paths relative to the output root, in plan order.
#[derive(Debug, Clone, Default)]
pub struct WriteStats {
    /// Written (new, or different bytes or mode).
    pub written: Vec<String>,
    /// Already on disk as rendered: left alone.
    pub unchanged: usize,
    /// Removed: no longer produced (and directories left empty).
    pub removed: Vec<String>,
}

impl WriteStats {
    fn absorb(&mut self, other: WriteStats) {
        self.written.extend(other.written);
        self.unchanged += other.unchanged;
        self.removed.extend(other.removed);
    }
}

/// What [`write()`] did.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Per host of the plan with an identity tree, in plan order.
    pub hosts: Vec<HostProvisioned>,
    pub stats: WriteStats,
}

/// The top-level directories [`write()`] owns (below the output root). `pxe/sha256/` is not
/// its: the build places the boot files there.
const OWNED: [&str; 3] = ["cloud-init", "kickstart", "pxe"];
const NOT_OWNED: &str = "pxe/sha256";

/// Renders every host's seed files, kickstart and PXE configs of `p` into `dist` and removes
/// what the plan no longer produces there. See the module documentation.
pub fn write(p: &Provision, dist: &Dist) -> Result<Provisioned, BuildError> {
    let root = dist.root();
    let mut expected: HashSet<String> = HashSet::new();
    if p.plan.kickstart.is_some() {
        mkdir(&dist.kickstart_dir(), "kickstart")?;
        expected.insert("kickstart".into());
    }
    // A role's %post entries are built once, however many hosts install it.
    let mut roles: BTreeMap<&str, Vec<PostEntry>> = BTreeMap::new();
    if p.plan.kickstart.is_some() {
        for (name, tree) in &p.rendered.profiles {
            roles.insert(name.as_str(), post_entries(tree));
        }
    }
    let hosts: Vec<&HostPlan> = p
        .plan
        .hosts
        .iter()
        .filter(|h| p.rendered.hosts.contains_key(h.name.as_str()))
        .collect();
    let per_host = par_chunks(&hosts, |chunk| {
        let mut stats = WriteStats::default();
        let mut out = Vec::with_capacity(chunk.len());
        for h in chunk {
            out.push(write_host(p, &roles, h, root, &mut stats)?);
        }
        Ok((out, stats))
    })?;
    let mut stats = WriteStats::default();
    let mut provisioned = Vec::with_capacity(hosts.len());
    for (out, s) in per_host {
        provisioned.extend(out);
        stats.absorb(s);
    }
    expected.reserve(hosts.len() * 10);
    for h in &hosts {
        let name = h.name.as_str();
        let seed = Dist::seed_dir_rel(name);
        for file in SEED_FILES {
            expected.insert(format!("{seed}/{file}"));
        }
        if p.signer.is_some() {
            for file in [IDENTITY_SIG, SEED_SIGNER_CRT] {
                expected.insert(format!("{seed}/{file}"));
            }
        }
        expected.insert(seed);
        expected.insert(Dist::seed_iso_rel(name));
        if p.plan.kickstart.is_some() {
            expected.insert(Dist::kickstart_rel(name));
        }
    }
    if let (Some(profiles), Some(provision)) = (p.pxe, p.plan.provision.as_ref()) {
        let pxe_hosts: Vec<HostPlan> = p
            .plan
            .hosts
            .iter()
            .filter(|h| profiles.iter().any(|b| b.name == h.profile))
            .cloned()
            .collect();
        let mut files: Vec<(String, Vec<u8>)> =
            pxe_render::render(p.plan.cluster.as_str(), provision, profiles, &pxe_hosts)?
                .into_iter()
                .map(|f| (f.path, f.text.into_bytes()))
                .collect();
        files.extend(
            p.pxe_loaders
                .iter()
                .map(|l| (l.path.clone(), l.bytes.clone())),
        );
        // Each host's seed again under `cloud-init/mac/MAC/`, where a role's network UKI
        // finds it by the MAC of the NIC it booted from.
        for h in &pxe_hosts {
            let from = Dist::seed_dir_rel(h.name.as_str());
            let to = format!("{}/{}", pxe_render::SEEDS_BY_MAC, h.mac.hyphenated());
            mkdir(
                &root.join(pxe_render::SEEDS_BY_MAC),
                pxe_render::SEEDS_BY_MAC,
            )?;
            mkdir(&root.join(&to), &to)?;
            expected.insert(pxe_render::SEEDS_BY_MAC.to_string());
            expected.insert(to.clone());
            let mut names = SEED_FILES.to_vec();
            if p.signer.is_some() {
                names.extend([IDENTITY_SIG, SEED_SIGNER_CRT]);
            }
            for name in names {
                let bytes = fs::read(root.join(format!("{from}/{name}")))
                    .map_err(IoError::new(format!("reading {from}/{name}")))?;
                put(root, &format!("{to}/{name}"), &bytes, 0o600, &mut stats)?;
                expected.insert(format!("{to}/{name}"));
            }
        }
        let mut dirs: Vec<String> = files
            .iter()
            .filter_map(|(path, _)| path.rsplit_once('/').map(|(d, _)| d.to_string()))
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            mkdir(&dist.pxe().join(&d), &format!("pxe/{d}"))?;
            expected.insert(format!("pxe/{d}"));
        }
        let written = par_chunks(&files, |chunk| {
            let mut s = WriteStats::default();
            for (path, bytes) in chunk {
                put(root, &format!("pxe/{path}"), bytes, 0o644, &mut s)?;
            }
            Ok(s)
        })?;
        for s in written {
            stats.absorb(s);
        }
        let index = super::pxe::hosts_json(p.plan, provision, &pxe_hosts)?;
        put(root, "pxe/hosts.json", index.as_bytes(), 0o644, &mut stats)?;
        expected.extend(files.into_iter().map(|(path, _)| format!("pxe/{path}")));
        expected.insert("pxe/hosts.json".into());
    }
    for top in OWNED {
        remove_unexpected(root, top, &expected, &mut stats)?;
    }
    Ok(Provisioned {
        hosts: provisioned,
        stats,
    })
}

/// The seed files, named as on a `cidata` volume: cloud-init's three (as
/// [`cloudinit::Seed::files`] names them) and kiln's [`IDENTITY_TAR`].
const SEED_FILES: [&str; 4] = ["meta-data", "network-config", "user-data", IDENTITY_TAR];

/// The identity tar of `host` (see [`IDENTITY_TAR`]): deterministic, files only (directories
/// the tar needs are made 0755, except `/root/.ssh` 0700), with the sha256 of the seed's
/// `user_data` (see [`USER_DATA_SHA_FILE`]).
fn identity_tar(
    host: &HostPlan,
    placed: &FileTree,
    user_data: &str,
) -> Result<Vec<u8>, BuildError> {
    let tree_err = |e: kiln_layers::TreeError| {
        BuildError::Source(format!("identity tar of host {}: {e}", host.name))
    };
    let mut tree = FileTree::new();
    for (path, e) in placed.iter() {
        if let EntryKind::File(_) = &e.kind {
            tree.insert(path, e.clone()).map_err(tree_err)?;
        }
    }
    let keys = &host.access.ssh_authorized_keys;
    if !keys.is_empty() {
        tree.insert("/root/.ssh", Entry::dir(0o700))
            .map_err(tree_err)?;
        let text: String = keys.iter().map(|k| k.line() + "\n").collect();
        tree.insert("/root/.ssh/authorized_keys", Entry::file(text, 0o600))
            .map_err(tree_err)?;
    }
    if let Some(h) = &host.access.root_password_hash {
        tree.insert(
            PASSWORD_HASH_FILE,
            Entry::file(format!("{}\n", h.expose()), 0o600),
        )
        .map_err(tree_err)?;
    }
    let sum = crate::sources::cache::sha256_hex(user_data.as_bytes());
    tree.insert(USER_DATA_SHA_FILE, Entry::file(format!("{sum}\n"), 0o644))
        .map_err(tree_err)?;
    let mut out = Vec::new();
    kiln_layers::write_tar(&tree, 0, &mut out)
        .map_err(|e| BuildError::Source(format!("identity tar of host {}: {e}", host.name)))?;
    Ok(out)
}

/// One host's seed files and kickstart.
fn write_host(
    p: &Provision,
    roles: &BTreeMap<&str, Vec<PostEntry>>,
    host: &HostPlan,
    root: &Path,
    stats: &mut WriteStats,
) -> Result<HostProvisioned, BuildError> {
    let name = host.name.as_str();
    let identity = p
        .rendered
        .hosts
        .get(name)
        .ok_or_else(|| BuildError::Source(format!("host {name} has no identity tree")))?;
    let placed = place(identity, p.base)?;
    let files = super::seed::identity_files(name, &placed)?;
    let seed = cloudinit::render(host, &files)?;
    let dir = Dist::seed_dir_rel(name);
    mkdir(&root.join(&dir), &dir)?;
    let before = stats.written.len();
    let tar = identity_tar(host, &placed, &seed.user_data)?;
    put(root, &format!("{dir}/{IDENTITY_TAR}"), &tar, 0o600, stats)?;
    if let Some(sb) = p.signer {
        let sig = crate::secure_boot::sign_bytes(&sb.signing.key, &tar)
            .map_err(|e| BuildError::Source(format!("signing the seed of host {name}: {e}")))?;
        put(root, &format!("{dir}/{IDENTITY_SIG}"), &sig, 0o600, stats)?;
        put(
            root,
            &format!("{dir}/{SEED_SIGNER_CRT}"),
            sb.db.pem.as_bytes(),
            0o600,
            stats,
        )?;
    }
    for (file, text) in seed.files() {
        put(
            root,
            &format!("{dir}/{file}"),
            text.as_bytes(),
            0o600,
            stats,
        )?;
    }
    let seed_unchanged = stats.written.len() == before;
    let kickstart = match (&p.plan.kickstart, p.plan.profile(&host.profile)) {
        (Some(k), Some(profile)) => {
            let role = roles.get(profile.name.as_str()).map_or(&[][..], |r| r);
            let liveimg = p.liveimg.get(&profile.name);
            let ks = render_with_role(p.plan, k, &files, role, host, profile, liveimg)?;
            let rel = Dist::kickstart_rel(name);
            let mode = if ks.secrets { 0o600 } else { 0o644 };
            put(root, &rel, ks.text.as_bytes(), mode, stats)?;
            Some(KickstartReport {
                host: name.to_string(),
                path: rel,
                secrets: ks.secrets,
            })
        }
        _ => None,
    };
    Ok(HostProvisioned {
        host: name.to_string(),
        instance_id: seed.instance_id,
        seed_unchanged,
        kickstart,
    })
}

/// `f` over contiguous chunks of `items` on up to `available_parallelism` threads; results
/// in the order of the chunks, the first error (in that order) wins.
fn par_chunks<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&[T]) -> Result<R, BuildError> + Sync,
) -> Result<Vec<R>, BuildError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().div_ceil(64))
        .max(1);
    if threads == 1 {
        return Ok(vec![f(items)?]);
    }
    let size = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(size).map(|c| s.spawn(|| f(c))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| BuildError::Source("a provisioning thread panicked".into()))?
            })
            .collect()
    })
}

fn mkdir(path: &Path, rel: &str) -> Result<(), BuildError> {
    fs::create_dir_all(path).map_err(IoError::new(format!("creating {rel}/")))?;
    Ok(())
}

/// Whether `path` is a regular file holding exactly `data` with permission bits `mode`.
fn on_disk(path: &Path, data: &[u8], mode: u32) -> io::Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_file()
        || meta.permissions().mode() & 0o7777 != mode
        || meta.len() != data.len() as u64
    {
        return Ok(false);
    }
    let mut have = Vec::with_capacity(data.len());
    fs::File::open(path)?.read_to_end(&mut have)?;
    Ok(have == data)
}

/// Writes `root/rel` with `data` and exactly `mode` unless it already holds them: to a
/// temporary file in the same directory (created with `mode`, so a private file is never
/// readable by others), then renamed over `rel`.
fn put(
    root: &Path,
    rel: &str,
    data: &[u8],
    mode: u32,
    stats: &mut WriteStats,
) -> Result<(), BuildError> {
    let path = root.join(rel);
    let err = || IoError::new(format!("writing {rel}"));
    if on_disk(&path, data, mode).map_err(err())? {
        stats.unchanged += 1;
        return Ok(());
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.kiln-tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // Exactly `mode`, whatever the umask (it can only have taken bits away).
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        drop(f);
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err()(e).into());
    }
    stats.written.push(rel.to_string());
    Ok(())
}

/// Removes every file and directory below `root/top` whose relative path is not in
/// `expected` (but [`NOT_OWNED`]), and `top` itself when it is left empty and unexpected.
fn remove_unexpected(
    root: &Path,
    top: &str,
    expected: &HashSet<String>,
    stats: &mut WriteStats,
) -> Result<(), BuildError> {
    let dir = root.join(top);
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    // Post-order walk: a directory is considered once its entries are.
    fn walk(
        root: &Path,
        rel: &str,
        expected: &HashSet<String>,
        stats: &mut WriteStats,
    ) -> Result<bool, BuildError> {
        let path = root.join(rel);
        let mut empty = true;
        let entries = fs::read_dir(&path).map_err(IoError::new(format!("listing {rel}/")))?;
        let mut names: Vec<String> = Vec::new();
        for e in entries {
            let e = e.map_err(IoError::new(format!("listing {rel}/")))?;
            names.push(e.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        for name in names {
            let child = format!("{rel}/{name}");
            if child == NOT_OWNED {
                empty = false;
                continue;
            }
            let cpath = root.join(&child);
            let meta =
                fs::symlink_metadata(&cpath).map_err(IoError::new(format!("reading {child}")))?;
            if meta.is_dir() {
                let left_empty = walk(root, &child, expected, stats)?;
                if left_empty && !expected.contains(&child) {
                    fs::remove_dir(&cpath).map_err(IoError::new(format!("removing {child}/")))?;
                    stats.removed.push(format!("{child}/"));
                } else {
                    empty = false;
                }
            } else if expected.contains(&child) {
                empty = false;
            } else {
                fs::remove_file(&cpath).map_err(IoError::new(format!("removing {child}")))?;
                stats.removed.push(child);
            }
        }
        Ok(empty)
    }
    let empty = walk(root, top, expected, stats)?;
    let wanted =
        expected.contains(top) || expected.iter().any(|e| e.starts_with(&format!("{top}/")));
    if empty && !wanted {
        fs::remove_dir(&dir).map_err(IoError::new(format!("removing {top}/")))?;
        stats.removed.push(format!("{top}/"));
    }
    Ok(())
}

/// Hard-links every regular file of the previous output `old` under the directories
/// [`write()`] owns (but `pxe/sha256/`) into `new`, so that [`write()`] finds unchanged files
/// already there and leaves them alone: an identity change to one host then rewrites only
/// that host's files, and `new` (a staging directory) still becomes the output whole.
/// Sharing inodes with `old` is safe because nothing writes a file there in place. Where a
/// link fails (another file system), the file is simply written again. Returns how many
/// files were linked.
pub fn carry_over(old: &Dist, new: &Dist) -> Result<usize, BuildError> {
    let mut linked = 0;
    let mut stack: Vec<String> = OWNED.iter().map(|s| s.to_string()).collect();
    while let Some(rel) = stack.pop() {
        if rel == NOT_OWNED {
            continue;
        }
        let from = old.root().join(&rel);
        let Ok(entries) = fs::read_dir(&from) else {
            continue;
        };
        mkdir(&new.root().join(&rel), &rel)?;
        for e in entries {
            let e = e.map_err(IoError::new(format!("listing the previous {rel}/")))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(child);
            } else if kind.is_file()
                && !name.contains(".kiln-tmp-")
                && fs::hard_link(e.path(), new.root().join(&child)).is_ok()
            {
                linked += 1;
            }
        }
    }
    Ok(linked)
}
