//! `[boot.secure_boot]` at build time: the operator's key and certificate files, opened and
//! checked before any work ([`open`]), and what `dist/secure-boot/` holds for enrolling them
//! ([`write_enrolment`]): the certificates (PEM and DER) and a guide. The private key is
//! handed to the signer by path ([`kiln_bootable::secure_boot::sign`]) and never read here.

use std::fs;
use std::path::{Path, PathBuf};

use kiln_bootable::secure_boot::{check_private, pem_to_der, SigningKey};
use kiln_dist::boot_manifest::SecureBootCerts;
use kiln_dist::Dist;
use kiln_layers::IoError;
use kiln_model::plan::SecureBootPlan;
use sha2::{Digest, Sha256};

/// A certificate the spec names, read.
#[derive(Debug, Clone)]
pub struct Cert {
    /// The file.
    pub path: PathBuf,
    /// Its PEM text.
    pub pem: String,
    /// Its DER bytes.
    pub der: Vec<u8>,
}

impl Cert {
    /// sha256 of the DER bytes (the certificate's fingerprint), hex.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.der))
    }
}

/// The files of `[boot.secure_boot]`, checked.
#[derive(Debug, Clone)]
pub struct SecureBootFiles {
    /// The db key and certificate, for the signer.
    pub signing: SigningKey,
    /// The db certificate.
    pub db: Cert,
    /// The platform key's certificate, when the spec names one.
    pub pk: Option<Cert>,
    /// The key exchange key's certificate, when the spec names one.
    pub kek: Option<Cert>,
}

impl SecureBootFiles {
    /// What the signed outputs depend on besides the images (never the key's bytes): the
    /// certificates' fingerprints.
    pub fn fingerprint(&self) -> String {
        [Some(&self.db), self.pk.as_ref(), self.kek.as_ref()]
            .iter()
            .map(|c| c.map(Cert::sha256).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The GUID the certificates are enrolled under: derived from the db certificate, so the
    /// same keys always give the same enrolment files.
    pub fn owner_guid(&self) -> String {
        let fp: [u8; 32] = Sha256::digest(&self.db.der).into();
        kiln_bootable::derive_uuid(&fp, "secure-boot-owner")
    }
}

/// A `[boot.secure_boot]` file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("boot.secure_boot.{key} = {value:?} ({path}): {problem}; {help}")]
pub struct FileError {
    /// The spec key.
    pub key: &'static str,
    /// Its value.
    pub value: String,
    /// The file it names.
    pub path: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub help: String,
}

/// Opens and checks the files of `plan` (paths relative to `spec_dir`): the key exists and
/// no other user can read it; each certificate is a PEM certificate.
pub fn open(plan: &SecureBootPlan, spec_dir: &Path) -> Result<SecureBootFiles, FileError> {
    let err =
        |key: &'static str, value: &str, path: &Path, problem: String, help: &str| FileError {
            key,
            value: value.to_string(),
            path: path.display().to_string(),
            problem,
            help: help.to_string(),
        };
    let make = "make a set for a lab with `kiln keys DIR`, or give the file the operator keeps";
    let key = spec_dir.join(&plan.key);
    if let Err(e) = fs::metadata(&key) {
        return Err(err("key", &plan.key, &key, e.to_string(), make));
    }
    if let Err(e) = check_private(&key) {
        return Err(err(
            "key",
            &plan.key,
            &key,
            e.to_string(),
            "a signing key must be readable by its owner only",
        ));
    }
    let cert = |name: &'static str, value: &str| -> Result<Cert, FileError> {
        let path = spec_dir.join(value);
        let pem =
            fs::read_to_string(&path).map_err(|e| err(name, value, &path, e.to_string(), make))?;
        let der = pem_to_der(&pem, &path.display().to_string()).map_err(|e| {
            err(
                name,
                value,
                &path,
                e.to_string(),
                "give the X.509 certificate in PEM form (`openssl x509 -inform DER -in F.cer -out F.crt`)",
            )
        })?;
        Ok(Cert { path, pem, der })
    };
    let db = cert("cert", &plan.cert)?;
    // A key that is not the certificate's would fail only after minutes of work, at signing.
    if let (Some(k), Some(c)) = (public_key_of("pkey", &key), public_key_of("x509", &db.path)) {
        if k != c {
            return Err(err(
                "key",
                &plan.key,
                &key,
                format!(
                    "the key and the certificate {} are not a pair (their public keys differ)",
                    db.path.display()
                ),
                "give the db key and the db certificate of one pair",
            ));
        }
    }
    let pk = plan
        .pk_cert
        .as_deref()
        .map(|v| cert("pk_cert", v))
        .transpose()?;
    let kek = plan
        .kek_cert
        .as_deref()
        .map(|v| cert("kek_cert", v))
        .transpose()?;
    Ok(SecureBootFiles {
        signing: SigningKey {
            key,
            cert: db.path.clone(),
        },
        db,
        pk,
        kek,
    })
}

/// The public key (PEM) of a private key (`pkey`) or certificate (`x509`) file, as `openssl`
/// prints it; `None` when openssl cannot tell (the signer checks the pair again).
fn public_key_of(kind: &str, file: &Path) -> Option<String> {
    let mut c = std::process::Command::new("openssl");
    c.arg(kind);
    if kind == "x509" {
        c.args(["-noout", "-pubkey"]);
    } else {
        c.arg("-pubout");
    }
    let out = c
        .arg("-in")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The signature of `data` with the private key `key` (`openssl dgst -sha256 -sign`: RSA
/// PKCS #1 v1.5, so the same data and key give the same bytes). What kiln's `verify-seed`
/// checks on a secure-booted host.
pub fn sign_bytes(key: &Path, data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| std::io::Error::other("writer panicked"))??;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "openssl dgst -sign failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// One role's signed UKI, for the guide.
#[derive(Debug, Clone)]
pub struct SignedRole {
    /// The profile.
    pub profile: String,
    /// `boot/PROFILE/kiln.efi`.
    pub uki: String,
    /// Its PCR 11 value.
    pub pcr11: String,
    /// The role's network UKI (`pxe/sha256/HEX`) and its PCR 11, with the PXE tree.
    pub net: Option<(String, String)>,
}

/// Writes `dist/secure-boot/`: `PK`, `KEK` and `db` certificates as `.crt` (PEM) and `.cer`
/// (DER), and `ENROLL.md`. Returns what the boot manifest lists.
pub fn write_enrolment(
    files: &SecureBootFiles,
    roles: &[SignedRole],
    dist: &Dist,
) -> Result<SecureBootCerts, IoError> {
    let dir = dist.secure_boot();
    fs::create_dir_all(&dir).map_err(IoError::at("creating", &dir))?;
    let rel = Dist::secure_boot_rel();
    for (name, cert) in [
        ("db", &files.db),
        ("PK", files.pk.as_ref().unwrap_or(&files.db)),
        ("KEK", files.kek.as_ref().unwrap_or(&files.db)),
    ] {
        for (ext, bytes) in [("crt", cert.pem.as_bytes()), ("cer", &cert.der[..])] {
            let p = dir.join(format!("{name}.{ext}"));
            fs::write(&p, bytes).map_err(IoError::at("writing", &p))?;
        }
    }
    let guide = dir.join("ENROLL.md");
    fs::write(&guide, enrolment_guide(files, roles)).map_err(IoError::at("writing", &guide))?;
    Ok(SecureBootCerts {
        pk: format!("{rel}/PK.crt"),
        kek: format!("{rel}/KEK.crt"),
        db: format!("{rel}/db.crt"),
        owner: files.owner_guid(),
    })
}

/// The text of `dist/secure-boot/ENROLL.md`.
pub fn enrolment_guide(files: &SecureBootFiles, roles: &[SignedRole]) -> String {
    let owner = files.owner_guid();
    let stand_in = |c: &Option<Cert>, name: &str| match c {
        Some(_) => String::new(),
        None => format!(
            "\n> The spec names no {name} certificate: `{name}.crt` here is the db certificate. \
             That is fine for a lab; a fleet should have its own PK and KEK (`kiln keys`).\n"
        ),
    };
    let mut pcrs = String::new();
    for r in roles {
        pcrs += &format!("| {} | `{}` | `{}` |\n", r.profile, r.uki, r.pcr11);
        if let Some((uki, pcr11)) = &r.net {
            pcrs += &format!("| {} (network) | `{uki}` | `{pcr11}` |\n", r.profile);
        }
    }
    format!(
        "# Enrolling kiln's Secure Boot keys\n\
\n\
The unified kernel images in `boot/*/kiln.efi` (and `\\EFI\\BOOT\\BOOTX64.EFI` on every disk), \
the network UKIs and `ipxe.efi` of the PXE tree (`pxe/`) are signed with the db key of \
`[boot.secure_boot]`. A machine boots them with Secure Boot on once \
its firmware holds these certificates:\n\
\n\
| variable | PEM | DER | fingerprint (sha256 of the DER) |\n\
|---|---|---|---|\n\
| PK | `PK.crt` | `PK.cer` | `{pk}` |\n\
| KEK | `KEK.crt` | `KEK.cer` | `{kek}` |\n\
| db | `db.crt` | `db.cer` | `{db}` |\n\
{pk_note}{kek_note}\n\
Enrol them under the owner GUID `{owner}`. Enrol db and KEK first and PK last: writing PK takes \
the firmware out of setup mode, and from then on every change must be signed.\n\
\n\
## From the firmware's setup menu\n\
\n\
Copy the three `.cer` files to a FAT-formatted USB stick. In the firmware's Secure Boot menu, \
choose custom (or user) mode, clear the platform keys (this enters setup mode), then enrol \
`db.cer` into db, `KEK.cer` into KEK and `PK.cer` into PK. Menus differ by vendor; keep the \
vendor's keys out of db if only kiln's images should boot.\n\
\n\
## From Linux, with the machine in setup mode (Debian `efitools`)\n\
\n\
```sh\n\
for v in db KEK PK; do cert-to-efi-sig-list -g {owner} $v.crt $v.esl; done\n\
# In setup mode the firmware takes the lists as they are; the PK key signs PK.auth.\n\
sign-efi-sig-list -k PK.key -c PK.crt PK PK.esl PK.auth\n\
efi-updatevar -e -f db.esl db\n\
efi-updatevar -e -f KEK.esl KEK\n\
efi-updatevar -f PK.auth PK\n\
```\n\
\n\
(`PK.key` is the platform key's private key; kiln never has it in `dist/`.)\n\
\n\
## For QEMU/OVMF\n\
\n\
`kiln boot --firmware uefi-secure` makes a variable store with these certificates for each VM. \
By hand, with `virt-fw-vars` (PyPI `virt-firmware`):\n\
\n\
```sh\n\
virt-fw-vars -i /usr/share/OVMF/OVMF_VARS_4M.fd -o VARS.fd --secure-boot \\\n\
  --set-pk {owner} PK.crt --add-kek {owner} KEK.crt --add-db {owner} db.crt\n\
qemu-system-x86_64 -machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on \\\n\
  -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd \\\n\
  -drive if=pflash,format=raw,unit=1,file=VARS.fd ...\n\
```\n\
\n\
## Measured boot: the expected PCR 11\n\
\n\
With a TPM, systemd's EFI stub measures each UKI section into PCR 11 (name, then contents, \
in the order `.linux`, `.osrel`, `.cmdline`, `.initrd`). kiln's initramfs and images add \
nothing to PCR 11, so a host booted from one of these UKIs has, in the SHA-256 bank:\n\
\n\
| role | UKI | PCR 11 |\n\
|---|---|---|\n\
{pcrs}\n\
To compute it yourself: `objcopy -O binary --only-section=.linux kiln.efi linux` (and the \
same for `.osrel`, `.cmdline`, `.initrd`), then `/lib/systemd/systemd-measure calculate \
--linux=linux --osrel=osrel --cmdline=cmdline --initrd=initrd --bank=sha256 --phase=`. Read \
it on a host with `cat /sys/class/tpm/tpm0/pcr-sha256/11`.\n",
        pk = files.pk.as_ref().unwrap_or(&files.db).sha256(),
        kek = files.kek.as_ref().unwrap_or(&files.db).sha256(),
        db = files.db.sha256(),
        pk_note = stand_in(&files.pk, "PK"),
        kek_note = stand_in(&files.kek, "KEK"),
    )
}

/// The files [`make_keys`] writes: `NAME.key` (mode 0600) and `NAME.crt` for each.
pub const KEY_NAMES: [&str; 3] = ["PK", "KEK", "db"];

/// Why [`make_keys`] failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The directory holds files already.
    #[error(
        "{0} exists and is not empty: kiln keys never overwrites keys; choose a new directory"
    )]
    NotEmpty(PathBuf),
    /// A file operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// `openssl` is missing or failed.
    #[error("openssl {what} failed: {detail} (Debian package `openssl`)")]
    Openssl {
        /// What it was making.
        what: String,
        /// Its exit status or error output.
        detail: String,
    },
}

/// Makes a PK, KEK and db key pair with self-signed certificates (RSA 2048, SHA-256, ten
/// years; what UEFI firmware accepts) in the new directory `dir` (mode 0700, keys 0600), with
/// `OpenSSL`. For labs and tests: a fleet's platform key belongs in an HSM.
pub fn make_keys(dir: &Path, common_name: &str) -> Result<(), KeysError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.exists() {
        let empty = fs::read_dir(dir)
            .map_err(IoError::at("reading", dir))?
            .next()
            .is_none();
        if !empty {
            return Err(KeysError::NotEmpty(dir.to_path_buf()));
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(IoError::at("setting the mode of", dir))?;
    } else {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(IoError::at("creating", dir))?;
    }
    for name in KEY_NAMES {
        let key = dir.join(format!("{name}.key"));
        let crt = dir.join(format!("{name}.crt"));
        let out = std::process::Command::new("openssl")
            .args([
                "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            ])
            .args(["-days", "3650", "-subj"])
            .arg(format!("/CN={common_name} {name}/"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| KeysError::Openssl {
                what: format!("making {name}"),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(KeysError::Openssl {
                what: format!("making {name}"),
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(IoError::at("setting the mode of", &key))?;
    }
    Ok(())
}
