//! etcd: members, the v2 API, and how hosts without a member reach it.

use kiln_model::plan::{
    CalicoPlan, DockerPlan, Endpoint, EtcdAccess, EtcdMember, EtcdPlan, HostPlan, StorePlan,
};
use kiln_model::values::{quote, HttpUrl, Version};

use super::Checker;
use crate::spec::{ProxyMode, Spec};

impl Checker {
    pub(super) fn etcd(
        &mut self,
        spec: &Spec,
        hosts: &[HostPlan],
        calico: Option<&CalicoPlan>,
        docker: Option<&DockerPlan>,
    ) -> Option<EtcdPlan> {
        let e = &spec.etcd;
        let version = self.version("etcd.version", &e.version);
        let source = self.source("etcd.source", e.source.as_ref());
        // A Docker plan exists only without errors, so a refused store (Docker ≥ 23) is no
        // v2 client here.
        let store_on_etcd = docker.is_some_and(|d| d.cluster_store == Some(StorePlan::Etcd));
        let calico_v2 =
            calico.is_some_and(|c| (c.node.is_some() || c.cni.is_some()) && c.version.major <= 2);
        let v2_clients = store_on_etcd || calico_v2;
        let static_endpoints = self.static_endpoints(spec);
        if !e.enabled {
            return None;
        }
        let data_dir = self.state_dir("etcd.data_dir", &e.data_dir);
        let members = self.members(spec, hosts);
        let version = version?;
        let (v2, access) = self.etcd_api(spec, &version, v2_clients);
        let members = members?;
        let static_endpoints = static_endpoints?;
        if !static_endpoints.is_empty() && access != EtcdAccess::Static {
            self.warn(
                "etcd.proxy.endpoints",
                "endpoints are used only with mode = \"off\"",
                "remove them, or set etcd.proxy.mode = \"off\"",
            );
        }
        let mut plan = EtcdPlan {
            version,
            source: source.ok()?,
            data_dir: data_dir?,
            client_port: e.client_port,
            peer_port: e.peer_port,
            v2,
            v2_clients,
            access,
            members,
            static_endpoints,
        };
        if plan.static_endpoints.is_empty() {
            plan.static_endpoints = plan.member_endpoints();
        }
        Some(plan)
    }

    fn static_endpoints(&mut self, spec: &Spec) -> Option<Vec<Endpoint>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, ep) in spec.etcd.proxy.endpoints.iter().enumerate() {
            let key = format!("etcd.proxy.endpoints[{i}]");
            let Some(url) = self.val::<HttpUrl>(&key, ep) else {
                ok = false;
                continue;
            };
            if !url.path().trim_matches('/').is_empty() || url.port().is_none() {
                self.err(
                    &key,
                    format!("{} is not an etcd client URL", quote(ep)),
                    "write endpoints as http://HOST:2379",
                );
                ok = false;
                continue;
            }
            out.push(Endpoint {
                tls: url.scheme() == "https",
                host: url.host().to_string(),
                port: url.port_or_default(),
            });
        }
        ok.then_some(out)
    }

    fn members(&mut self, spec: &Spec, hosts: &[HostPlan]) -> Option<Vec<EtcdMember>> {
        let member = |h: &HostPlan| EtcdMember {
            name: h.name.clone(),
            ip: h.ip(),
        };
        let Some(names) = &spec.etcd.members else {
            return Some(
                hosts
                    .iter()
                    .filter(|h| h.roles.master)
                    .map(member)
                    .collect(),
            );
        };
        if names.is_empty() {
            self.err(
                "etcd.members",
                "etcd has no members",
                "list at least one master, or remove the key to use every master",
            );
        }
        let mut out = Vec::new();
        for (i, m) in names.iter().enumerate() {
            let key = format!("etcd.members[{i}]");
            match hosts.iter().find(|h| h.name.as_str() == m) {
                None if spec.hosts.iter().any(|h| &h.name == m) => {}
                None => self.err(
                    &key,
                    format!("etcd member {} is not a host of this spec", quote(m)),
                    "name hosts from [[hosts]]",
                ),
                Some(h) if !h.roles.master => self.err(
                    &key,
                    format!("etcd member {} is not a master", quote(m)),
                    format!("etcd members run on masters: add \"master\" to {m}'s roles or remove it here"),
                ),
                Some(h) => {
                    if names[..i].contains(m) {
                        self.err(
                            &key,
                            format!("etcd member {} listed twice", quote(m)),
                            "list each member once",
                        );
                    } else {
                        out.push(member(h));
                    }
                }
            }
        }
        if names.len() > 1 && names.len() % 2 == 0 {
            self.warn(
                "etcd.members",
                format!("even etcd cluster of {} members", names.len()),
                "an odd number of members tolerates the same failures with one machine less",
            );
        }
        // Members in spec order of the hosts, so the initial cluster does not depend on the
        // order of this list.
        out.sort_by_key(|m| hosts.iter().position(|h| h.name == m.name));
        Some(out)
    }

    fn etcd_api(&mut self, spec: &Spec, v: &Version, v2_clients: bool) -> (bool, EtcdAccess) {
        let e = &spec.etcd;
        let modern = v.at_least(3, 4);
        // `--enable-v2` came with etcd 3.2.0 (default true until 3.4.0); 3.0 and 3.1 always
        // serve v2 (etcd-io/etcd v3.2.0 and v3.1.0 `etcdmain/config.go`).
        let has_flag = v.at_least(3, 2);
        let v2 = match e.enable_v2 {
            Some(on) if has_flag => on,
            Some(_) => true,
            None => v2_clients || !modern,
        };
        if e.enable_v2 == Some(false) && !has_flag {
            self.err(
                "etcd.enable_v2",
                format!("etcd {v} always serves the v2 API: --enable-v2 came in etcd 3.2"),
                "remove etcd.enable_v2, or use etcd 3.2 or later",
            );
        }
        if v2_clients {
            if e.enable_v2 == Some(false) && has_flag {
                self.err("etcd.enable_v2", format!("etcd {v} serves v2 only with --enable-v2, but a v2 client needs it (Docker's cluster store or Calico ≤ 2.x)"), "remove etcd.enable_v2 or set it to true");
            }
            if v.at_least(3, 6) {
                self.err("etcd.version", format!("etcd {v} has no v2 API, but a v2 client needs it (Docker's cluster store or Calico ≤ 2.x)"), "use etcd 3.5 or earlier (3.5 is the last with v2)");
            }
        }
        let access = match e.proxy.mode {
            ProxyMode::Auto if v.major <= 2 => EtcdAccess::Proxy,
            ProxyMode::Auto => EtcdAccess::Gateway,
            ProxyMode::Proxy => EtcdAccess::Proxy,
            ProxyMode::Gateway => {
                if v.major < 3 {
                    self.err(
                        "etcd.proxy.mode",
                        format!("etcd {v} has no gateway (added in 3.0)"),
                        "use mode = \"proxy\" for etcd 2.x",
                    );
                }
                EtcdAccess::Gateway
            }
            ProxyMode::GrpcProxy => {
                // `etcd grpc-proxy` came in 3.1.0: 3.0's main dispatches only `gateway`
                // (etcd-io/etcd v3.0.17 and v3.1.0 `etcdmain/main.go`).
                if !v.at_least(3, 1) {
                    self.err(
                        "etcd.proxy.mode",
                        format!("etcd {v} has no grpc-proxy (it came in etcd 3.1)"),
                        "use mode = \"gateway\", or etcd 3.1 or later",
                    );
                }
                if v2_clients {
                    self.err("etcd.proxy.mode", "etcd grpc-proxy carries only the v3 API, but a v2 client needs v2 (Docker's cluster store or Calico ≤ 2.x)", "use mode = \"gateway\" (TCP, carries v2 and v3)");
                }
                EtcdAccess::GrpcProxy
            }
            ProxyMode::Off => EtcdAccess::Static,
        };
        (v2, access)
    }
}
