//! `[base]`, `[base.debian]` and every `source` table: where artifacts come from.

use kiln_model::plan::{BakedImage, BasePlan, DebianPlan, Origin, SourcePlan};
use kiln_model::values::{check_text, quote, BaseFamily, DebPackage, ImageRef, Sha256Hex};

use super::Checker;
use crate::spec::{DebianBase, Source, Spec};

/// mmdebstrap's variants (mmdebstrap(1), `--variant`).
const VARIANTS: &[&str] = &[
    "extract",
    "custom",
    "essential",
    "apt",
    "minbase",
    "buildd",
    "required",
    "important",
    "standard",
];

impl Checker {
    pub(super) fn base(&mut self, spec: &Spec) -> Option<BasePlan> {
        let b = &spec.base;
        let image = if b.image.trim().is_empty() {
            self.err(
                "base.image",
                "the base image reference is empty",
                "name the base, e.g. \"debian:bookworm\"",
            );
            None
        } else {
            self.val::<ImageRef>("base.image", &b.image)
        };
        let source = self.source("base.source", b.source.as_ref());
        let debian = match &b.debian {
            Some(d) => Some(self.debian(d)?),
            None => None,
        };
        if b.debian.is_some() && b.source.is_some() {
            self.warn(
                "base.source",
                "base.debian is set, so base.source is not used",
                "remove one of them",
            );
        }
        let family = match (&b.family, &debian) {
            (Some(f), _) => {
                let f = self.val::<BaseFamily>("base.family", f)?;
                if f != BaseFamily::Debian && debian.is_some() {
                    self.err(
                        "base.family",
                        format!("base.debian builds a Debian root, not a {f} one"),
                        "remove base.family, or base.debian to start from a RHEL-family image",
                    );
                }
                Some(f)
            }
            (None, Some(_)) => Some(BaseFamily::Debian),
            (None, None) => None,
        };
        if b.bootc && family != Some(BaseFamily::Rhel) {
            self.err(
                "base.bootc",
                "a bootc base is a RHEL-family image (CentOS Stream 9's quay.io/centos-bootc/centos-bootc:stream9)",
                "set base.family = \"rhel\" with an image base, or remove base.bootc",
            );
        }
        for (i, u) in b.keep_units.iter().enumerate() {
            if !crate::components::IDLE_UNITS.iter().any(|(x, _)| x == u) {
                let known: Vec<&str> = crate::components::IDLE_UNITS
                    .iter()
                    .map(|(x, _)| *x)
                    .collect();
                self.err(
                    &format!("base.keep_units[{i}]"),
                    format!("kiln does not mask {}", quote(u)),
                    format!(
                        "keep_units names only units kiln masks as idle: {}",
                        known.join(", ")
                    ),
                );
            }
        }
        Some(BasePlan {
            image: image?,
            source: source.ok()?,
            debian,
            family,
            bootc: b.bootc,
            keep_units: b.keep_units.clone(),
        })
    }

    fn debian(&mut self, d: &DebianBase) -> Option<DebianPlan> {
        let suite = self.val("base.debian.suite", &d.suite);
        if !VARIANTS.contains(&d.variant.as_str()) {
            self.err(
                "base.debian.variant",
                format!("unknown mmdebstrap variant {}", quote(&d.variant)),
                "use \"minbase\" (smallest with apt), \"essential\", \"apt\", \"required\", \"important\" or \"standard\"",
            );
        }
        let packages = self.vals::<DebPackage>("base.debian.packages", &d.packages);
        let kernel = if d.kernel.is_empty() {
            Some(None)
        } else {
            self.val::<DebPackage>("base.debian.kernel", &d.kernel)
                .map(Some)
        };
        let mirror = match &d.mirror {
            Some(m) => Some(self.val("base.debian.mirror", m)?),
            None => None,
        };
        Some(DebianPlan {
            suite: suite?,
            variant: d.variant.clone(),
            packages: packages?,
            kernel: kernel?,
            mirror,
        })
    }

    /// A container image a unit runs, named for the cluster's registry when there is one.
    pub(super) fn baked(
        &mut self,
        spec: &Spec,
        name: &'static str,
        key: &str,
        image: &str,
        source: Option<SourcePlan>,
    ) -> Option<BakedImage> {
        let upstream: ImageRef = self.val(&format!("{key}.image"), image)?;
        let runs_as = match &spec.registry {
            None => upstream.clone(),
            Some(r) => {
                let addr = r.address.parse().ok()?;
                let prefix = r.prefix.trim_matches('/').parse().ok()?;
                upstream.with_registry(&addr, &prefix)
            }
        };
        Some(BakedImage {
            name,
            runs_as,
            upstream,
            source,
            key: format!("{key}.image"),
        })
    }

    /// A source table checked into a [`SourcePlan`]: `Ok(None)` when absent, `Err(())` when
    /// it had errors (already reported).
    pub(super) fn source(
        &mut self,
        key: &str,
        s: Option<&Source>,
    ) -> Result<Option<SourcePlan>, ()> {
        match s {
            None => Ok(None),
            Some(s) => self.source_plan(key, s).map(Some).ok_or(()),
        }
    }

    fn source_plan(&mut self, key: &str, s: &Source) -> Option<SourcePlan> {
        let kinds = [&s.url, &s.file, &s.deb, &s.oci]
            .iter()
            .filter(|k| k.is_some())
            .count()
            + usize::from(s.base);
        if kinds != 1 {
            self.err(
                key,
                format!("a source names {kinds} kinds"),
                "set exactly one of url, file, deb, oci, base",
            );
        }
        let origin = if let Some(u) = &s.url {
            self.val(&format!("{key}.url"), u).map(Origin::Url)
        } else if let Some(f) = &s.file {
            self.text(&format!("{key}.file"), f)
                .map(|()| Origin::File(f.clone()))
        } else if let Some(d) = &s.deb {
            self.val(&format!("{key}.deb"), d).map(Origin::Deb)
        } else if let Some(o) = &s.oci {
            self.oci(&format!("{key}.oci"), o)
                .map(|()| Origin::Oci(o.clone()))
        } else {
            Some(Origin::Base)
        };
        let sha256 = match &s.sha256 {
            Some(h) => match Sha256Hex::parse(h) {
                Ok(h) => Some(h),
                Err(_) => {
                    self.err(
                        &format!("{key}.sha256"),
                        "sha256 must be 64 hex digits",
                        "copy the digest from `sha256sum FILE` or from kiln.lock",
                    );
                    None
                }
            },
            None => None,
        };
        let dest = s
            .dest
            .as_ref()
            .map(|d| self.path(&format!("{key}.dest"), d));
        self.extraction(key, s);
        let mut also = Vec::new();
        for (i, more) in s.also.iter().enumerate() {
            also.push(self.source_plan(&format!("{key}.also[{i}]"), more));
        }
        if kinds != 1 {
            return None;
        }
        Some(SourcePlan {
            key: key.to_string(),
            origin: origin?,
            sha256,
            paths: s.paths.clone(),
            strip_components: s.strip_components,
            dest: dest.map_or(Some(None), |d| d.map(Some))?,
            mode: s.mode,
            also: also.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }

    /// Free text that ends up in messages and file names: no control characters.
    fn text(&mut self, key: &str, s: &str) -> Option<()> {
        check_text(s, "a file name")
            .map_err(|e| self.err(key, e.problem, e.help))
            .ok()
    }

    /// `oci:DIR[:TAG]`, `docker-archive:FILE[:TAG]` or a registry reference.
    fn oci(&mut self, key: &str, o: &str) -> Option<()> {
        if o.starts_with("oci:") || o.starts_with("docker-archive:") {
            self.text(key, o)
        } else {
            self.val::<ImageRef>(key, o).map(|_| ())
        }
    }

    /// What a source takes from its artifact and where it puts it.
    fn extraction(&mut self, key: &str, s: &Source) {
        for (i, p) in s.paths.iter().enumerate() {
            if p.is_empty()
                || p.split('/').any(|c| c == "..")
                || p.starts_with('/')
                || check_text(p, "a path").is_err()
            {
                self.err(
                    &format!("{key}.paths[{i}]"),
                    format!("{} is not a path inside the archive", quote(p)),
                    "write paths relative to the archive root (after strip_components), e.g. \"bin/etcd\" or \"*.so\"",
                );
            }
        }
        if s.strip_components > 32 {
            self.err(
                &format!("{key}.strip_components"),
                format!(
                    "strip_components = {} is more than any archive is deep",
                    s.strip_components
                ),
                "strip the leading directory only, usually 1",
            );
        }
        if let Some(mode) = s.mode {
            if mode > 0o7777 {
                self.err(
                    &format!("{key}.mode"),
                    format!("mode {mode:#o} has bits beyond 0o7777"),
                    "write the mode as a TOML octal such as 0o755",
                );
            }
        }
        let placed =
            s.dest.is_some() || !s.paths.is_empty() || s.strip_components > 0 || s.mode.is_some();
        if placed && (s.oci.is_some() || s.base) {
            self.err(
                key,
                "paths, strip_components, dest and mode apply to files and archives, not to images or the base",
                "remove them, or use a url/file/deb source",
            );
        }
        if s.base && (s.sha256.is_some() || !s.also.is_empty()) {
            self.err(
                key,
                "a base-provided source fetches nothing, so sha256 and also do not apply",
                "remove sha256 and also, or name a url/file/deb source",
            );
        }
    }
}
