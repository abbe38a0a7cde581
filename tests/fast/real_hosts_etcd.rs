//! What etcd does with kiln's settings, per release: `--enable-v2` (from 3.2) and
//! `grpc-proxy` (from 3.1). The upstream facts are in `docs/design/upstream-facts.md`.

use std::fs;
use std::path::Path;

use crate::common::kiln_code;

/// The built-in demo with each `(from, to)` replaced (each `from` must occur once).
fn demo_with(edits: &[(&str, &str)]) -> String {
    let mut s = kiln_pipeline::DEMO_SPEC.to_string();
    for (from, to) in edits {
        assert_eq!(s.matches(from).count(), 1, "{from}");
        s = s.replace(from, to);
    }
    s
}

/// The demo on etcd `version` with the v2 API `enable_v2` and, unless `v2_clients`, no
/// client of v2 (no Calico 2.x, no Docker cluster store on etcd).
fn spec(version: &str, enable_v2: bool, v2_clients: bool) -> String {
    let etcd = format!("version = \"{version}\"\nenable_v2 = {enable_v2}");
    let mut edits = vec![("version = \"3.4.23\"", etcd.as_str())];
    if !v2_clients {
        edits.extend([
            (
                "[calico.cni]\nenabled = true",
                "[calico.cni]\nenabled = false",
            ),
            (
                "[calico.node]\nenabled = true",
                "[calico.node]\nenabled = false",
            ),
            (
                "[calico.libnetwork]\nenabled = true",
                "[calico.libnetwork]\nenabled = false",
            ),
            ("cluster_store = \"etcd\"", "cluster_store = \"off\""),
        ]);
    }
    demo_with(&edits)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(format!("{name}.toml"));
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// `etcd.enable_v2 = false` on etcd 3.2 and 3.3 was silently turned into `true`, although
/// both have `--enable-v2` (etcd-io/etcd v3.2.0 `etcdmain/config.go`). It is now written as
/// given; where a v2 client needs v2 it is refused with the reason, and on 3.0/3.1, which
/// cannot turn v2 off, it is refused too.
#[test]
fn etcd_enable_v2_false_is_honoured_from_3_2() {
    let tmp = tempfile::tempdir().unwrap();
    for version in ["3.2.32", "3.3.27", "3.4.23"] {
        let path = write(
            tmp.path(),
            &format!("v{version}"),
            &spec(version, false, false),
        );
        let out = tmp.path().join(format!("out-{version}"));
        kiln_code(&["render", &path, "-o", out.to_str().unwrap()], 0);
        let env = fs::read_to_string(out.join("profiles/master-agent/etc/kiln/etcd.env")).unwrap();
        assert!(
            env.lines().any(|l| l == "ETCD_ENABLE_V2=false"),
            "etcd {version}:\n{env}"
        );
    }
    let path = write(tmp.path(), "needs-v2", &spec("3.3.27", false, true));
    let (_, err) = kiln_code(&["check", &path], 2);
    assert!(
        err.contains("etcd 3.3.27 serves v2 only with --enable-v2, but a v2 client needs it"),
        "{err}"
    );
    let path = write(tmp.path(), "old", &spec("3.1.20", false, false));
    let (_, err) = kiln_code(&["check", &path], 2);
    assert!(err.contains("--enable-v2 came in etcd 3.2"), "{err}");
}

/// etcd 3.0 with `etcd.proxy.mode = "grpc-proxy"` was accepted, but its `etcd` dispatches only
/// `gateway` (etcd-io/etcd v3.0.17 `etcdmain/main.go`): refused, naming the release that has it.
#[test]
fn etcd_grpc_proxy_needs_etcd_3_1() {
    let tmp = tempfile::tempdir().unwrap();
    for (version, code) in [("3.0.17", 2), ("3.1.20", 0)] {
        let text = spec(version, true, false).replace("mode = \"auto\"", "mode = \"grpc-proxy\"");
        let path = write(tmp.path(), &format!("grpc-{version}"), &text);
        let (_, err) = kiln_code(&["check", &path], code);
        assert_eq!(
            err.contains("has no grpc-proxy (it came in etcd 3.1)"),
            code == 2,
            "etcd {version}:\n{err}"
        );
    }
}
