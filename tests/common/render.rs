//! `kiln render` on the snapshot topologies (the built-in demo and three fixture specs).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{fixture, kiln_code, tests_dir};

/// The topologies under snapshot: (snapshot name, spec or None for the built-in demo).
pub const TOPOLOGIES: &[(&str, Option<&str>)] = &[
    ("demo", None),
    ("three-two", Some("specs/three-two.toml")),
    ("dcos-large", Some("specs/dcos-large.toml")),
    ("static-endpoints", Some("specs/static-endpoints.toml")),
];

/// Renders a topology into `dir/NAME` and returns that path. The spec is named relative to
/// `tests/` (kiln runs there), so warnings recorded in `plan.json` name the same file on every
/// checkout.
pub fn render(name: &str, spec: Option<&str>, dir: &Path) -> PathBuf {
    let out = dir.join(name);
    let out_s = out.to_str().unwrap().to_string();
    let spec_path = spec.map(|s| {
        assert!(fixture(s).is_file(), "no fixture {s}");
        format!("fixtures/{s}")
    });
    let mut args = vec!["render"];
    if let Some(s) = &spec_path {
        args.push(s);
    }
    args.extend(["-o", &out_s]);
    let run = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(&args)
        .current_dir(tests_dir())
        .env_remove("KILN_LOG")
        .output()
        .expect("running kiln");
    assert_eq!(
        run.status.code(),
        Some(0),
        "kiln {args:?}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// Renders `spec` (written to `dir/NAME.toml`) into `dir/NAME`.
pub fn render_text(dir: &Path, name: &str, spec: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, spec).unwrap();
    let out = dir.join(name);
    kiln_code(
        &[
            "render",
            path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    out
}
