//! A source from Debian's package registry: the real `etcd-server` `.deb`, fetched with
//! `apt-get download` (which reaches Debian's mirror), extracted and run.

use std::process::Command;

use kiln_layers::EntryKind;
use kiln_test_support::require_tool;

use crate::common::sources::{file, setup, HEAD};

#[test]
fn real_debian_etcd_server_deb_is_extracted_and_runs() {
    require_tool("apt-get", "apt");
    let spec = format!("{HEAD}\n[etcd]\nsource = {{ deb = \"etcd-server\", paths = [\"usr/bin/etcd\"] }}\n[docker]\nsource = {{ base = true }}\n[calico.cni]\nenabled = false\n");
    let s = setup(&spec);
    let r = s
        .resolve()
        .unwrap_or_else(|e| panic!("{e}\n(apt-get download needs `apt-get update` to have run)"));
    let etcd = &r.trees["etcd"];
    assert!(matches!(
        file(etcd, "/usr/bin/etcd").kind,
        EntryKind::File(_)
    ));
    assert_eq!(file(etcd, "/usr/bin/etcd").mode & 0o111, 0o111);
    let out = tempfile::tempdir().unwrap();
    kiln_layers::extract_to_dir(etcd, out.path()).unwrap();
    let v = Command::new(out.path().join("usr/bin/etcd"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.status.success() && text.contains("etcd Version:"),
        "{text}"
    );
    assert!(r.lock[0].origin == "deb:etcd-server" && r.recorded.len() == 1);
}
