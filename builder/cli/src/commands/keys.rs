//! `kiln keys`: a Secure Boot key set for a lab.

use std::path::PathBuf;

/// Make a Secure Boot key set (PK, KEK, db) for a lab or a test.
///
/// Writes `PK`, `KEK` and `db` keys (RSA 2048, mode 0600) with self-signed certificates (ten
/// years) into a new directory (mode 0700), with openssl. Point `[boot.secure_boot]` at
/// `db.key` and `db.crt` (and `pk_cert`/`kek_cert` at `PK.crt`/`KEK.crt`); `kiln build` then
/// signs every role's unified kernel image and writes the certificates and an enrolment guide
/// to `dist/secure-boot/`. Keep the directory out of the spec's repository, and keep a fleet's
/// platform key offline.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  kiln keys keys/\n  kiln keys --name 'ACME lab' /secure/kiln-keys"
)]
pub(crate) struct KeysArgs {
    /// The new directory (an existing one must be empty).
    dir: PathBuf,
    /// The certificates' common name (each gets ` PK`, ` KEK` or ` db` added).
    #[arg(long, default_value = "kiln")]
    name: String,
}

impl KeysArgs {
    pub(crate) fn run(self) -> anyhow::Result<()> {
        kiln_pipeline::secure_boot::make_keys(&self.dir, &self.name)?;
        let d = self.dir.display();
        eprintln!(
            "wrote {d}/PK, KEK and db (.key mode 0600, .crt); add to the spec (paths relative \
             to it):\n\n[boot.secure_boot]\nkey = \"{d}/db.key\"\ncert = \"{d}/db.crt\"\n\
             pk_cert = \"{d}/PK.crt\"\nkek_cert = \"{d}/KEK.crt\""
        );
        Ok(())
    }
}
