//! Calico: the CNI plugins and network config where the Mesos agent looks, calico-node (and
//! calico-libnetwork for Calico 1.x) as Docker containers, and the one-shot that loads their
//! baked images from local disk before they start.

use minijinja::context;
use serde::Serialize;

use super::{
    local_etcd_unit, Artifact, Ctx, RenderError, DOCKER_CLI, IMAGES_DIR, KILN_ETC, LOAD_UNIT,
};
use crate::plan::{Libnetwork, Plan, Port, Profile, Proto, Service};

pub(super) fn services(plan: &Plan, profile: &Profile, out: &mut Vec<Service>) {
    let c = &plan.spec.calico;
    if !profile.roles.agent || !plan.spec.docker.enabled {
        return;
    }
    let mut containers = false;
    if c.node.enabled {
        let mut ports = Vec::new();
        if c.node.backend != "none" {
            ports.push(Port::tcp(179, "calico.node.backend"));
        }
        if c.node.ipip != "off" && !c.node.ip_pools.is_empty() {
            ports.push(Port {
                port: 0,
                proto: Proto::Ipip,
                local: false,
                key: "calico.node.ipip".into(),
            });
        }
        out.push(Service {
            unit: "calico-node.service".into(),
            component: "calico-node",
            exec: DOCKER_CLI.into(),
            ports,
        });
        containers = true;
    }
    if let Libnetwork::Container(_) = plan.derived.libnetwork {
        out.push(Service {
            unit: "calico-libnetwork.service".into(),
            component: "calico-libnetwork",
            exec: DOCKER_CLI.into(),
            ports: Vec::new(),
        });
        containers = true;
    }
    if containers {
        // Runs first among the container units: they find their images already loaded.
        let at = out.len()
            - usize::from(c.node.enabled)
            - usize::from(matches!(plan.derived.libnetwork, Libnetwork::Container(_)));
        out.insert(
            at,
            Service {
                unit: LOAD_UNIT.into(),
                component: "images",
                exec: "/bin/sh".into(),
                ports: Vec::new(),
            },
        );
    }
}

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

pub(super) fn artifacts(plan: &Plan, profile: &Profile, out: &mut Vec<Artifact>) {
    let d = &plan.derived;
    if plan.spec.calico.cni.enabled && profile.roles.agent {
        for bin in ["calico", "calico-ipam"] {
            out.push(Artifact {
                path: format!("{}/{bin}", d.cni_plugins_dir.trim_end_matches('/')),
                component: "calico-cni",
                what: format!("{bin} CNI plugin {}", plan.spec.calico.cni.version),
            });
        }
    }
    if profile.services.iter().any(|s| s.unit == LOAD_UNIT) {
        for img in &d.baked_images {
            out.push(Artifact {
                path: format!("{IMAGES_DIR}/{}", archive_name(img)),
                component: "images",
                what: format!("image {img}"),
            });
        }
    }
}

/// The Calico CNI network config (`calico.conf` / DC/OS `calico.cni`).
#[derive(Serialize)]
struct CniConfig<'a> {
    name: &'a str,
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
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

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    let plan = ctx.plan;
    let c = &plan.spec.calico;
    let d = &plan.derived;
    let endpoints = ctx.profile.etcd_client_endpoints.clone();
    if c.cni.enabled && ctx.profile.roles.agent {
        let cfg = CniConfig {
            name: &c.cni.network,
            cni_version: &c.cni.cni_version,
            kind: "calico",
            etcd_endpoints: &endpoints,
            log_level: "info",
            ipam: Ipam {
                kind: "calico-ipam",
            },
        };
        ctx.json(
            &format!(
                "{}/{}",
                d.cni_config_dir.trim_end_matches('/'),
                d.cni_config_file
            ),
            &cfg,
        )?;
    }
    let node = ctx.runs("calico-node.service");
    let libnet = ctx.runs("calico-libnetwork.service");
    if !node && !libnet {
        return Ok(());
    }
    let env_file = format!("{KILN_ETC}/calico.env");
    let pool = c.node.ip_pools.first();
    ctx.template(
        &env_file,
        0o644,
        "calico.env",
        context! {
            profile => ctx.profile.name, etcd_endpoints => endpoints, backend => c.node.backend,
            libnetwork => (d.libnetwork == Libnetwork::Builtin).to_string(),
            no_default_pools => pool.is_none().to_string(),
            pool, ipip => c.node.ipip, as_number => c.node.as_number,
        },
    )?;
    let ensure_image = |image: &str| {
        match &plan.spec.registry {
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
    if node {
        let nodename = "${KILN_NODENAME}";
        let mut args = vec![
            format!("--env-file={env_file}"),
            format!("-e NODENAME={nodename}"),
            "-e IP=${KILN_IP}".into(),
        ];
        let mut vols = vec![
            "/var/log/calico:/var/log/calico",
            "/run/docker/plugins:/run/docker/plugins",
            "/lib/modules:/lib/modules",
            "/var/run/calico:/var/run/calico",
        ];
        if d.libnetwork == Libnetwork::Builtin {
            vols.push("/var/run/docker.sock:/var/run/docker.sock");
        }
        args.extend(vols.iter().map(|v| format!("-v {v}")));
        ctx.unit(
            "calico-node.service",
            "container.service",
            context! {
                description => "calico-node", docs => "https://docs.projectcalico.org/", after => &after,
                docker => DOCKER_CLI, name => "calico-node", ensure_image => ensure_image(&d.calico_node_image),
                run_args => args.join(" "), image => d.calico_node_image,
            },
        )?;
        loaded.push("calico-node.service");
    }
    if let (true, Libnetwork::Container(image)) = (libnet, &d.libnetwork) {
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
