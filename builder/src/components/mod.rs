//! One module per component: the units and ports it runs ([`services`]), and the files it puts
//! in a profile's tree and in a host's identity tree ([`render`]).

pub(crate) mod calico;
mod docker;
mod etcd;
mod firewall;
mod host;
mod marathon;
mod mesos;
mod zookeeper;

use std::collections::BTreeMap;

use kiln_layers::{Entry, FileTree, TreeError};
use serde::Serialize;

use crate::plan::{HostPlan, Plan, Profile, Service};
use crate::templates::{TemplateError, Templates};

/// Where kiln's own per-host and per-role env files live.
pub const KILN_ETC: &str = "/etc/kiln";
/// Where baked container images (docker-archive tarballs) are stored on a host.
pub const IMAGES_DIR: &str = "/var/lib/kiln/images";
/// The Docker CLI inside the image.
pub const DOCKER_CLI: &str = "/usr/bin/docker";
const UNIT_DIR: &str = "/etc/systemd/system";
/// The one-shot that loads baked images before the container units start.
pub const LOAD_UNIT: &str = "kiln-load-images.service";

/// Rendering failed: a template or tree bug, never a spec problem (those are caught earlier).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("building the file tree of {what}: {source}")]
    Tree { what: String, source: TreeError },
    #[error("serialising {what}: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
}

/// The rendered cluster: one tree per profile (identical for every host of it) and one small
/// identity tree per host.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// Profile name → every file the profile's image gets from rendering.
    pub profiles: BTreeMap<String, FileTree>,
    /// Profile name → component → that component's part of the profile tree, in render
    /// order. Image layers are built from these, so a component whose files are the same in
    /// two profiles gives the same layer (stored once).
    pub layers: BTreeMap<String, Vec<(&'static str, FileTree)>>,
    /// Host name → identity tree.
    pub hosts: BTreeMap<String, FileTree>,
}

/// A file a host needs that comes from a source (a binary, an image), not from rendering.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Artifact {
    pub path: String,
    pub component: &'static str,
    pub what: String,
}

/// The services of a profile, in start order.
pub fn services(plan: &Plan, profile: &Profile) -> Vec<Service> {
    let mut out = Vec::new();
    zookeeper::services(plan, profile, &mut out);
    etcd::services(plan, profile, &mut out);
    mesos::services(plan, profile, &mut out);
    marathon::services(plan, profile, &mut out);
    docker::services(plan, profile, &mut out);
    calico::services(plan, profile, &mut out);
    out
}

/// Files of a profile that sources must provide (checked when images are built).
pub fn artifacts(plan: &Plan, profile: &Profile) -> Vec<Artifact> {
    let mut out = Vec::new();
    calico::artifacts(plan, profile, &mut out);
    out
}

/// Every component with its version and where it comes from, for image labels and reports.
pub fn source_list(plan: &Plan) -> Vec<String> {
    let s = &plan.spec;
    let describe = |name: &str, version: &str, src: &Option<crate::spec::Source>| {
        let from = match src {
            Some(x) => [&x.url, &x.file, &x.deb, &x.oci]
                .into_iter()
                .flatten()
                .next()
                .cloned()
                .unwrap_or_default(),
            None => "base image or catalog".into(),
        };
        format!("{name} {version} from {from}")
    };
    vec![
        describe("zookeeper", &s.zookeeper.version, &s.zookeeper.source),
        describe("mesos", &s.mesos.version, &s.mesos.source),
        describe("marathon", &s.marathon.version, &s.marathon.source),
        describe("etcd", &s.etcd.version, &s.etcd.source),
        describe("docker", &s.docker.version, &s.docker.source),
        describe("calico-cni", &s.calico.cni.version, &s.calico.cni.source),
        describe("calico-node", &s.calico.version, &s.calico.node.source),
    ]
}

/// Renders every profile tree and identity tree of the plan.
pub fn render(plan: &Plan) -> Result<Rendered, RenderError> {
    let templates = Templates::new()?;
    let mut rendered = Rendered::default();
    for profile in &plan.profiles {
        let mut ctx = Ctx::new(plan, profile, &templates);
        type Step = fn(&mut Ctx) -> Result<(), RenderError>;
        let steps: [(&'static str, Step); 8] = [
            ("hosts", host::role_files),
            ("zookeeper", zookeeper::role_files),
            ("etcd", etcd::role_files),
            ("mesos", mesos::role_files),
            ("marathon", marathon::role_files),
            ("docker", docker::role_files),
            ("calico", calico::role_files),
            ("firewall", firewall::role_files),
        ];
        let mut layers = Vec::new();
        for (component, step) in steps {
            step(&mut ctx)?;
            let part = std::mem::take(&mut ctx.part);
            if !part.is_empty() {
                layers.push((component, part));
            }
        }
        rendered.profiles.insert(profile.name.clone(), ctx.tree);
        rendered.layers.insert(profile.name.clone(), layers);
    }
    for h in &plan.hosts {
        let mut tree = FileTree::new();
        host::identity_files(plan, h, &templates, &mut tree)?;
        zookeeper::identity_files(plan, h, &mut tree)?;
        rendered.hosts.insert(h.name.clone(), tree);
    }
    Ok(rendered)
}

/// What a component sees while rendering a profile.
pub(crate) struct Ctx<'a> {
    pub plan: &'a Plan,
    pub profile: &'a Profile,
    templates: &'a Templates,
    /// The whole profile tree.
    tree: FileTree,
    /// What the component being rendered has added so far.
    part: FileTree,
}

impl<'a> Ctx<'a> {
    fn new(plan: &'a Plan, profile: &'a Profile, templates: &'a Templates) -> Self {
        Ctx {
            plan,
            profile,
            templates,
            tree: FileTree::new(),
            part: FileTree::new(),
        }
    }

    /// Whether the profile runs `unit`.
    pub fn runs(&self, unit: &str) -> bool {
        self.profile.services.iter().any(|s| s.unit == unit)
    }

    /// Adds a root-owned file.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        content: impl Into<Vec<u8>>,
    ) -> Result<(), RenderError> {
        self.add(path, Entry::file(content, mode))
    }

    /// Adds an entry to the profile tree and to the current component's part.
    fn add(&mut self, path: &str, entry: Entry) -> Result<(), RenderError> {
        insert(&mut self.tree, path, entry.clone(), &self.profile.name)?;
        insert(&mut self.part, path, entry, &self.profile.name)
    }

    /// Adds a file rendered from a template.
    pub fn template(
        &mut self,
        path: &str,
        mode: u32,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), RenderError> {
        let text = self.templates.render(name, data)?;
        self.file(path, mode, text)
    }

    /// Adds pretty-printed JSON (keys in struct/map order) with a trailing newline.
    pub fn json(&mut self, path: &str, value: &impl Serialize) -> Result<(), RenderError> {
        let mut text = serde_json::to_string_pretty(value).map_err(|source| RenderError::Json {
            what: path.into(),
            source,
        })?;
        text.push('\n');
        self.file(path, 0o644, text)
    }

    /// Adds a unit to `/etc/systemd/system` and enables it with a `multi-user.target.wants`
    /// symlink, so nothing runs `systemctl enable` at boot.
    pub fn unit(
        &mut self,
        unit: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), RenderError> {
        let path = format!("{UNIT_DIR}/{unit}");
        self.template(&path, 0o644, name, data)?;
        let link = format!("{UNIT_DIR}/multi-user.target.wants/{unit}");
        self.add(&link, Entry::symlink(path))
    }

    /// Masks a unit the base may ship (a symlink to `/dev/null`).
    pub fn mask(&mut self, unit: &str) -> Result<(), RenderError> {
        self.add(&format!("{UNIT_DIR}/{unit}"), Entry::symlink("/dev/null"))
    }

    /// A directory created at boot by systemd-tmpfiles plus, for `user`, a sysusers entry.
    pub fn state_dirs(
        &mut self,
        component: &str,
        user: Option<(&str, &str, &str)>,
        dirs: &[(&str, &str)],
    ) -> Result<(), RenderError> {
        let owner = user.map_or("root", |u| u.0);
        if let Some((user, description, home)) = user {
            self.template(
                &format!("/usr/lib/sysusers.d/kiln-{component}.conf"),
                0o644,
                "sysusers.conf",
                minijinja::context! { component, user, description, home },
            )?;
        }
        let dirs: Vec<_> = dirs
            .iter()
            .map(|(path, mode)| minijinja::context! { path, mode, owner })
            .collect();
        self.template(
            &format!("/usr/lib/tmpfiles.d/kiln-{component}.conf"),
            0o644,
            "tmpfiles.conf",
            minijinja::context! { component, dirs },
        )
    }
}

fn insert(tree: &mut FileTree, path: &str, entry: Entry, what: &str) -> Result<(), RenderError> {
    tree.insert(path, entry)
        .map_err(|source| RenderError::Tree {
            what: what.into(),
            source,
        })
}

/// The etcd unit local clients start after, if the profile runs one.
pub(crate) fn local_etcd_unit(profile: &Profile) -> Option<&str> {
    profile
        .services
        .iter()
        .find(|s| s.component == "etcd")
        .map(|s| s.unit.as_str())
}

/// Identity-tree helper shared by components.
pub(crate) fn identity_file(
    tree: &mut FileTree,
    host: &HostPlan,
    path: &str,
    content: impl Into<Vec<u8>>,
) -> Result<(), RenderError> {
    insert(tree, path, Entry::file(content, 0o644), &host.name)
}
