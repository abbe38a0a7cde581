//! Docker and its cluster store; the cluster's registry, image names and the firewall zone.

use std::net::IpAddr;

use kiln_model::plan::{Advertise, DockerPlan, FirewallPlan, ImagesPlan, RegistryPlan, StorePlan};
use kiln_model::values::{quote, ClusterStore, HostPort, RepoPrefix, Tag, Version};

use super::Checker;
use crate::spec::Spec;

impl Checker {
    pub(super) fn docker(&mut self, spec: &Spec) -> Option<DockerPlan> {
        let d = &spec.docker;
        let version = self.version("docker.version", &d.version);
        let source = self.source("docker.source", d.source.as_ref());
        if !d.enabled {
            return None;
        }
        let dockerd = self.path("docker.dockerd", &d.dockerd);
        let store = self.cluster_store(spec, version.as_ref());
        let advertise = match &store {
            Some(Some(_)) => self.advertise(&d.cluster_advertise),
            _ => Some(None),
        };
        Some(DockerPlan {
            version: version?,
            source: source.ok()?,
            dockerd: dockerd?,
            cluster_store: store?,
            advertise: advertise?,
        })
    }

    /// `Some(None)`: no store; `None`: an error was reported.
    fn cluster_store(&mut self, spec: &Spec, v: Option<&Version>) -> Option<Option<StorePlan>> {
        let key = "docker.cluster_store";
        let store = match ClusterStore::parse(&spec.docker.cluster_store) {
            Ok(ClusterStore::Off) => return Some(None),
            Ok(ClusterStore::Etcd) => {
                if !spec.etcd.enabled {
                    self.err(key, "the Docker cluster store is on etcd but etcd is disabled", "enable etcd, set a store URL such as \"zk://…\", or set cluster_store = \"off\"");
                }
                StorePlan::Etcd
            }
            Ok(ClusterStore::Url(u)) => StorePlan::Url(u),
            Err(e) => {
                self.err(
                    key,
                    format!("invalid cluster store {}: {}", quote(&spec.docker.cluster_store), e.problem),
                    "use \"etcd\", \"off\", or a URL etcd://HOST:PORT, zk://HOST:PORT[,…]/PATH or consul://HOST:PORT",
                );
                return None;
            }
        };
        if let Some(v) = v.filter(|v| v.major >= 23) {
            self.err(key, format!("Docker {v} has no cluster store (deprecated in 20.10, removed in 23.0)"), "use docker.version = \"20.10.24\" or earlier, or set docker.cluster_store = \"off\"");
            return None;
        }
        Some(Some(store))
    }

    /// `Some(None)` never happens here; `None`: an error was reported.
    fn advertise(&mut self, a: &str) -> Option<Option<Advertise>> {
        let key = "docker.cluster_advertise";
        let (host, port) = match a.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p != 0)),
            None => (a, None),
        };
        let Some(port) = port else {
            self.err(
                key,
                format!("{} is not ADDRESS:PORT", quote(a)),
                "use \"${IP}:2376\" (the host's address)",
            );
            return None;
        };
        if host == "${IP}" {
            return Some(Some(Advertise::HostIp { port }));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_err() {
            self.err(
                key,
                format!("cluster-advertise names the interface {}, not an address", quote(host)),
                format!("dockerd refuses to start when that interface does not exist (e.g. ens3, not eth0); use \"${{IP}}:{port}\""),
            );
            return None;
        }
        self.val::<HostPort>(key, a)
            .map(|hp| Some(Advertise::Literal(hp)))
    }

    pub(super) fn registry(&mut self, spec: &Spec) -> Option<RegistryPlan> {
        let r = spec.registry.as_ref()?;
        let address = match HostPort::parse(&r.address) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err(
                    "registry.address",
                    format!("{} is not HOST:PORT: {}", quote(&r.address), e.problem),
                    "write the registry as e.g. \"10.0.0.10:5000\"",
                );
                None
            }
        };
        let prefix = self.val::<RepoPrefix>("registry.prefix", r.prefix.trim_matches('/'));
        Some(RegistryPlan {
            address: address?,
            prefix: prefix?,
            insecure: r.insecure,
        })
    }

    pub(super) fn images(&mut self, spec: &Spec) -> Option<ImagesPlan> {
        let im = &spec.images;
        let prefix = self.val::<RepoPrefix>("images.prefix", &im.prefix);
        if im.tags.is_empty() {
            self.err(
                "images.tags",
                "no image tags",
                "give at least one tag, e.g. tags = [\"latest\"]",
            );
        }
        let tags = self.vals::<Tag>("images.tags", &im.tags);
        Some(ImagesPlan {
            prefix: prefix?,
            tags: tags.filter(|t| !t.is_empty())?,
        })
    }

    pub(super) fn firewall(&mut self, spec: &Spec) -> Option<FirewallPlan> {
        let fw = &spec.firewall;
        if !fw.enabled {
            return None;
        }
        let zone = self.named("firewall.zone", "firewalld zone", &fw.zone)?;
        Some(FirewallPlan { zone })
    }
}
