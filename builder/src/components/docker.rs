//! Docker Engine: `daemon.json` with the cluster store, the unit passing the host's own
//! `--cluster-advertise` address from its identity.

use minijinja::context;
use serde::Serialize;

use super::{local_etcd_unit, Ctx, RenderError};
use crate::plan::{Plan, Port, Profile, Service};

pub(super) fn services(plan: &Plan, profile: &Profile, out: &mut Vec<Service>) {
    let d = &plan.spec.docker;
    if !d.enabled || !profile.roles.agent {
        return;
    }
    let ports = plan
        .derived
        .docker_cluster_advertise
        .as_deref()
        .and_then(|a| a.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .map(|p| vec![Port::tcp(p, "docker.cluster_advertise")])
        .unwrap_or_default();
    out.push(Service {
        unit: "docker.service".into(),
        component: "docker",
        exec: d.dockerd.clone(),
        ports,
    });
}

/// `/etc/docker/daemon.json`; only the keys kiln sets.
#[derive(Serialize)]
struct DaemonJson {
    #[serde(rename = "cluster-store", skip_serializing_if = "Option::is_none")]
    cluster_store: Option<String>,
    #[serde(rename = "insecure-registries", skip_serializing_if = "Vec::is_empty")]
    insecure_registries: Vec<String>,
}

/// The `cluster-store` URL for this profile: `etcd` becomes the profile's etcd endpoints.
pub(crate) fn cluster_store(plan: &Plan, profile: &Profile) -> Option<String> {
    let store = plan.derived.docker_cluster_store.as_deref()?;
    if store != "etcd" {
        return Some(store.to_string());
    }
    let hosts: Vec<&str> = profile
        .etcd_client_endpoints
        .split(',')
        .map(|u| {
            u.trim_start_matches("http://")
                .trim_start_matches("https://")
        })
        .collect();
    Some(format!("etcd://{}", hosts.join(",")))
}

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    if !ctx.runs("docker.service") {
        return Ok(());
    }
    let plan = ctx.plan;
    let daemon = DaemonJson {
        cluster_store: cluster_store(plan, ctx.profile),
        insecure_registries: plan
            .spec
            .registry
            .iter()
            .filter(|r| r.insecure)
            .map(|r| r.address.clone())
            .collect(),
    };
    ctx.json("/etc/docker/daemon.json", &daemon)?;
    let mut after = vec!["network-online.target"];
    if let Some(u) = local_etcd_unit(ctx.profile).filter(|_| daemon.cluster_store.is_some()) {
        after.push(u);
    }
    let extra_args = match &plan.derived.docker_cluster_advertise {
        Some(a) if daemon.cluster_store.is_some() => format!(" --cluster-advertise={a}"),
        _ => String::new(),
    };
    ctx.unit(
        "docker.service",
        "docker.service",
        context! { exec => plan.spec.docker.dockerd, after => after.join(" "), extra_args },
    )?;
    // dockerd listens on its socket itself; a distribution's socket unit (Debian enables
    // docker.socket) would hold the same path.
    ctx.mask("docker.socket")
}
