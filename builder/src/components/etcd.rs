//! etcd: a static cluster on the member hosts; a v2 proxy, a gateway or a grpc-proxy on
//! 127.0.0.1 elsewhere, or nothing when clients use static endpoints.

use minijinja::context;

use super::{Ctx, RenderError, KILN_ETC};
use crate::plan::{EtcdAccess, Plan, Port, Profile, Service};

const ETCD: &str = "/usr/bin/etcd";

pub(super) fn services(plan: &Plan, profile: &Profile, out: &mut Vec<Service>) {
    let e = &plan.spec.etcd;
    if !e.enabled {
        return;
    }
    let local = |unit: &str| Service {
        unit: unit.into(),
        component: "etcd",
        exec: ETCD.into(),
        ports: vec![Port {
            local: true,
            ..Port::tcp(e.client_port, "etcd.client_port")
        }],
    };
    if profile.etcd_member {
        out.push(Service {
            unit: "etcd.service".into(),
            component: "etcd",
            exec: ETCD.into(),
            ports: vec![
                Port::tcp(e.client_port, "etcd.client_port"),
                Port::tcp(e.peer_port, "etcd.peer_port"),
            ],
        });
    } else {
        match plan.derived.etcd_access {
            EtcdAccess::Proxy => out.push(local("etcd-proxy.service")),
            EtcdAccess::Gateway => out.push(local("etcd-gateway.service")),
            EtcdAccess::GrpcProxy => out.push(local("etcd-grpc-proxy.service")),
            EtcdAccess::Static => {}
        }
    }
}

/// Members' client endpoints as `host:port`, the form gateway and grpc-proxy take.
fn bare_endpoints(plan: &Plan) -> String {
    plan.derived
        .etcd_member_urls
        .split(',')
        .map(|u| u.trim_start_matches("http://"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn role_files(ctx: &mut Ctx) -> Result<(), RenderError> {
    let Some(svc) = ctx.profile.services.iter().find(|s| s.component == "etcd") else {
        return Ok(());
    };
    let unit = svc.unit.clone();
    let plan = ctx.plan;
    let e = &plan.spec.etcd;
    let d = &plan.derived;
    let listen = format!("127.0.0.1:{}", e.client_port);
    if ctx.profile.etcd_member {
        ctx.template(
            &format!("{KILN_ETC}/etcd.env"),
            0o644,
            "etcd.env",
            context! {
                cluster => plan.cluster, data_dir => e.data_dir, initial_cluster => d.etcd_initial_cluster,
                client_port => e.client_port, peer_port => e.peer_port,
                // --enable-v2 exists from 3.3 (default on before 3.4); set it whenever it exists.
                enable_v2_flag => plan.versions.etcd.at_least(3, 3), v2 => d.etcd_v2.to_string(),
            },
        )?;
        ctx.unit(
            &unit,
            "etcd.service",
            context! { exec => ETCD, client_port => e.client_port, peer_port => e.peer_port },
        )?;
        return ctx.state_dirs(
            "etcd",
            Some(("etcd", "etcd", &e.data_dir)),
            &[(&e.data_dir, "0700")],
        );
    }
    let (kind, args) = match d.etcd_access {
        EtcdAccess::Proxy => (
            "v2 proxy",
            format!(
                "--proxy on --data-dir /var/lib/etcd-proxy --listen-client-urls http://{listen} --initial-cluster {}",
                d.etcd_initial_cluster
            ),
        ),
        EtcdAccess::Gateway => {
            ("gateway", format!("gateway start --listen-addr={listen} --endpoints={}", bare_endpoints(plan)))
        }
        EtcdAccess::GrpcProxy => {
            ("grpc-proxy", format!("grpc-proxy start --listen-addr={listen} --endpoints={}", bare_endpoints(plan)))
        }
        EtcdAccess::Static => return Ok(()),
    };
    ctx.unit(
        &unit,
        "etcd-local.service",
        context! { kind, client_port => e.client_port, exec => ETCD, args },
    )?;
    let dirs: &[(&str, &str)] = if d.etcd_access == EtcdAccess::Proxy {
        &[("/var/lib/etcd-proxy", "0700")]
    } else {
        &[]
    };
    ctx.state_dirs("etcd", Some(("etcd", "etcd", "/var/lib/etcd-proxy")), dirs)
}
