//! Marathon on the masters: `--master zk://…/mesos --zk zk://…/marathon`, `LIBPROCESS_IP` from
//! the host's identity, a fixed `LIBPROCESS_PORT`. Either its release image run by Docker on
//! the host's network (the container form, the default), or `bin/marathon` from a tarball the
//! spec names (the tarball form).

use kiln_model::plan::{
    BakedImage, ComponentId, MarathonPlan, MarathonRun, Plan, Port, Profile, Service,
};
use kiln_model::values::AbsPath;
use minijinja::context;

use super::{
    abs, profiles_running, Component, ContainerUnit, Ctx, RenderError, SourceSet, DOCKER_CLI,
    KILN_ETC,
};

/// The Marathon component.
pub(crate) struct Marathon;

/// The program the unit runs. The container form runs the Docker CLI. The tarball form runs
/// `bin/marathon` under `marathon.home`: the release tarball (`sbt
/// universal:packageZipTarball`) holds `marathon-VERSION-COMMIT/bin/marathon` (mesosphere/
/// marathon v1.6.322 README.md l.153-154, build.sbt l.153-156), which a source with
/// `strip_components = 1` and `dest = home` unpacks there; Marathon's own deb/rpm packages
/// put it at `/usr/share/marathon/bin/marathon` (tests/package/test.sc l.112), the default
/// home.
fn program(m: &MarathonPlan) -> AbsPath {
    match &m.run {
        MarathonRun::Container(_) => abs(DOCKER_CLI),
        MarathonRun::Tarball { home, .. } => {
            home.join("bin/marathon").unwrap_or_else(|_| home.clone())
        }
    }
}

/// The units Marathon follows besides Docker's: the network, and the Mesos master it
/// registers with (on every master, so it starts after the local one).
const AFTER: [&str; 2] = ["network-online.target", "mesos-master.service"];

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
        let args = format!(
            "--master {} --zk {} --http_port {} --hostname ${{KILN_FQDN}}",
            m.master_zk, m.zk, m.port
        );
        match &m.run {
            MarathonRun::Tarball { .. } => {
                let data = context! {
                    exec => program(m), args, libprocess_port => m.libprocess_port,
                    after => AFTER.join(" "),
                };
                ctx.unit("marathon.service", "marathon.service", data)
            }
            // The image's entry point is its launcher, `bin/marathon` in WORKDIR /marathon
            // (sbt-native-packager v1.2.2 DockerPlugin.scala l.80, l.99-103; mesosphere/marathon
            // v1.6.322 build.sbt l.181), so the arguments after the image are Marathon's
            // flags, as with the tarball's program. The host's network: the leading Mesos
            // master connects back to LIBPROCESS_IP:LIBPROCESS_PORT, and the HTTP port is the
            // host's. The environment is the tarball form's: the host identity (LIBPROCESS_IP)
            // and LIBPROCESS_PORT. No MARATHON_* variable: the launcher turns each into a flag
            // (project/NativePackagerSettings/extra-defines.bash l.15-17).
            MarathonRun::Container(image) => ctx.container_unit(ContainerUnit {
                unit: "marathon.service",
                description: "Marathon",
                docs: "https://mesosphere.github.io/marathon/",
                image,
                requires: Vec::new(),
                after: AFTER.to_vec(),
                wants: vec!["network-online.target"],
                privileged: false,
                run_args: format!(
                    "--env-file={KILN_ETC}/identity.env -e LIBPROCESS_PORT={}",
                    m.libprocess_port
                ),
                args,
            }),
        }
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let Some(m) = &plan.marathon else {
            return Vec::new();
        };
        let MarathonRun::Tarball { source, .. } = &m.run else {
            return Vec::new();
        };
        vec![SourceSet {
            name: "marathon",
            version: &m.version,
            source: Some(source),
            catalog: Vec::new(),
            profiles: profiles_running(plan, ComponentId::Marathon),
        }]
    }

    fn images<'a>(&self, plan: &'a Plan, profile: &Profile) -> Vec<&'a BakedImage> {
        match plan.marathon.as_ref().and_then(MarathonPlan::image) {
            Some(image) if profile.roles.master && plan.docker.is_some() => vec![image],
            _ => Vec::new(),
        }
    }

    fn program_source(&self, _plan: &Plan) -> Option<(&'static str, String)> {
        Some(("marathon.source", String::new()))
    }
}
