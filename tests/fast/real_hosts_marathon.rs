//! Marathon on the masters (issue 19, item 3): the catalog's tarball came from
//! downloads.mesosphere.io, which is gone, so Marathon runs from its release image
//! (`mesosphere/marathon:vVERSION`) in Docker on the host's network, and from a tarball only
//! when the spec names one. Each test is named after what broke; the upstream facts are in
//! `docs/design/upstream-facts.md`, cited in the component.

use std::fs;
use std::path::Path;

use kiln_layers::{Entry, FileTree};
use kiln_pipeline::sources;

use crate::common::artifact_server::tar_gz;
use crate::common::render::TWO_HOSTS;
use crate::common::render::{render, render_text};
use crate::common::sources::setup;
use crate::common::{fixture, kiln_code};

/// One master running Marathon's tarball form, Docker off (`fixtures/specs/marathon-tarball.toml`).
fn tarball_spec() -> String {
    read(&fixture("specs/marathon-tarball.toml"))
}

/// The tarball spec's Marathon source line.
const TARBALL_SOURCE: &str = "source = { url = \"https://mirror.example.com/marathon/marathon-1.6.322-2bf46b341.tgz\", strip_components = 1, dest = \"/usr/share/marathon\" }\n";

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The values of every `KEY=` line of a unit, in order.
fn lines<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let prefix = format!("{key}=");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// The one `KEY=` line of a unit.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    match lines(text, key)[..] {
        [v] => v,
        ref v => panic!("{} {key}= lines in:\n{text}", v.len()),
    }
}

/// `kiln check` of the spec at `spec`: its text and its JSON report.
fn check(spec: &Path) -> (String, serde_json::Value) {
    let s = spec.to_str().unwrap();
    let text = kiln_code(&["check", s], 0).0;
    let json = serde_json::from_str(&kiln_code(&["check", s, "--json"], 0).0).unwrap();
    (text, json)
}

/// The artifact paths `kiln check --json` lists for `profile`.
fn artifacts(report: &serde_json::Value, profile: &str) -> Vec<String> {
    let profiles = report["profiles"].as_array().into_iter().flatten();
    profiles
        .filter(|p| p["name"] == profile)
        .flat_map(|p| p["artifacts"].as_array().into_iter().flatten())
        .filter_map(|a| a["path"].as_str().map(String::from))
        .collect()
}

/// The catalog's Marathon was a tarball on downloads.mesosphere.io, gone since 2023: every
/// default build failed to fetch it. Now the masters run the release image in Docker, with
/// the flags and environment the tarball's unit had, on the host's network; Docker runs there
/// without the cluster store, and the load one-shot brings the image in first.
#[test]
fn marathon_runs_its_release_image_in_docker_on_the_masters() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render_text(tmp.path(), "lab", TWO_HOSTS);
    let master = out.join("profiles/master");
    let units = master.join("etc/systemd/system");
    let unit = read(&units.join("marathon.service"));
    assert_eq!(
        line(&unit, "ExecStart"),
        "/usr/bin/docker run --net=host --name=marathon --env-file=/etc/kiln/identity.env \
         -e LIBPROCESS_PORT=15101 mesosphere/marathon:v1.6.322 \
         --master zk://10.0.0.11:2181/mesos --zk zk://10.0.0.11:2181/marathon \
         --http_port 8080 --hostname ${KILN_FQDN}"
    );
    assert_eq!(
        lines(&unit, "ExecStartPre"),
        [
            "-/usr/bin/docker rm -f marathon",
            "/usr/bin/docker image inspect --format={{.Id}} mesosphere/marathon:v1.6.322",
        ]
    );
    assert_eq!(
        lines(&unit, "After"),
        [
            "docker.service kiln-load-images.service network-online.target mesos-master.service",
            "kiln-identity.service",
        ]
    );
    assert_eq!(
        line(&unit, "Requires"),
        "docker.service kiln-load-images.service"
    );
    assert_eq!(line(&unit, "Wants"), "network-online.target");
    assert_eq!(line(&unit, "EnvironmentFile"), "/etc/kiln/identity.env");
    assert!(
        fs::symlink_metadata(units.join("multi-user.target.wants/marathon.service")).is_ok(),
        "marathon.service is not enabled"
    );
    // Docker runs on the master, without the cluster store (no tasks' networks there).
    let docker = read(&units.join("docker.service"));
    assert_eq!(
        line(&docker, "ExecStart"),
        "/usr/bin/dockerd -H unix:///var/run/docker.sock"
    );
    assert!(fs::symlink_metadata(units.join("multi-user.target.wants/docker.service")).is_ok());
    let daemon: serde_json::Value =
        serde_json::from_str(&read(&master.join("etc/docker/daemon.json"))).unwrap();
    assert!(daemon.get("cluster-store").is_none(), "{daemon}");
    let load = read(&units.join("kiln-load-images.service"));
    assert_eq!(line(&load, "Before"), "marathon.service");
    assert_eq!(line(&load, "Requires"), "docker.service");
    // calico-node and the CNI files stay on the agents.
    for gone in [
        "etc/systemd/system/calico-node.service",
        "etc/kiln/calico.env",
        "etc/cni/net.d/calico.conf",
    ] {
        assert!(!master.join(gone).exists(), "{gone} on the master");
    }
    // The agent: its Docker keeps the store, its load one-shot serves calico-node alone.
    let agent = out.join("profiles/agent");
    let load = read(&agent.join("etc/systemd/system/kiln-load-images.service"));
    assert_eq!(line(&load, "Before"), "calico-node.service");
    assert!(!agent.join("etc/systemd/system/marathon.service").exists());
    let daemon = read(&agent.join("etc/docker/daemon.json"));
    assert!(
        daemon.contains("\"cluster-store\": \"etcd://127.0.0.1:2379\""),
        "{daemon}"
    );
    // Its ports are opened on the masters only.
    let fw = read(&master.join("etc/firewalld/services/kiln-marathon.xml"));
    for port in ["8080", "15101"] {
        assert!(
            fw.contains(&format!("<port protocol=\"tcp\" port=\"{port}\"/>")),
            "{fw}"
        );
    }
    assert!(!agent
        .join("etc/firewalld/services/kiln-marathon.xml")
        .exists());

    // `kiln check` and the plan say the form; each profile bakes the images its units run.
    let (text, report) = check(&tmp.path().join("lab.toml"));
    assert!(
        text.contains("  marathon   container form: mesosphere/marathon:v1.6.322 run by Docker on the host's network, image from mesosphere/marathon:v1.6.322\n"),
        "{text}"
    );
    let run = &report["plan"]["marathon"]["run"];
    assert_eq!(run["form"], "container");
    assert_eq!(run["runs_as"], "mesosphere/marathon:v1.6.322");
    let marathon_tar = "/var/lib/kiln/images/mesosphere_marathon_v1.6.322.tar";
    let node_tar = "/var/lib/kiln/images/calico_node_v2.6.12.tar";
    let (m, a) = (artifacts(&report, "master"), artifacts(&report, "agent"));
    assert!(m.iter().any(|p| p == marathon_tar), "{m:?}");
    assert!(!m.iter().any(|p| p == node_tar), "{m:?}");
    assert!(a.iter().any(|p| p == node_tar), "{a:?}");
    assert!(!a.iter().any(|p| p == marathon_tar), "{a:?}");
    // The plan's sources: no Marathon tarball, the image instead.
    let src = kiln_pipeline::read_spec(Some(&tmp.path().join("lab.toml"))).unwrap();
    let plan = kiln_pipeline::validate::load(&src).unwrap().plan;
    let sets = kiln_pipeline::components::source_sets(&plan);
    assert!(!sets.iter().any(|s| s.name == "marathon"));
    let images = kiln_pipeline::components::images(&plan);
    let names: Vec<&str> = images.iter().map(|i| i.name).collect();
    assert_eq!(names, ["calico-node", "marathon"]);
}

/// A master that is also an agent loads both images before either container starts, and the
/// spec's image and registry name what runs.
#[test]
fn the_spec_names_marathons_image_and_one_load_serves_every_container() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("demo", None, tmp.path());
    let root = out.join("profiles/master-agent/etc/systemd/system");
    let load = read(&root.join("kiln-load-images.service"));
    assert_eq!(
        line(&load, "Before"),
        "marathon.service calico-node.service"
    );

    // Another release: its tag. The cluster's registry: the name it runs as, pulled from
    // there when the baked copy is gone.
    let spec = format!(
        "{TWO_HOSTS}\n[marathon]\nversion = \"1.7.189\"\n\n[registry]\naddress = \"10.0.0.5:5000\"\n"
    );
    let out = render_text(tmp.path(), "reg", &spec);
    let unit = read(&out.join("profiles/master/etc/systemd/system/marathon.service"));
    let image = "10.0.0.5:5000/kiln/mesosphere/marathon:v1.7.189";
    assert!(
        line(&unit, "ExecStart").contains(&format!(" {image} --master ")),
        "{unit}"
    );
    assert_eq!(
        lines(&unit, "ExecStartPre")[1],
        format!("/bin/sh -c '/usr/bin/docker image inspect --format={{{{.Id}}}} {image} || /usr/bin/docker pull {image}'")
    );
    let spec = format!(
        "{TWO_HOSTS}\n[marathon]\nimage = \"registry.example.com/ops/marathon:v1.6.322-site\"\nsource = {{ oci = \"oci:vendor/marathon:v1.6.322\" }}\n"
    );
    let out = render_text(tmp.path(), "own", &spec);
    let unit = read(&out.join("profiles/master/etc/systemd/system/marathon.service"));
    assert!(
        line(&unit, "ExecStart")
            .contains(" registry.example.com/ops/marathon:v1.6.322-site --master "),
        "{unit}"
    );
    let (text, _) = check(&tmp.path().join("own.toml"));
    assert!(
        text.contains("container form: registry.example.com/ops/marathon:v1.6.322-site run by Docker on the host's network, image from oci:vendor/marathon:v1.6.322"),
        "{text}"
    );
}

/// Issue 8, item 11: Marathon's scheduler driver listened on a random ephemeral port that no
/// firewall opened, so with several masters the leading Mesos master could not reach it.
#[test]
fn marathon_libprocess_port_is_fixed_and_opened_on_masters() {
    // The unit's LIBPROCESS_PORT and the master's firewall hold `port`, and only it.
    let opened_for = |master: &Path, port: &str, other: &str| {
        let unit = read(&master.join("etc/systemd/system/marathon.service"));
        let fw = read(&master.join("etc/firewalld/services/kiln-marathon.xml"));
        assert!(
            fw.contains(&format!("<port protocol=\"tcp\" port=\"{port}\"/>"))
                && !fw.contains(other),
            "{fw}"
        );
        unit
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = render("three-two", Some("specs/three-two.toml"), tmp.path());
    let master = out.join("profiles/master");
    let unit = opened_for(&master, "15101", "15200");
    assert!(
        line(&unit, "ExecStart").contains(" -e LIBPROCESS_PORT=15101 "),
        "{unit}"
    );
    let zone = read(&master.join("etc/firewalld/zones/public.xml"));
    assert!(zone.contains("<service name=\"kiln-marathon\"/>"), "{zone}");
    // Agents run no Marathon and open nothing for it.
    let agent = out.join("profiles/agent/etc/firewalld");
    for e in fs::read_dir(agent.join("services")).unwrap() {
        let text = read(&e.unwrap().path());
        assert!(!text.contains("15101"), "{text}");
    }
    // The key moves both, in either form.
    let spec = format!("{TWO_HOSTS}\n[marathon]\nlibprocess_port = 15200\n");
    let out = render_text(tmp.path(), "lp", &spec);
    let unit = opened_for(&out.join("profiles/master"), "15200", "15101");
    assert!(
        line(&unit, "ExecStart").contains(" -e LIBPROCESS_PORT=15200 "),
        "{unit}"
    );
    let spec = tarball_spec().replace(
        TARBALL_SOURCE,
        &format!("{TARBALL_SOURCE}libprocess_port = 15200\n"),
    );
    let out = render_text(tmp.path(), "lp-tarball", &spec);
    let unit = opened_for(&out.join("profiles/master"), "15200", "15101");
    assert_eq!(line(&unit, "Environment"), "LIBPROCESS_PORT=15200");
}

/// Issue 8, item 13, and what stays of it: a site that has Marathon's tarball names it, and the
/// unit runs `bin/marathon` from where it unpacks (laid out as upstream's:
/// `marathon-V-COMMIT/bin/marathon`, `lib/`), checked by the presence check on what the source
/// places; no Docker on such a master.
#[test]
fn a_tarball_source_runs_bin_marathon_under_home_without_docker() {
    let spec = tarball_spec();
    let mut src = setup(&spec);
    // The upstream tarball's layout (mesosphere/marathon v1.6.322: `sbt
    // universal:packageZipTarball`, top directory marathon-1.6.322-2bf46b341), served from a
    // `--mirror` directory at the spec's URL.
    let top = "marathon-1.6.322-2bf46b341";
    let mut t = FileTree::new();
    let launcher = "#!/bin/sh\n# kiln test fixture standing in for Marathon\n";
    t.insert(
        &format!("/{top}/bin/marathon"),
        Entry::file(launcher, 0o755),
    )
    .unwrap();
    let jar = format!("/{top}/lib/mesosphere.marathon.marathon-1.6.322.jar");
    t.insert(&jar, Entry::file("fixture", 0o644)).unwrap();
    let mirror = src.dir.path().join("mirror");
    let at = mirror.join(format!("mirror.example.com/marathon/{top}.tgz"));
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    fs::write(&at, tar_gz(&t)).unwrap();
    src.opts.mirror = Some(mirror.to_str().unwrap().to_string());
    let resolved = src.resolve().unwrap_or_else(|e| panic!("{e}"));
    let placed = &resolved.trees["marathon"];
    let plan = crate::common::sources::plan_of(&src.spec_path);
    let profile = plan.profile("master").unwrap();
    let svc = profile
        .services
        .iter()
        .find(|s| s.unit == "marathon.service")
        .unwrap();
    assert_eq!(svc.exec.as_str(), "/usr/share/marathon/bin/marathon");
    // The base provides the others' programs; Marathon's comes only from its source.
    let mut rootfs = placed.clone();
    for s in profile
        .services
        .iter()
        .filter(|s| s.component != svc.component)
    {
        rootfs.replace(&s.exec, Entry::file("x", 0o755)).unwrap();
    }
    sources::check_presence(&plan, profile, &rootfs).unwrap_or_else(|e| panic!("{e}"));

    // The unit runs the same program with the container form's flags and environment.
    let out = render_text(src.dir.path(), "cluster", &spec);
    let root = out.join("profiles/master");
    let unit = read(&root.join("etc/systemd/system/marathon.service"));
    assert_eq!(
        line(&unit, "ExecStart"),
        "/usr/share/marathon/bin/marathon --master zk://10.0.0.11:2181/mesos \
         --zk zk://10.0.0.11:2181/marathon --http_port 8080 --hostname ${KILN_FQDN}"
    );
    assert_eq!(line(&unit, "Environment"), "LIBPROCESS_PORT=15101");
    assert_eq!(line(&unit, "EnvironmentFile"), "/etc/kiln/identity.env");
    // No Docker on the master: the base's stays masked, nothing is loaded.
    assert_eq!(
        fs::read_link(root.join("etc/systemd/system/docker.service")).unwrap(),
        Path::new("/dev/null")
    );
    assert!(!root
        .join("etc/systemd/system/kiln-load-images.service")
        .exists());
    let (text, report) = check(&src.spec_path);
    assert!(
        text.contains(&format!(
            "  marathon   tarball form: /usr/share/marathon/bin/marathon from https://mirror.example.com/marathon/{top}.tgz\n"
        )),
        "{text}"
    );
    assert_eq!(report["plan"]["marathon"]["run"]["form"], "tarball");

    // `marathon.home` moves the unit's program; the source's dest is the spec's.
    let moved = spec.replace(
        TARBALL_SOURCE,
        &format!("{TARBALL_SOURCE}home = \"/opt/marathon\"\n"),
    );
    let out = render_text(src.dir.path(), "moved", &moved);
    let unit = read(&out.join("profiles/master/etc/systemd/system/marathon.service"));
    assert!(
        line(&unit, "ExecStart").starts_with("/opt/marathon/bin/marathon --master "),
        "{unit}"
    );
}

/// The container form needs Docker: with it off the spec is refused at `docker.enabled`, and
/// the help names the ways out (fixture `marathon-container-without-docker`).
#[test]
fn the_container_form_without_docker_is_refused_with_the_ways_out() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tarball_spec().replace(TARBALL_SOURCE, "");
    let line = spec.lines().position(|l| l == "[docker]").unwrap() + 2;
    let path = tmp.path().join("nodocker.toml");
    fs::write(&path, spec).unwrap();
    let err = kiln_code(&["check", path.to_str().unwrap()], 2).1;
    for want in [
        "Marathon runs as a container (mesosphere/marathon:v1.6.322) but Docker is disabled",
        &format!("nodocker.toml:{line}:11"),
        "enable docker",
        "marathon.source = { url =",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
}
