//! Marathon on the masters: `--master zk://…/mesos --zk zk://…/marathon`, `LIBPROCESS_IP` from
//! the host's identity, a fixed `LIBPROCESS_PORT`.

use kiln_model::plan::{ComponentId, MarathonPlan, Plan, Port, Profile, Service};
use kiln_model::values::AbsPath;
use minijinja::context;

use super::{profiles_running, Component, Ctx, RenderError, SourceSet};
use crate::sources::catalog;

/// The Marathon component.
pub(crate) struct Marathon;

/// The program the unit runs: `bin/marathon` under `marathon.home`. The release tarball
/// (`sbt universal:packageZipTarball`) holds `marathon-VERSION-COMMIT/bin/marathon`
/// (mesosphere/marathon v1.6.322 README.md l.153-154, build.sbt l.153-156), which the catalog
/// unpacks into `home` with the top directory stripped; Marathon's own deb/rpm packages put
/// it at `/usr/share/marathon/bin/marathon` (tests/package/test.sc l.112), the default home.
fn program(m: &MarathonPlan) -> AbsPath {
    m.home
        .join("bin/marathon")
        .unwrap_or_else(|_| m.home.clone())
}

impl Component for Marathon {
    fn id(&self) -> ComponentId {
        ComponentId::Marathon
    }

    fn services(&self, plan: &Plan, profile: &Profile) -> Vec<Service> {
        match (&plan.marathon, profile.roles.master) {
            (Some(m), true) => vec![Service {
                unit: "marathon.service".into(),
                component: ComponentId::Marathon,
                about: "Marathon HTTP API and UI, and its libprocess port",
                exec: program(m),
                ports: vec![
                    Port::tcp(m.port, "marathon.port"),
                    Port::tcp(m.libprocess_port, "marathon.libprocess_port"),
                ],
            }],
            _ => Vec::new(),
        }
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let Some(m) = ctx
            .plan
            .marathon
            .as_ref()
            .filter(|_| ctx.runs("marathon.service"))
        else {
            return Ok(());
        };
        // Marathon talks to the Mesos master through libmesos' scheduler driver, which listens
        // on a random ephemeral port unless LIBPROCESS_PORT is set, and the leading master
        // connects back to it (mesosphere/marathon 90619da docs/docs/troubleshooting.md l.65;
        // apache/mesos 1.11.0 3rdparty/libprocess/src/process.cpp l.208-223). A fixed port
        // can be opened on the masters; DC/OS uses 15101 (dcos/dcos 79b9a39
        // gen/dcos-config.yaml l.2132, docs/admin-ports.md l.42).
        let data = context! {
            exec => program(m), master => m.master_zk, zk => m.zk, port => m.port,
            libprocess_port => m.libprocess_port,
        };
        ctx.unit("marathon.service", "marathon.service", data)
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let Some(m) = &plan.marathon else {
            return Vec::new();
        };
        vec![SourceSet {
            name: "marathon",
            version: &m.version,
            source: m.source.as_ref(),
            catalog: catalog::marathon(&m.version, &m.home),
            profiles: profiles_running(plan, ComponentId::Marathon),
        }]
    }

    fn program_source(&self, _plan: &Plan) -> Option<(&'static str, String)> {
        Some(("marathon.source", String::new()))
    }
}
