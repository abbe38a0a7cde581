//! Stages 7 and 8: what a build writes besides the role images — the component images'
//! refs, docker-archives (when asked for), per-host identity archives — and the report with
//! `SHA256SUMS`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use kiln_layers::{FileTree, IoError};
use kiln_model::plan::{Plan, Profile};
use kiln_oci::archive::{write_docker_archive_file, ArchiveImage};
use kiln_oci::oci::layout::LayoutWriter;
use kiln_oci::BlobStore;
use sha2::{Digest, Sha256};

use super::role_images::Baked;
use super::{place, BuildError, Dist, IdentityReport, ImageReport, LayerReport};
use crate::components::Rendered;

/// The baked component images under their own refs, with report entries.
pub(super) fn component_images(
    plan: &Plan,
    baked: &[Baked],
    layout: &mut LayoutWriter,
) -> Result<Vec<ImageReport>, BuildError> {
    let mut out = Vec::new();
    for b in baked {
        layout.add_manifest(b.image.manifest_descriptor.clone(), &b.name)?;
        let (repository, tag) = split_tag(&b.runs_as);
        // Drop the cluster registry and its prefix: `kiln push --to` supplies them again.
        let mut push_name = repository;
        if let Some(r) = &plan.registry {
            let own = format!("{}/{}/", r.address, r.prefix);
            push_name = push_name.strip_prefix(own.as_str()).unwrap_or(push_name);
        }
        out.push(ImageReport {
            reference: b.name.clone(),
            kind: "component".into(),
            of: b.runs_as.clone(),
            push_name: push_name.to_string(),
            repository: repository.to_string(),
            tags: vec![tag.to_string()],
            manifest_digest: b.image.manifest_descriptor.digest,
            manifest_media_type: b.image.manifest_descriptor.media_type.clone(),
            config_digest: b.image.config_descriptor.digest,
            layers: b
                .image
                .layers
                .iter()
                .map(|l| LayerReport {
                    from: b.runs_as.clone(),
                    digest: l.digest,
                    diff_id: l.diff_id,
                    size: l.size,
                })
                .collect(),
        });
    }
    Ok(out)
}

/// A docker-archive per image under `archives/` (`docker load -i`).
pub(super) fn archives(
    dist: &Dist,
    store: &BlobStore,
    images: &[ImageReport],
    epoch: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<(), BuildError> {
    fs::create_dir_all(dist.archives()).map_err(IoError::new("creating archives/"))?;
    for img in images {
        let manifest = kiln_oci::Descriptor::new(
            &img.manifest_media_type,
            img.manifest_digest,
            store.size(&img.manifest_digest)?,
        );
        let repo_tags = img
            .tags
            .iter()
            .map(|t| format!("{}:{t}", img.repository))
            .collect();
        progress(&format!("archive {}.tar", img.reference));
        write_docker_archive_file(
            &dist.archive(&img.reference),
            store,
            &[ArchiveImage {
                manifest,
                repo_tags,
            }],
            epoch as i64,
        )?;
    }
    Ok(())
}

/// Each host's identity tree, placed on the base, as a deterministic tar under `identity/`:
/// what boot-time delivery (cloud-init, kickstart) writes onto the role image; and its
/// cloud-init seed volume `cloud-init/HOST-cidata.iso` ([`super::seed::write_iso`]) from the
/// seed files [`super::provision::write`] wrote (`seeds`, in plan order). With `reuse_isos`,
/// a volume carried over from the previous output is kept when its host's seed files were.
pub(super) fn identities(
    plan: &Plan,
    rendered: &Rendered,
    base: &FileTree,
    seeds: &[super::provision::HostProvisioned],
    epoch: u64,
    reuse_isos: bool,
    dist: &Dist,
) -> Result<Vec<IdentityReport>, BuildError> {
    let dir = dist.identity_dir();
    fs::create_dir_all(&dir).map_err(IoError::at("creating", &dir))?;
    let seeds: BTreeMap<&str, &super::provision::HostProvisioned> =
        seeds.iter().map(|s| (s.host.as_str(), s)).collect();
    let mut reports = Vec::new();
    let mut isos = Vec::new();
    for h in &plan.hosts {
        let name = h.name.as_str();
        let (Some(tree), Some(seed)) = (rendered.hosts.get(name), seeds.get(name)) else {
            continue;
        };
        let placed = place(tree, base)?;
        let mut bytes = Vec::new();
        kiln_layers::write_tar(&placed, epoch, &mut bytes)?;
        let rel = Dist::identity_rel(name);
        fs::write(dist.root().join(&rel), &bytes)
            .map_err(IoError::new(format!("writing {rel}")))?;
        isos.push((name, reuse_isos && seed.seed_unchanged));
        reports.push(IdentityReport {
            host: h.name.to_string(),
            profile: h.profile.clone(),
            path: rel,
            sha256: hex::encode(Sha256::digest(&bytes)),
            files: placed
                .iter()
                .filter(|(_, e)| e.kind != kiln_layers::EntryKind::Dir)
                .map(|(p, _)| p.to_string())
                .collect(),
            instance_id: seed.instance_id.clone(),
            seed_iso: Dist::seed_iso_rel(name),
        });
    }
    let errors = parallel(&isos, ISO_WORKERS, |(name, reuse)| {
        super::seed::write_iso(dist, name, epoch, *reuse).map(|_| ())
    });
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(reports),
    }
}

/// How many seed volumes are made at once. xorriso spends most of its ~0.15 s per volume
/// asleep (a fixed wait for its writer thread), not on a core, so many run side by side even
/// on 2 cores: 1,000 hosts' volumes take ~10 s instead of ~150 s.
const ISO_WORKERS: usize = 16;

/// `f` on every item, on up to `workers` threads; the errors in item order (so the first one
/// reported does not depend on scheduling).
fn parallel<T: Sync, E: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Vec<E> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<(usize, E)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                if let Err(e) = f(item) {
                    errors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, e));
                }
            });
        }
    });
    let mut errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    errors.sort_by_key(|(i, _)| *i);
    errors.into_iter().map(|(_, e)| e).collect()
}

/// A copy of `tree` with every file emptied.
pub(super) fn metadata_only(tree: &FileTree) -> FileTree {
    let mut out = FileTree::new();
    for (path, e) in tree.iter() {
        let mut e = e.clone();
        if let kiln_layers::EntryKind::File(data) = &mut e.kind {
            *data = Vec::new();
        }
        // Paths come from a valid tree, so replacing cannot fail.
        let _ = out.replace(path, e);
    }
    out
}

/// The OCI labels of a role image: what it is (cluster, profile, kiln version, base) and the
/// sources its layers hold. Only what goes into the image: nothing from the spec's bytes or
/// other hosts, so a comment in the spec or a change to an agent changes no role image, its
/// root hash or the hosts that boot it (`io.kiln.spec-sha256` was dropped for that; the
/// build report keeps the spec's sha256).
pub(super) fn labels(
    plan: &Plan,
    profile: &Profile,
    base: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            format!("{} {}", plan.cluster, profile.name),
        ),
        (
            "io.kiln.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("io.kiln.profile".to_string(), profile.name.clone()),
    ]);
    if let Some(b) = base {
        l.insert("org.opencontainers.image.base.name".into(), b.into());
    }
    let sources: Vec<String> = crate::components::source_list_of(plan, profile);
    l.insert(
        "io.kiln.sources".into(),
        serde_json::to_string(&sources).unwrap_or_default(),
    );
    l
}

/// Every file the profile's units need and no rendering provides (CNI plugins, baked images)
/// must be in the image: base, sources and rendered layers together.
pub(super) fn check_artifacts(
    plan: &Plan,
    profile: &Profile,
    rootfs: &FileTree,
) -> Result<(), BuildError> {
    let missing: Vec<String> = crate::components::artifacts(plan, profile)
        .into_iter()
        .filter(|a| rootfs.get(&a.path).is_none())
        .map(|a| {
            format!(
                "{} ({}): give the {} component a source",
                a.path, a.what, a.component
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(BuildError::Missing {
            profile: profile.name.clone(),
            missing,
        })
    }
}

/// `SHA256SUMS` of every regular file under `root` (sorted, `sha256sum -c` format). Blobs
/// under `oci/blobs/sha256/` and the PXE tree's boot files under `pxe/sha256/` are named by
/// their digest, computed from their bytes when they were written, so their name is used
/// instead of reading gigabytes again.
pub(super) fn sha256sums(dist: &Dist) -> Result<(), BuildError> {
    let root = dist.root();
    let blobs = dist.blobs().join("sha256");
    let pxe = dist.pxe().join("sha256");
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).map_err(IoError::at("listing", &dir))? {
            let p = e.map_err(IoError::new("listing dist"))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() {
                files.push(p);
            }
        }
    }
    let mut lines: Vec<String> = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        let named = f
            .parent()
            .filter(|d| *d == blobs || *d == pxe)
            .and_then(|_| f.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        let hex = match named {
            Some(h) => h,
            None => hash_file(&f, &rel)?,
        };
        lines.push(format!("{hex}  {rel}\n"));
    }
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    fs::write(dist.sha256sums(), lines.concat()).map_err(IoError::new("writing SHA256SUMS"))?;
    Ok(())
}

fn hash_file(f: &Path, rel: &str) -> Result<String, BuildError> {
    let mut h = Sha256::new();
    let mut file = fs::File::open(f).map_err(IoError::new(format!("reading {rel}")))?;
    io::copy(&mut file, &mut h).map_err(IoError::new(format!("reading {rel}")))?;
    Ok(hex::encode(h.finalize()))
}

/// `name:tag` → (`name`, `tag`); `latest` when there is no tag (a `:` in a registry port is
/// not a tag).
pub(super) fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}
