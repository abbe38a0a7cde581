//! Secure Boot at build time (issue 21, item 3 and 4): `kiln keys` makes a key set; a spec
//! with `[boot.secure_boot]` gets signed UKIs that `sbverify` accepts (in `dist/` and on the
//! disk's EFI system partition), the same bytes twice, the certificates and an enrolment
//! guide in `dist/secure-boot/`, and a PCR 11 value that the guide's recipe (objcopy +
//! systemd-measure) gives again; the private keys are in no file of the output or the cache
//! and in no log; a key other users can read, and a key that is not the certificate's, are
//! refused with the file named. (The slow tier boots a signed disk under OVMF with Secure Boot
//! enforcing and attacks it.)

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::common::kiln_code;
use crate::common::secret_scan::{needles_of, scan, walk};
use crate::common::workspace::{bootable_workspace, build_args, report, uki_section};

use kiln_test_support::{require_tool, run};

/// `spec` with `[boot.secure_boot]` naming `keys/` files (relative to the spec).
fn with_secure_boot(spec: &Path, key: &str, cert: &str) {
    let mut text = fs::read_to_string(spec).unwrap();
    text.push_str(&format!(
        "\n[boot.secure_boot]\nkey = \"keys/{key}\"\ncert = \"keys/{cert}\"\n\
         pk_cert = \"keys/PK.crt\"\nkek_cert = \"keys/KEK.crt\"\n"
    ));
    fs::write(spec, text).unwrap();
}

/// A middle line of each private key's PEM body: what must never be found.
fn key_lines(keys: &Path) -> Vec<(String, String)> {
    ["PK", "KEK", "db"]
        .iter()
        .map(|k| {
            let pem = fs::read_to_string(keys.join(format!("{k}.key"))).unwrap();
            let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            (format!("{k}.key"), lines[lines.len() / 2].to_string())
        })
        .collect()
}

#[test]
fn signed_ukis_verify_are_reproducible_and_the_keys_stay_out_of_the_output() {
    for (tool, package) in [
        ("sbverify", "sbsigntool"),
        ("sbsign", "sbsigntool"),
        ("faketime", "faketime"),
        ("openssl", "openssl"),
        ("objcopy", "binutils"),
        ("mcopy", "mtools"),
    ] {
        require_tool(tool, package);
    }
    let (tmp, spec) = bootable_workspace();
    let keys = spec.with_file_name("keys");
    let keys_arg = keys.to_str().unwrap();
    let (_, err) = kiln_code(&["keys", keys_arg, "--name", "kiln fast test"], 0);
    assert!(err.contains("[boot.secure_boot]"), "{err}");
    assert_eq!(
        fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for k in ["PK", "KEK", "db"] {
        let mode = fs::metadata(keys.join(format!("{k}.key")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{k}.key");
        let subject = run(Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-in"])
            .arg(keys.join(format!("{k}.crt"))));
        assert!(
            subject.contains(&format!("kiln fast test {k}")),
            "{subject}"
        );
    }
    // Never over an existing set.
    let (_, err) = kiln_code(&["keys", keys_arg], 1);
    assert!(err.contains("not empty"), "{err}");

    with_secure_boot(&spec, "db.key", "db.crt");
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let (out, err) = kiln_code(&build_args(&spec, &dist, cache.to_str().unwrap()), 0);

    let rep = report(&dist);
    let agent = rep["boot"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["profile"] == "agent")
        .unwrap()
        .clone();
    assert_eq!(agent["signed"], true, "{agent}");
    let uki = dist.join("boot/agent/kiln.efi");
    let db = keys.join("db.crt");
    run(Command::new("sbverify").arg("--cert").arg(&db).arg(&uki));
    // Not with another certificate.
    let other = Command::new("sbverify")
        .arg("--cert")
        .arg(keys.join("KEK.crt"))
        .arg(&uki)
        .output()
        .unwrap();
    assert!(!other.status.success(), "verified with the KEK certificate");
    // The disk carries the signed UKI.
    let disk = dist.join("boot/agent/disk.raw");
    let sectors = run(Command::new("sfdisk").arg("--json").arg(&disk));
    let t: serde_json::Value = serde_json::from_str(&sectors).unwrap();
    let start = t["partitiontable"]["partitions"][0]["start"]
        .as_u64()
        .unwrap()
        * 512;
    let copy = tmp.path().join("BOOTX64.EFI");
    run(Command::new("mcopy")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &format!("{}@@{start}", disk.display())])
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .arg(&copy));
    assert_eq!(fs::read(&copy).unwrap(), fs::read(&uki).unwrap());

    // dist/secure-boot/: certificates (PEM as given, DER the same certificate) and the guide.
    let sb = dist.join("secure-boot");
    for k in ["PK", "KEK", "db"] {
        assert_eq!(
            fs::read(sb.join(format!("{k}.crt"))).unwrap(),
            fs::read(keys.join(format!("{k}.crt"))).unwrap()
        );
        let fp = |args: &[&str], f: &Path| {
            run(Command::new("openssl")
                .arg("x509")
                .args(args)
                .args(["-noout", "-fingerprint", "-sha256", "-in"])
                .arg(f))
        };
        assert_eq!(
            fp(&["-inform", "DER"], &sb.join(format!("{k}.cer"))),
            fp(&[], &keys.join(format!("{k}.crt")))
        );
    }
    let guide = fs::read_to_string(sb.join("ENROLL.md")).unwrap();
    let pcr11 = agent["pcr11"].as_str().unwrap();
    assert!(guide.contains(pcr11), "{guide}");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dist.join("boot/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(
        manifest["secure_boot"]["db"], "secure-boot/db.crt",
        "{manifest}"
    );
    let owner = manifest["secure_boot"]["owner"].as_str().unwrap();
    assert!(guide.contains(owner));

    // The guide's recipe for PCR 11: the sections cut out with objcopy, then systemd-measure.
    let sections = tmp.path().join("sections");
    fs::create_dir_all(&sections).unwrap();
    let mut measure = Command::new(
        [
            "/usr/lib/systemd/systemd-measure",
            "/lib/systemd/systemd-measure",
        ]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("systemd-measure (Debian package systemd)"),
    );
    measure.arg("calculate");
    for s in ["linux", "osrel", "cmdline", "initrd"] {
        let f = sections.join(s);
        run(Command::new("objcopy")
            .args(["-O", "binary", &format!("--only-section=.{s}")])
            .arg(&uki)
            .arg(&f));
        measure.arg(format!("--{s}={}", f.display()));
    }
    let measured = run(measure.args(["--bank=sha256", "--phase="]));
    assert!(
        measured.contains(&format!("11:sha256={pcr11}")),
        "{measured} vs {pcr11}"
    );

    // The seed is signed: kiln's own verify-seed (as `kiln render` writes it into the image)
    // accepts it with the certificate the UKI names, and refuses a changed tar, another
    // certificate, and a missing signature.
    let fp = {
        let der = run(Command::new("sh").arg("-c").arg(format!(
            "openssl x509 -in {} -outform DER | sha256sum",
            db.display()
        )));
        der.split_whitespace().next().unwrap().to_string()
    };
    let uki_cmdline = String::from_utf8(uki_section(&uki, ".cmdline")).unwrap();
    assert!(
        uki_cmdline.contains(&format!("kiln.seed-signer={fp}")),
        "{uki_cmdline}"
    );
    assert!(
        !agent["cmdline"]
            .as_str()
            .unwrap()
            .contains("kiln.seed-signer"),
        "the BIOS path does not ask for a signed seed: {agent}"
    );
    let rendered = tmp.path().join("rendered");
    kiln_code(
        &[
            "render",
            spec.to_str().unwrap(),
            "-o",
            rendered.to_str().unwrap(),
        ],
        0,
    );
    let verify = rendered.join("profiles/agent/usr/lib/kiln/verify-seed");
    let host_seed = fs::read_dir(dist.join("cloud-init"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let check = |label: &str, change: &dyn Fn(&Path)| {
        let d = tmp.path().join(format!("seed-{label}"));
        fs::create_dir_all(&d).unwrap();
        for f in [
            "kiln-identity.tar",
            "kiln-identity.tar.sig",
            "kiln-seed-signer.crt",
        ] {
            fs::copy(host_seed.join(f), d.join(f)).unwrap();
        }
        change(&d);
        let o = Command::new("sh")
            .arg(&verify)
            .arg(&d)
            .arg(&fp)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(check("as-built", &|_| ()), (true, String::new()));
    let (ok, why) = check("changed-tar", &|d| {
        let mut t = fs::read(d.join("kiln-identity.tar")).unwrap();
        let at = t.len() / 3;
        t[at] ^= 1;
        fs::write(d.join("kiln-identity.tar"), t).unwrap();
    });
    assert!(!ok && why.contains("does not verify"), "{why}");
    let (ok, why) = check("other-cert", &|d| {
        fs::copy(keys.join("KEK.crt"), d.join("kiln-seed-signer.crt")).unwrap();
    });
    assert!(!ok && why.contains("not the certificate"), "{why}");
    let (ok, why) = check("unsigned", &|d| {
        fs::remove_file(d.join("kiln-identity.tar.sig")).unwrap();
    });
    assert!(!ok && why.contains("not signed"), "{why}");

    // The same bytes from a second build with an empty cache.
    let again = tmp.path().join("again");
    let other_cache = tmp.path().join("other-cache");
    let (out2, err2) = kiln_code(&build_args(&spec, &again, other_cache.to_str().unwrap()), 0);
    assert!(
        fs::read(&uki).unwrap() == fs::read(again.join("boot/agent/kiln.efi")).unwrap(),
        "the signed UKI differs between two builds"
    );

    // No private key in any file of the outputs or the caches, nor in kiln's output.
    let secrets = key_lines(&keys);
    let needles = needles_of(
        &secrets
            .iter()
            .map(|(w, s)| (w.as_str(), s.as_str()))
            .collect::<Vec<_>>(),
    );
    let mut files = Vec::new();
    for d in [&dist, &again, &cache, &other_cache] {
        walk(d, &mut files);
    }
    let mut found = Vec::new();
    for f in &files {
        scan(
            &f.display().to_string(),
            &fs::read(f).unwrap(),
            &needles,
            &mut found,
        );
    }
    for (name, text) in [
        ("stdout", &out),
        ("stderr", &err),
        ("stdout 2", &out2),
        ("stderr 2", &err2),
    ] {
        scan(name, text.as_bytes(), &needles, &mut found);
    }
    assert!(found.is_empty(), "{found:#?}");
    assert!(files.len() > 20, "scanned {} files", files.len());
}

#[test]
fn an_exposed_key_or_one_that_is_not_the_certificates_is_refused() {
    let (tmp, spec) = bootable_workspace();
    let keys = spec.with_file_name("keys");
    kiln_code(&["keys", keys.to_str().unwrap()], 0);
    let dist = tmp.path().join("dist");
    let cache = tmp.path().join("cache");
    let args = build_args(&spec, &dist, cache.to_str().unwrap());

    // Readable by the group: refused before any work, naming the key, the file and the fix.
    let base = fs::read_to_string(&spec).unwrap();
    with_secure_boot(&spec, "db.key", "db.crt");
    let key = keys.join("db.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
    let (_, err) = kiln_code(&args, 2);
    for want in ["boot.secure_boot.key", "db.key", "chmod 600"] {
        assert!(err.contains(want), "{want:?} missing: {err}");
    }
    assert!(!dist.exists(), "a refused build wrote {}", dist.display());
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

    // A missing certificate.
    fs::write(&spec, &base).unwrap();
    with_secure_boot(&spec, "db.key", "nothing.crt");
    let (_, err) = kiln_code(&args, 2);
    assert!(
        err.contains("boot.secure_boot.cert")
            && err.contains("nothing.crt")
            && err.contains("kiln keys"),
        "{err}"
    );

    // The PK's key with the db's certificate: refused before any work, and no output.
    fs::write(&spec, &base).unwrap();
    with_secure_boot(&spec, "PK.key", "db.crt");
    let (_, err) = kiln_code(&args, 2);
    assert!(
        err.contains("boot.secure_boot.key") && err.contains("not a pair"),
        "{err}"
    );
    assert!(!dist.exists());
}

/// `kiln check` warns when a spec signs its boot images and also writes a PXE tree, whose
/// configs carry the root hash outside the signed chain; `--strict` makes it an error.
#[test]
fn check_warns_that_the_pxe_tree_is_outside_the_signed_chain() {
    let (_tmp, spec) = bootable_workspace();
    let s = spec.to_str().unwrap();
    let (_, err) = kiln_code(&["check", s], 0);
    assert!(!err.contains("outside the signed chain"), "{err}");
    with_secure_boot(&spec, "db.key", "db.crt");
    let (_, err) = kiln_code(&["check", s], 0);
    assert!(
        err.contains("provision.pxe") && err.contains("outside the signed chain"),
        "{err}"
    );
    kiln_code(&["check", "--strict", s], 2);
}
