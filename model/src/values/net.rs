//! Network values: host addresses, MACs, `HOST:PORT`, URLs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use super::{quote, string_value, ValueError};

/// An IPv4 host address with its prefix length (`10.0.0.11/24`). Refuses addresses that are
/// not a host's: unspecified, broadcast, multicast, loopback, link-local, and the network and
/// broadcast address of its own subnet (except on /31 and /32, which have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostAddr {
    ip: Ipv4Addr,
    prefix: u8,
}

impl HostAddr {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<HostAddr, ValueError> {
        let Some((a, p)) = s.split_once('/') else {
            return Err(ValueError::new(
                format!("address {} has no prefix length", quote(s)),
                "write it with its prefix, e.g. \"10.0.0.11/24\"",
            ));
        };
        let ip: Ipv4Addr = a.parse().map_err(|_| {
            ValueError::new(
                format!("{} is not an IPv4 address", quote(a)),
                "write a dotted quad such as \"10.0.0.11/24\"",
            )
        })?;
        let prefix = p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| {
                ValueError::new(
                    format!("invalid prefix length {}", quote(p)),
                    "use a prefix length from 1 to 32, e.g. /24",
                )
            })?;
        if ip.is_unspecified()
            || ip.is_broadcast()
            || ip.is_multicast()
            || ip.is_loopback()
            || ip.is_link_local()
        {
            return Err(ValueError::new(
                format!("{ip} cannot be a host address"),
                "use the host's unicast address on the cluster network",
            ));
        }
        let a = HostAddr { ip, prefix };
        if prefix < 31 {
            let net = a.network();
            if ip == net.network() {
                return Err(ValueError::new(
                    format!("{ip} is the network address of {net}, not a host address"),
                    format!(
                        "use an address between {} and {}",
                        next(net.network()),
                        prev(net.broadcast())
                    ),
                ));
            }
            if ip == net.broadcast() {
                return Err(ValueError::new(
                    format!("{ip} is the broadcast address of {net}, not a host address"),
                    format!(
                        "use an address between {} and {}",
                        next(net.network()),
                        prev(net.broadcast())
                    ),
                ));
            }
        }
        Ok(a)
    }
    /// The address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }
    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
    /// The subnet (host bits cleared).
    pub fn network(&self) -> ipnet::Ipv4Net {
        ipnet::Ipv4Net::new(self.ip, self.prefix)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| ipnet::Ipv4Net::default())
    }
}

fn next(a: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a).saturating_add(1))
}
fn prev(a: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(a).saturating_sub(1))
}

impl FromStr for HostAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        HostAddr::parse(s)
    }
}
impl fmt::Display for HostAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}
impl serde::Serialize for HostAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A NIC's MAC address, unicast and not all-zero; shown lowercase with colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-…`, any case.
    pub fn parse(s: &str) -> Result<MacAddr, ValueError> {
        let help = "a MAC address is six two-digit hex octets, like 52:54:00:12:34:56";
        let bad = || ValueError::new(format!("invalid MAC address {}", quote(s)), help);
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(bad());
        }
        let mut b = [0u8; 6];
        for (o, p) in b.iter_mut().zip(&parts) {
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if b[0] & 1 == 1 {
            return Err(ValueError::new(
                format!("invalid MAC address {}", quote(s)),
                "this is a multicast MAC (lowest bit of the first octet set); a NIC needs a unicast one",
            ));
        }
        if b == [0; 6] {
            return Err(ValueError::new(
                format!("invalid MAC address {}", quote(s)),
                "the all-zero MAC is not a NIC address",
            ));
        }
        Ok(MacAddr(b))
    }
    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
    /// `aa-bb-cc-dd-ee-ff` (pxelinux and GRUB file names).
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl FromStr for MacAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        MacAddr::parse(s)
    }
}
impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}
impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A host: a DNS name (letters, digits, `-`, `.`), an IPv4 address, or `[IPv6]`.
fn is_host(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `HOST:PORT` with a port from 1 to 65535.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort(String);
string_value!(HostPort);

impl HostPort {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<HostPort, ValueError> {
        let ok = s
            .rsplit_once(':')
            .is_some_and(|(h, p)| is_host(h) && p.parse::<u16>().is_ok_and(|p| p != 0));
        if ok {
            Ok(HostPort(s.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not HOST:PORT", quote(s)),
                "write it as e.g. \"10.0.0.10:5000\"",
            ))
        }
    }
    /// The host part.
    pub fn host(&self) -> &str {
        self.0.rsplit_once(':').map_or(&self.0, |(h, _)| h)
    }
    /// The port.
    pub fn port(&self) -> u16 {
        self.0
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0)
    }
    /// Whether the host is an IP address.
    pub fn is_ip(&self) -> bool {
        self.host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
    }
}

/// Characters allowed in a URL's path and query here: RFC 3986 unreserved, sub-delims
/// without quotes and `;`, and `/ ? % : @ =`.
fn is_url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!&()*+,=:@/?%#".contains(&b)
}

/// An `http://` or `https://` URL with a host, optional port and path; no user info,
/// whitespace, quotes or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpUrl(String);
string_value!(HttpUrl);

impl HttpUrl {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<HttpUrl, ValueError> {
        let help = "write an http(s) URL such as \"https://example.com/etcd.tar.gz\"";
        let bad = |why: &str| {
            Err(ValueError::new(
                format!("{} is not an http(s) URL: {why}", quote(s)),
                help,
            ))
        };
        let Some(rest) = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
        else {
            return bad("it does not start with http:// or https://");
        };
        if s.len() > 2048 {
            return bad("it is longer than 2048 bytes");
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return bad("user info (user@) is not allowed; give credentials another way");
        }
        let host_ok = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                if authority.starts_with('[') && !h.ends_with(']') {
                    is_host(authority)
                } else {
                    is_host(h) && p.parse::<u16>().is_ok_and(|p| p != 0)
                }
            }
            _ => is_host(authority),
        };
        if !host_ok {
            return bad("it has no valid host[:port]");
        }
        if !path.bytes().all(is_url_char) {
            return bad(
                "it contains whitespace, quotes or control characters (percent-encode them)",
            );
        }
        Ok(HttpUrl(s.to_string()))
    }
    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(s, _)| s)
    }
    fn authority(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        rest.split(['/', '?', '#']).next().unwrap_or("")
    }
    /// The host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        let a = self.authority();
        match a.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => h,
            _ => a,
        }
    }
    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        let a = self.authority();
        a.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    }
    /// The port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port()
            .unwrap_or(if self.scheme() == "https" { 443 } else { 80 })
    }
    /// Path, query and fragment (may be empty).
    pub fn path(&self) -> &str {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        &rest[self.authority().len()..]
    }
}

/// A Debian mirror: an http(s) URL or `file:///ABSOLUTE/PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MirrorUrl(String);
string_value!(MirrorUrl);

impl MirrorUrl {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<MirrorUrl, ValueError> {
        if let Some(p) = s.strip_prefix("file://") {
            return super::AbsPath::parse(p)
                .map(|_| MirrorUrl(s.to_string()))
                .map_err(|e| {
                    ValueError::new(
                        format!("{} is not a mirror URL: {}", quote(s), e.problem),
                        e.help,
                    )
                });
        }
        HttpUrl::parse(s).map(|u| MirrorUrl(u.0)).map_err(|e| {
            ValueError::new(
                e.problem,
                "use an http(s):// or file:// URL, e.g. \"http://deb.debian.org/debian\"",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_addresses() {
        assert!(HostAddr::parse("10.0.2.15/24").is_ok());
        for bad in [
            "10.0.2.0/24",
            "10.0.2.255/24",
            "127.0.0.1/8",
            "10.0.2.15",
            "10.0.2.15/33",
            "169.254.1.1/16",
            "0.0.0.0/8",
        ] {
            assert!(HostAddr::parse(bad).is_err(), "{bad}");
        }
        assert!(HostAddr::parse("10.0.2.0/31").is_ok());
        assert!(HostAddr::parse("10.0.2.255/32").is_ok());
        assert_eq!(
            HostAddr::parse("10.0.2.15/24")
                .unwrap()
                .network()
                .to_string(),
            "10.0.2.0/24"
        );
    }

    #[test]
    fn macs() {
        assert_eq!(
            MacAddr::parse("52-54-00-AB-CD-EF").unwrap().to_string(),
            "52:54:00:ab:cd:ef"
        );
        assert!(MacAddr::parse("01:00:5e:00:00:01").is_err());
        assert!(MacAddr::parse("52:54:00:ab:cd").is_err());
        assert!(MacAddr::parse("52:54:00:ab:cd:eg").is_err());
    }

    #[test]
    fn urls() {
        let u = HttpUrl::parse("http://10.0.0.1:2379").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("10.0.0.1", Some(2379), ""));
        let u =
            HttpUrl::parse("https://github.com/etcd-io/etcd/releases/download/v3.4.23/x.tar.gz")
                .unwrap();
        assert_eq!((u.host(), u.port_or_default()), ("github.com", 443));
        for bad in [
            "ftp://x",
            "http://",
            "http://a b/",
            "http://x/\n",
            "http://u@x/",
            "http://x:0/",
            "http://x/\"y",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad:?}");
        }
        assert!(HostPort::parse("10.0.0.10:5000").is_ok());
        assert!(HostPort::parse("10.0.0.10").is_err());
        assert!(MirrorUrl::parse("file:///srv/mirror").is_ok());
    }
}
