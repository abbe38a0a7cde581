//! etcd: a static cluster on the member hosts; a v2 proxy, a gateway or a grpc-proxy on
//! 127.0.0.1 elsewhere, or nothing when clients use static endpoints.

use kiln_model::plan::{ComponentId, EtcdAccess, Plan, Port, Profile, Service};
use kiln_model::values::AbsPath;
use minijinja::context;

use super::{abs, profiles_running, Component, Ctx, RenderError, SourceSet, KILN_ETC};
use crate::sources::catalog;

const ETCD: &str = "/usr/bin/etcd";

/// The etcd component.
pub(crate) struct Etcd;

fn exec() -> AbsPath {
    abs(ETCD)
}

impl Component for Etcd {
    fn id(&self) -> ComponentId {
        ComponentId::Etcd
    }

    fn services(&self, plan: &Plan, profile: &Profile) -> Vec<Service> {
        let Some(e) = &plan.etcd else {
            return Vec::new();
        };
        let local = |unit: &str| Service {
            unit: unit.into(),
            component: ComponentId::Etcd,
            about: "etcd local proxy",
            exec: exec(),
            ports: vec![Port::local_tcp(e.client_port, "etcd.client_port")],
        };
        let svc = if profile.etcd_member {
            Service {
                unit: "etcd.service".into(),
                component: ComponentId::Etcd,
                about: "etcd client and peer ports",
                exec: exec(),
                ports: vec![
                    Port::tcp(e.client_port, "etcd.client_port"),
                    Port::tcp(e.peer_port, "etcd.peer_port"),
                ],
            }
        } else {
            match e.access {
                EtcdAccess::Proxy => local("etcd-proxy.service"),
                EtcdAccess::Gateway => local("etcd-gateway.service"),
                EtcdAccess::GrpcProxy => local("etcd-grpc-proxy.service"),
                EtcdAccess::Static => return Vec::new(),
            }
        };
        vec![svc]
    }

    /// Debian's etcd-server enables `etcd.service`: on hosts without a member it would take
    /// 127.0.0.1:2379 from the local proxy.
    fn masks(&self, _plan: &Plan, _profile: &Profile) -> Vec<&'static str> {
        vec!["etcd.service"]
    }

    fn role_files(&self, ctx: &mut Ctx) -> Result<(), RenderError> {
        let Some(e) = &ctx.plan.etcd else {
            return Ok(());
        };
        let Some(svc) = ctx.profile.services_of(ComponentId::Etcd).next() else {
            return Ok(());
        };
        let unit = svc.unit.clone();
        let plan = ctx.plan;
        let listen = format!("127.0.0.1:{}", e.client_port);
        if ctx.profile.etcd_member {
            ctx.template(
                &format!("{KILN_ETC}/etcd.env"),
                0o644,
                "etcd.env",
                context! {
                    cluster => plan.cluster, data_dir => e.data_dir, initial_cluster => e.initial_cluster(),
                    client_port => e.client_port, peer_port => e.peer_port,
                    // --enable-v2 exists from 3.2 (default on before 3.4; etcd-io/etcd v3.2.0
                    // `etcdmain/config.go`); set it whenever it exists.
                    enable_v2_flag => e.version.at_least(3, 2), v2 => e.v2.to_string(),
                },
            )?;
            ctx.unit(
                &unit,
                "etcd.service",
                context! { exec => ETCD, client_port => e.client_port, peer_port => e.peer_port },
            )?;
            return ctx.state_dirs(
                "etcd",
                Some(("etcd", "etcd", e.data_dir.as_str())),
                &[(e.data_dir.as_str(), "0700")],
            );
        }
        let bare: Vec<String> = e.member_endpoints().iter().map(|m| m.host_port()).collect();
        let bare = bare.join(",");
        let (kind, args) = match e.access {
            EtcdAccess::Proxy => (
                "v2 proxy",
                format!(
                    "--proxy on --data-dir /var/lib/etcd-proxy --listen-client-urls http://{listen} --initial-cluster {}",
                    e.initial_cluster()
                ),
            ),
            EtcdAccess::Gateway => (
                "gateway",
                format!("gateway start --listen-addr={listen} --endpoints={bare}"),
            ),
            EtcdAccess::GrpcProxy => (
                "grpc-proxy",
                format!("grpc-proxy start --listen-addr={listen} --endpoints={bare}"),
            ),
            EtcdAccess::Static => return Ok(()),
        };
        ctx.unit(
            &unit,
            "etcd-local.service",
            context! { kind, client_port => e.client_port, exec => ETCD, args },
        )?;
        let dirs: &[(&str, &str)] = if e.access == EtcdAccess::Proxy {
            &[("/var/lib/etcd-proxy", "0700")]
        } else {
            &[]
        };
        ctx.state_dirs("etcd", Some(("etcd", "etcd", "/var/lib/etcd-proxy")), dirs)
    }

    fn sources<'a>(&self, plan: &'a Plan) -> Vec<SourceSet<'a>> {
        let Some(e) = &plan.etcd else {
            return Vec::new();
        };
        vec![SourceSet {
            name: "etcd",
            version: &e.version,
            source: e.source.as_ref(),
            catalog: catalog::etcd(&e.version),
            profiles: profiles_running(plan, ComponentId::Etcd),
        }]
    }

    fn program_source(&self, plan: &Plan) -> Option<(&'static str, String)> {
        let v = plan.etcd.as_ref().map(|e| format!(" (etcd {})", e.version));
        Some(("etcd.source", v.unwrap_or_default()))
    }
}
