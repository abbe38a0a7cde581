//! Marathon: its form (the release image in Docker, or a tarball's `bin/marathon`), chosen by
//! the kind of `marathon.source`.

use kiln_model::plan::{MarathonPlan, MarathonRun, Origin, ZooKeeperPlan};
use kiln_model::values::AbsPath;

use super::Checker;
use crate::sources::catalog;
use crate::spec::Spec;

/// The tarball form's `marathon.home` unless the spec sets one: where Marathon's own deb and
/// rpm packages install it (mesosphere/marathon v1.6.322 tests/package/test.sc l.112).
const DEFAULT_HOME: &str = "/usr/share/marathon";

impl Checker {
    pub(super) fn marathon(
        &mut self,
        spec: &Spec,
        zk: Option<&ZooKeeperPlan>,
    ) -> Option<MarathonPlan> {
        let m = &spec.marathon;
        let version = self.version("marathon.version", &m.version);
        let source = self.source("marathon.source", m.source.as_ref());
        let home = m.home.as_ref().map(|h| self.path("marathon.home", h));
        if !m.enabled || !spec.mesos.master.enabled {
            return None;
        }
        let (version, source) = (version?, source.ok()?);
        let run = match source {
            // A file, package or the base: the program itself, as before images.
            Some(s) if !matches!(s.origin, Origin::Oci(_)) => {
                if m.image.is_some() {
                    self.err(
                        "marathon.image",
                        format!(
                            "marathon.image names the container form's image, but marathon.source (a {} source) selects the tarball form",
                            kind(&s.origin)
                        ),
                        "remove marathon.image to run bin/marathon from the source, or remove marathon.source to run the image (an `oci` source gives the image from disk)",
                    );
                }
                let home = match home {
                    Some(h) => h?,
                    None => AbsPath::parse(DEFAULT_HOME).ok()?,
                };
                MarathonRun::Tarball { home, source: s }
            }
            oci => {
                if m.home.is_some() {
                    self.warn(
                        "marathon.home",
                        "Marathon runs as a container (its image has it under /marathon), so marathon.home is not used",
                        "remove marathon.home, or name a tarball marathon.source (url, file, deb or base) for the tarball form",
                    );
                }
                let image = m
                    .image
                    .clone()
                    .unwrap_or_else(|| catalog::marathon_image(&version));
                if !spec.docker.enabled {
                    self.err(
                        "docker.enabled",
                        format!("Marathon runs as a container ({image}) but Docker is disabled"),
                        "enable docker (it then runs on the masters too), disable marathon, or run Marathon from a tarball: marathon.source = { url = \"…/marathon-VERSION-COMMIT.tgz\", strip_components = 1, dest = \"/usr/share/marathon\" }",
                    );
                    return None;
                }
                let image = self.baked(spec, "marathon", "marathon", &image, oci)?;
                MarathonRun::Container(Box::new(image))
            }
        };
        let zk = zk?;
        Some(MarathonPlan {
            version,
            run,
            port: m.port,
            libprocess_port: m.libprocess_port,
            master_zk: zk.url("mesos"),
            zk: zk.url("marathon"),
        })
    }
}

/// The kind of a source, as the spec writes it.
fn kind(o: &Origin) -> &'static str {
    match o {
        Origin::Url(_) => "url",
        Origin::File(_) => "file",
        Origin::Deb(_) => "deb",
        Origin::Oci(_) => "oci",
        Origin::Base => "base",
    }
}
