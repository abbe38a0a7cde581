//! Loose `MAJOR.MINOR[.PATCH][-suffix]` versions, as upstream projects tag them.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::{quote, ValueError};

/// A component version. Only the numeric part takes part in comparisons; a leading `v` and a
/// `-suffix` (`-rc1`, `+dfsg`) are kept for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    text: String,
}

impl Version {
    /// Parses `3.4`, `v2.6.12`, `20.10.24+dfsg1`. Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<Version> {
        let t = s.trim();
        let core = t.strip_prefix('v').unwrap_or(t);
        let end = core.find(['-', '+', '~']).unwrap_or(core.len());
        let mut nums = core[..end].split('.');
        let num = |p: Option<&str>| -> Option<u64> {
            let p = p?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse().ok()
        };
        let major = num(nums.next())?;
        let minor = num(nums.next())?;
        let patch = match nums.next() {
            None => 0,
            some => num(some)?,
        };
        if nums.next().is_some() {
            return None;
        }
        Some(Version {
            major,
            minor,
            patch,
            text: t.to_string(),
        })
    }

    /// Like [`Version::parse`], with a reason when it fails. The text must be a plain token:
    /// the suffix may hold letters, digits and `.+~-_` only, so a version can never add a
    /// line or an argument where it is written.
    pub fn parse_checked(s: &str) -> Result<Version, ValueError> {
        let help = "write it as MAJOR.MINOR[.PATCH], e.g. \"3.4.23\"";
        if s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+~-_".contains(&b))
        {
            return Err(ValueError::new(
                format!(
                    "{} is not a version: only letters, digits and .+~-_ are allowed",
                    quote(s)
                ),
                help,
            ));
        }
        Version::parse(s).ok_or_else(|| {
            ValueError::new(format!("{} is not MAJOR.MINOR[.PATCH]", quote(s)), help)
        })
    }

    /// Whether this version is at least `major.minor`.
    pub fn at_least(&self, major: u64, minor: u64) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch))
    }
}

impl FromStr for Version {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Version::parse_checked(s)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::Version;

    #[test]
    fn parses_upstream_tags() {
        let v = Version::parse("v2.6.12").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (2, 6, 12));
        assert_eq!(Version::parse("20.10.24+dfsg1").unwrap().minor, 10);
        assert_eq!(Version::parse("3.4").unwrap().patch, 0);
        for bad in ["", "3", "three.four", "1.2.3.4", "1..2"] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
        assert!(Version::parse("3.4.23").unwrap().at_least(3, 4));
        assert!(!Version::parse("3.3.9").unwrap().at_least(3, 4));
        for bad in ["3.4.23-\nExecStart=/x", "3.4 --x", "3.4\u{1b}[31m"] {
            assert!(Version::parse_checked(bad).is_err(), "{bad:?}");
        }
    }
}
