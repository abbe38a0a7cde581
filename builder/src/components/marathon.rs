//! Marathon on the masters: `--master zk://…/mesos --zk zk://…/marathon`, `LIBPROCESS_IP` from
//! the host's identity.

use minijinja::context;

use super::{Ctx, RenderError};
use crate::plan::{Plan, Port, Profile, Service};

const MARATHON: &str = "/usr/bin/marathon";

pub(super) fn services(plan: &Plan, profile: &Profile, out: &mut Vec<Service>) {
    let m = &plan.spec.marathon;
    if m.enabled && profile.roles.master {
        out.push(Service {
            unit: "marathon.service".into(),
            component: "marathon",
            exec: MARATHON.into(),
            ports: vec![Port::tcp(m.port, "marathon.port")],
        });
    }
}

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    if !ctx.runs("marathon.service") {
        return Ok(());
    }
    let d = &ctx.plan.derived;
    let data = context! { exec => MARATHON, master => d.mesos_zk, zk => d.marathon_zk, port => ctx.plan.spec.marathon.port };
    ctx.unit("marathon.service", "marathon.service", data)
}
