//! Absolute paths and image references.

use super::{quote, string_value, HostPort, RepoPrefix, ValueError};

/// An absolute path that is safe in a unit's `ExecStart=`, a tmpfiles.d line or a flag file:
/// `/`-rooted, no `.`/`..`/empty components (one trailing `/` is dropped), no whitespace,
/// control characters, quotes, backslashes, `%` (systemd specifiers) or `$` (variables).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbsPath(String);
string_value!(AbsPath);

impl AbsPath {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<AbsPath, ValueError> {
        let help =
            "use an absolute path such as \"/var/lib/etcd\" (no spaces, quotes, `..`, `%` or `$`)";
        if !s.starts_with('/') {
            return Err(ValueError::new(
                format!("{} is not an absolute path", quote(s)),
                help,
            ));
        }
        let bad = |why: &str| {
            Err(ValueError::new(
                format!("{} is not a usable path: {why}", quote(s)),
                help,
            ))
        };
        if s.len() > 4096 {
            return bad("it is longer than 4096 bytes");
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || super::is_unsafe_char(*c) || "\"'\\%$`;".contains(*c))
        {
            return bad(&format!("it contains {c:?}"));
        }
        let trimmed = if s.len() > 1 {
            s.strip_suffix('/').unwrap_or(s)
        } else {
            s
        };
        if trimmed.len() > 1 {
            for comp in trimmed[1..].split('/') {
                match comp {
                    "" => return bad("it has an empty component (//)"),
                    "." | ".." => return bad(&format!("it has a {comp:?} component")),
                    _ => {}
                }
            }
        }
        Ok(AbsPath(trimmed.to_string()))
    }

    /// `self/rel` for a relative `rel` made of plain components.
    pub fn join(&self, rel: &str) -> Result<AbsPath, ValueError> {
        if self.0 == "/" {
            AbsPath::parse(&format!("/{rel}"))
        } else {
            AbsPath::parse(&format!("{}/{rel}", self.0))
        }
    }

    /// The path of `name` (one plain component, e.g. `zoo.cfg`) in this directory: never
    /// `//zoo.cfg` under `/`. Unlike [`AbsPath::join`] it does not check the result again.
    pub fn child(&self, name: &str) -> String {
        if self.0 == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.0)
        }
    }

    /// Whether this is `/`, a directory of the file system hierarchy (`/etc`, `/tmp`, `/usr`,
    /// `/usr/lib`, `/var/lib`, `/usr/local/bin`, …) or anything under `/proc`, `/sys` or
    /// `/dev`: not a directory a service may own. kiln creates data dirs with systemd-tmpfiles
    /// (`d PATH MODE USER GROUP`), which sets the owner and mode of an existing directory.
    pub fn is_system_dir(&self) -> bool {
        const TOP: &[&str] = &[
            "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt",
            "opt", "proc", "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var",
        ];
        let comps: Vec<&str> = self.0.split('/').filter(|c| !c.is_empty()).collect();
        match comps.as_slice() {
            [] => true,
            ["proc" | "sys" | "dev", ..] => true,
            [top] => TOP.contains(top),
            ["usr" | "var", _] | ["usr", "local", _] => true,
            _ => false,
        }
    }

    /// The last component (empty for `/`).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory (`/` for `/` and top-level paths).
    pub fn parent(&self) -> AbsPath {
        match self.0.rfind('/') {
            Some(0) | None => AbsPath("/".into()),
            Some(i) => AbsPath(self.0[..i].to_string()),
        }
    }
}

/// A container image reference in the distribution grammar (`[DOMAIN[:PORT]/]PATH[:TAG][@DIGEST]`),
/// kept as written (no `docker.io/` normalisation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef(String);
string_value!(ImageRef);

/// One path component: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub(super) fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or a run of `-`, between alphanumerics.
        let start = i;
        if b[i] == b'-' {
            while i < b.len() && b[i] == b'-' {
                i += 1;
            }
        } else if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'_' {
            i += 1;
            if i < b.len() && b[i] == b'_' {
                i += 1;
            }
        } else {
            return false;
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A tag: `[\w][\w.-]{0,127}`.
pub(super) fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// A domain: DNS labels (letters, digits, `-`) separated by `.`, optional `:PORT`.
fn is_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let port_ok = port.map_or(true, |p| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
    });
    let labels_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    port_ok && labels_ok
}

impl ImageRef {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<ImageRef, ValueError> {
        let help = "write an image reference such as \"calico/node:v2.6.12\" or \"registry:5000/team/app@sha256:…\"";
        let bad = |why: &str| {
            Err(ValueError::new(
                format!("{} is not an image reference: {why}", quote(s)),
                help,
            ))
        };
        if s.is_empty() || s.len() > 512 {
            return bad("it is empty or too long");
        }
        if s.bytes().any(|b| !b.is_ascii_graphic()) {
            return bad("it contains whitespace, control or non-ASCII characters");
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let ok = match d.split_once(':') {
                Some(("sha256", hex)) => {
                    hex.len() == 64
                        && hex
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                }
                Some((algo, hex)) => {
                    !algo.is_empty()
                        && algo.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b)
                        })
                        && hex.len() >= 32
                        && hex.bytes().all(|b| b.is_ascii_hexdigit())
                }
                None => false,
            };
            if !ok {
                return bad("its digest is not ALGORITHM:HEX (sha256 has 64 lowercase hex digits)");
            }
        }
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !is_tag(t) {
                return bad("its tag is not letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')");
            }
        }
        if name.len() > 255 {
            return bad("its name is longer than 255 characters");
        }
        let mut comps: Vec<&str> = name.split('/').collect();
        if comps.len() > 1 && looks_like_domain(comps[0]) {
            if !is_domain(comps[0]) {
                return bad("its registry is not HOST[:PORT]");
            }
            comps.remove(0);
        }
        if comps.is_empty() || !comps.iter().all(|c| is_path_component(c)) {
            return bad("its repository path is not lowercase letters and digits separated by '/', '.', '_' or '-'");
        }
        Ok(ImageRef(s.to_string()))
    }

    /// The registry part, when the first component names one (has `.` or `:`, or is
    /// `localhost`).
    pub fn domain(&self) -> Option<&str> {
        let name = self.name();
        let (first, _) = name.split_once('/')?;
        looks_like_domain(first).then_some(first)
    }

    /// Domain and path, without tag and digest.
    pub fn name(&self) -> &str {
        let rest = self.0.split('@').next().unwrap_or(&self.0);
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        match rest[last_slash..].rfind(':') {
            Some(i) => &rest[..last_slash + i],
            None => rest,
        }
    }

    /// The path without the domain.
    pub fn repository(&self) -> &str {
        match self.domain() {
            Some(d) => &self.name()[d.len() + 1..],
            None => self.name(),
        }
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        let rest = self.0.split('@').next().unwrap_or(&self.0);
        let name = self.name();
        rest.strip_prefix(name).and_then(|t| t.strip_prefix(':'))
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&str> {
        self.0.split_once('@').map(|(_, d)| d)
    }

    /// Where to pull it: registry host, repository and reference (tag, `latest` when none, or
    /// the digest), with Docker Hub's names filled in (`debian` is
    /// `registry-1.docker.io`, `library/debian`). The one place kiln splits a reference.
    pub fn pull_target(&self) -> (String, String, String) {
        let reference = match (self.digest(), self.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        let registry = match self.domain() {
            None | Some("docker.io") | Some("index.docker.io") => "registry-1.docker.io",
            Some(d) => d,
        };
        let repo = self.repository();
        let repo = if registry == "registry-1.docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        (registry.to_string(), repo, reference)
    }

    /// `REGISTRY/PREFIX/SELF`: the name the image has in the cluster's own registry.
    pub fn with_registry(&self, registry: &HostPort, prefix: &RepoPrefix) -> ImageRef {
        ImageRef(format!("{registry}/{prefix}/{}", self.0))
    }
}

fn looks_like_domain(c: &str) -> bool {
    c.contains('.')
        || c.contains(':')
        || c == "localhost"
        || c.bytes().any(|b| b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abs_paths() {
        assert_eq!(
            AbsPath::parse("/var/lib/etcd/").unwrap().as_str(),
            "/var/lib/etcd"
        );
        assert_eq!(AbsPath::parse("/").unwrap().as_str(), "/");
        for bad in [
            "relative", "/a/../b", "/a/./b", "/a//b", "/a b", "/a\nb", "/a%b", "/$x", "", "/a\"b",
        ] {
            assert!(AbsPath::parse(bad).is_err(), "{bad:?}");
        }
        let p = AbsPath::parse("/usr/share/zookeeper").unwrap();
        assert_eq!(
            p.join("bin/zkServer.sh").unwrap().as_str(),
            "/usr/share/zookeeper/bin/zkServer.sh"
        );
        assert_eq!(p.parent().as_str(), "/usr/share");
        assert_eq!(p.child("bin"), "/usr/share/zookeeper/bin");
        assert_eq!(AbsPath::parse("/").unwrap().child("zoo.cfg"), "/zoo.cfg");
        for sys in [
            "/",
            "/etc",
            "/tmp",
            "/usr",
            "/var",
            "/var/lib",
            "/var/log",
            "/usr/lib",
            "/usr/local/bin",
            "/proc/1",
            "/dev/shm",
            "/root",
        ] {
            assert!(AbsPath::parse(sys).unwrap().is_system_dir(), "{sys}");
        }
        for own in [
            "/var/lib/etcd",
            "/data",
            "/tmp/mesos",
            "/srv/zk/data",
            "/opt/mesos/work",
        ] {
            assert!(!AbsPath::parse(own).unwrap().is_system_dir(), "{own}");
        }
        assert_eq!(p.file_name(), "zookeeper");
    }

    #[test]
    fn image_refs() {
        for ok in [
            "calico/node:v2.6.12",
            "busybox",
            "docker.io/library/busybox:1.36",
            "localhost:5000/kiln/calico/node:v2.6.12",
            "quay.io/centos/centos:stream9",
            "a/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            assert!(ImageRef::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "calico/Node",
            "calico/node:",
            "calico/node:v1\nExecStartPost=x",
            "a b",
            "-x",
            "calico//node",
            "x:-tag",
            "a@sha256:12",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?}");
        }
        let r = ImageRef::parse("localhost:5000/kiln/calico/node:v2.6.12").unwrap();
        assert_eq!(r.domain(), Some("localhost:5000"));
        assert_eq!(r.repository(), "kiln/calico/node");
        assert_eq!(r.tag(), Some("v2.6.12"));
        assert_eq!(ImageRef::parse("calico/node").unwrap().tag(), None);
    }
}
