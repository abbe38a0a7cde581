//! `[[hosts]]`: names, roles, addresses, MACs, gateways, DNS, interfaces; duplicates.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use kiln_model::plan::{AccessPlan, HostPlan, Roles};
use kiln_model::values::{quote, DomainName, Fqdn, HostAddr, HostName, MacAddr};

use super::Checker;
use crate::spec::{Role, Spec};

impl Checker {
    /// The hosts that passed every check, in spec order.
    pub(super) fn hosts(
        &mut self,
        spec: &Spec,
        domain: &DomainName,
        access: &AccessPlan,
    ) -> Vec<HostPlan> {
        let checked: Vec<Option<HostPlan>> = spec
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| self.host(i, h, domain, access))
            .collect();
        let out = self.unique_hosts(checked);
        let masters = out.iter().filter(|h| h.roles.master).count();
        if spec.hosts.is_empty() {
            self.err(
                "hosts",
                "the spec has no hosts",
                "add a [[hosts]] table with name, roles, address and mac",
            );
        } else if masters == 0 && out.len() == spec.hosts.len() {
            self.err(
                "hosts",
                "no host has the master role",
                "give at least one host roles = [\"master\"] (or [\"master\", \"agent\"])",
            );
        }
        if !out.is_empty() && !out.iter().any(|h| h.roles.agent) {
            self.warn(
                "hosts",
                "no host has the agent role: nothing will run tasks",
                "give at least one host roles = [\"agent\"]",
            );
        }
        out
    }

    /// One `[[hosts]]` table checked on its own.
    fn host(
        &mut self,
        i: usize,
        h: &crate::spec::Host,
        domain: &DomainName,
        access: &AccessPlan,
    ) -> Option<HostPlan> {
        let k = |f: &str| format!("hosts[{i}].{f}");
        let name: Option<HostName> = self.named(&k("name"), "host name", &h.name);
        let roles = self.roles(i, h.name.as_str(), &h.roles);
        let address: Option<HostAddr> = if h.address.contains('/') {
            self.val(&k("address"), &h.address)
        } else {
            self.err(
                &k("address"),
                format!("address {} has no prefix length", quote(&h.address)),
                "write it with its prefix, e.g. \"10.0.0.11/24\"",
            );
            None
        };
        let mac: Option<MacAddr> = self.val(&k("mac"), &h.mac);
        let gateway = h
            .gateway
            .as_deref()
            .and_then(|g| self.gateway(&k("gateway"), g, address.as_ref()));
        let mut dns = Vec::new();
        for (d, s) in h.dns.iter().enumerate() {
            match s.parse::<IpAddr>() {
                Ok(a) => dns.push(a),
                Err(_) => self.err(
                    &format!("hosts[{i}].dns[{d}]"),
                    format!("{} is not an IP address", quote(s)),
                    "list DNS servers by address, e.g. [\"10.0.0.2\"]",
                ),
            }
        }
        let interface = self.val(&k("interface"), &h.interface);
        let access = self.host_access(i, h, access);
        let fqdn = name.as_ref().and_then(|n| match Fqdn::new(n, domain) {
            Ok(f) => Some(f),
            Err(e) => {
                self.err(&k("name"), e.problem, e.help);
                None
            }
        });
        Some(HostPlan {
            name: name?,
            fqdn: fqdn?,
            roles: roles?,
            profile: String::new(),
            address: address?,
            mac: mac?,
            gateway,
            dns,
            interface: interface?,
            etcd_name: None,
            zk_id: None,
            access: access?,
        })
    }

    /// Duplicate names, addresses and MACs; the hosts that are unique and whole.
    fn unique_hosts(&mut self, checked: Vec<Option<HostPlan>>) -> Vec<HostPlan> {
        let mut names: HashMap<HostName, usize> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut macs: HashMap<MacAddr, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, h) in checked.into_iter().enumerate() {
            let Some(h) = h else { continue };
            let k = |f: &str| format!("hosts[{i}].{f}");
            let mut ok = true;
            if let Some(j) = names.insert(h.name.clone(), i) {
                self.err(
                    &k("name"),
                    format!(
                        "duplicate host name {} (also hosts[{j}])",
                        quote(h.name.as_str())
                    ),
                    "give every host its own name",
                );
                ok = false;
            }
            if let Some(j) = ips.insert(h.ip(), i) {
                self.err(
                    &k("address"),
                    format!("duplicate IP address {} (also hosts[{j}])", h.ip()),
                    "give every host its own address",
                );
                ok = false;
            }
            if let Some(j) = macs.insert(h.mac, i) {
                self.err(
                    &k("mac"),
                    format!("duplicate MAC address {} (also hosts[{j}])", h.mac),
                    "every host needs its own MAC: PXE configs are chosen by MAC",
                );
                ok = false;
            }
            if ok {
                out.push(h);
            }
        }
        out
    }

    fn roles(&mut self, i: usize, name: &str, list: &[Role]) -> Option<Roles> {
        let mut roles = Roles::default();
        if list.is_empty() {
            self.err(
                &format!("hosts[{i}].roles"),
                format!("host {} has no roles", quote(name)),
                "set roles = [\"master\"], [\"agent\"] or both",
            );
            return None;
        }
        let mut ok = true;
        for (r, role) in list.iter().enumerate() {
            let slot = match role {
                Role::Master => &mut roles.master,
                Role::Agent => &mut roles.agent,
            };
            if *slot {
                self.err(
                    &format!("hosts[{i}].roles[{r}]"),
                    format!("role {} listed twice", role.name()),
                    "list each role once",
                );
                ok = false;
            }
            *slot = true;
        }
        ok.then_some(roles)
    }

    fn gateway(&mut self, key: &str, g: &str, address: Option<&HostAddr>) -> Option<Ipv4Addr> {
        let Ok(gw) = g.parse::<Ipv4Addr>() else {
            self.err(
                key,
                format!("{} is not an IPv4 address", quote(g)),
                "write the gateway as a dotted quad, e.g. \"10.0.0.1\"",
            );
            return None;
        };
        if let Some(a) = address {
            let net = a.network();
            if !net.contains(&gw) {
                self.err(
                    key,
                    format!("gateway {gw} is outside the host's subnet {net}"),
                    "use a gateway inside the host's subnet, or fix the prefix length",
                );
            } else if gw == a.ip() {
                self.err(
                    key,
                    format!("gateway {gw} is the host's own address"),
                    "use the router's address",
                );
            }
        }
        Some(gw)
    }
}
