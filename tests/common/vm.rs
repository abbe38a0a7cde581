//! What the slow tier's VM tests share: one set of QEMU guests at a time ([`vm_lock`]), and
//! one build at a time of the specs on the same Debian base ([`debian_base_lock`]), so that
//! mmdebstrap makes that base once and every other build takes it from the machine's cache.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kiln_pipeline::values::MesosFlavour;

/// A Mesos package's init wrapper, as a FIXTURE, for either packaging (the real wrappers of
/// Mesosphere and clusterd differ only in the agent's name): records what it was started with
/// (its argument, the flags the real wrapper would pass from the flag directory, the
/// environment) and answers Mesos' `/health` on the port the flags name.
const MESOS_WRAPPER: &str = r#"#!/bin/bash
# kiln test FIXTURE standing in for a Mesos package's mesos-init-wrapper: not Mesos.
set -u
kind=$1
rec=/run/kiln-fixture/mesos-$kind
mkdir -p "$rec.www"
{
  echo "argv: $*"
  for f in /etc/mesos-"$kind"/*; do [ -f "$f" ] && echo "--${f##*/}=$(cat "$f")"; done
} > "$rec.flags"
env | sort > "$rec.env"
echo OK > "$rec.www/health"
port=$(cat /etc/mesos-"$kind"/port)
exec busybox httpd -f -p "$port" -h "$rec.www"
"#;

/// A Mesos daemon, as a FIXTURE: present where the packaging puts it (the build checks it is
/// there), never started.
const MESOS_DAEMON: &str =
    "#!/bin/sh\n# kiln test FIXTURE standing in for a Mesos daemon: not Mesos.\nexit 1\n";

/// Writes a FIXTURE Mesos package tree of `flavour`'s layout under `dir`: the wrapper at
/// `/usr/bin/mesos-init-wrapper` and the two daemons where that packaging has them.
pub fn write_mesos_fixture(dir: &Path, flavour: MesosFlavour) {
    let daemons = flavour.daemons();
    for (rel, text) in [
        ("usr/bin/mesos-init-wrapper", MESOS_WRAPPER),
        (daemons[0].trim_start_matches('/'), MESOS_DAEMON),
        (daemons[1].trim_start_matches('/'), MESOS_DAEMON),
    ] {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Held by every test while its QEMU guests run: two TCG guests that start at the same moment
/// on 2 cores can hang in timer calibration (seen on the project's machines), and one guest per
/// core keeps boot times within the tests' timeouts. A mutex within this process and an exclusive
/// `flock` on `$TMPDIR/kiln-vm.lock` across processes (other test binaries, a developer's
/// own boot runs).
pub struct VmLock {
    _file: std::fs::File,
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// Waits for [`VmLock`].
pub fn vm_lock() -> VmLock {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let file = lock_file(&std::env::temp_dir().join("kiln-vm.lock"));
    VmLock {
        _file: file,
        _guard: guard,
    }
}

/// Held while `kiln build` runs on a spec with a `[base.debian]` table, keyed by that table:
/// builds of specs on the same Debian base (the cluster and PXE tests' specs) take turns, so
/// the first makes the base with mmdebstrap into the machine's cache
/// ([`kiln_test_support::machine_cache`]) and the others find it there instead of running
/// mmdebstrap at the same time for the same tarball. kiln keys the cached base by its inputs
/// whatever this lock does; the lock only decides who waits. `None` for a spec with no Debian
/// base. An exclusive `flock` on `$TMPDIR/kiln-test-base-KEY.lock`, within this process and
/// across processes.
pub fn debian_base_lock(spec: &Path) -> Option<std::fs::File> {
    let key = debian_base_key(spec)?;
    Some(lock_file(
        &std::env::temp_dir().join(format!("kiln-test-base-{key}.lock")),
    ))
}

/// A Secure Boot key set (`kiln keys`' PK, KEK and db) kept in the machine's test cache and
/// made once: a build signed with the same certificates finds its boot outputs in kiln's
/// cache on the next run (fresh keys would make every signed output new). Test keys only.
pub fn secure_boot_keys() -> std::path::PathBuf {
    let dir = kiln_test_support::machine_cache().join("test-secure-boot-keys");
    let _lock = lock_file(&std::env::temp_dir().join("kiln-test-secure-boot-keys.lock"));
    if !dir.join("db.crt").is_file() {
        let partial = dir.with_extension("partial");
        let _ = fs::remove_dir_all(&partial);
        kiln_pipeline::secure_boot::make_keys(&partial, "kiln test").unwrap();
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&partial, &dir).unwrap();
    }
    dir
}

/// Opens (creating) `path` and waits for an exclusive `flock` on it, held until the file is
/// dropped: within this process and across processes.
fn lock_file(path: &Path) -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    file
}

/// The key of [`debian_base_lock`]: a digest of the spec's `[base.debian]` table (its values,
/// not its formatting), or `None` without one.
pub fn debian_base_key(spec: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let text =
        std::fs::read_to_string(spec).unwrap_or_else(|e| panic!("reading {}: {e}", spec.display()));
    let doc: serde_json::Value = toml_edit::de::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", spec.display()));
    let debian = doc.get("base")?.get("debian")?;
    let digest = hex::encode(Sha256::digest(debian.to_string().as_bytes()));
    Some(digest[..16].to_string())
}

/// Adds one `write_files` entry (`path`, content "operator\n", mode 0644) to the cloud-config
/// `user_data`, as an operator or an attacker on the provisioning side would (python3-yaml).
pub fn add_write_file(user_data: &Path, path: &str) {
    const ADD_WRITE_FILE: &str = r##"
import sys, yaml
path = sys.argv[1]
doc = yaml.safe_load(open(path))
doc["write_files"].append({"path": sys.argv[2], "content": "operator\n", "permissions": "0644"})
open(path, "w").write("#cloud-config\n" + yaml.safe_dump(doc))
"##;
    kiln_test_support::run(
        std::process::Command::new("python3")
            .args(["-c", ADD_WRITE_FILE])
            .arg(user_data)
            .arg(path),
    );
}
