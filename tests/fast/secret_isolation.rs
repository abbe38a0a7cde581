//! Root's login secrets (`[access]`, a host's own keys) reach only that host's cloud-init
//! seed and kickstart: a build of the fixture spec with test secrets (and kickstarts) is
//! scanned, every OCI blob and every file under `dist/` but `cloud-init/` and `kickstart/` —
//! decompressed by magic, tar members one by one, and base64 at each alignment — and none of
//! them holds a key body or the hash; each host's seed and kickstart hold its own, mode 0600.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;

use std::process::Command;

use crate::common::secret_scan::{contains, needles_of, scan, walk, CLUSTER_KEY_BODY};
use crate::common::workspace::{build, fixture_workspace};
use crate::common::{kiln_code, without_calico_node};
use kiln_test_support::{require_tool, run};

/// Test secrets: throwaway keys made with `ssh-keygen` and the sha512crypt hash of "kiln"
/// (the cluster key is `common::secret_scan::CLUSTER_KEY_BODY`).
const AGENT_KEY_BODY: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJhoYZNcR2wvRVm22FNDNk3Ov4OyqdtEg86I9sL83f+FPmm0QJ4F6XwcwRm52UUZT7+Iv1XBcBbofvIhBQ6tnaQ=";
const HASH: &str = "$6$QgEBUdDXg9lV89I2$/MnwmTKrhqU65dSBZGDej/xeq5cLhSDGNik/Vik6jShsAsZNiRKOUJXwhJU.zw2D0WUK6Kcy8zraOUPXcIso51";

/// The fixture spec with the cluster's key and hash, and a1 with its own key instead.
fn spec_with_secrets(spec: &Path) {
    let text = without_calico_node(&fs::read_to_string(spec).unwrap());
    let text = text.replace(
        "mac = \"52:54:00:09:00:21\"\n",
        &format!(
            "mac = \"52:54:00:09:00:21\"\nssh_authorized_keys = [\"ecdsa-sha2-nistp256 {AGENT_KEY_BODY} agent@kiln\"]\n"
        ),
    );
    let text = format!(
        "{text}\n[access]\nssh_authorized_keys = [\"ssh-ed25519 {CLUSTER_KEY_BODY} test@kiln\"]\nroot_password_hash = \"{HASH}\"\n\n[kickstart]\nenabled = true\nmode = \"packages\"\ninstall_url = \"http://mirror.example.com/centos/9-stream/BaseOS/x86_64/os\"\n\n[provision]\nurl = \"http://10.9.0.5:8080\"\npxe = false\n"
    );
    fs::write(spec, text).unwrap();
}

/// What must not be found: each secret as it is, and its base64 at the three alignments
/// (the middle of the encoding, which does not depend on the bytes around it).
fn needles() -> Vec<(String, Vec<u8>)> {
    needles_of(&[
        ("cluster key", CLUSTER_KEY_BODY),
        ("agent key", AGENT_KEY_BODY),
        ("hash", HASH),
    ])
}

/// The scanner finds a secret inside a gzip'd tar member inside a tar, and base64'd.
#[test]
fn the_secret_scanner_finds_what_it_looks_for() {
    let needles = needles();
    let tar_of = |name: &str, data: &[u8]| {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    };
    for (i, doc) in [
        format!("root:{HASH}:19000::::::\n"),
        format!(
            "x{}y",
            base64::engine::general_purpose::STANDARD.encode(format!("ab{CLUSTER_KEY_BODY}"))
        ),
    ]
    .iter()
    .enumerate()
    {
        let inner = tar_of("etc/shadow", doc.as_bytes());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &inner).unwrap();
        let outer = tar_of("layer.tar.gz", &gz.finish().unwrap());
        let mut found = Vec::new();
        scan("archive.tar", &outer, &needles, &mut found);
        assert!(
            found
                .iter()
                .any(|f| f.ends_with("archive.tar!layer.tar.gz")),
            "case {i}: {found:?}"
        );
    }
}

#[test]
fn secrets_are_only_in_their_hosts_seed() {
    require_tool("cloud-init", "cloud-init");
    let (tmp, spec) = fixture_workspace();
    spec_with_secrets(&spec);
    let dist = tmp.path().join("dist");
    build(&spec, &dist, &[]);

    let needles = needles();
    let mut files = Vec::new();
    walk(&dist, &mut files);
    let seeds = dist.join("cloud-init");
    let kickstarts = dist.join("kickstart");
    let mut found = Vec::new();
    let mut blobs = 0;
    for f in files
        .iter()
        .filter(|f| !f.starts_with(&seeds) && !f.starts_with(&kickstarts))
    {
        let rel = f.strip_prefix(&dist).unwrap().display().to_string();
        blobs += usize::from(rel.starts_with("oci/blobs/"));
        scan(&rel, &fs::read(f).unwrap(), &needles, &mut found);
    }
    assert!(blobs >= 4, "only {blobs} OCI blobs scanned");
    assert!(
        found.is_empty(),
        "secrets outside the seeds:\n{}",
        found.join("\n")
    );

    // `kiln check` shows fingerprints, never the secrets.
    let (out, _) = kiln_code(&["check", spec.to_str().unwrap()], 0);
    let (json, _) = kiln_code(&["check", "--json", spec.to_str().unwrap()], 0);
    for text in [&out, &json] {
        let mut hits = Vec::new();
        scan("kiln check", text.as_bytes(), &needles, &mut hits);
        assert!(hits.is_empty(), "{hits:?}\n{text}");
    }
    assert!(out.contains("ssh key    ssh-ed25519 SHA256:"), "{out}");
    assert!(out.contains("<sha512crypt hash>"), "{out}");

    // Each host's seed has its own secrets, and only there, mode 0600.
    for (host, key, other) in [
        ("m1", CLUSTER_KEY_BODY, AGENT_KEY_BODY),
        ("a1", AGENT_KEY_BODY, CLUSTER_KEY_BODY),
    ] {
        let ud = seeds.join(format!("{host}/user-data"));
        let iso = seeds.join(format!("{host}-cidata.iso"));
        let ks = kickstarts.join(format!("{host}.ks"));
        for f in [&ud, &iso, &ks] {
            let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
            let bytes = fs::read(f).unwrap();
            assert!(contains(&bytes, key.as_bytes()), "{host}: no key in {f:?}");
            assert!(
                contains(&bytes, HASH.as_bytes()),
                "{host}: no hash in {f:?}"
            );
            assert!(
                !contains(&bytes, other.as_bytes()),
                "{host}: the other key in {f:?}"
            );
        }
        let text = fs::read_to_string(&ud).unwrap();
        assert!(
            text.contains("path: \"/root/.ssh/authorized_keys\""),
            "{text}"
        );
        let out = run(Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&ud));
        assert!(out.contains("Valid cloud-config"), "{out}");
        assert!(text.contains("hashed_passwd: "), "{text}");
        for f in ["meta-data", "network-config"] {
            let bytes = fs::read(seeds.join(format!("{host}/{f}"))).unwrap();
            let mut hits = Vec::new();
            scan(f, &bytes, &needles, &mut hits);
            assert!(hits.is_empty(), "{host}/{f}: {hits:?}");
        }
    }
}
