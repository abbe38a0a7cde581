//! `kickstart/HOST.ks` per host when the plan has [`KickstartPlan`]: rendered by
//! [`kiln_kickstart::kickstart`] from the host, its profile's tree (written by `%post` in
//! `packages` mode), its identity placed on the base, and what the mode installs — the
//! rootfs tarball of its role (`image`: path under the dist and sha256) or its role image's
//! reference in the cluster registry (`bootc`). A kickstart that sets root's password hash or
//! SSH keys is mode 0600, like a seed; one without is 0644.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use kiln_kickstart::cloudinit::IdentityFile;
use kiln_kickstart::kickstart::{self, Kickstart, KickstartInputs, LiveImage, PostEntry};
use kiln_layers::{EntryKind, FileTree};
use kiln_model::plan::{HostPlan, KickstartPlan, Plan, Profile};
use sha2::{Digest, Sha256};

use super::{io_err, place, BootReport, BuildError, Dist};
use crate::components::Rendered;

/// A kickstart the build wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct KickstartReport {
    pub host: String,
    /// `kickstart/HOST.ks`.
    pub path: String,
    /// It carries root's password hash or SSH keys (mode 0600).
    pub secrets: bool,
}

/// The entries of a rendered tree, parents first, for a `packages` kickstart's `%post`.
fn post_entries(tree: &FileTree) -> Vec<PostEntry> {
    tree.iter()
        .filter_map(|(path, e)| match &e.kind {
            EntryKind::Dir => Some(PostEntry::Dir {
                path: path.to_string(),
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
            }),
            EntryKind::File(data) => Some(PostEntry::File(IdentityFile {
                path: path.to_string(),
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                data: data.clone(),
            })),
            EntryKind::Symlink(t) => Some(PostEntry::Symlink {
                path: path.to_string(),
                target: t.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// The kickstart of `host`, from its identity tree `placed` on the base and, for `image`
/// mode, its role's rootfs tarball.
pub fn render_host(
    plan: &Plan,
    k: &KickstartPlan,
    rendered: &Rendered,
    placed: &FileTree,
    host: &HostPlan,
    profile: &Profile,
    liveimg: Option<&LiveImage>,
) -> Result<Kickstart, BuildError> {
    let identity = super::seed::identity_files(host.name.as_str(), placed)?;
    let role = rendered
        .profiles
        .get(&profile.name)
        .map(post_entries)
        .unwrap_or_default();
    // What `kiln push --to ADDRESS/PREFIX` names the role image.
    let bootc_ref = plan.registry.as_ref().map(|r| {
        let tag = plan.images.tags.first().map_or("latest", |t| t.as_str());
        format!(
            "{}/{}/{}-{}:{tag}",
            r.address, r.prefix, plan.cluster, profile.name
        )
    });
    Ok(kickstart::render(&KickstartInputs {
        settings: k,
        host,
        profile,
        identity: &identity,
        role: &role,
        liveimg,
        bootc_ref: bootc_ref.as_deref(),
    })?)
}

/// The rootfs tarball of `profile` the build wrote, with its sha256.
fn liveimg(
    boot: &[BootReport],
    profile: &str,
    dist: &Dist,
) -> Result<Option<LiveImage>, BuildError> {
    let Some(path) = boot
        .iter()
        .find(|b| b.profile == profile)
        .and_then(|b| b.rootfs_tarball.clone())
    else {
        return Ok(None);
    };
    let mut h = Sha256::new();
    let mut f =
        fs::File::open(dist.root().join(&path)).map_err(io_err(format!("reading {path}")))?;
    std::io::copy(&mut f, &mut h).map_err(io_err(format!("reading {path}")))?;
    Ok(Some(LiveImage {
        path,
        sha256: hex::encode(h.finalize()),
    }))
}

/// Writes every host's kickstart.
pub(super) fn write_all(
    plan: &Plan,
    k: &KickstartPlan,
    rendered: &Rendered,
    base: &FileTree,
    boot: &[BootReport],
    dist: &Dist,
) -> Result<Vec<KickstartReport>, BuildError> {
    let dir = dist.kickstart_dir();
    fs::create_dir_all(&dir).map_err(io_err("creating kickstart/"))?;
    let mut reports = Vec::new();
    // A role's tarball is hashed once, however many hosts install it.
    let mut tarballs: BTreeMap<String, Option<LiveImage>> = BTreeMap::new();
    for host in &plan.hosts {
        let name = host.name.as_str();
        let (Some(profile), Some(identity)) =
            (plan.profile(&host.profile), rendered.hosts.get(name))
        else {
            continue;
        };
        let liveimg = match tarballs.get(&profile.name) {
            Some(l) => l.clone(),
            None => {
                let l = liveimg(boot, &profile.name, dist)?;
                tarballs.insert(profile.name.clone(), l.clone());
                l
            }
        };
        let placed = place(identity, base)?;
        let ks = render_host(plan, k, rendered, &placed, host, profile, liveimg.as_ref())?;
        let rel = Dist::kickstart_rel(name);
        let mode = if ks.secrets { 0o600 } else { 0o644 };
        let err = || io_err(format!("writing {rel}"));
        let path = dist.root().join(&rel);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(err())?;
        f.write_all(ks.text.as_bytes()).map_err(err())?;
        reports.push(KickstartReport {
            host: name.to_string(),
            path: rel,
            secrets: ks.secrets,
        });
    }
    Ok(reports)
}
