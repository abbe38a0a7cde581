//! Calico: the CNI plugins and network config where the Mesos agent looks, calico-node (and
//! calico-libnetwork for Calico 1.x) as Docker containers, and the one-shot that loads their
//! baked images from local disk before they start.

use kiln_model::plan::{BakedImage, ComponentId, Libnetwork, Plan, Port, Profile, Proto, Service};
use kiln_model::values::{Backend, IpipMode};
use minijinja::context;
use serde::Serialize;

use super::{
    abs, local_etcd_unit, Artifact, Component, Ctx, RenderError, SourceSet, DOCKER_CLI, IMAGES_DIR,
    KILN_ETC, LOAD_UNIT,
};
use crate::sources::catalog;

/// The Calico component: CNI plugins and config, calico-node, calico-libnetwork.
pub(crate) struct Calico;

/// File name of a baked image's docker-archive under [`IMAGES_DIR`].
pub(crate) fn archive_name(image: &str) -> String {
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.tar")
}

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
        if containers.is_empty() {
            return containers;
        }
        // Runs first among the container units: they find their images already loaded.
        let mut out = vec![Service {
            unit: LOAD_UNIT.into(),
            component: ComponentId::Calico,
            about: "loads baked container images",
            exec: abs("/bin/sh"),
            ports: Vec::new(),
        }];
        out.extend(containers);
        out
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

    fn images<'a>(&self, plan: &'a Plan) -> Vec<&'a BakedImage> {
        if plan.docker.is_none() {
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
        if profile.runs(LOAD_UNIT) {
            for img in self.images(plan) {
                out.push(Artifact {
                    path: format!("{IMAGES_DIR}/{}", archive_name(img.runs_as.as_str())),
                    component: "images",
                    what: format!("image {}", img.runs_as),
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
    let ensure_image = |image: &str| {
        match &plan.registry {
        // Present from the baked archive, else from the cluster's registry; never the internet.
        Some(_) => format!("/bin/sh -c '{DOCKER_CLI} image inspect --format={{{{.Id}}}} {image} || {DOCKER_CLI} pull {image}'"),
        None => format!("{DOCKER_CLI} image inspect --format={{{{.Id}}}} {image}"),
    }
    };
    let mut after = vec!["docker.service", LOAD_UNIT];
    if let Some(u) = local_etcd_unit(ctx.profile) {
        after.push(u);
    }
    let after = after.join(" ");
    let mut loaded = Vec::new();
    if let Some(n) = node {
        let image = n.image.runs_as.as_str();
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
        ctx.unit(
            "calico-node.service",
            "container.service",
            context! {
                description => "calico-node", docs => "https://docs.projectcalico.org/", after => &after,
                docker => DOCKER_CLI, name => "calico-node", ensure_image => ensure_image(image),
                run_args => args.join(" "), image,
            },
        )?;
        loaded.push("calico-node.service");
    }
    if let Some(img) = libnet {
        let image = img.runs_as.as_str();
        let args = format!("--env-file={env_file} -v /run/docker/plugins:/run/docker/plugins -v /var/run/docker.sock:/var/run/docker.sock");
        ctx.unit(
            "calico-libnetwork.service",
            "container.service",
            context! {
                description => "calico-libnetwork (Calico 1.x)", docs => "https://github.com/projectcalico/libnetwork-plugin",
                after => &after, docker => DOCKER_CLI, name => "calico-libnetwork",
                ensure_image => ensure_image(image), run_args => args, image,
            },
        )?;
        loaded.push("calico-libnetwork.service");
    }
    ctx.unit(
        LOAD_UNIT,
        "kiln-load-images.service",
        context! { before => loaded.join(" "), dir => IMAGES_DIR, docker => DOCKER_CLI },
    )?;
    ctx.state_dirs(
        "calico",
        None,
        &[
            ("/var/log/calico", "0755"),
            ("/run/calico", "0755"),
            ("/run/docker/plugins", "0755"),
            (IMAGES_DIR, "0755"),
        ],
    )
}
