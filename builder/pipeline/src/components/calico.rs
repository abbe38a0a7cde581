//! Calico: the CNI plugins and network config where the Mesos agent looks, calico-node (and
//! calico-libnetwork for Calico 1.x) as Docker containers on the agents, from images baked
//! into them (Docker's one-shot loads them before they start).

use kiln_model::plan::{BakedImage, ComponentId, Libnetwork, Plan, Port, Profile, Proto, Service};
use kiln_model::values::{Backend, IpipMode};
use minijinja::context;
use serde::Serialize;

use super::{
    abs, local_etcd_unit, Artifact, Component, ContainerUnit, Ctx, RenderError, SourceSet,
    DOCKER_CLI, KILN_ETC,
};
use crate::sources::catalog;

/// The Calico component: CNI plugins and config, calico-node, calico-libnetwork.
pub(crate) struct Calico;

/// The Calico CNI network config (`calico.conf` / DC/OS `calico.cni`).
#[derive(Serialize)]
struct CniConfig<'a> {
    name: &'a str,
    #[serde(rename = "cniVersion")]
    cni_version: String,
    #[serde(rename = "type")]
    kind: &'a str,
    etcd_endpoints: &'a str,
    log_level: &'a str,
    ipam: Ipam,
}

#[derive(Serialize)]
struct Ipam {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl Component for Calico {
    fn id(&self) -> ComponentId {
        ComponentId::Calico
    }

    fn services(&self, plan: &Plan, profile: &Profile) -> Vec<Service> {
        let c = &plan.calico;
        if !profile.roles.agent || plan.docker.is_none() {
            return Vec::new();
        }
        let mut containers = Vec::new();
        if let Some(n) = &c.node {
            let mut ports = Vec::new();
            if n.backend != Backend::None {
                ports.push(Port::tcp(179, "calico.node.backend"));
            }
            if n.ipip != IpipMode::Off && !n.ip_pools.is_empty() {
                ports.push(Port {
                    port: 0,
                    last: None,
                    proto: Proto::Ipip,
                    local: false,
                    key: "calico.node.ipip".into(),
                });
            }
            containers.push(Service {
                unit: "calico-node.service".into(),
                component: ComponentId::Calico,
                about: "Calico BGP and IP-in-IP",
                exec: abs(DOCKER_CLI),
                ports,
            });
        }
        if let Libnetwork::Container(_) = c.libnetwork {
            containers.push(Service {
                unit: "calico-libnetwork.service".into(),
                component: ComponentId::Calico,
                about: "calico-libnetwork",
                exec: abs(DOCKER_CLI),
                ports: Vec::new(),
            });
        }
        containers
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        role_files(ctx)
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let Some(cni) = &plan.calico.cni else {
            return Vec::new();
        };
        vec![SourceSet {
            name: "calico-cni",
            version: &cni.version,
            source: cni.source.as_ref(),
            catalog: catalog::calico_cni(&cni.version, &cni.plugins_dir),
            profiles: plan
                .profiles
                .iter()
                .filter(|p| p.roles.agent)
                .map(|p| p.name.as_str())
                .collect(),
        }]
    }

    fn images<'a>(&self, plan: &'a Plan, profile: &Profile) -> Vec<&'a BakedImage> {
        if plan.docker.is_none() || !profile.roles.agent {
            return Vec::new();
        }
        plan.calico.baked_images()
    }

    fn artifacts(&self, plan: &Plan, profile: &Profile) -> Vec<Artifact> {
        let mut out = Vec::new();
        if let (Some(cni), true) = (&plan.calico.cni, profile.roles.agent) {
            for bin in ["calico", "calico-ipam"] {
                out.push(Artifact {
                    path: cni.plugins_dir.child(bin),
                    component: "calico-cni",
                    what: format!("{bin} CNI plugin {}", cni.version),
                });
            }
        }
        out
    }
}

fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    let plan = ctx.plan;
    let c = &plan.calico;
    let endpoints = ctx.profile.etcd_endpoints_csv();
    if let (Some(cni), true) = (&c.cni, ctx.profile.roles.agent) {
        let cfg = CniConfig {
            name: &cni.network,
            cni_version: cni.cni_version.to_string(),
            kind: "calico",
            etcd_endpoints: &endpoints,
            log_level: "info",
            ipam: Ipam {
                kind: "calico-ipam",
            },
        };
        ctx.json(&cni.config_dir.child(cni.config_file), &cfg)?;
    }
    let node = c.node.as_ref().filter(|_| ctx.runs("calico-node.service"));
    let libnet = match &c.libnetwork {
        Libnetwork::Container(img) if ctx.runs("calico-libnetwork.service") => Some(img),
        _ => None,
    };
    if node.is_none() && libnet.is_none() {
        return Ok(());
    }
    let env_file = format!("{KILN_ETC}/calico.env");
    let pool = node.and_then(|n| n.ip_pools.first()).map(|p| p.to_string());
    ctx.template(
        &env_file,
        0o644,
        "calico.env",
        context! {
            profile => ctx.profile.name, etcd_endpoints => endpoints,
            backend => node.map_or(Backend::None, |n| n.backend),
            libnetwork => matches!(c.libnetwork, Libnetwork::Builtin).to_string(),
            no_default_pools => pool.is_none().to_string(),
            pool, ipip => node.map_or(IpipMode::Off, |n| n.ipip),
            as_number => node.and_then(|n| n.as_number),
        },
    )?;
    let etcd: Vec<&str> = local_etcd_unit(ctx.profile).into_iter().collect();
    if let Some(n) = node {
        let mut args = vec![
            format!("--env-file={env_file}"),
            "-e NODENAME=${KILN_NODENAME}".to_string(),
            "-e IP=${KILN_IP}".into(),
        ];
        let mut vols = vec![
            "/var/log/calico:/var/log/calico",
            "/run/docker/plugins:/run/docker/plugins",
            "/lib/modules:/lib/modules",
            "/var/run/calico:/var/run/calico",
        ];
        if matches!(c.libnetwork, Libnetwork::Builtin) {
            vols.push("/var/run/docker.sock:/var/run/docker.sock");
        }
        args.extend(vols.iter().map(|v| format!("-v {v}")));
        ctx.container_unit(ContainerUnit {
            unit: "calico-node.service",
            description: "calico-node",
            docs: "https://docs.projectcalico.org/",
            image: &n.image,
            requires: etcd.clone(),
            after: Vec::new(),
            wants: Vec::new(),
            privileged: true,
            run_args: args.join(" "),
            args: String::new(),
        })?;
    }
    if let Some(img) = libnet {
        ctx.container_unit(ContainerUnit {
            unit: "calico-libnetwork.service",
            description: "calico-libnetwork (Calico 1.x)",
            docs: "https://github.com/projectcalico/libnetwork-plugin",
            image: img,
            requires: etcd,
            after: Vec::new(),
            wants: Vec::new(),
            privileged: true,
            run_args: format!("--env-file={env_file} -v /run/docker/plugins:/run/docker/plugins -v /var/run/docker.sock:/var/run/docker.sock"),
            args: String::new(),
        })?;
    }
    ctx.state_dirs(
        "calico",
        None,
        &[
            ("/var/log/calico", "0755"),
            ("/run/calico", "0755"),
            ("/run/docker/plugins", "0755"),
        ],
    )
}
