//! Kickstarts per host: every target and mode of `fixtures/specs/kickstart.toml` passes
//! `ksvalidator -v RHEL7|RHEL8|RHEL9` (pykickstart) for its target and matches its snapshot
//! under `snapshots/kickstart/` (`./dev gen` rewrites them); what kiln checks beyond
//! ksvalidator (tarball names, MAC-matched network, exactly the profile's ports, secrets only
//! as hashes); and `kiln build` writing `dist/kickstart/HOST.ks` (0600 with secrets).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use kiln_pipeline::diag::SpecSource;
use kiln_pipeline::stages::render_kickstart;
use kiln_provision::kickstart::LiveImage;
use kiln_test_support::snapshot;

use crate::common::workspace::{build, fixture_workspace};
use crate::common::{fixture, ksvalidator, tests_dir, without_calico_node};

const COMBOS: &[(&str, &str)] = &[
    ("centos7", "image"),
    ("centos7", "packages"),
    ("stream8", "image"),
    ("stream8", "packages"),
    ("stream9", "image"),
    ("stream9", "bootc"),
    ("stream9", "packages"),
];

const HASH: &str = "$6$QgEBUdDXg9lV89I2$/MnwmTKrhqU65dSBZGDej/xeq5cLhSDGNik/Vik6jShsAsZNiRKOUJXwhJU.zw2D0WUK6Kcy8zraOUPXcIso51";
const KEY_BODY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGtIe7kPEAXCJt+AmYd+hNmM7P7js86e6VqK3CNj/wel";

/// The fixture spec with `target` and `mode`; calico-node only on CentOS 7, the one target
/// with legacy iptables (the refusal on Stream is in the invalid-spec corpus).
fn spec(target: &str, mode: &str) -> String {
    let text = fs::read_to_string(fixture("specs/kickstart.toml"))
        .unwrap()
        .replace("target = \"stream9\"", &format!("target = \"{target}\""))
        .replace("mode = \"image\"", &format!("mode = \"{mode}\""));
    if target == "centos7" {
        text
    } else {
        without_calico_node(&text)
    }
}

/// Each host's kickstart of the fixture spec with `target` and `mode`.
fn render(target: &str, mode: &str, liveimg_name: &str) -> Vec<(String, Result<String, String>)> {
    let src = SpecSource {
        name: "kickstart.toml".into(),
        text: spec(target, mode),
    };
    let loaded =
        kiln_pipeline::validate::load(&src).unwrap_or_else(|e| panic!("{target}/{mode}: {e}"));
    let plan = &loaded.plan;
    let rendered = kiln_pipeline::components::render(plan).unwrap();
    let k = plan.kickstart.as_ref().unwrap();
    plan.hosts
        .iter()
        .map(|h| {
            let profile = plan.profile(&h.profile).unwrap();
            // What the build would pass: the role's tarball and its sha256.
            let live = LiveImage {
                path: format!("boot/{}/{liveimg_name}", profile.name),
                sha256: "ab".repeat(32),
            };
            let out = render_kickstart(
                plan,
                k,
                &rendered,
                &rendered.hosts[h.name.as_str()],
                h,
                profile,
                Some(&live),
            )
            .map(|ks| {
                assert!(ks.secrets, "{}: the fixture's hosts have secrets", h.name);
                ks.text
            })
            .map_err(|e| e.to_string());
            (h.name.to_string(), out)
        })
        .collect()
}

fn ksvalidate(version: &str, file: &Path) {
    let out = Command::new(ksvalidator())
        .args(["-v", version])
        .arg(file)
        .output()
        .expect("running ksvalidator");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // It names the file it checks, then prints warnings and errors (deprecated options too).
    let findings: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("Checking kickstart file"))
        .collect();
    assert!(
        out.status.success() && findings.is_empty(),
        "ksvalidator -v {version} {}: {text}\n{}",
        file.display(),
        fs::read_to_string(file).unwrap()
    );
}

#[test]
fn every_target_and_mode_passes_ksvalidator_and_matches_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kickstarts = snapshot::Tree::new();
    for &(target, mode) in COMBOS {
        let version = match target {
            "centos7" => "RHEL7",
            "stream8" => "RHEL8",
            _ => "RHEL9",
        };
        for (host, text) in render(target, mode, "rootfs.tar.gz") {
            let text = text.unwrap();
            let file = tmp.path().join(format!("{target}-{mode}-{host}.ks"));
            fs::write(&file, &text).unwrap();
            ksvalidate(version, &file);

            // What ksvalidator does not check.
            let mac = if host == "m1" {
                "52:54:00:07:00:11"
            } else {
                "52:54:00:07:00:21"
            };
            assert!(
                text.contains(&format!("network --device={mac} --bootproto=static --ip=")),
                "{text}"
            );
            // The node name, as the seed and /etc/hostname have it (the fixture's
            // calico.node.nodename is the default, the short name).
            assert!(
                text.contains(&format!("--hostname={host} --activate")),
                "{text}"
            );
            assert!(
                text.contains(&format!("rootpw --iscrypted {HASH}\n")),
                "{text}"
            );
            // CentOS 7 gets the keys base64 in %post.
            if target != "centos7" {
                assert!(text.contains(KEY_BODY) == (host == "m1"), "{host}: {text}");
            }
            if target == "centos7" {
                assert!(!text.lines().any(|l| l.starts_with("sshkey ")), "{text}");
                assert!(text.contains("'/root/.ssh/authorized_keys'"), "{text}");
            } else if host == "m1" {
                assert!(
                    text.contains(&format!(
                        "sshkey --username=root \"ssh-ed25519 {KEY_BODY} test@kiln\""
                    )),
                    "{text}"
                );
            }
            let firewall = text.lines().find(|l| l.starts_with("firewall ")).unwrap();
            // BGP's 179 where calico-node runs (CentOS 7 only, see `spec`).
            let want = if host == "m1" {
                "firewall --enabled --port=2181:tcp,2888:tcp,3888:tcp,2379:tcp,2380:tcp,5050:tcp,8080:tcp,15101:tcp"
            } else if target == "centos7" {
                "firewall --enabled --port=5051:tcp,31000-32000:tcp,179:tcp"
            } else {
                "firewall --enabled --port=5051:tcp,31000-32000:tcp"
            };
            assert_eq!(firewall, want);
            match mode {
                "image" => assert!(
                    text.contains(&format!(
                        "liveimg --url=http://10.7.0.5:8080/boot/{}/rootfs.tar.gz --checksum={}\n",
                        if host == "m1" { "master" } else { "agent" },
                        "ab".repeat(32)
                    )),
                    "{text}"
                ),
                "bootc" => assert!(
                    text.contains(&format!(
                        "ostreecontainer --url=10.7.0.5:5000/kiln/ks-{}:latest",
                        if host == "m1" { "master" } else { "agent" }
                    )),
                    "{text}"
                ),
                _ => {
                    assert!(
                        text.contains("%packages\n@core\nchrony\nfirewalld\n%end\n"),
                        "{text}"
                    );
                    // The role's files: the master's zoo.cfg, the agent's daemon.json.
                    let own = if host == "m1" {
                        "'/etc/zookeeper/conf/zoo.cfg'"
                    } else {
                        "'/etc/docker/daemon.json'"
                    };
                    assert!(text.contains(&format!("base64 -d > {own} <<")), "{text}");
                }
            }

            kickstarts.insert(format!("{target}-{mode}/{host}.ks"), text.into());
        }
    }
    snapshot::assert_dir(&tests_dir().join("snapshots/kickstart"), &kickstarts);
}

/// Anaconda reads anything but these tarball names as a disk image.
#[test]
fn a_liveimg_tarball_name_anaconda_does_not_take_is_refused() {
    for name in ["rootfs.img", "rootfs.tar.zst", "rootfs.squashfs"] {
        for (host, out) in render("stream9", "image", name) {
            let err = out.expect_err(name);
            assert!(
                err.contains("is not a name Anaconda's liveimg takes") && err.contains(".tar.xz"),
                "{host}: {err}"
            );
        }
    }
    for name in [
        "rootfs.tar",
        "rootfs.tgz",
        "rootfs.tar.xz",
        "rootfs.tar.bz2",
    ] {
        assert!(
            render("stream9", "image", name)
                .iter()
                .all(|(_, r)| r.is_ok()),
            "{name}"
        );
    }
}

#[test]
fn build_writes_a_kickstart_per_host_private_when_it_carries_secrets() {
    let (tmp, spec) = fixture_workspace();
    let text = fs::read_to_string(&spec).unwrap();
    let text = without_calico_node(&text).replace(
        "mac = \"52:54:00:09:00:21\"\n",
        &format!("mac = \"52:54:00:09:00:21\"\nroot_password_hash = \"{HASH}\"\n"),
    );
    fs::write(
        &spec,
        format!(
            "{text}\n[kickstart]\nenabled = true\ntarget = \"stream8\"\nmode = \"packages\"\ninstall_url = \"http://mirror.example.com/centos/8-stream/BaseOS/x86_64/os\"\n\n[provision]\nurl = \"http://10.9.0.5:8080/\"\npxe = false\n"
        ),
    )
    .unwrap();
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);
    for (host, mode) in [("m1", 0o644), ("a1", 0o600)] {
        let ks = dist.join(format!("kickstart/{host}.ks"));
        let got = fs::metadata(&ks).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, mode, "{host}");
        ksvalidate("RHEL8", &ks);
        let text = fs::read_to_string(&ks).unwrap();
        assert_eq!(text.contains("rootpw --lock\n"), host == "m1", "{text}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&fs::read(dist.join("build-report.json")).unwrap()).unwrap();
    assert_eq!(report["kickstart"][1]["secrets"], true, "{report}");
    let report_text = serde_json::to_string(&report).unwrap();
    assert!(
        !report_text.contains(HASH),
        "the hash is in the build report"
    );
}
