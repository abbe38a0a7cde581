//! `kickstart/HOST.ks` per host when the plan has [`KickstartPlan`]: rendered by
//! [`kiln_provision::kickstart`] from the host, its profile's tree (written by `%post` in
//! `packages` mode), its identity placed on the base, and what the mode installs — the
//! rootfs tarball of its role (`image`: path under the dist and sha256) or its role image's
//! reference in the cluster registry (`bootc`). A kickstart that sets root's password hash or
//! SSH keys is mode 0600, like a seed; one without is 0644. [`super::provision`] writes them.

use std::collections::BTreeMap;

use kiln_layers::{EntryKind, FileTree, IoError};
use kiln_model::plan::{HostPlan, KickstartPlan, Plan, Profile};
use kiln_provision::cloudinit::IdentityFile;
use kiln_provision::kickstart::{self, Kickstart, KickstartInputs, LiveImage, PostEntry};

use super::{BootableReport, BuildError, Dist};
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
pub(super) fn post_entries(tree: &FileTree) -> Vec<PostEntry> {
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
    render_with_role(plan, k, &identity, &role, host, profile, liveimg)
}

/// [`render_host`] from the host's identity files and its role's `%post` entries (built
/// once per role by [`super::provision`]).
pub(super) fn render_with_role(
    plan: &Plan,
    k: &KickstartPlan,
    identity: &[IdentityFile],
    role: &[PostEntry],
    host: &HostPlan,
    profile: &Profile,
    liveimg: Option<&LiveImage>,
) -> Result<Kickstart, BuildError> {
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
        identity,
        role,
        liveimg,
        bootc_ref: bootc_ref.as_deref(),
    })?)
}

/// Each role's rootfs tarball the build wrote, with its sha256 (hashed once per role,
/// however many hosts install it), for `image` kickstarts.
pub(super) fn liveimages(
    boot: &[BootableReport],
    dist: &Dist,
) -> Result<BTreeMap<String, LiveImage>, BuildError> {
    let mut out = BTreeMap::new();
    for b in boot {
        let Some(path) = b.rootfs_tarball.clone() else {
            continue;
        };
        let sha256 = super::pxe::sha256_file(&dist.root().join(&path))
            .map_err(IoError::new(format!("reading {path}")))?;
        out.insert(b.profile.clone(), LiveImage { path, sha256 });
    }
    Ok(out)
}
