//! Names: hosts, domains, interfaces, Debian packages, Mesos flags, image tags and prefixes,
//! digests.

use super::path::{is_path_component, is_tag};
use super::{is_unsafe_char, quote, string_value, ValueError};

/// One RFC 1123 label: lowercase letters, digits and `-`, 1–63, not starting or ending
/// with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostName(String);
string_value!(HostName);

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl HostName {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<HostName, ValueError> {
        if is_label(s) {
            Ok(HostName(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not a DNS label", quote(s)),
                "use lowercase letters, digits and '-' (at most 63, not at either end), e.g. \"agent-1\"",
            ))
        }
    }
}

/// A DNS domain: dot-separated labels, at most 253 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);
string_value!(DomainName);

impl DomainName {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<DomainName, ValueError> {
        if !s.is_empty() && s.len() <= 253 && s.split('.').all(is_label) {
            Ok(DomainName(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("invalid domain {}", quote(s)),
                "use dot-separated lowercase labels (at most 253 characters), e.g. \"mesos.example.com\"",
            ))
        }
    }
}

/// `HOST.DOMAIN`, at most 253 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fqdn(String);
string_value!(Fqdn);

impl Fqdn {
    /// Checks a whole FQDN.
    pub fn parse(s: &str) -> Result<Fqdn, ValueError> {
        DomainName::parse(s).map(|d| Fqdn(d.0))
    }
    /// `host.domain`, refused when longer than 253 bytes.
    pub fn new(host: &HostName, domain: &DomainName) -> Result<Fqdn, ValueError> {
        let s = format!("{host}.{domain}");
        if s.len() > 253 {
            return Err(ValueError::new(
                format!(
                    "the FQDN of {} is {} bytes, more than DNS allows (253)",
                    quote(host.as_str()),
                    s.len()
                ),
                "use a shorter host name or cluster.domain",
            ));
        }
        Ok(Fqdn(s))
    }
}

/// A Linux interface name: 1–15 bytes, not `.`/`..` (the kernel's `dev_valid_name`), of
/// letters, digits, `-`, `_` and `.` only. The kernel takes any printable ASCII but `/` and
/// `:`; kiln narrows that because the name goes into env files and the identity script
/// (`KILN_INTERFACE`), where a quote or `$` would change their meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);
string_value!(IfName);

impl IfName {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<IfName, ValueError> {
        let ok = !s.is_empty()
            && s.len() <= 15
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(IfName(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("invalid interface name {}", quote(s)),
                "use an interface name of 1 to 15 letters, digits, '-', '_' or '.', e.g. \"ens3\"",
            ))
        }
    }
}

/// A Debian package as `name[:arch][=version]` (Debian policy 5.6.1 and 5.6.12); a name
/// never starts with `-`, so it can never be read as an option.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DebPackage(String);
string_value!(DebPackage);

impl DebPackage {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<DebPackage, ValueError> {
        let bad = || {
            ValueError::new(
                format!("{} is not a Debian package name", quote(s)),
                "write NAME[:ARCH][=VERSION], e.g. \"etcd-server\" or \"etcd-server=3.4.23-4+b1\" (names: lowercase letters, digits, '+', '-', '.'; at least 2, starting with a letter or digit)",
            )
        };
        let (name_arch, version) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        let (name, arch) = match name_arch.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (name_arch, None),
        };
        let name_ok = name.len() >= 2
            && name.as_bytes()[0].is_ascii_alphanumeric()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        let arch_ok = arch.map_or(true, |a| {
            !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
        let version_ok = version.map_or(true, |v| {
            let upstream = match v.split_once(':') {
                Some((epoch, rest))
                    if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    rest
                }
                _ => v,
            };
            upstream.as_bytes().first().is_some_and(u8::is_ascii_digit)
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b))
        });
        if name_ok && arch_ok && version_ok {
            Ok(DebPackage(s.to_string()))
        } else {
            Err(bad())
        }
    }
    /// The package name.
    pub fn name(&self) -> &str {
        let n = self.0.split('=').next().unwrap_or(&self.0);
        n.split(':').next().unwrap_or(n)
    }
    /// The pinned version, if any.
    pub fn version(&self) -> Option<&str> {
        self.0.split_once('=').map(|(_, v)| v)
    }
}

/// A Mesos flag name as the init wrapper's file names give it: `[a-z0-9_]+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlagName(String);
string_value!(FlagName);

impl FlagName {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<FlagName, ValueError> {
        if !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Ok(FlagName(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("invalid Mesos flag name {}", quote(s)),
                "write the flag without dashes, e.g. hostname_lookup",
            ))
        }
    }
}

/// A flag value: one line of text, no control characters, at most 4096 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlagValue(String);
string_value!(FlagValue);

impl FlagValue {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<FlagValue, ValueError> {
        if s.is_empty() {
            return Err(ValueError::new(
                "empty flag value",
                "remove the flag instead",
            ));
        }
        if s.len() > 4096 {
            return Err(ValueError::new(
                format!("flag value {} is longer than 4096 bytes", quote(s)),
                "shorten it",
            ));
        }
        if let Some(c) = s.chars().find(|c| is_unsafe_char(*c)) {
            return Err(ValueError::new(
                format!("flag value {} holds the control character {c:?}", quote(s)),
                "a flag value is one line of text: remove newlines and control characters",
            ));
        }
        // The init wrapper passes the file as `--NAME="$(cat FILE)"`: spaces around the value
        // stay in it, and Mesos refuses " " or "false " for a boolean.
        if s.trim() != s {
            return Err(ValueError::new(
                format!("flag value {} starts or ends with a space", quote(s)),
                "remove the spaces around the value (Mesos would read them as part of it)",
            ));
        }
        Ok(FlagValue(s.to_string()))
    }
}

/// An image tag: `[\w][\w.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);
string_value!(Tag);

impl Tag {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<Tag, ValueError> {
        if is_tag(s) {
            Ok(Tag(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("invalid tag {}", quote(s)),
                "tags are letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')",
            ))
        }
    }
}

/// A repository prefix: path components separated by `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPrefix(String);
string_value!(RepoPrefix);

impl RepoPrefix {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<RepoPrefix, ValueError> {
        if s.split('/').all(is_path_component) {
            Ok(RepoPrefix(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("invalid repository prefix {}", quote(s)),
                "use lowercase path components separated by '/', e.g. \"kiln\" or \"ops/mesos\"",
            ))
        }
    }
}

/// A sha256 digest as 64 hex digits, kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hex(String);
string_value!(Sha256Hex);

impl Sha256Hex {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<Sha256Hex, ValueError> {
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256Hex(s.to_ascii_lowercase()))
        } else {
            Err(ValueError::new(
                "sha256 must be 64 hex digits",
                "copy the digest from `sha256sum FILE` or from kiln.lock",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(HostName::parse("agent-1").is_ok());
        for bad in ["Agent", "-a", "", "a.b", "a\u{1b}"] {
            assert!(HostName::parse(bad).is_err(), "{bad:?}");
        }
        let h = HostName::parse(&"a".repeat(63)).unwrap();
        let d =
            DomainName::parse(&["b".repeat(63), "c".repeat(63), "d".repeat(63)].join(".")).unwrap();
        assert!(Fqdn::new(&h, &d).is_err());
        for bad in [
            ".",
            "..",
            "",
            "eth0/1",
            "a b",
            "sixteen-chars-xx",
            "e\u{1b}",
        ] {
            assert!(IfName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IfName::parse("ens3").is_ok());
    }

    #[test]
    fn packages_and_flags() {
        for ok in [
            "etcd-server",
            "etcd-server=3.4.23-4+b1",
            "libc6:amd64",
            "g++",
            "xy=1:2.0~rc1",
        ] {
            assert!(DebPackage::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--print-uris",
            "-x",
            "a",
            "Etcd",
            "etcd server",
            "etcd=\n",
            "etcd=abc",
        ] {
            assert!(DebPackage::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FlagValue::parse("a\nb").is_err());
        assert!(FlagValue::parse("a\u{0}").is_err());
        assert!(FlagValue::parse("--x=1 y").is_ok());
        for bad in [" ", "false ", " x", "\u{a0}"] {
            assert!(FlagValue::parse(bad).is_err(), "{bad:?}");
        }
        assert!(FlagName::parse("hostname_lookup").is_ok());
        assert!(FlagName::parse("../x").is_err());
    }
}
