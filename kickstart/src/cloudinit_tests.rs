//! Render-level tests of the NoCloud seed, checked by cloud-init itself and by Python's YAML
//! parser (independent of kiln's templates).

use std::fs;
use std::process::Command;

use kiln_model::plan::{AccessPlan, HostPlan, Roles};
use kiln_model::values::{Fqdn, HostAddr, HostName, IfName, MacAddr, PasswordHash, SshPublicKey};
use kiln_test_support::{require_tool, run, tempdir};

use super::*;

fn host() -> HostPlan {
    HostPlan {
        name: HostName::parse("m1").unwrap(),
        fqdn: Fqdn::parse("m1.example.test").unwrap(),
        roles: Roles {
            master: true,
            agent: false,
        },
        profile: "master".into(),
        address: HostAddr::parse("10.0.0.11/24").unwrap(),
        mac: MacAddr::parse("52-54-00-AB-CD-EF").unwrap(),
        gateway: Some("10.0.0.1".parse().unwrap()),
        dns: vec!["10.0.0.1".parse().unwrap(), "fd00::53".parse().unwrap()],
        interface: IfName::parse("eth0").unwrap(),
        etcd_name: None,
        zk_id: Some(1),
        access: AccessPlan::default(),
    }
}

/// Test secrets: a throwaway key made with `ssh-keygen -t ed25519` and the sha512crypt hash
/// of "kiln" (`mkpasswd -m sha-512`).
pub(crate) const TEST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtIe7kPEAXCJt+AmYd+hNmM7P7js86e6VqK3CNj/wel test@kiln";
pub(crate) const TEST_HASH: &str = "$6$QgEBUdDXg9lV89I2$/MnwmTKrhqU65dSBZGDej/xeq5cLhSDGNik/Vik6jShsAsZNiRKOUJXwhJU.zw2D0WUK6Kcy8zraOUPXcIso51";

/// [`host`] with root's SSH keys and password hash.
fn host_with_secrets() -> HostPlan {
    HostPlan {
        access: AccessPlan {
            ssh_authorized_keys: vec![
                SshPublicKey::parse(TEST_KEY).unwrap(),
                SshPublicKey::parse("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJhoYZNcR2wvRVm22FNDNk3Ov4OyqdtEg86I9sL83f+FPmm0QJ4F6XwcwRm52UUZT7+Iv1XBcBbofvIhBQ6tnaQ= ec@kiln").unwrap(),
            ],
            root_password_hash: Some(PasswordHash::parse(TEST_HASH).unwrap()),
        },
        ..host()
    }
}

fn file(path: &str, data: &str) -> IdentityFile {
    IdentityFile {
        path: path.into(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        data: data.as_bytes().to_vec(),
    }
}

fn identity() -> Vec<IdentityFile> {
    vec![
        file(
            "/etc/kiln/identity.env",
            "KILN_NAME=m1\nKILN_IP=10.0.0.11\n",
        ),
        file("/etc/hostname", "m1\n"),
        file("/var/lib/zookeeper/myid", "1\n"),
        IdentityFile {
            mode: 0o600,
            ..file("/etc/kiln/binary", "\0\u{1}\u{ff}: - |\n")
        },
    ]
}

/// `file` parsed by Python's YAML loader, as JSON.
fn yaml(file: &std::path::Path) -> serde_json::Value {
    require_tool("python3", "python3");
    let out = run(Command::new("python3")
        .arg("-c")
        .arg("import sys, json, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))")
        .arg(file));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn user_data_passes_cloud_inits_schema_and_carries_exactly_the_identity() {
    require_tool("cloud-init", "cloud-init");
    let seed = render(&host(), &identity()).unwrap();
    let dir = tempdir();
    let ud = dir.path().join("user-data");
    fs::write(&ud, &seed.user_data).unwrap();
    let out = run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&ud));
    assert!(out.contains("Valid cloud-config"), "{out}");

    let doc = yaml(&ud);
    assert!(seed.user_data.starts_with("#cloud-config\n"));
    // The hostname comes from meta-data's local-hostname (set_hostname), not kept.
    assert!(doc.get("preserve_hostname").is_none());
    assert_eq!(doc["manage_etc_hosts"], false);
    for key in ["packages", "runcmd", "bootcmd", "package_update"] {
        assert!(doc.get(key).is_none(), "{key} in user-data");
    }
    let mut got: Vec<(String, String, String, Vec<u8>)> = doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["encoding"], "b64");
            let data = base64::engine::general_purpose::STANDARD
                .decode(f["content"].as_str().unwrap())
                .unwrap();
            (
                f["path"].as_str().unwrap().to_string(),
                f["permissions"].as_str().unwrap().to_string(),
                f["owner"].as_str().unwrap().to_string(),
                data,
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<_> = identity()
        .into_iter()
        .map(|f| {
            (
                f.path,
                format!("{:04o}", f.mode),
                "root:root".to_string(),
                f.data,
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn secrets_are_in_user_data_as_cloud_init_reads_them_and_its_schema_accepts_them() {
    require_tool("cloud-init", "cloud-init");
    let plain = render(&host(), &identity()).unwrap();
    let seed = render(&host_with_secrets(), &identity()).unwrap();
    let dir = tempdir();
    let ud = dir.path().join("user-data");
    fs::write(&ud, &seed.user_data).unwrap();
    let out = run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&ud));
    assert!(out.contains("Valid cloud-config"), "{out}");

    let doc = yaml(&ud);
    // users-groups: hashed_passwd applies to the existing root, which stays unlocked; no
    // other user (no `default`) is named.
    assert_eq!(
        doc["users"],
        serde_json::json!([{"name": "root", "hashed_passwd": TEST_HASH, "lock_passwd": false}])
    );
    let keys: Vec<&serde_json::Value> = doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["path"] == AUTHORIZED_KEYS)
        .collect();
    assert_eq!(keys.len(), 1, "{}", seed.user_data);
    assert_eq!(keys[0]["permissions"], "0600");
    assert_eq!(keys[0]["owner"], "root:root");
    let text = keys[0]["content"].as_str().unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with(&format!("{TEST_KEY}\n")), "{text}");
    // The identity files are the same as without secrets; only the instance-id moves.
    assert_ne!(seed.instance_id, plain.instance_id);
    assert_eq!(seed.network_config, plain.network_config);
    // Without secrets, no `users` key: the image's `users: []` stands.
    assert!(!plain.user_data.contains("users:"), "{}", plain.user_data);
    assert!(!plain.user_data.contains(AUTHORIZED_KEYS));
}

#[test]
fn a_rotated_key_or_hash_gives_a_new_instance_id() {
    let a = render(&host_with_secrets(), &identity()).unwrap();
    assert_eq!(a, render(&host_with_secrets(), &identity()).unwrap());
    let mut fewer = host_with_secrets();
    fewer.access.ssh_authorized_keys.pop();
    assert_ne!(
        render(&fewer, &identity()).unwrap().instance_id,
        a.instance_id
    );
    let mut no_hash = host_with_secrets();
    no_hash.access.root_password_hash = None;
    assert_ne!(
        render(&no_hash, &identity()).unwrap().instance_id,
        a.instance_id
    );
}

#[test]
fn network_config_matches_the_mac_and_cloud_init_converts_it() {
    require_tool("cloud-init", "cloud-init");
    let seed = render(&host(), &identity()).unwrap();
    assert!(
        seed.network_config
            .contains("macaddress: \"52:54:00:ab:cd:ef\""),
        "{}",
        seed.network_config
    );
    let dir = tempdir();
    let nc = dir.path().join("network-config");
    fs::write(&nc, &seed.network_config).unwrap();
    let doc = yaml(&nc);
    let eth = &doc["ethernets"]["eth0"];
    assert_eq!(doc["version"], 2);
    assert_eq!(eth["set-name"], "eth0");
    assert_eq!(eth["addresses"], serde_json::json!(["10.0.0.11/24"]));
    assert_eq!(
        eth["routes"],
        serde_json::json!([{"to": "0.0.0.0/0", "via": "10.0.0.1"}])
    );
    assert_eq!(
        eth["nameservers"]["addresses"],
        serde_json::json!(["10.0.0.1", "fd00::53"])
    );

    // cloud-init's own parser and networkd renderer accept it (22.4 refuses `to: default`).
    let out = dir.path().join("out");
    run(Command::new("cloud-init")
        .args([
            "devel",
            "net-convert",
            "-k",
            "yaml",
            "-D",
            "debian",
            "-O",
            "networkd",
        ])
        .arg("-p")
        .arg(&nc)
        .arg("-d")
        .arg(&out));
    let mut rendered = String::new();
    for e in walk(&out) {
        rendered.push_str(&fs::read_to_string(e).unwrap());
    }
    assert!(
        rendered.contains("MACAddress=52:54:00:ab:cd:ef"),
        "{rendered}"
    );
    assert!(rendered.contains("Address=10.0.0.11/24"), "{rendered}");
    assert!(rendered.contains("Gateway=10.0.0.1"), "{rendered}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn instance_id_follows_the_identity_digest() {
    let a = render(&host(), &identity()).unwrap();
    // Unchanged identity (in another order): same instance-id, same bytes.
    let mut reordered = identity();
    reordered.reverse();
    let b = render(&host(), &reordered).unwrap();
    assert_eq!(a, b);
    assert!(a
        .meta_data
        .starts_with(&format!("instance-id: {}\n", a.instance_id)));
    assert!(a.meta_data.contains("local-hostname: m1\n"));

    // Any change to a file's bytes, mode or the set of files: a new instance-id.
    let mut changed = identity();
    changed[2].data = b"2\n".to_vec();
    assert_ne!(
        render(&host(), &changed).unwrap().instance_id,
        a.instance_id
    );
    let mut mode = identity();
    mode[0].mode = 0o600;
    assert_ne!(render(&host(), &mode).unwrap().instance_id, a.instance_id);
    let fewer = &identity()[1..];
    assert_ne!(render(&host(), fewer).unwrap().instance_id, a.instance_id);
}

#[test]
fn non_root_owners_are_refused() {
    let mut files = identity();
    files[0].uid = 107;
    let err = render(&host(), &files).unwrap_err().to_string();
    assert!(
        err.contains("/etc/hostname") || err.contains("identity.env"),
        "{err}"
    );
    assert!(err.contains("107:0"), "{err}");
}

#[test]
fn an_empty_identity_is_still_valid_cloud_config() {
    require_tool("cloud-init", "cloud-init");
    let seed = render(&host(), &[]).unwrap();
    // cloud-init refuses an empty `write_files` list: the key is left out.
    assert!(!seed.user_data.contains("write_files"));
    let dir = tempdir();
    let ud = dir.path().join("user-data");
    fs::write(&ud, &seed.user_data).unwrap();
    run(Command::new("cloud-init")
        .args(["schema", "--config-file"])
        .arg(&ud));
}

/// The seed of the test host with secrets (`snapshots/m1-secrets/`), byte for byte.
#[test]
fn seed_with_secrets_matches_its_snapshot() {
    let seed = render(&host_with_secrets(), &identity()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/m1-secrets");
    compare_snapshot(&dir, &seed);
}

/// The seed's files against the snapshot directory `dir` (stale files too); `KILN_BLESS=1`
/// rewrites it.
fn compare_snapshot(dir: &std::path::Path, seed: &Seed) {
    kiln_test_support::snapshot::assert_dir(dir, &kiln_test_support::snapshot::files(seed.files()));
}

/// The rendered seed of the test host, byte for byte (`KILN_BLESS=1` rewrites the snapshot
/// under `kickstart/snapshots/m1/` after a deliberate change).
#[test]
fn seed_matches_its_snapshot() {
    let seed = render(&host(), &identity()).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/m1");
    compare_snapshot(&dir, &seed);
}
