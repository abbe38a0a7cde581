//! Docker Engine: `daemon.json` with the cluster store, the unit passing the host's own
//! `--cluster-advertise` address from its identity, and the one-shot that loads the container
//! images baked into the profile before the units that run them start. It runs on the agents
//! (the Mesos agent's Docker containerizer, calico-node) and wherever a unit runs a baked
//! image (Marathon's container on the masters).

use kiln_model::plan::{ComponentId, Plan, Profile, Service, StorePlan};
use minijinja::context;
use serde::Serialize;

use super::{
    abs, archive_name, images_of, local_etcd_unit, profiles_running, Artifact, Component, Ctx,
    RenderError, SourceSet, DOCKER_CLI, IMAGES_DIR, LOAD_UNIT,
};
use crate::sources::catalog;

/// The Docker component.
pub(crate) struct Docker;

/// `/etc/docker/daemon.json`; only the keys kiln sets.
#[derive(Serialize)]
struct DaemonJson {
    #[serde(rename = "cluster-store", skip_serializing_if = "Option::is_none")]
    cluster_store: Option<String>,
    #[serde(rename = "insecure-registries", skip_serializing_if = "Vec::is_empty")]
    insecure_registries: Vec<String>,
}

/// The `cluster-store` URL for this profile: `etcd` becomes the profile's etcd endpoints.
/// Agents only: the store serves multi-host Docker networks (Calico's libnetwork driver),
/// whose containers are the agents' tasks. A master runs only host-networked containers
/// (Marathon), so registering it there would only tie its Docker to the store.
pub(crate) fn cluster_store(plan: &Plan, profile: &Profile) -> Option<String> {
    if !profile.roles.agent {
        return None;
    }
    match plan.docker.as_ref()?.cluster_store.as_ref()? {
        StorePlan::Url(u) => Some(u.to_string()),
        StorePlan::Etcd => {
            let hosts: Vec<String> = profile
                .etcd_client_endpoints
                .iter()
                .map(|e| e.host_port())
                .collect();
            Some(format!("etcd://{}", hosts.join(",")))
        }
    }
}

impl Component for Docker {
    fn id(&self) -> ComponentId {
        ComponentId::Docker
    }

    fn services(&self, plan: &Plan, profile: &Profile) -> Vec<Service> {
        let baked = !images_of(plan, profile).is_empty();
        let Some(d) = plan
            .docker
            .as_ref()
            .filter(|_| profile.roles.agent || baked)
        else {
            return Vec::new();
        };
        // No port: `--cluster-advertise` is only the address dockerd registers in the cluster
        // store (moby daemon/discovery/discovery.go: `Init` "starts a registration loop to
        // advertise the current node under the specified address"); dockerd listens only on
        // its `-H` addresses, and kiln's unit gives it the unix socket alone. Opening 2376
        // would open a port nothing listens on.
        let mut out = vec![Service {
            unit: "docker.service".into(),
            component: ComponentId::Docker,
            about: "Docker Engine",
            exec: d.dockerd.clone(),
            ports: Vec::new(),
        }];
        if baked {
            // Runs before the container units: they find their images already loaded.
            out.push(Service {
                unit: LOAD_UNIT.into(),
                component: ComponentId::Docker,
                about: "loads baked container images",
                exec: abs("/bin/sh"),
                ports: Vec::new(),
            });
        }
        out
    }

    /// dockerd listens on its socket itself, so a distribution's `docker.socket` would hold
    /// the same path; without Docker on the profile, the base's Docker and containerd stay off.
    fn masks(&self, _plan: &Plan, profile: &Profile) -> Vec<&'static str> {
        if profile.runs("docker.service") {
            vec!["docker.socket"]
        } else {
            vec!["docker.service", "docker.socket", "containerd.service"]
        }
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let Some(d) = ctx
            .plan
            .docker
            .as_ref()
            .filter(|_| ctx.runs("docker.service"))
        else {
            return Ok(());
        };
        let plan = ctx.plan;
        let daemon = DaemonJson {
            cluster_store: cluster_store(plan, ctx.profile),
            insecure_registries: plan
                .registry
                .iter()
                .filter(|r| r.insecure)
                .map(|r| r.address.to_string())
                .collect(),
        };
        ctx.json("/etc/docker/daemon.json", &daemon)?;
        // Debian's own docker.service (docker.io 20.10.24+dfsg1, bookworm) orders
        // `After=network-online.target docker.socket firewalld.service containerd.service` and
        // `Wants=network-online.target containerd.service`. dockerd uses the system containerd
        // only when its socket exists as dockerd starts (moby cmd/dockerd/daemon.go,
        // `systemContainerdRunning`: `os.Lstat` of /run/containerd/containerd.sock), else it
        // runs a private one: without the ordering, which containerd Docker uses is a race.
        // Where no containerd.service exists (Docker's static binaries) both lines are no-ops.
        // docker.socket is masked: kiln's dockerd binds its socket itself.
        let mut wants = vec!["network-online.target", "containerd.service"];
        let mut after = vec![
            "network-online.target",
            "firewalld.service",
            "containerd.service",
        ];
        if let Some(u) = local_etcd_unit(ctx.profile).filter(|_| daemon.cluster_store.is_some()) {
            wants.push(u);
            after.push(u);
        }
        let extra_args = match &d.advertise {
            Some(a) if daemon.cluster_store.is_some() => {
                format!(" --cluster-advertise={}", a.flag_value())
            }
            _ => String::new(),
        };
        ctx.unit(
            "docker.service",
            "docker.service",
            context! { exec => d.dockerd, after => after.join(" "), wants => wants.join(" "), extra_args },
        )?;
        if !ctx.runs(LOAD_UNIT) {
            return Ok(());
        }
        // Every unit that runs a container: they start after the images are loaded.
        let containers: Vec<&str> = ctx
            .profile
            .services
            .iter()
            .filter(|s| s.exec.as_str() == DOCKER_CLI)
            .map(|s| s.unit.as_str())
            .collect();
        ctx.unit(
            LOAD_UNIT,
            "kiln-load-images.service",
            context! { before => containers.join(" "), dir => IMAGES_DIR, docker => DOCKER_CLI },
        )?;
        ctx.state_dirs("images", None, &[(IMAGES_DIR, "0755")])
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let Some(d) = &plan.docker else {
            return Vec::new();
        };
        vec![SourceSet {
            name: "docker",
            version: &d.version,
            source: d.source.as_ref(),
            catalog: catalog::docker(&d.version),
            profiles: profiles_running(plan, ComponentId::Docker),
        }]
    }

    /// The docker-archives the load one-shot loads: one per image the profile's units run.
    fn artifacts(&self, plan: &Plan, profile: &Profile) -> Vec<Artifact> {
        if !profile.runs(LOAD_UNIT) {
            return Vec::new();
        }
        images_of(plan, profile)
            .into_iter()
            .map(|img| Artifact {
                path: format!("{IMAGES_DIR}/{}", archive_name(img.runs_as.as_str())),
                component: "images",
                what: format!("image {}", img.runs_as),
            })
            .collect()
    }

    fn program_source(&self, plan: &Plan) -> Option<(&'static str, String)> {
        let v = plan
            .docker
            .as_ref()
            .map(|d| format!(" (Docker {})", d.version));
        Some(("docker.source", v.unwrap_or_default()))
    }
}
