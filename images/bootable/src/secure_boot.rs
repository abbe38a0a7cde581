//! Secure Boot and measured boot of the unified kernel image ([`crate::uki`]).
//!
//! **Signing.** [`sign`] gives the UKI an Authenticode signature made with the operator's db
//! key by Debian's `sbsign` (sbsigntool) and checks it with `sbverify` against the
//! certificate (a key that is not the certificate's is refused there). The signature's signed
//! attributes carry a signing time, which `sbsign` takes from the clock: it runs under
//! libfaketime (Debian `faketime`) with the clock stopped at `SOURCE_DATE_EPOCH`, so the same
//! UKI and key give the same bytes (RSA PKCS #1 v1.5 signatures have no randomness). The key
//! is only ever read by `sbsign`, from where the operator keeps it: kiln copies it nowhere and
//! refuses a key file other users can read ([`check_private`]).
//!
//! **Measurement.** With a TPM, systemd's EFI stub (252) extends PCR 11 with each of the
//! UKI's sections it knows, in a fixed order: first the section's name (with its NUL), then
//! its contents as loaded (the section's virtual size). [`expected_pcr11`] computes the value
//! from the UKI's bytes, for the SHA-256 bank. Nothing else in kiln's boot extends PCR 11:
//! kiln's initramfs is not systemd's, and `systemd-pcrphase` in the booted system skips
//! (`--graceful`) when the image has no TPM2 software stack (`libtss2-esys`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use kiln_layers::IoError;
use sha2::{Digest, Sha256};

use crate::tools::{self, FAKETIME, SBSIGN, SBVERIFY};
use crate::uki;
use crate::{Error, Result};

/// The operator's db signing key and its certificate (PEM files, where the operator keeps
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The private key (PEM).
    pub key: PathBuf,
    /// The X.509 certificate (PEM) that the firmware's db holds.
    pub cert: PathBuf,
}

/// Refuses a private key file that another user can read or write (the group's or others'
/// permission bits set): such a key may already be someone else's.
pub fn check_private(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(IoError::at("reading", path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::KeyExposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    if !meta.is_file() {
        return Err(Error::invalid(
            format!("signing key {}", path.display()),
            "not a regular file",
        ));
    }
    Ok(())
}

/// Signs the EFI program `efi` in place with `key` (see the module doc), the signing time
/// `epoch`, and verifies the result against the certificate.
pub fn sign(efi: &Path, key: &SigningKey, epoch: u64) -> Result<()> {
    check_private(&key.key)?;
    let signing = efi.with_extension("signing");
    let _ = std::fs::remove_file(&signing);
    let mut c = frozen_clock(epoch)?;
    c.arg(tools::find(SBSIGN)?)
        .arg("--key")
        .arg(&key.key)
        .arg("--cert")
        .arg(&key.cert)
        .arg("--output")
        .arg(&signing)
        .arg(efi);
    let mismatch = |detail: String| {
        Error::invalid(
            format!("signing key {}", key.key.display()),
            format!(
                "it and the certificate {} are not a pair ({detail}): give the key and the \
                 certificate of one pair",
                key.cert.display()
            ),
        )
    };
    match tools::run(SBSIGN, &mut c) {
        Err(Error::Tool { detail, .. }) if detail.contains("does not match certificate") => {
            return Err(mismatch(
                "sbsign: private key does not match certificate".into(),
            ));
        }
        other => drop(other?),
    }
    if let Err(e) = verify(&signing, &key.cert) {
        let _ = std::fs::remove_file(&signing);
        return Err(mismatch(format!("the signature does not verify: {e}")));
    }
    std::fs::rename(&signing, efi).map_err(IoError::at("renaming to", efi))?;
    Ok(())
}

/// `faketime -f "DATE TIME"`, to be given a program and its arguments: the program runs with
/// its clock stopped at `epoch` (UTC). libfaketime's absolute format stops the clock only
/// through `-f`; the wrapper's plain `faketime DATE` starts the clock there and lets it run,
/// so a signature made across a second boundary got the next second (seen: 1 run in 12).
pub fn frozen_clock(epoch: u64) -> Result<std::process::Command> {
    let at = kiln_layers::time::rfc3339(epoch as i64)
        .replace('T', " ")
        .replace('Z', "");
    let mut c = tools::command(FAKETIME)?;
    c.arg("-f").arg(at);
    Ok(c)
}

/// Checks the Authenticode signature of `efi` against the PEM certificate `cert` with
/// `sbverify`.
pub fn verify(efi: &Path, cert: &Path) -> Result<()> {
    let mut c = tools::command(SBVERIFY)?;
    tools::run(SBVERIFY, c.arg("--cert").arg(cert).arg(efi)).map(drop)
}

/// The UKI sections systemd's stub (252) measures into PCR 11, in its order (`.pcrsig`, the
/// signature of the expected values, is not measured).
pub const MEASURED_SECTIONS: [&str; 7] = [
    ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey",
];

/// The PCR 11 value (SHA-256 bank, hex) after systemd's stub measured the UKI `pe`.
pub fn expected_pcr11(pe: &[u8]) -> Result<String> {
    let sections = uki::sections(pe)?;
    let mut pcr = [0u8; 32];
    for name in MEASURED_SECTIONS {
        let Some(s) = sections.iter().find(|s| s.name == name) else {
            continue;
        };
        let mut label = name.as_bytes().to_vec();
        label.push(0);
        extend(&mut pcr, &label);
        extend(&mut pcr, &s.loaded(pe)?);
    }
    Ok(hex::encode(pcr))
}

/// `pcr = sha256(pcr ‖ sha256(data))`, a TPM's extend of a measured event.
fn extend(pcr: &mut [u8; 32], data: &[u8]) {
    let mut h = Sha256::new();
    h.update(*pcr);
    h.update(Sha256::digest(data));
    *pcr = h.finalize().into();
}

/// The DER bytes of the first certificate in PEM text `pem`, for firmware menus and tools
/// that want `.cer`/`.der` files.
pub fn pem_to_der(pem: &str, what: &str) -> Result<Vec<u8>> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let body = pem
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(b, _)| b)
        .ok_or_else(|| {
            Error::invalid(
                what.to_string(),
                format!("no {begin} block: give the certificate in PEM form"),
            )
        })?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            Error::invalid(
                what.to_string(),
                format!("bad base64 in the PEM block: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_other_users_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("db.key");
        std::fs::write(&key, "not read").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o640, false), (0o604, false)] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = check_private(&key);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}: {r:?}");
            if let Err(e) = r {
                let msg = e.to_string();
                assert!(msg.contains("chmod 600") && msg.contains("db.key"), "{msg}");
            }
        }
    }

    /// The clock does not move while the program runs: two readings 1.2 s apart are the same
    /// second, `epoch` itself.
    #[test]
    fn the_signing_clock_stands_still() {
        let out = frozen_clock(1_700_000_000)
            .unwrap()
            .args(["sh", "-c", "date +%s; sleep 1.2; date +%s"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["1700000000", "1700000000"],
            "{text}"
        );
    }

    #[test]
    fn pem_certificates_decode_and_other_text_is_refused() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_to_der(pem, "db.crt").unwrap(), vec![0, 1, 2, 3]);
        let e = pem_to_der("-----BEGIN PRIVATE KEY-----", "db.crt").unwrap_err();
        assert!(e.to_string().contains("PEM"), "{e}");
    }

    /// systemd's own calculator (`systemd-measure`, package systemd) gives the same value for
    /// the sections a UKI is made of.
    #[test]
    fn the_pcr11_value_is_what_systemd_measure_computes() {
        let stub = std::fs::read(uki::STUB).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: install it with `apt-get install {}`",
                uki::STUB,
                uki::STUB_PACKAGE
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let pattern = |n: usize, k: u8| {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(k))
                .collect::<Vec<_>>()
        };
        let kernel = file("vmlinuz", &pattern(300_001, 7));
        let initrd = file("initrd", &pattern(40_003, 13));
        let osrel = b"ID=debian\nVERSION_ID=12\n";
        let cmdline = "console=ttyS0 kiln.roothash=ab";
        let out = dir.path().join("kiln.efi");
        uki::build_uki(
            &stub,
            osrel,
            cmdline,
            &kernel,
            &initrd,
            &dir.path().join("s"),
            &out,
        )
        .unwrap();
        let ours = expected_pcr11(&std::fs::read(&out).unwrap()).unwrap();

        let osrel_file = file("osrel", osrel);
        let cmdline_file = file("cmdline", format!("{cmdline}\0").as_bytes());
        let measure = [
            "/usr/lib/systemd/systemd-measure",
            "/lib/systemd/systemd-measure",
        ]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("systemd-measure (package systemd)");
        let o = std::process::Command::new(measure)
            .arg("calculate")
            .arg(format!("--linux={}", kernel.display()))
            .arg(format!("--osrel={}", osrel_file.display()))
            .arg(format!("--cmdline={}", cmdline_file.display()))
            .arg(format!("--initrd={}", initrd.display()))
            .args(["--bank=sha256", "--phase="])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        let theirs = text
            .lines()
            .find_map(|l| l.strip_prefix("11:sha256="))
            .unwrap_or_else(|| panic!("no PCR 11 line in {text:?}"));
        assert_eq!(ours, theirs);
    }
}
