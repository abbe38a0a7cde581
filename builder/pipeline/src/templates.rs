//! The text templates operators read (units, configs, firewalld XML), embedded in the binary.
//!
//! The engine (strict, unescaped, trailing newline kept) is [`kiln_model::templates`], shared
//! with the provisioning renderers. Code builds the data; templates only lay it out.

use serde::Serialize;

/// Every template, by name. The name is also the file under `builder/templates/` minus `.j2`.
const TEMPLATES: &[(&str, &str)] = &[
    ("calico.env", include_str!("../templates/calico.env.j2")),
    ("cloud.cfg", include_str!("../templates/cloud.cfg.j2")),
    (
        "cloud-init-local.service",
        include_str!("../templates/cloud-init-local.service.j2"),
    ),
    (
        "cloud-init.service",
        include_str!("../templates/cloud-init.service.j2"),
    ),
    (
        "container.service",
        include_str!("../templates/container.service.j2"),
    ),
    (
        "docker.service",
        include_str!("../templates/docker.service.j2"),
    ),
    (
        "etcd-local.service",
        include_str!("../templates/etcd-local.service.j2"),
    ),
    (
        "kiln-apply-identity",
        include_str!("../templates/kiln-apply-identity.j2"),
    ),
    (
        "kiln-verify-seed",
        include_str!("../templates/kiln-verify-seed.j2"),
    ),
    (
        "kiln-identity.service",
        include_str!("../templates/kiln-identity.service.j2"),
    ),
    (
        "dpkg-alternatives",
        include_str!("../templates/dpkg-alternatives.j2"),
    ),
    ("etcd.env", include_str!("../templates/etcd.env.j2")),
    ("etcd.service", include_str!("../templates/etcd.service.j2")),
    (
        "firewalld.conf",
        include_str!("../templates/firewalld.conf.j2"),
    ),
    (
        "firewalld-service.xml",
        include_str!("../templates/firewalld-service.xml.j2"),
    ),
    (
        "firewalld-zone.xml",
        include_str!("../templates/firewalld-zone.xml.j2"),
    ),
    ("hosts", include_str!("../templates/hosts.j2")),
    ("identity.env", include_str!("../templates/identity.env.j2")),
    ("kiln.network", include_str!("../templates/kiln.network.j2")),
    ("resolv.conf", include_str!("../templates/resolv.conf.j2")),
    (
        "kiln-load-images.service",
        include_str!("../templates/kiln-load-images.service.j2"),
    ),
    (
        "marathon.service",
        include_str!("../templates/marathon.service.j2"),
    ),
    (
        "mesos-default",
        include_str!("../templates/mesos-default.j2"),
    ),
    (
        "mesos.service",
        include_str!("../templates/mesos.service.j2"),
    ),
    (
        "sysusers.conf",
        include_str!("../templates/sysusers.conf.j2"),
    ),
    (
        "tmpfiles.conf",
        include_str!("../templates/tmpfiles.conf.j2"),
    ),
    ("zoo.cfg", include_str!("../templates/zoo.cfg.j2")),
    (
        "zookeeper.service",
        include_str!("../templates/zookeeper.service.j2"),
    ),
];

pub use kiln_model::templates::TemplateError;

/// The loaded template set of `builder/templates/`.
#[derive(Debug)]
pub struct Templates(kiln_model::templates::Templates);

impl Templates {
    /// Loads and compiles every template.
    pub fn new() -> Result<Self, TemplateError> {
        kiln_model::templates::Templates::new(TEMPLATES).map(Templates)
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, TemplateError> {
        self.0.render(name, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undefined_variables_are_errors() {
        let t = Templates::new().unwrap();
        let e = t.render("hosts", minijinja::context! {}).unwrap_err();
        assert!(e.to_string().contains("hosts"), "{e}");
    }
}
