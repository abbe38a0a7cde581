//! Value types: every spec value that reaches a rendered file (units, env files, flag files,
//! JSON, XML, tmpfiles.d lines) or a command line is parsed once into one of these, and
//! refused with a [`ValueError`] (problem and fix) when it could add a line, an argument or a
//! field where it is written.
//!
//! Each type has `parse`, [`std::str::FromStr`], `Display` (its canonical text), and
//! serialises as that text.

mod access;
mod enums;
mod names;
mod net;
mod path;
mod version;

pub use access::{HashScheme, PasswordHash, SshPublicKey};
pub use enums::{
    Backend, BaseFamily, ClusterStore, Containerizer, IpipMode, Isolator, KsMode, KsTarget,
    MesosFlavour, NodeNameMode, PartFs, SelinuxMode, StoreUrl,
};
pub use names::{
    DebPackage, DomainName, FlagName, FlagValue, Fqdn, HostName, IfName, RepoPrefix, Sha256Hex, Tag,
};
pub use net::{HostAddr, HostPort, HttpUrl, MacAddr, MirrorUrl};
pub use path::AbsPath;
pub use path::ImageRef;
pub use version::Version;

/// Why a string is not a valid value: a problem and how to fix it (both one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct ValueError {
    pub problem: String,
    pub help: String,
}

impl ValueError {
    /// A problem and its fix.
    pub fn new(problem: impl Into<String>, help: impl Into<String>) -> Self {
        ValueError {
            problem: problem.into(),
            help: help.into(),
        }
    }
}

/// Values longer than this are cut in messages.
const QUOTE_MAX: usize = 60;

/// `s` double-quoted for a message: control characters, bidi overrides, quotes and
/// backslashes escaped; a value longer than 60 characters is cut and its length given.
pub fn quote(s: &str) -> String {
    let count = s.chars().count();
    let shown: String = if count > QUOTE_MAX {
        s.chars().take(40).collect()
    } else {
        s.to_string()
    };
    let mut out = String::with_capacity(shown.len() + 2);
    out.push('"');
    for c in shown.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    if count > QUOTE_MAX {
        out.push_str(&format!("…\" ({} bytes)", s.len()));
    } else {
        out.push('"');
    }
    out
}

/// Control characters (C0, DEL, C1), Unicode format characters that reorder or hide text
/// (bidi controls, zero-width characters) and the line and paragraph separators (U+2028,
/// U+2029), which end a line for some readers (Python's `splitlines`, JavaScript).
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// Refuses control characters (newlines included) in free text such as file names.
pub fn check_text(s: &str, what: &str) -> Result<(), ValueError> {
    if let Some(c) = s.chars().find(|c| is_unsafe_char(*c)) {
        return Err(ValueError::new(
            format!(
                "{} holds the control character {:?}, not allowed in {what}",
                quote(s),
                c
            ),
            "remove it (a value is written into files and command lines as it is)",
        ));
    }
    Ok(())
}

/// Implements `FromStr`, `Display`, `Serialize`, `Deserialize` and `as_str` for a newtype
/// over `String` whose `parse` checks the text.
macro_rules! string_value {
    ($t:ident) => {
        impl $t {
            /// The canonical text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $t {
            type Err = $crate::values::ValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $t::parse(s)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $t::parse(&s).map_err(serde::de::Error::custom)
            }
        }
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_value;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_and_cuts() {
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert_eq!(quote("\u{1b}[31m"), "\"\\u{1b}[31m\"");
        assert_eq!(quote("x\u{202e}y"), "\"x\\u{202e}y\"");
        assert_eq!(quote("x\u{2028}y"), "\"x\\u{2028}y\"");
        assert!(FlagValue::parse("a\u{2028}b").is_err());
        let long = "x".repeat(1 << 20);
        let q = quote(&long);
        assert!(q.len() < 80, "{q}");
        assert!(q.ends_with("(1048576 bytes)"));
    }
}
