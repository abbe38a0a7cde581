//! One module per component: the units and ports it runs ([`services`]), and the files it puts
//! in a profile's tree and in a host's identity tree ([`render`]).

pub(crate) mod bootable;
pub(crate) mod calico;
pub(crate) mod docker;
mod etcd;
mod firewall;
mod host;
pub use host::IDLE_UNITS;
pub(crate) mod iptables;
mod marathon;
mod mesos;
mod network;
pub(crate) use network::NETWORK_FILE;
mod zookeeper;

use std::collections::BTreeMap;

use kiln_layers::{Entry, FileTree, TreeError};
use serde::Serialize;

use kiln_model::plan::{
    BakedImage, ComponentId, HostPlan, Origin, Plan, Profile, Service, SourcePlan,
};
use kiln_model::values::{AbsPath, Version};

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

/// A set of files a component takes from sources: the spec's `source`, else the catalog's.
#[derive(Debug, Clone)]
pub struct SourceSet<'a> {
    /// Name in the cache, lock file, layer labels and messages (`etcd`, `calico-cni`).
    pub name: &'static str,
    pub version: &'a Version,
    /// The spec's source for it, if any.
    pub source: Option<&'a SourcePlan>,
    /// The catalog's sources, used when the spec names none.
    pub catalog: Vec<SourcePlan>,
    /// Profiles whose images get these files.
    pub profiles: Vec<&'a str>,
}

impl SourceSet<'_> {
    /// Why the set has nothing to fetch: no spec source and no catalog entry.
    pub fn gap(&self) -> Option<crate::sources::catalog::Gap> {
        (self.source.is_none() && self.catalog.is_empty())
            .then(|| crate::sources::catalog::gap(self.name, self.version))
    }
}

/// One component: what it runs, masks, renders and needs. Implemented once per module and
/// listed once in [`REGISTRY`]; nothing else names components.
pub trait Component: Sync {
    fn id(&self) -> ComponentId;
    /// The units it runs on `profile`, in start order.
    fn services(&self, _plan: &Plan, _profile: &Profile) -> Vec<Service> {
        Vec::new()
    }
    /// Units a base may ship and enable that must not run on `profile`: packaged units kiln
    /// replaces, and the units of this component when the profile does not run it.
    fn masks(&self, _plan: &Plan, _profile: &Profile) -> Vec<&'static str> {
        Vec::new()
    }
    /// Its files in a profile's tree.
    fn role_files(&self, _ctx: &mut Ctx) -> Result<(), RenderError> {
        Ok(())
    }
    /// Its files in a host's identity tree.
    fn identity_files(&self, _ctx: &mut HostCtx) -> Result<(), RenderError> {
        Ok(())
    }
    /// The files it takes from sources.
    fn sources<'a>(&self, _plan: &'a Plan) -> Vec<SourceSet<'a>> {
        Vec::new()
    }
    /// Container images its units run on `profile`, baked into that profile's image. Decided
    /// from the plan and the profile's roles, never from `profile.services`: Docker's
    /// services depend on it.
    fn images<'a>(&self, _plan: &'a Plan, _profile: &Profile) -> Vec<&'a BakedImage> {
        Vec::new()
    }
    /// Files of `profile` that sources must provide (checked when images are built).
    fn artifacts(&self, _plan: &Plan, _profile: &Profile) -> Vec<Artifact> {
        Vec::new()
    }
    /// The spec key whose source provides the programs its units start, and the version to
    /// name in a hint; `None` when they come from the base.
    fn program_source(&self, _plan: &Plan) -> Option<(&'static str, String)> {
        None
    }
}

/// Every component, in render order. Adding a component is one module plus one line here.
pub static REGISTRY: &[&dyn Component] = &[
    &host::Host,
    &network::Network,
    &zookeeper::ZooKeeper,
    &etcd::Etcd,
    &mesos::Mesos,
    &docker::Docker,
    &marathon::Marathon,
    &calico::Calico,
    &iptables::Iptables,
    &firewall::Firewall,
    &bootable::Boot,
];

/// The registered component `id`.
pub fn component(id: ComponentId) -> Option<&'static dyn Component> {
    REGISTRY.iter().copied().find(|c| c.id() == id)
}

/// The services of a profile, in start order.
pub fn services(plan: &Plan, profile: &Profile) -> Vec<Service> {
    REGISTRY
        .iter()
        .flat_map(|c| c.services(plan, profile))
        .collect()
}

/// The base units masked on a profile, sorted and without duplicates.
pub fn masked(plan: &Plan, profile: &Profile) -> Vec<String> {
    let mut v: Vec<String> = REGISTRY
        .iter()
        .flat_map(|c| c.masks(plan, profile))
        .filter(|u| !profile.runs(u))
        .map(String::from)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Files of a profile that sources must provide (checked when images are built).
pub fn artifacts(plan: &Plan, profile: &Profile) -> Vec<Artifact> {
    REGISTRY
        .iter()
        .flat_map(|c| c.artifacts(plan, profile))
        .collect()
}

/// Every source set the plan needs, in build order.
pub fn source_sets(plan: &Plan) -> Vec<SourceSet<'_>> {
    REGISTRY
        .iter()
        .flat_map(|c| c.sources(plan))
        .filter(|s| !s.profiles.is_empty())
        .collect()
}

/// The container images `profile`'s units run, in render order.
pub fn images_of<'a>(plan: &'a Plan, profile: &Profile) -> Vec<&'a BakedImage> {
    REGISTRY
        .iter()
        .flat_map(|c| c.images(plan, profile))
        .collect()
}

/// Every container image the plan's units run, each once.
pub fn images(plan: &Plan) -> Vec<&BakedImage> {
    let mut out: Vec<&BakedImage> = Vec::new();
    for img in plan.profiles.iter().flat_map(|p| images_of(plan, p)) {
        if !out.iter().any(|o| o.name == img.name) {
            out.push(img);
        }
    }
    out
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

/// The components whose sources go into `profile`'s image, with version and origin, and the
/// container images baked into it: its `io.kiln.sources` label. Only that profile's, so a
/// source another profile alone takes changes no label of this one.
pub fn source_list_of(plan: &Plan, profile: &Profile) -> Vec<String> {
    let from = |s: Option<&SourcePlan>| match s.map(|s| &s.origin) {
        Some(Origin::Url(u)) => u.to_string(),
        Some(Origin::File(f)) => f.clone(),
        Some(Origin::Deb(d)) => d.to_string(),
        Some(Origin::Oci(o)) => o.clone(),
        Some(Origin::Base) | None => "base image or catalog".into(),
    };
    let mut out: Vec<String> = source_sets(plan)
        .iter()
        .filter(|s| s.profiles.contains(&profile.name.as_str()))
        .map(|s| format!("{} {} from {}", s.name, s.version, from(s.source)))
        .collect();
    if profile.runs(LOAD_UNIT) {
        out.extend(
            images_of(plan, profile)
                .iter()
                .map(|i| format!("{} {} from {}", i.name, i.upstream, from(i.source.as_ref()))),
        );
    }
    out
}

/// Renders every profile tree and identity tree of the plan.
pub fn render(plan: &Plan) -> Result<Rendered, RenderError> {
    let templates = Templates::new()?;
    let mut rendered = Rendered::default();
    for profile in &plan.profiles {
        let mut ctx = Ctx::new(plan, profile, &templates);
        let mut layers = Vec::new();
        for c in REGISTRY {
            c.role_files(&mut ctx)?;
            let part = std::mem::take(&mut ctx.part);
            if !part.is_empty() {
                layers.push((c.id().name(), part));
            }
        }
        for unit in &profile.masked {
            ctx.mask(unit)?;
        }
        let part = std::mem::take(&mut ctx.part);
        if !part.is_empty() {
            layers.push(("masked", part));
        }
        rendered.profiles.insert(profile.name.clone(), ctx.tree);
        rendered.layers.insert(profile.name.clone(), layers);
    }
    for host in &plan.hosts {
        let mut ctx = HostCtx {
            plan,
            host,
            templates: &templates,
            tree: FileTree::new(),
        };
        for c in REGISTRY {
            c.identity_files(&mut ctx)?;
        }
        rendered.hosts.insert(host.name.to_string(), ctx.tree);
    }
    Ok(rendered)
}

/// A unit that runs a baked image ([`Ctx::container_unit`]).
#[derive(Debug)]
pub struct ContainerUnit<'a> {
    pub unit: &'a str,
    pub description: &'a str,
    pub docs: &'a str,
    pub image: &'a BakedImage,
    /// Units it needs besides Docker and the load one-shot: started before it, and it stops
    /// with them.
    pub requires: Vec<&'a str>,
    /// Units it only starts after.
    pub after: Vec<&'a str>,
    /// Units it pulls in without needing them.
    pub wants: Vec<&'a str>,
    /// `--privileged`: calico-node programs routes, iptables and kernel modules.
    pub privileged: bool,
    /// `docker run` options before the image.
    pub run_args: String,
    /// The program's arguments, after the image.
    pub args: String,
}

/// What a component sees while rendering a host's identity tree.
#[derive(Debug)]
pub struct HostCtx<'a> {
    pub plan: &'a Plan,
    pub host: &'a HostPlan,
    templates: &'a Templates,
    tree: FileTree,
}

impl HostCtx<'_> {
    /// Adds a root-owned 0644 file.
    pub fn file(&mut self, path: &str, content: impl Into<Vec<u8>>) -> Result<(), RenderError> {
        insert(
            &mut self.tree,
            path,
            Entry::file(content, 0o644),
            self.host.name.as_str(),
        )
    }

    /// Adds a file rendered from a template.
    pub fn template(
        &mut self,
        path: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), RenderError> {
        let text = self.templates.render(name, data)?;
        self.file(path, text)
    }
}

/// What a component sees while rendering a profile.
#[derive(Debug)]
pub struct Ctx<'a> {
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
        self.profile.runs(unit)
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

    /// A unit that runs `c.image` in Docker, as the container named after the image, on the
    /// host's network (`container.service`): after Docker and the one-shot that loads the
    /// baked images, which it requires.
    pub fn container_unit(&mut self, c: ContainerUnit) -> Result<(), RenderError> {
        let image = c.image.runs_as.as_str();
        // Present from the baked archive, else from the cluster's registry; never the internet.
        let ensure_image = match &self.plan.registry {
            Some(_) => format!("/bin/sh -c '{DOCKER_CLI} image inspect --format={{{{.Id}}}} {image} || {DOCKER_CLI} pull {image}'"),
            None => format!("{DOCKER_CLI} image inspect --format={{{{.Id}}}} {image}"),
        };
        let mut requires = vec!["docker.service", LOAD_UNIT];
        requires.extend(c.requires);
        let mut after = requires.clone();
        after.extend(c.after);
        let name = c.image.name;
        let mut run = vec!["--net=host"];
        if c.privileged {
            run.push("--privileged");
        }
        let named = format!("--name={name}");
        run.extend([named.as_str(), &c.run_args, image]);
        if !c.args.is_empty() {
            run.push(&c.args);
        }
        self.unit(
            c.unit,
            "container.service",
            minijinja::context! {
                description => c.description, docs => c.docs, after => after.join(" "),
                requires => requires.join(" "), wants => c.wants.join(" "), docker => DOCKER_CLI,
                name, ensure_image, run => run.join(" "),
            },
        )
    }

    /// Enables a unit the base ships (its file stays where the package put it) with a
    /// `TARGET.wants` symlink, as `systemctl enable` would.
    pub fn enable_base_unit(&mut self, unit: &str, target: &str) -> Result<(), RenderError> {
        let link = format!("{UNIT_DIR}/{target}.wants/{unit}");
        self.add(&link, Entry::symlink(format!("/lib/systemd/system/{unit}")))
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
        .services_of(ComponentId::Etcd)
        .next()
        .map(|s| s.unit.as_str())
}

/// Names of the profiles that run a unit of `c`.
pub(crate) fn profiles_running(plan: &Plan, c: ComponentId) -> Vec<&str> {
    plan.profiles
        .iter()
        .filter(|p| p.services_of(c).next().is_some())
        .map(|p| p.name.as_str())
        .collect()
}

/// A path literal of kiln's own (a constant, so it always parses).
pub(crate) fn abs(p: &'static str) -> AbsPath {
    AbsPath::parse(p).unwrap_or_else(|e| panic!("kiln's path literal {p}: {e}"))
}
