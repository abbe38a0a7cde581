//! What a booted role host runs (issue 20, item 3): the base's idle units are masked on every
//! profile, listed by `kiln check`, and the spec can keep one.

use std::fs;

use crate::common::kiln_code;
use crate::common::render::{demo_with, render_text};

/// A Debian base enables package-manager timers, e2scrub and fstrim that a host booted from a
/// read-only verified image never needs; under TCG they took boot time and some reach the
/// network. They are masked (linked to /dev/null) in every role image, `kiln check` lists
/// them, and `base.keep_units` keeps one; a unit kiln does not mask is refused there.
#[test]
fn idle_base_units_are_masked_unless_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let render = |name: &str, spec: &str| {
        render_text(tmp.path(), name, spec).join("profiles/master-agent/etc/systemd/system")
    };
    let masked = |dir: &std::path::Path, unit: &str| {
        fs::read_link(dir.join(unit)).is_ok_and(|t| t == std::path::Path::new("/dev/null"))
    };
    let units = render("demo", kiln_pipeline::DEMO_SPEC);
    let (check, _) = kiln_code(&["check"], 0);
    let listed = check
        .lines()
        .find_map(|l| l.trim().strip_prefix("masked (never run): "))
        .unwrap_or_default()
        .to_string();
    for (unit, why) in kiln_pipeline::components::IDLE_UNITS {
        assert!(masked(&units, unit), "{unit} not masked");
        assert!(!why.is_empty());
        assert!(
            listed.split(' ').any(|u| u == *unit),
            "{unit} not in {listed}"
        );
    }

    let at = "image = \"debian:bookworm\"";
    let kept = render(
        "kept",
        &demo_with(at, &format!("{at}\nkeep_units = [\"fstrim.timer\"]")),
    );
    assert!(!masked(&kept, "fstrim.timer"));
    assert!(masked(&kept, "apt-daily.timer"));

    let path = tmp.path().join("bad.toml");
    fs::write(
        &path,
        demo_with(at, &format!("{at}\nkeep_units = [\"polkit.service\"]")),
    )
    .unwrap();
    let (_, err) = kiln_code(&["check", path.to_str().unwrap()], 2);
    assert!(
        err.contains("kiln does not mask \"polkit.service\"")
            && err.contains("keep_units names only units kiln masks")
            && err.contains("apt-daily.timer"),
        "{err}"
    );
}

/// The condition that skips a cloud-init stage when kiln-identity.service found the seed's
/// user-data to be kiln's own (the cluster test boots both cases).
const SKIPPED_WHEN: &str = "\nConditionPathExists=!/run/kiln/cloud-init-not-needed\n";

/// cloud-init runs beside the boot, not in front of it (issue 20, item 2): kiln's
/// `cloud-init-local.service` and `cloud-init.service` (replacing Debian's) order before none
/// of `sysinit.target`, `network-pre.target` or `network-online.target`, every cloud-init
/// stage runs at idle CPU priority, cloud-init leaves the network to kiln's networkd file, and
/// that file takes no router advertisements (networkd-wait-online waited for them). Each stage
/// is skipped when the unit that applied the identity left its flag.
#[test]
fn cloud_init_is_off_the_critical_path() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render_text(tmp.path(), "demo", kiln_pipeline::DEMO_SPEC);
    let units = out.join("profiles/master-agent/etc/systemd/system");
    let read = |p: &std::path::Path| fs::read_to_string(p).unwrap();
    for unit in ["cloud-init-local.service", "cloud-init.service"] {
        let text = read(&units.join(unit));
        for target in [
            "sysinit.target",
            "network-pre.target",
            "network-online.target",
        ] {
            assert!(
                !text
                    .lines()
                    .any(|l| l.starts_with("Before=") && l.contains(target)),
                "{unit} orders itself before {target}:\n{text}"
            );
        }
        assert!(text.contains("\nAfter=kiln-identity.service\n") || unit == "cloud-init.service");
        assert!(
            text.contains("\nCPUSchedulingPolicy=idle\n") && text.contains(SKIPPED_WHEN),
            "{unit}:\n{text}"
        );
    }
    for unit in ["cloud-config.service", "cloud-final.service"] {
        let text = read(&units.join(format!("{unit}.d/kiln.conf")));
        assert!(
            text.contains("[Service]\n")
                && text.contains("\nCPUSchedulingPolicy=idle\n")
                && text.contains(&format!("[Unit]\n{}", SKIPPED_WHEN.trim_start())),
            "{unit}:\n{text}"
        );
    }
    // kiln's own units wait for kiln-identity, never for cloud-init.
    for unit in ["etcd.service", "zookeeper.service", "docker.service"] {
        let text = read(&units.join(unit));
        assert!(text.contains("After=kiln-identity.service"), "{unit}");
        assert!(
            !text.contains("cloud-init"),
            "{unit} mentions cloud-init:\n{text}"
        );
    }
    let cfg = read(&out.join("profiles/master-agent/etc/cloud/cloud.cfg.d/90-kiln.cfg"));
    assert!(cfg.contains("\nnetwork:\n  config: disabled\n"), "{cfg}");
    let net = read(&out.join("hosts/node1/etc/systemd/network/10-kiln.network"));
    assert!(net.contains("\nIPv6AcceptRA=no\n"), "{net}");
}

/// An etcd member tells systemd it is ready only once it has joined its cluster (issue 20,
/// item 4): its unit must not time out, and be restarted, while the other members boot.
#[test]
fn an_etcd_member_waits_for_its_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render_text(tmp.path(), "demo", kiln_pipeline::DEMO_SPEC);
    let unit =
        fs::read_to_string(out.join("profiles/master-agent/etc/systemd/system/etcd.service"))
            .unwrap();
    assert!(
        unit.contains("\nType=notify\n") && unit.contains("\nTimeoutStartSec=infinity\n"),
        "{unit}"
    );
}
