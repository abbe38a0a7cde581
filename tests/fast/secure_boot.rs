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
    let measured = guide_recipe_pcr11(&uki, &tmp.path().join("sections"));
    assert_eq!(measured, pcr11);
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
        .find(|p| p.is_dir() && !p.ends_with("mac"))
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

    the_pxe_tree_boots_the_signed_chain(&dist, &again, &db, &fp, &guide, tmp.path());
}

/// PCR 11 of `uki` by the recipe of `ENROLL.md`: its sections cut out with objcopy into
/// `dir`, then `systemd-measure calculate`.
fn guide_recipe_pcr11(uki: &Path, dir: &Path) -> String {
    fs::create_dir_all(dir).unwrap();
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
        let f = dir.join(s);
        run(Command::new("objcopy")
            .args(["-O", "binary", &format!("--only-section=.{s}")])
            .arg(uki)
            .arg(&f));
        measure.arg(format!("--{s}={}", f.display()));
    }
    let out = run(measure.args(["--bank=sha256", "--phase="]));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("11:sha256="))
        .unwrap_or_else(|| panic!("no PCR 11 in {out}"))
        .to_string()
}

/// The signed build's PXE tree (item 5/6 of issue 21): each role's network UKI is signed, its
/// own command line names the root by digest, the root hash, the seeds by MAC and the seed's
/// signer; the guide lists its PCR 11 (the recipe gives it again); the iPXE script chains it on
/// UEFI; the loaders are Debian's, `ipxe.efi` signed; every host's seed is there again by MAC;
/// and a second build gives the same bytes.
fn the_pxe_tree_boots_the_signed_chain(
    dist: &Path,
    again: &Path,
    db: &Path,
    fp: &str,
    guide: &str,
    tmp: &Path,
) {
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dist.join("boot/manifest.json")).unwrap())
            .unwrap();
    let agent = manifest["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "agent")
        .unwrap()
        .clone();
    let net = dist.join(agent["net_uki"].as_str().unwrap());
    run(Command::new("sbverify").arg("--cert").arg(db).arg(&net));
    let line = String::from_utf8(uki_section(&net, ".cmdline")).unwrap();
    let line = line.trim_end_matches('\0');
    let root_hex = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            fs::read(dist.join("boot/agent/root.img")).unwrap(),
        ))
    };
    let root_hash = agent["root_hash"].as_str().unwrap();
    for want in [
        format!("kiln.root=http://10.9.0.5:8080/pxe/sha256/{root_hex}"),
        format!("kiln.roothash={root_hash}"),
        "kiln.seed-by-mac=http://10.9.0.5:8080/cloud-init/mac/".to_string(),
        format!("kiln.seed-signer={fp}"),
    ] {
        assert!(line.split(' ').any(|a| a == want), "no {want} in {line}");
    }
    for never in ["kiln.disk=", "kiln.state=", "kiln.seed="] {
        assert!(!line.contains(never), "{never} in {line}");
    }
    let net_pcr11 = agent["net_pcr11"].as_str().unwrap();
    assert!(
        guide.contains(&format!(
            "| agent (network) | `{}` | `{net_pcr11}` |",
            agent["net_uki"].as_str().unwrap()
        )),
        "{guide}"
    );
    assert_eq!(
        guide_recipe_pcr11(&net, &tmp.join("net-sections")),
        net_pcr11
    );

    // The host's iPXE script chains the UKI on UEFI, with the same command line for firmware
    // whose Secure Boot is off.
    let hosts: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dist.join("pxe/hosts.json")).unwrap()).unwrap();
    let a1 = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["profile"] == "agent")
        .unwrap();
    let script = fs::read_to_string(dist.join("pxe").join(a1["ipxe"].as_str().unwrap())).unwrap();
    let net_url = format!(
        "http://10.9.0.5:8080/{}",
        agent["net_uki"].as_str().unwrap()
    );
    assert!(
        script.contains("iseq ${platform} efi && goto uki ||"),
        "{script}"
    );
    assert!(
        script.contains(&format!("chain --name kiln.efi {net_url} {line} ||\n")),
        "{script}"
    );

    // The loaders: Debian's files; the one UEFI firmware loads is signed.
    run(Command::new("sbverify")
        .arg("--cert")
        .arg(db)
        .arg(dist.join("pxe/ipxe.efi")));
    for (name, debian) in [
        ("undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe"),
        ("lpxelinux.0", "/usr/lib/PXELINUX/lpxelinux.0"),
        ("ldlinux.c32", "/usr/lib/syslinux/modules/bios/ldlinux.c32"),
    ] {
        assert!(
            fs::read(dist.join("pxe").join(name)).unwrap() == fs::read(debian).unwrap(),
            "{name}"
        );
    }
    let core = fs::read(dist.join("pxe/grub/x86_64-efi/core.efi")).unwrap();
    assert_eq!(&core[..2], b"MZ");
    for m in ["http.mod", "linux.mod", "tftp.mod", "efinet.mod"] {
        assert!(dist.join("pxe/grub/x86_64-efi").join(m).is_file(), "{m}");
    }

    // Every host's seed again by MAC: the same bytes, private.
    let mac = a1["mac"].as_str().unwrap().replace(':', "-");
    let name = a1["name"].as_str().unwrap();
    for f in [
        "meta-data",
        "user-data",
        "network-config",
        "kiln-identity.tar",
        "kiln-identity.tar.sig",
        "kiln-seed-signer.crt",
    ] {
        let by_mac = dist.join(format!("cloud-init/mac/{mac}/{f}"));
        assert!(
            fs::read(&by_mac).unwrap()
                == fs::read(dist.join(format!("cloud-init/{name}/{f}"))).unwrap(),
            "{f}"
        );
        assert_eq!(
            fs::metadata(&by_mac).unwrap().permissions().mode() & 0o777,
            0o600,
            "{f}"
        );
    }

    // The same PXE tree from the second build (another cache).
    let mut a = Vec::new();
    let mut b = Vec::new();
    walk(&dist.join("pxe"), &mut a);
    walk(&again.join("pxe"), &mut b);
    let rel = |root: &Path, v: &[std::path::PathBuf]| -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = v
            .iter()
            .map(|p| {
                (
                    p.strip_prefix(root).unwrap().display().to_string(),
                    fs::read(p).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let (a, b) = (rel(dist, &a), rel(again, &b));
    assert_eq!(
        a.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        b.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for ((p, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "pxe file {p} differs between two builds");
    }
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
