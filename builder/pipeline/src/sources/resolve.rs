//! [`resolve`]: what the plan needs → artifacts in the cache (phase 1, every problem
//! collected) → file trees and images (phase 2, every byte verified before it is read).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_layers::{FileTree, IoError};

use super::cache::{sha256_hex, Cache};
use super::fetch::Downloader;
use super::unpack::{self, Placement};
use super::{
    debian, hex_of, BaseSource, Error, ImageSource, LockEntry, LockFile, Missing, Repaired,
    Resolved, Result, SourceOptions,
};
use kiln_model::plan::{DebianPlan, Origin, Plan, SourcePlan};

use crate::components;
use crate::spec::DebianBase;

/// One thing the plan needs.
#[derive(Debug, Clone)]
enum Want {
    /// Files from a url/file/deb source, for a component (or `base`).
    Files {
        component: String,
        key: String,
        source: SourcePlan,
    },
    /// A container image (registry, `oci:DIR[:TAG]`, `docker-archive:FILE[:TAG]`).
    Image {
        component: String,
        key: String,
        reference: String,
        pinned: Option<String>,
    },
    /// The mmdebstrap base.
    Debian(DebianBase),
}

impl Want {
    /// Component and lock origin, for messages.
    fn describe(&self) -> (String, String) {
        match self {
            Want::Files {
                component, source, ..
            } => (component.clone(), origin_of(source)),
            Want::Image {
                component,
                reference,
                ..
            } => (component.clone(), format!("image:{reference}")),
            Want::Debian(d) => ("base".into(), format!("debian:{} {}", d.suite, d.variant)),
        }
    }
}

/// What phase 1 made available.
pub(super) enum Ready {
    /// A verified-on-arrival blob in the cache, with a file name for messages.
    Blob {
        hex: String,
        name: String,
    },
    /// A local file read and checked.
    Bytes {
        bytes: Vec<u8>,
        name: String,
    },
    /// A local directory.
    Tree(FileTree),
    Image(Box<ImageSource>),
}

/// Everything the plan needs, in a stable order: the base, then each component's source
/// sets (the spec's source, else the catalog's), then the container images.
fn wanted(plan: &Plan) -> Vec<Want> {
    let mut out = Vec::new();
    let base = &plan.base;
    if let Some(d) = &base.debian {
        out.push(Want::Debian(debian_inputs(d)));
    } else {
        match &base.source {
            Some(s) if s.is_base() => {}
            Some(SourcePlan {
                origin: Origin::Oci(r),
                sha256,
                ..
            }) => out.push(Want::Image {
                component: "base".into(),
                key: "base.source.oci".into(),
                reference: r.clone(),
                pinned: sha256.as_ref().map(|h| h.to_string()),
            }),
            Some(s) => out.push(Want::Files {
                component: "base".into(),
                key: "base.source".into(),
                source: s.clone(),
            }),
            None => out.push(Want::Image {
                component: "base".into(),
                key: "base.image".into(),
                reference: base.image.to_string(),
                pinned: None,
            }),
        }
    }
    for set in components::source_sets(plan) {
        let list: Vec<(String, SourcePlan)> = match set.source {
            Some(s) if s.is_base() => Vec::new(),
            Some(s) => s
                .flatten()
                .into_iter()
                .map(|s| (s.key.clone(), s.clone()))
                .collect(),
            None => set
                .catalog
                .into_iter()
                .enumerate()
                .map(|(i, s)| (format!("catalog {} {}[{i}]", set.name, set.version), s))
                .collect(),
        };
        for (key, source) in list {
            out.push(Want::Files {
                component: set.name.into(),
                key,
                source,
            });
        }
    }
    for img in components::images(plan) {
        match &img.source {
            Some(s) if s.is_base() => {}
            Some(s) => out.push(Want::Image {
                component: img.name.into(),
                key: format!("{}.oci", s.key),
                reference: match &s.origin {
                    Origin::Oci(r) => r.clone(),
                    _ => String::new(),
                },
                pinned: s.sha256.as_ref().map(|h| h.to_string()),
            }),
            None => out.push(Want::Image {
                component: img.name.into(),
                key: format!("catalog {}", img.name),
                reference: img.upstream.to_string(),
                pinned: None,
            }),
        }
    }
    out
}

/// The mmdebstrap inputs as `debian` takes them (checked values, laid out as strings).
fn debian_inputs(d: &DebianPlan) -> DebianBase {
    DebianBase {
        suite: d.suite.to_string(),
        variant: d.variant.clone(),
        packages: d.packages.iter().map(ToString::to_string).collect(),
        kernel: d
            .kernel
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        mirror: d.mirror.as_ref().map(ToString::to_string),
    }
}

fn origin_of(s: &SourcePlan) -> String {
    match &s.origin {
        Origin::Url(u) => u.to_string(),
        Origin::File(f) => format!("file:{f}"),
        Origin::Deb(d) => format!("deb:{d}"),
        Origin::Oci(o) => format!("image:{o}"),
        Origin::Base => "base".into(),
    }
}

/// The file name an origin (`https://…/etcd.tgz`, `deb:etcd-server`, `file:vendor/etcd`)
/// names: its last non-empty path or scheme component, without query or fragment.
pub(crate) fn file_name_of(origin: &str) -> String {
    let o = origin.split(['?', '#']).next().unwrap_or(origin);
    o.rsplit(['/', ':'])
        .find(|n| !n.is_empty())
        .unwrap_or("artifact")
        .to_string()
}

pub(super) struct Run<'a> {
    pub(super) spec_dir: &'a Path,
    pub(super) opts: &'a SourceOptions,
    pub(super) cache: Cache,
    pub(super) lock: LockFile,
    pub(super) dl: Downloader,
    pub(super) missing: Vec<Missing>,
    pub(super) used: Vec<LockEntry>,
    pub(super) recorded: Vec<LockEntry>,
    pub(super) repaired: Vec<Repaired>,
}

/// A corrupt cache entry found (and removed) while obtaining an artifact: its path and what
/// it hashed to.
type Corrupt = (PathBuf, String);

/// Resolves every source the plan needs; see the [module docs](super).
pub fn resolve(plan: &Plan, spec_dir: &Path, opts: &SourceOptions) -> Result<Resolved> {
    let _span = tracing::info_span!("stage", name = "resolve-sources").entered();
    let gaps: Vec<_> = components::source_sets(plan)
        .iter()
        .filter_map(|s| s.gap())
        .collect();
    if !gaps.is_empty() {
        return Err(Error::NoSource(gaps));
    }
    let mut run = Run {
        spec_dir,
        opts,
        cache: Cache::open(&opts.cache_dir)?,
        lock: LockFile::load(&opts.lock_path)?,
        dl: Downloader::new(&opts.http, opts.progress),
        missing: Vec::new(),
        used: Vec::new(),
        recorded: Vec::new(),
        repaired: Vec::new(),
    };
    let wants = wanted(plan);
    let mut ready = Vec::new();
    for w in &wants {
        match run.obtain(w) {
            Ok(Some(r)) => ready.push((w, r)),
            Ok(None) => {}
            // Unreachable artifacts are collected so one run names all of them; a digest
            // mismatch, a malformed artifact or a full disk stops at once.
            Err(e @ (Error::Download { .. } | Error::Tool { .. } | Error::Image { .. }))
                if !e.is_disk_full() =>
            {
                let (component, origin) = w.describe();
                run.miss(&component, &origin, None, e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    if !run.missing.is_empty() {
        return Err(Error::Unavailable(run.missing));
    }
    let mut out = Resolved {
        trees: BTreeMap::new(),
        base: None,
        images: BTreeMap::new(),
        lock: Vec::new(),
        recorded: Vec::new(),
        repaired: Vec::new(),
    };
    for (w, r) in ready {
        match (w, r) {
            (_, Ready::Image(img)) => {
                let component = match w {
                    Want::Image { component, .. } => component.clone(),
                    _ => "base".into(),
                };
                if component == "base" {
                    out.base = Some(BaseSource::Image(img));
                } else {
                    out.images.insert(component, *img);
                }
            }
            (Want::Debian(_), Ready::Blob { hex, .. }) => {
                // Verified (streamed) when it was obtained; the build reads it as a layer,
                // never whole.
                out.base = Some(BaseSource::Tarball {
                    path: run.cache.blob_path(&hex),
                    sha256: hex.clone(),
                });
            }
            (
                Want::Files {
                    component,
                    key,
                    source,
                },
                r,
            ) => {
                let placement = Placement {
                    paths: source.paths.clone(),
                    strip_components: source.strip_components,
                    dest: source.dest.as_ref().map(ToString::to_string),
                    mode: source.mode,
                };
                let of = if component == "base" {
                    unpack::Of::Base
                } else {
                    unpack::Of::Component
                };
                let tree = match r {
                    Ready::Blob { hex, name } => {
                        let bytes = run.cache.read_verified(&hex)?;
                        unpack::place(key, &name, &bytes, &placement, of)?
                    }
                    Ready::Bytes { bytes, name } => {
                        unpack::place(key, &name, &bytes, &placement, of)?
                    }
                    Ready::Tree(t) => unpack::select(key, &t, &placement)?,
                    Ready::Image(_) => unreachable_tree(),
                };
                if component == "base" {
                    out.base = Some(BaseSource::Tree(tree));
                    continue;
                }
                let dst = out.trees.entry(component.clone()).or_default();
                for (p, e) in tree.iter() {
                    dst.insert(p, e.clone()).map_err(|source| Error::Tree {
                        component: component.clone(),
                        source,
                    })?;
                }
            }
            (Want::Image { .. } | Want::Debian(_), _) => {}
        }
    }
    // The lock: record what was used; write it back when something is new.
    let mut changed = false;
    for e in &run.used {
        changed |= run.lock.upsert(e.clone());
    }
    if changed && opts.write_lock && !opts.locked {
        run.lock.save(&opts.lock_path)?;
    }
    for e in &run.recorded {
        tracing::warn!(
            "recorded {} {} as sha256:{} in {} (no digest was pinned)",
            e.component,
            e.origin,
            e.sha256,
            opts.lock_path.display()
        );
    }
    for r in &run.repaired {
        tracing::info!("{r}");
    }
    out.lock = run.used;
    out.lock.sort();
    out.recorded = run.recorded;
    out.repaired = run.repaired;
    Ok(out)
}

/// `kiln lock`: resolves every source (pins already in the lock are kept) and writes a lock
/// holding exactly the artifacts this plan uses, dropping stale entries.
pub fn lock(plan: &Plan, spec_dir: &Path, opts: &SourceOptions) -> Result<(Resolved, LockFile)> {
    let mut o = opts.clone();
    o.write_lock = false;
    let resolved = resolve(plan, spec_dir, &o)?;
    let lock = LockFile {
        version: super::lock::LOCK_VERSION,
        artifacts: resolved.lock.clone(),
    };
    if !opts.locked {
        lock.save(&opts.lock_path)?;
    }
    Ok((resolved, lock))
}

fn unreachable_tree() -> FileTree {
    FileTree::new()
}

impl Run<'_> {
    /// The expected digest of `origin` and who pins it.
    pub(super) fn expected(
        &self,
        component: &str,
        origin: &str,
        spec_sha: Option<&str>,
        key: &str,
    ) -> Option<(String, String)> {
        if let Some(s) = spec_sha {
            return Some((hex_of(s), format!("the spec ({key}.sha256)")));
        }
        self.lock
            .get(component, origin)
            .map(|e| (e.sha256.clone(), self.opts.lock_path.display().to_string()))
    }

    pub(super) fn miss(
        &mut self,
        component: &str,
        origin: &str,
        digest: Option<&str>,
        reason: impl Into<String>,
    ) {
        self.missing.push(Missing {
            component: component.into(),
            origin: origin.into(),
            digest: digest.map(|d| format!("sha256:{}", hex_of(d))),
            reason: reason.into(),
        });
    }

    /// Checks a cached blob by streaming it through sha256: `Ok(Some(size))` when whole,
    /// `Ok(None)` when corrupt (the entry is removed and recorded in `corrupt`).
    pub(super) fn check_cached(
        &self,
        hex: &str,
        corrupt: &mut Vec<Corrupt>,
    ) -> Result<Option<u64>> {
        match self.cache.verify(hex) {
            Ok(size) => Ok(Some(size)),
            Err(Error::CorruptCache { path, actual }) => {
                corrupt.push((path, actual));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// After an artifact was obtained again: the corrupt entries found on the way were
    /// restored from `origin`. When it could not be (`--offline`), its miss says why the
    /// cache no longer has it.
    pub(super) fn restored(&mut self, corrupt: Vec<Corrupt>, origin: &str, ok: bool) {
        if ok {
            self.repaired
                .extend(corrupt.into_iter().map(|(path, actual)| Repaired {
                    path,
                    actual,
                    origin: origin.into(),
                }));
        } else if let Some(m) = self.missing.last_mut().filter(|_| !corrupt.is_empty()) {
            let found: Vec<String> = corrupt
                .iter()
                .map(|(p, actual)| {
                    format!("cache entry {} was corrupt (sha256 {actual})", p.display())
                })
                .collect();
            m.reason = format!("{} and was removed; {}", found.join(", "), m.reason);
        }
    }

    /// The cache blob a failed image step tripped over, when it is corrupt: removed, and
    /// returned. `None` when the error is about something else (a corrupt blob in the user's
    /// layout is an error to report, not to repair).
    pub(super) fn corrupt_in_cache(&self, e: &Error) -> Option<Corrupt> {
        match e {
            Error::CorruptCache { path, actual } => Some((path.clone(), actual.clone())),
            Error::Image {
                source: kiln_oci::Error::DigestMismatch { expected, .. },
                ..
            } => {
                let store = self.cache.store();
                let path = store.path(expected);
                match store.verify(expected) {
                    Err(kiln_oci::Error::DigestMismatch { actual, .. }) => {
                        std::fs::remove_file(&path).ok()?;
                        Some((path, actual.hex()))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// `--locked`: refuses (as missing) anything the lock does not list.
    pub(super) fn locked_out(&mut self, component: &str, origin: &str) -> bool {
        if self.opts.locked && self.lock.get(component, origin).is_none() {
            self.miss(
                component,
                origin,
                None,
                format!("not in {} and --locked is set: run `kiln lock SPEC` to add it after reviewing the spec change", self.opts.lock_path.display()),
            );
            return true;
        }
        false
    }

    pub(super) fn record(
        &mut self,
        component: &str,
        origin: &str,
        hex: &str,
        size: Option<u64>,
        pinned: bool,
    ) {
        let e = LockEntry {
            component: component.into(),
            origin: origin.into(),
            sha256: hex.into(),
            size,
        };
        if !pinned && self.lock.get(component, origin).is_none() {
            self.recorded.push(e.clone());
        }
        self.used.push(e);
    }

    fn obtain(&mut self, w: &Want) -> Result<Option<Ready>> {
        match w {
            Want::Files {
                component,
                key,
                source,
            } => self.obtain_files(component, key, source),
            Want::Image {
                component,
                key,
                reference,
                pinned,
            } => self.obtain_image(component, key, reference, pinned.as_deref()),
            Want::Debian(d) => self.obtain_debian(d),
        }
    }

    pub(super) fn obtain_files(
        &mut self,
        component: &str,
        key: &str,
        s: &SourcePlan,
    ) -> Result<Option<Ready>> {
        let origin = origin_of(s);
        if self.locked_out(component, &origin) {
            return Ok(None);
        }
        let pin = s.sha256.as_ref().map(ToString::to_string);
        let expected = self.expected(component, &origin, pin.as_deref(), key);
        let exp = expected.as_ref().map(|(h, by)| (h.as_str(), by.as_str()));
        let name = file_name_of(&origin);
        if let Origin::File(f) = &s.origin {
            let path = self.spec_dir.join(f);
            if path.is_dir() {
                let tree = unpack::read_dir(key, &path)?;
                let mut tar = Vec::new();
                kiln_layers::write_tar(&tree, 0, &mut tar).map_err(|source| Error::Layer {
                    what: key.into(),
                    source,
                })?;
                let hex = sha256_hex(&tar);
                self.check(&origin, exp, &hex)?;
                self.record(component, &origin, &hex, None, expected.is_some());
                return Ok(Some(Ready::Tree(tree)));
            }
            let bytes = std::fs::read(&path).map_err(IoError::at("reading source file", &path))?;
            let hex = sha256_hex(&bytes);
            self.check(&origin, exp, &hex)?;
            self.record(
                component,
                &origin,
                &hex,
                Some(bytes.len() as u64),
                expected.is_some(),
            );
            return Ok(Some(Ready::Bytes { bytes, name }));
        }
        let mut corrupt = Vec::new();
        if let Some((hex, _)) = &expected {
            if self.cache.contains(hex) {
                if let Some(size) = self.check_cached(hex, &mut corrupt)? {
                    self.record(component, &origin, hex, Some(size), true);
                    return Ok(Some(Ready::Blob {
                        hex: hex.clone(),
                        name,
                    }));
                }
            }
        }
        if self.opts.offline {
            let how = if expected.is_some() {
                "not in the cache (--offline)"
            } else {
                "no digest is pinned (spec sha256 or kiln.lock), so the cache cannot be searched (--offline)"
            };
            self.miss(
                component,
                &origin,
                expected.as_ref().map(|e| e.0.as_str()),
                how,
            );
            self.restored(corrupt, &origin, false);
            return Ok(None);
        }
        let (hex, size, name) = if let Origin::Url(u) = &s.origin {
            let (hex, size) =
                self.dl
                    .fetch_into(&self.cache, u.as_str(), self.opts.mirror.as_deref(), exp)?;
            (hex, size, name)
        } else if let Origin::Deb(pkg) = &s.origin {
            self.apt_download(pkg.as_ref(), &origin, exp)?
        } else {
            return Err(Error::Source {
                key: key.into(),
                reason: "names no url, file or deb".into(),
            });
        };
        self.record(component, &origin, &hex, Some(size), expected.is_some());
        self.restored(corrupt, &origin, true);
        Ok(Some(Ready::Blob { hex, name }))
    }

    pub(super) fn check(
        &self,
        origin: &str,
        exp: Option<(&str, &str)>,
        actual: &str,
    ) -> Result<()> {
        match exp {
            Some((want, by)) if want != actual => Err(Error::DigestMismatch {
                origin: origin.into(),
                expected: want.into(),
                actual: actual.into(),
                pinned_by: by.into(),
            }),
            _ => Ok(()),
        }
    }

    /// `apt-get download PKG[=VERSION]` in a temporary directory, then into the cache.
    pub(super) fn apt_download(
        &self,
        pkg: &str,
        origin: &str,
        exp: Option<(&str, &str)>,
    ) -> Result<(String, u64, String)> {
        let tmp = tempfile::tempdir().map_err(IoError::at(
            "creating temporary directory",
            std::env::temp_dir(),
        ))?;
        let out = Command::new("apt-get")
            // `--` so that a package name can never be read as an option.
            .args(["download", "-q", "--", pkg])
            .current_dir(tmp.path())
            .output()
            .map_err(|e| Error::Tool { tool: "apt-get".into(), detail: format!("{e} (apt-get is Debian's package tool; `deb` sources need a Debian build machine)") })?;
        if !out.status.success() {
            return Err(Error::Tool {
                tool: format!("apt-get download {pkg}"),
                detail: format!("{}: {} (run `apt-get update` first; check the name with `apt-cache policy {}`)", out.status, String::from_utf8_lossy(&out.stderr).trim(), pkg.split('=').next().unwrap_or(pkg)),
            });
        }
        let file = std::fs::read_dir(tmp.path())
            .map_err(IoError::at("reading", tmp.path()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| Error::Tool {
                tool: format!("apt-get download {pkg}"),
                detail: "no .deb was written".into(),
            })?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let f = std::fs::File::open(&file).map_err(IoError::at("opening", &file))?;
        let (hex, size) = self.cache.put_reader(f, exp, origin)?;
        Ok((hex, size, name))
    }

    pub(super) fn obtain_debian(&mut self, d: &DebianBase) -> Result<Option<Ready>> {
        let epoch = self.opts.source_date_epoch;
        let inputs = debian::inputs_digest(d, epoch);
        let origin = format!("debian:{inputs}");
        if self.locked_out("base", &origin) {
            return Ok(None);
        }
        let ref_name = format!("debian-{inputs}");
        let name = format!("{}-{}.tar", d.suite, &inputs[..12]);
        // The tarball the lock names, else the one last built from these inputs; verified
        // (streamed) here, as the build reads it as a layer and never whole.
        let candidates = [
            self.lock.get("base", &origin).map(|e| e.sha256.clone()),
            self.cache.get_ref(&ref_name).map(|h| hex_of(&h)),
        ];
        let mut corrupt = Vec::new();
        for hex in candidates.into_iter().flatten() {
            if !self.cache.contains(&hex) {
                continue;
            }
            if let Some(size) = self.check_cached(&hex, &mut corrupt)? {
                self.record("base", &origin, &hex, Some(size), true);
                return Ok(Some(Ready::Blob { hex, name }));
            }
        }
        if self.opts.offline {
            self.miss("base", &origin, None, format!("the {} {} base is not built in the cache (--offline): run `kiln fetch SPEC` where the Debian mirror is reachable", d.suite, d.variant));
            self.restored(corrupt, &origin, false);
            return Ok(None);
        }
        let tmp = tempfile::Builder::new()
            .prefix(".mmdebstrap-")
            .suffix(".tar")
            .tempfile_in(self.cache.root().join("partial"))
            .map_err(IoError::at(
                "creating temporary file in",
                self.cache.root().join("partial"),
            ))?;
        let (_, path): (std::fs::File, PathBuf) = tmp
            .keep()
            .map_err(|e| IoError::at("keeping temporary file", self.cache.root())(e.error))?;
        let started = std::time::Instant::now();
        if self.opts.progress {
            eprintln!(
                "building the {} {} base with mmdebstrap",
                d.suite, d.variant
            );
        }
        if let Err(e) = debian::build(d, epoch, &path) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        tracing::info!("mmdebstrap took {:.1?}", started.elapsed());
        let (hex, size) = self.cache.adopt(&path, None, &origin)?;
        self.cache.set_ref(&ref_name, &hex)?;
        if self.opts.locked {
            if let Some(e) = self.lock.get("base", &origin) {
                self.check(
                    &origin,
                    Some((&e.sha256, &self.opts.lock_path.display().to_string())),
                    &hex,
                )?;
            }
        }
        self.record("base", &origin, &hex, Some(size), false);
        self.restored(corrupt, &origin, true);
        Ok(Some(Ready::Blob { hex, name }))
    }
}
