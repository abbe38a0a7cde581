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
