//! Issue 8, Calico, Docker and firewalld part: what real hosts and the upstream programs need
//! from kiln's rendered files. Each test is named after what broke and asserts the exact
//! lines of the files involved.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::kiln_code;
use crate::common::render::TWO_HOSTS;

/// A spec written into a temporary directory and rendered there.
struct Rendered {
    _tmp: tempfile::TempDir,
    out: PathBuf,
}

impl Rendered {
    fn profile(&self, name: &str) -> PathBuf {
        self.out.join("profiles").join(name)
    }
    fn host(&self, name: &str) -> PathBuf {
        self.out.join("hosts").join(name)
    }
}

/// Renders `TWO_HOSTS` + `extra`.
fn render(extra: &str) -> Rendered {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("cluster.toml");
    fs::write(&spec, format!("{TWO_HOSTS}\n{extra}")).unwrap();
    let out = tmp.path().join("out");
    kiln_code(
        &[
            "render",
            spec.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    Rendered { _tmp: tmp, out }
}

/// `kiln check` of `TWO_HOSTS` + `extra`, expecting exit code `code`; returns stderr.
fn check(extra: &str, code: i32) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("cluster.toml");
    fs::write(&spec, format!("{TWO_HOSTS}\n{extra}")).unwrap();
    kiln_code(&["check", spec.to_str().unwrap()], code).1
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The value of the first `KEY=` line of a unit or env file.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}= in:\n{text}"))
}

/// Item 3: kiln's docker.service dropped Debian's ordering after containerd, so dockerd used
/// the system containerd only when it happened to start first.
#[test]
fn docker_service_orders_after_containerd_like_debians_unit() {
    let r = render("");
    let agent = r.profile("agent");
    let unit = read(&agent.join("etc/systemd/system/docker.service"));
    assert_eq!(
        line(&unit, "After"),
        "network-online.target firewalld.service containerd.service etcd-gateway.service"
    );
    assert_eq!(
        line(&unit, "Wants"),
        "network-online.target containerd.service etcd-gateway.service"
    );
    // containerd is what dockerd uses there: never masked where Docker runs.
    let containerd = agent.join("etc/systemd/system/containerd.service");
    assert!(
        fs::symlink_metadata(&containerd).is_err(),
        "containerd.service is masked on the agent"
    );
    // Where Docker does not run (a master running Marathon's tarball form), the base's
    // containerd stays masked.
    let r = render("[marathon]\nsource = { base = true }\n");
    let master = r.profile("master");
    assert_eq!(
        fs::read_link(master.join("etc/systemd/system/containerd.service")).unwrap(),
        Path::new("/dev/null")
    );
}

/// Every `<port …/>` and `<protocol …/>` line of the firewalld services a profile's zone uses.
fn firewalld_openings(profile: &Path) -> Vec<String> {
    let dir = profile.join("etc/firewalld/services");
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
        .iter()
        .flat_map(|p| {
            read(p)
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("<port ") || l.starts_with("<protocol "))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Item 15: 2376 was opened on every Docker host although nothing listens there
/// (`--cluster-advertise` is only registered in the cluster store).
#[test]
fn docker_cluster_advertise_port_is_not_opened() {
    let r = render("");
    let agent = r.profile("agent");
    let unit = read(&agent.join("etc/systemd/system/docker.service"));
    // The store still gets the host's address …
    assert!(
        line(&unit, "ExecStart").ends_with(" --cluster-advertise=${KILN_IP}:2376"),
        "{unit}"
    );
    // … but no firewalld service opens it, and dockerd listens on its socket only.
    assert!(line(&unit, "ExecStart").contains(" -H unix:///var/run/docker.sock "));
    assert!(!agent
        .join("etc/firewalld/services/kiln-docker.xml")
        .exists());
    let open = firewalld_openings(&agent);
    assert!(!open.iter().any(|l| l.contains("2376")), "{open:?}");
}

/// Item 7: `<protocol value="ipencap"/>` is not a name in RHEL's /etc/protocols; firewalld
/// refused kiln's calico-node service (and firewalld ≥ 1.2 all of kiln's configuration).
#[test]
fn firewalld_ipip_protocol_is_the_number_4() {
    let r = render("");
    let svc = read(
        &r.profile("agent")
            .join("etc/firewalld/services/kiln-calico-node.xml"),
    );
    assert_eq!(
        svc,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <service>\n  \
           <short>kiln-calico-node</short>\n  \
           <description>Calico BGP and IP-in-IP (written by kiln)</description>\n  \
           <port protocol=\"tcp\" port=\"179\"/>\n  \
           <protocol value=\"4\"/>\n\
         </service>\n"
    );
    for profile in ["agent", "master"] {
        for l in firewalld_openings(&r.profile(profile)) {
            assert!(
                !l.contains("ipencap") && !l.contains("ipip"),
                "{profile}: {l}"
            );
        }
    }
}

/// Item 8: a zone other than `public` was written but bound to nothing (no `<interface>`,
/// no DefaultZone), so none of kiln's services applied.
#[test]
fn non_default_firewalld_zone_is_made_the_default_zone() {
    let r = render("[firewall]\nzone = \"internal\"\n");
    for profile in ["agent", "master"] {
        let p = r.profile(profile);
        let conf = read(&p.join("etc/firewalld/firewalld.conf"));
        // What firewalld reads of it (io/firewalld_conf.py: `#` lines are comments): only
        // DefaultZone, and the iptables backend where calico-node needs legacy iptables;
        // every other key keeps the running firewalld's built-in default.
        let settings: Vec<&str> = conf
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let want: &[&str] = match profile {
            "agent" => &["DefaultZone=internal", "FirewallBackend=iptables"],
            _ => &["DefaultZone=internal"],
        };
        assert_eq!(settings, want, "{profile}:\n{conf}");
        let zone = read(&p.join("etc/firewalld/zones/internal.xml"));
        assert!(zone.contains("<service name=\"ssh\"/>"), "{zone}");
        // Bound through DefaultZone, never by an interface name (they differ per machine).
        assert!(!zone.contains("<interface"), "{zone}");
    }
    // kiln's services are in that zone.
    let zone = read(&r.profile("agent").join("etc/firewalld/zones/internal.xml"));
    assert!(
        zone.contains("  <service name=\"kiln-calico-node\"/>\n"),
        "{zone}"
    );
}

/// With firewalld's own default zone the base's firewalld.conf (a distribution's conffile,
/// which may set other keys such as the backend) is left alone, where the iptables mode is
/// the base's (no calico-node: the agent's is in `iptables_mode.rs`).
#[test]
fn public_firewalld_zone_leaves_the_bases_firewalld_conf_alone() {
    let r = render("[calico.node]\nenabled = false\n");
    for profile in ["agent", "master"] {
        let p = r.profile(profile);
        assert!(p.join("etc/firewalld/zones/public.xml").is_file());
        assert!(
            !p.join("etc/firewalld/firewalld.conf").exists(),
            "{profile} replaces the base's firewalld.conf"
        );
    }
}

/// Item 15: kiln's zone file replaces the stock zone of that name and dropped its
/// `<forward/>`; Calico's `cali*` interfaces and the NIC are both in the default zone, and
/// without intra-zone forwarding firewalld ≥ 1.0 rejects the routed workload traffic.
#[test]
fn firewalld_zone_keeps_intra_zone_forwarding_for_workloads() {
    for (extra, zone) in [
        ("", "public"),
        ("[firewall]\nzone = \"internal\"\n", "internal"),
    ] {
        let r = render(extra);
        for profile in ["agent", "master"] {
            let text = read(
                &r.profile(profile)
                    .join(format!("etc/firewalld/zones/{zone}.xml")),
            );
            assert!(
                text.ends_with("  <forward/>\n</zone>\n"),
                "{profile}:\n{text}"
            );
            assert_eq!(text.matches("<forward/>").count(), 1, "{text}");
        }
    }
}

/// The CNI network config of the agent profile, parsed.
fn cni_config(r: &Rendered) -> serde_json::Value {
    let text = read(&r.profile("agent").join("etc/cni/net.d/calico.conf"));
    serde_json::from_str(&text).unwrap()
}

/// Item 9: `"cniVersion": "0.3.1"` made the Calico plugin answer with `ips`, which Mesos'
/// CNI isolator does not read (only 0.1/0.2 `ip4`/`ip6`): containers got no IP.
#[test]
fn cni_config_speaks_a_result_version_mesos_reads() {
    let r = render("");
    assert_eq!(cni_config(&r)["cniVersion"], "0.1.0");
    let r = render("[calico.cni]\ncni_version = \"0.2.0\"\n");
    assert_eq!(cni_config(&r)["cniVersion"], "0.2.0");
    // Refused while the agent runs (fixtures/invalid/cni-version-*-with-mesos.toml pin the
    // location) …
    let err = check("[calico.cni]\ncni_version = \"0.3.1\"\n", 2);
    assert!(
        err.contains("error: Mesos 1.11.0 reads only CNI 0.1/0.2 results (ip4/ip6)"),
        "{err}"
    );
    // … and allowed when no Mesos agent consumes the config.
    let r = render("[mesos.agent]\nenabled = false\n[calico.cni]\ncni_version = \"0.3.1\"\n");
    assert_eq!(cni_config(&r)["cniVersion"], "0.3.1");
}

/// Item 10: with `nodename = "fqdn"` calico-node registered as the FQDN while the CNI plugins,
/// whose config names no node, used the kernel hostname (the short name): workload endpoints
/// landed under another node. The kernel hostname is now the node name.
#[test]
fn fqdn_nodename_is_the_hostname_the_cni_plugins_use() {
    for (extra, want) in [
        ("", "a1"),
        ("[calico.node]\nnodename = \"fqdn\"\n", "a1.lab.example.net"),
    ] {
        let r = render(extra);
        let id = r.host("a1");
        assert_eq!(read(&id.join("etc/hostname")), format!("{want}\n"));
        let env = read(&id.join("etc/kiln/identity.env"));
        assert_eq!(line(&env, "KILN_NODENAME"), want);
        // calico-node takes NODENAME from that identity value …
        let unit = read(
            &r.profile("agent")
                .join("etc/systemd/system/calico-node.service"),
        );
        assert!(
            line(&unit, "ExecStart").contains(" -e NODENAME=${KILN_NODENAME} "),
            "{unit}"
        );
        // … and the role's CNI config names no node, so the plugins use the hostname.
        let cni = cni_config(&r);
        assert!(
            cni.get("nodename").is_none() && cni.get("hostname").is_none(),
            "{cni}"
        );
    }
    // The kernel hostname holds at most 64 characters: a longer FQDN is refused
    // (fixtures/invalid/nodename-fqdn-too-long.toml).
}

/// The same invariant on every snapshot topology: wherever a CNI config names no node, each
/// host's `/etc/hostname` is its `KILN_NODENAME`.
#[test]
fn every_host_hostname_is_its_calico_node_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, spec) in crate::common::render::TOPOLOGIES {
        let out = crate::common::render::render(name, *spec, tmp.path());
        for e in fs::read_dir(out.join("hosts")).unwrap() {
            let dir = e.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            let env = read(&dir.join("etc/kiln/identity.env"));
            assert_eq!(
                read(&dir.join("etc/hostname")),
                format!("{}\n", line(&env, "KILN_NODENAME")),
                "{name}: {}",
                dir.display()
            );
        }
        for e in fs::read_dir(out.join("profiles")).unwrap() {
            let p = e.unwrap().path();
            for cfg in [
                "etc/cni/net.d/calico.conf",
                "opt/mesosphere/etc/dcos/network/cni/calico.cni",
            ] {
                if let Ok(text) = fs::read_to_string(p.join(cfg)) {
                    assert!(
                        !text.contains("\"nodename\"") && !text.contains("\"hostname\""),
                        "{name}: {cfg} names a node:\n{text}"
                    );
                }
            }
        }
    }
}

/// `plan.json` of a render.
fn plan(r: &Rendered) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&read(&r.out.join("plan.json"))).unwrap();
    v["plan"].clone()
}

/// The image a container unit runs (the last word of its `ExecStart=`).
fn unit_image(r: &Rendered, unit: &str) -> String {
    let text = read(&r.profile("agent").join("etc/systemd/system").join(unit));
    line(&text, "ExecStart")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string()
}

/// Item 12: the default calico/node image was `calico/node:v<calico.version>`, a tag that does
/// not exist below Calico 2.4 (2.0.2 ships calico/node v1.0.2, 1.6.1 ships v0.23.1 and
/// libnetwork v0.10.0); the CNI plugins had one fixed default whatever the release.
#[test]
fn calico_component_versions_follow_the_release_table() {
    for (release, node, cni, libnetwork) in [
        ("2.6.12", "calico/node:v2.6.12", "1.11.8", None),
        ("2.3.0", "calico/node:v1.3.0", "1.9.1", None),
        ("2.0.2", "calico/node:v1.0.2", "1.5.6", None),
        (
            "1.6.1",
            "calico/node:v0.23.1",
            "1.4.4",
            Some("calico/node-libnetwork:v0.10.0"),
        ),
    ] {
        let r = render(&format!("[calico]\nversion = \"{release}\"\n"));
        assert_eq!(unit_image(&r, "calico-node.service"), node, "{release}");
        let p = plan(&r);
        assert_eq!(p["calico"]["cni"]["version"], cni, "{release}");
        assert_eq!(
            p["calico"]["node"]["version"],
            node.rsplit(':').next().unwrap(),
            "{release}"
        );
        let lib = r
            .profile("agent")
            .join("etc/systemd/system/calico-libnetwork.service");
        match libnetwork {
            Some(img) => assert_eq!(unit_image(&r, "calico-libnetwork.service"), img),
            None => assert!(
                !lib.exists(),
                "{release}: libnetwork runs inside calico-node"
            ),
        }
    }
    // What the spec names wins over the table.
    let r = render(
        "[calico]\nversion = \"2.0.2\"\n[calico.node]\nimage = \"calico/node:v1.1.0\"\n[calico.cni]\nversion = \"1.6.1\"\n",
    );
    assert_eq!(unit_image(&r, "calico-node.service"), "calico/node:v1.1.0");
    assert_eq!(plan(&r)["calico"]["cni"]["version"], "1.6.1");
    // A release the table does not list needs the component versions spelled out.
    let err = check("[calico]\nversion = \"2.6.13\"\n", 2);
    assert!(
        err.contains("error: Calico 2.6.13 is not a release kiln knows the components of")
            && err.contains("set calico.node.image, calico.cni.version"),
        "{err}"
    );
}

/// Item 12: calico/node before v1.1.0 ignores `CALICO_IPV4POOL_*`; `kiln check` warns (at
/// the pools) instead of letting the cluster come up with 192.168.0.0/16 unnoticed.
#[test]
fn pool_settings_an_old_calico_node_ignores_are_warned_about() {
    let old = "[calico]\nversion = \"2.0.2\"\n[calico.node]\nip_pools = [\"10.100.0.0/16\"]\n";
    let err = check(old, 0);
    assert!(
        err.contains(
            "warning: calico/node v1.0.2 ignores CALICO_IPV4POOL_CIDR and CALICO_IPV4POOL_IPIP"
        ),
        "{err}"
    );
    assert!(err.contains("cluster.toml:23:12"), "{err}");
    // From calico/node v1.1.0 (Calico 2.1.0) the variables are read: no warning.
    let err = check(
        "[calico]\nversion = \"2.1.0\"\n[calico.node]\nip_pools = [\"10.100.0.0/16\"]\n",
        0,
    );
    assert!(!err.contains("CALICO_IPV4POOL"), "{err}");
    // No pool set (NO_DEFAULT_POOLS=true): nothing ignored.
    let err = check(
        "[calico]\nversion = \"2.0.2\"\n[calico.node]\nip_pools = []\n",
        0,
    );
    assert!(!err.contains("CALICO_IPV4POOL"), "{err}");
}

/// Item 15: a CNI-only setup (calico-node off) renders and builds, but no workload gets a
/// working network: `kiln check` says so, at `calico.node.enabled`.
#[test]
fn cni_without_calico_node_is_warned_about() {
    let err = check(
        "[calico.node]\nenabled = false\n[calico.libnetwork]\nenabled = false\n",
        0,
    );
    assert!(
        err.contains(
            "warning: the Calico CNI plugins without calico-node cannot network workloads"
        ),
        "{err}"
    );
    assert!(err.contains("cluster.toml:21:11"), "{err}");
    // The full setup has no such warning.
    let err = check("", 0);
    assert!(!err.contains("without calico-node"), "{err}");
}
