//! Login secrets of a host: SSH public keys for root's `authorized_keys` and root's password
//! as a crypt(3) hash. They reach only per-host artifacts (the host's cloud-init seed, its
//! kickstart), never an image layer.
//!
//! Unlike the other values, neither type shows its text by accident: `Display`, `Debug` and
//! `Serialize` (what `kiln check --json` and the build report print) give a key's type,
//! fingerprint and comment and a hash's scheme only; the text itself is reached through
//! [`SshPublicKey::line`] and [`PasswordHash::expose`], by the renderers that deliver it. Error
//! messages never quote a refused password value either: it may be a plaintext password.

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::{is_unsafe_char, quote, ValueError};

/// Key types OpenSSH accepts in `authorized_keys` that kiln takes: Ed25519, RSA, ECDSA over
/// the NIST curves, and the FIDO (`sk-`) variants of Ed25519 and ECDSA. DSA is gone from
/// OpenSSH 9.8 and is refused.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

const KEY_HELP: &str = "give one public key line as in ~/.ssh/id_ed25519.pub: TYPE BASE64 [COMMENT], e.g. \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… admin@example.com\" (types: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com)";

/// One OpenSSH public key: `TYPE BASE64 [COMMENT]` on one line, without `authorized_keys`
/// options. The body is base64 that decodes to a key blob of the type named (its first field
/// is the type, as `ssh-keygen` writes it).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SshPublicKey {
    kind: String,
    body: String,
    comment: String,
}

impl SshPublicKey {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<SshPublicKey, ValueError> {
        let bad = |problem: String| Err(ValueError::new(problem, KEY_HELP));
        if s.contains("PRIVATE KEY") {
            return Err(ValueError::new(
                "this is a private key, not a public key",
                "give the public key (the .pub file, e.g. ~/.ssh/id_ed25519.pub); a private key must never be in the spec",
            ));
        }
        if let Some(c) = s.chars().find(|&c| is_unsafe_char(c)) {
            return bad(format!(
                "an SSH public key is one line; this one holds the control character {c:?}"
            ));
        }
        let mut parts = s.splitn(3, ' ');
        let kind = parts.next().unwrap_or_default();
        let body = parts.next().unwrap_or_default();
        let comment = parts.next().unwrap_or_default();
        if !KEY_TYPES.contains(&kind) && s.split(' ').any(|w| KEY_TYPES.contains(&w)) {
            return Err(ValueError::new(
                "authorized_keys options before the key type are not taken",
                "give the plain key line (TYPE BASE64 [COMMENT]); kiln writes each key as it is, without options such as command= or from=",
            ));
        }
        if !KEY_TYPES.contains(&kind) {
            let shown = if kind.len() > 40 || kind.is_empty() {
                String::new()
            } else {
                format!(" {}", quote(kind))
            };
            return bad(format!(
                "not an SSH public key: it does not start with a known key type{shown}"
            ));
        }
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(body) else {
            return bad(format!("the body of this {kind} key is not base64"));
        };
        // The blob starts with the key type as an SSH string (u32 length, bytes).
        let named = blob
            .get(..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|n| blob.get(4..4usize.saturating_add(n)));
        if named != Some(kind.as_bytes()) || blob.len() <= 4 + kind.len() {
            return bad(format!(
                "the body of this {kind} key does not decode to a {kind} key (truncated, or copied from another key?)"
            ));
        }
        if comment != comment.trim() || body.is_empty() {
            return bad("stray spaces in the key line".into());
        }
        Ok(SshPublicKey {
            kind: kind.into(),
            body: body.into(),
            comment: comment.into(),
        })
    }

    /// The key type (`ssh-ed25519`).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The comment, empty when there is none.
    pub fn comment(&self) -> &str {
        &self.comment
    }

    /// The `authorized_keys` line (no newline): what a host needs, and what must not reach a
    /// shared artifact.
    pub fn line(&self) -> String {
        if self.comment.is_empty() {
            format!("{} {}", self.kind, self.body)
        } else {
            format!("{} {} {}", self.kind, self.body, self.comment)
        }
    }

    /// `SHA256:…` as `ssh-keygen -l` prints it (unpadded base64 of the blob's sha256).
    pub fn fingerprint(&self) -> String {
        let blob = base64::engine::general_purpose::STANDARD
            .decode(&self.body)
            .unwrap_or_default();
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(blob))
        )
    }
}

impl std::str::FromStr for SshPublicKey {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SshPublicKey::parse(s)
    }
}

/// `TYPE SHA256:… COMMENT`, never the key body.
impl fmt::Display for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.fingerprint())?;
        if !self.comment.is_empty() {
            write!(f, " {}", self.comment)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SshPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SshPublicKey({self})")
    }
}

impl serde::Serialize for SshPublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The crypt(3) schemes kiln takes, by prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashScheme {
    /// `$y$`
    Yescrypt,
    /// `$6$`
    Sha512,
    /// `$5$`
    Sha256,
    /// `$2b$`
    Bcrypt,
    /// `$1$` (weak; still what some old tools write)
    Md5,
}

impl HashScheme {
    /// The name `mkpasswd -m` knows it by.
    pub fn name(self) -> &'static str {
        match self {
            HashScheme::Yescrypt => "yescrypt",
            HashScheme::Sha512 => "sha512crypt",
            HashScheme::Sha256 => "sha256crypt",
            HashScheme::Bcrypt => "bcrypt",
            HashScheme::Md5 => "md5crypt",
        }
    }
}

const HASH_HELP: &str = "give a crypt(3) hash, never the password: the output of `mkpasswd -m sha-512` (Debian package whois), e.g. \"$6$salt$…\"; $y$, $5$, $2b$ and $1$ hashes are taken too";

/// Root's password as a crypt(3) hash: `$6$` (SHA-512), `$5$` (SHA-256), `$y$` (yescrypt),
/// `$2b$` (bcrypt) or `$1$` (MD5), each with its salt and hash in crypt's alphabet
/// (`./0-9A-Za-z`) and of its length. Anything else — a plaintext password above all — is
/// refused, without quoting the value.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PasswordHash {
    scheme: HashScheme,
    text: String,
}

fn is_crypt64(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

impl PasswordHash {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<PasswordHash, ValueError> {
        let err = |problem: &str| Err(ValueError::new(problem, HASH_HELP));
        if s.is_empty() {
            return Err(ValueError::new(
                "the password hash is empty",
                "leave the key out to keep root's password locked (SSH keys still log in), or give `mkpasswd -m sha-512` output",
            ));
        }
        if matches!(s, "*" | "!" | "!!" | "x") || s.starts_with('!') {
            return Err(ValueError::new(
                "a locked-password marker is not a password hash",
                "leave root_password_hash out to keep root's password locked",
            ));
        }
        if !s.starts_with('$') {
            return err("this is not a crypt(3) password hash and looks like a plaintext password; the spec takes only hashes");
        }
        let fields: Vec<&str> = s[1..].split('$').collect();
        let scheme =
            match fields[0] {
                "6" => HashScheme::Sha512,
                "5" => HashScheme::Sha256,
                "y" => HashScheme::Yescrypt,
                "2b" => HashScheme::Bcrypt,
                "1" => HashScheme::Md5,
                _ => return err(
                    "unknown crypt(3) scheme: the hash must start with $6$, $5$, $y$, $2b$ or $1$",
                ),
            };
        let ok = match scheme {
            HashScheme::Sha512 | HashScheme::Sha256 => {
                let (rest, n) = match fields.get(1) {
                    Some(r) if r.starts_with("rounds=") => {
                        let ok = r["rounds=".len()..]
                            .parse::<u32>()
                            .is_ok_and(|n| (1000..=999_999_999).contains(&n));
                        (&fields[2..], ok)
                    }
                    _ => (&fields[1..], true),
                };
                let len = if scheme == HashScheme::Sha512 { 86 } else { 43 };
                n && rest.len() == 2
                    && rest[0].len() <= 16
                    && is_crypt64(rest[0])
                    && rest[1].len() == len
                    && is_crypt64(rest[1])
            }
            HashScheme::Md5 => {
                fields.len() == 3
                    && fields[1].len() <= 8
                    && is_crypt64(fields[1])
                    && fields[2].len() == 22
                    && is_crypt64(fields[2])
            }
            HashScheme::Bcrypt => {
                fields.len() == 3
                    && fields[1].len() == 2
                    && fields[1]
                        .parse::<u32>()
                        .is_ok_and(|c| (4..=31).contains(&c))
                    && fields[2].len() == 53
                    && is_crypt64(fields[2])
            }
            HashScheme::Yescrypt => {
                fields.len() == 4
                    && is_crypt64(fields[1])
                    && is_crypt64(fields[2])
                    && fields[2].len() <= 86
                    && fields[3].len() == 43
                    && is_crypt64(fields[3])
            }
        };
        if !ok {
            return Err(ValueError::new(
                format!(
                    "malformed {} hash: wrong field count, length or characters",
                    scheme.name()
                ),
                HASH_HELP,
            ));
        }
        Ok(PasswordHash {
            scheme,
            text: s.to_string(),
        })
    }

    /// The scheme of the hash.
    pub fn scheme(&self) -> HashScheme {
        self.scheme
    }

    /// The hash itself, for the per-host artifact that sets it.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl std::str::FromStr for PasswordHash {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PasswordHash::parse(s)
    }
}

/// `<sha512crypt hash>`, never the hash.
impl fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} hash>", self.scheme.name())
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({self})")
    }
}

impl serde::Serialize for PasswordHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519 -C test@kiln` output (a throwaway key made for these tests).
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtIe7kPEAXCJt+AmYd+hNmM7P7js86e6VqK3CNj/wel test@kiln";
    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBJhoYZNcR2wvRVm22FNDNk3Ov4OyqdtEg86I9sL83f+FPmm0QJ4F6XwcwRm52UUZT7+Iv1XBcBbofvIhBQ6tnaQ= ec@kiln";

    #[test]
    fn ssh_keys() {
        let k = SshPublicKey::parse(ED25519).unwrap();
        assert_eq!(k.kind(), "ssh-ed25519");
        assert_eq!(k.comment(), "test@kiln");
        assert_eq!(k.line(), ED25519);
        // What `ssh-keygen -lf` prints for it.
        assert_eq!(
            k.fingerprint(),
            "SHA256:DyWWhlvUhAscdJqw0v64c8NX9fTMCammo3NGQeYKQJc"
        );
        let shown = k.to_string();
        assert!(shown.starts_with("ssh-ed25519 SHA256:"), "{shown}");
        assert!(!shown.contains("AAAA"), "{shown}");
        assert!(!format!("{k:?}").contains("AAAA"));
        assert!(SshPublicKey::parse(ECDSA).is_ok());
        let no_comment = ED25519.strip_suffix(" test@kiln").unwrap();
        assert_eq!(SshPublicKey::parse(no_comment).unwrap().line(), no_comment);
        // Spaces inside a comment are kept.
        assert!(SshPublicKey::parse(&format!("{no_comment} a b")).is_ok());
        for bad in [
            "",
            "AAAAC3NzaC1lZDI1NTE5",
            "ssh-dss AAAAB3NzaC1kc3M= x",
            "ssh-ed25519",
            "ssh-ed25519 not-base64!",
            // An ECDSA blob named ed25519.
            &ECDSA.replace("ecdsa-sha2-nistp256 ", "ssh-ed25519 "),
            // Only the type, nothing of the key.
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
            &format!("{ED25519}\nssh-rsa AAAA"),
            &format!("{no_comment}  x"),
            &format!("{no_comment} x "),
            &format!("command=\"ls\" {ED25519}"),
            "-----BEGIN OPENSSH PRIVATE KEY-----",
        ] {
            assert!(SshPublicKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_hashes() {
        // Password "kiln": mkpasswd -m sha-512 / sha-256 / yescrypt / bcrypt / md5
        // (libxcrypt's crypt(3) through Python).
        let sha512 = "$6$QgEBUdDXg9lV89I2$/MnwmTKrhqU65dSBZGDej/xeq5cLhSDGNik/Vik6jShsAsZNiRKOUJXwhJU.zw2D0WUK6Kcy8zraOUPXcIso51";
        let good = [
            sha512,
            "$6$rounds=5000$kilnsalt$WBLZSBoPAMO0VYjy2gz1gWC1/imwpXZjv5MW.R3uw92tXUeOKro1C7pI1h1A2ku1KbUsMG0fEnQKYNLjBFaAX/",
            "$5$naW/Jq42ip9tzGVl$tpGACLTa/9o2QL5hofyEJH8CuiW8BpZCvtYSuR6wk6A",
            "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$BYsPY4PPOOcAIaT.dFPjK1LB.AMFE5wFiCHTz6Fz2g1",
            "$2b$12$tgGe7SK44on1/4bjIo5kN.WKnyVKJzhkSXh1vWLh/C/.nlQPZX6eO",
            "$1$YHAAazbY$vR07bL0WLAV/xKch9wSU71",
        ];
        for g in good {
            let h = PasswordHash::parse(g).unwrap_or_else(|e| panic!("{g}: {e}"));
            assert_eq!(h.expose(), g);
            assert!(!h.to_string().contains('$'), "{h}");
            assert!(!format!("{h:?}").contains('$'), "{h:?}");
        }
        for bad in [
            "hunter2",
            "correct horse battery staple",
            "",
            "*",
            "!",
            &format!("!{sha512}"),
            "$6$",
            "$6$salt$short",
            &sha512.replace("QgEBUdDX", "Qg EBUdD"),
            &format!("{sha512}\n"),
            &format!("{sha512}$"),
            "$7$x$y",
            "$2a$12$tgGe7SK44on1/4bjIo5kN.WKnyVKJzhkSXh1vWLh/C/.nlQPZX6eO",
            "$2b$99$tgGe7SK44on1/4bjIo5kN.WKnyVKJzhkSXh1vWLh/C/.nlQPZX6eO",
            "$6$rounds=5$kilnsalt$WBLZSBoPAMO0VYjy2gz1gWC1/imwpXZjv5MW.R3uw92tXUeOKro1C7pI1h1A2ku1KbUsMG0fEnQKYNLjBFaAX/",
        ] {
            let e = PasswordHash::parse(bad).expect_err(bad);
            if bad.len() > 3 {
                assert!(
                    !e.problem.contains(bad) && !e.help.contains(bad),
                    "{bad:?} quoted in {e:?}"
                );
            }
        }
        let e = PasswordHash::parse("hunter2").unwrap_err();
        assert!(e.problem.contains("plaintext"), "{e:?}");
        assert!(e.help.contains("mkpasswd -m sha-512"), "{e:?}");
    }
}
