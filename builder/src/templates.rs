//! The text templates operators read (units, configs, firewalld XML), embedded in the binary.
//!
//! minijinja in strict mode: an undefined variable is an error, nothing is HTML-escaped, and a
//! template's trailing newline is kept. Code builds the data; templates only lay it out.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// Every template, by name. The name is also the file under `builder/templates/` minus `.j2`.
const TEMPLATES: &[(&str, &str)] = &[
    ("calico.env", include_str!("../templates/calico.env.j2")),
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
    (
        "kiln-load-images.service",
        include_str!("../templates/kiln-load-images.service.j2"),
    ),
    (
        "marathon.service",
        include_str!("../templates/marathon.service.j2"),
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

/// A template failed to render (a bug in kiln, never in the spec).
#[derive(Debug, thiserror::Error)]
#[error("rendering template {name}: {source:#}")]
pub struct TemplateError {
    pub name: String,
    #[source]
    pub source: minijinja::Error,
}

/// The loaded template set.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Loads and compiles every template.
    pub fn new() -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|source| TemplateError {
                    name: name.to_string(),
                    source,
                })?;
        }
        Ok(Templates { env })
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, TemplateError> {
        let err = |source| TemplateError {
            name: name.to_string(),
            source,
        };
        self.env
            .get_template(name)
            .map_err(err)?
            .render(ctx)
            .map_err(err)
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
