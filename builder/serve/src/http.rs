//! The HTTP/1.1 subset `kiln serve` speaks: one request per connection (`Connection:
//! close`), `GET` and `HEAD`, a single byte range, `If-None-Match`.

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target's path, percent-decoded, query dropped; always starts with `/`.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// Where the request head in `buf` ends (the index after its empty line), once it has
/// arrived whole; empty lines before the request line are skipped (RFC 9112 §2.2).
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let start = buf.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let mut at = start;
    while let Some(i) = buf[at..].iter().position(|b| *b == b'\n') {
        let nl = at + i;
        // A line that is empty, or only `\r`, ends the head.
        match buf.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => at = nl + 1,
        }
    }
    None
}

/// Parses a whole request head (as [`head_end`] delimits it).
pub fn parse_request(head: &[u8]) -> Result<Request, BadRequest> {
    if head.len() > MAX_HEAD {
        return Err(BadRequest("request head too large".into()));
    }
    let mut lines = Vec::new();
    for line in head.split(|b| *b == b'\n') {
        let mut line = line;
        while let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerated before the request line (RFC 9112 §2.2)
            }
            break;
        }
        match std::str::from_utf8(line) {
            Ok(l) => lines.push(l.to_string()),
            Err(_) => return Err(BadRequest("request head is not UTF-8".into())),
        }
    }
    if lines.is_empty() {
        return Err(BadRequest("empty request head".into()));
    }
    parse_head(&lines)
}

fn parse_head(lines: &[String]) -> Result<Request, BadRequest> {
    let bad = |m: &str| Err(BadRequest(m.into()));
    let mut parts = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad("malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return bad("only HTTP/1.x is served");
    }
    // Absolute form (`GET http://host/path`) is allowed by HTTP/1.1.
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !target.starts_with('/') {
        return bad("the request target is not a path");
    }
    let raw = target.split(['?', '#']).next().unwrap_or("/");
    let Some(path) = percent_decode(raw) else {
        return bad("malformed percent-encoding in the path");
    };
    let mut headers = Vec::new();
    for l in &lines[1..] {
        let Some((n, v)) = l.split_once(':') else {
            return bad("malformed header line");
        };
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path,
        headers,
    })
}

/// `%XX` decoded; `None` for a malformed escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// What a `Range` header asks of a resource of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable range: the whole resource (no header, another unit, several ranges).
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range no byte of the resource satisfies, or a reversed one: 416.
    Unsatisfiable,
}

/// Interprets `Range: bytes=…` for a resource of `len` bytes (one range; several are served
/// whole, which HTTP allows).
pub fn range(header: Option<&str>, len: u64) -> RangeAsk {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Unsatisfiable;
    };
    // `1*DIGIT`, of any length (RFC 9110 §14.1.1). A number beyond u64 saturates: as a
    // last-pos it means "to the end" (§14.1.2: a last-pos at or beyond the representation's
    // length is replaced by length - 1; a client may ask for the rest without knowing the
    // length), as a suffix-length "all of it" (a suffix longer than the representation
    // selects the whole), and as a first-pos it is beyond any representation: 416.
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) | None => RangeAsk::Unsatisfiable,
            Some(_) if len == 0 => RangeAsk::Unsatisfiable,
            Some(n) => RangeAsk::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        // bytes=A-
        (false, true) => match num(a) {
            Some(s) if s < len => RangeAsk::Part {
                start: s,
                end: len - 1,
            },
            _ => RangeAsk::Unsatisfiable,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if s <= e && s < len => RangeAsk::Part {
                start: s,
                end: e.min(len - 1),
            },
            _ => RangeAsk::Unsatisfiable,
        },
        (true, true) => RangeAsk::Unsatisfiable,
    }
}

/// `s` as one field of a log line: every byte outside printable ASCII (control bytes such as
/// newline and ESC, and all non-ASCII, which holds the C1 controls and bidirectional
/// overrides), the space (the field separator) and `%` itself written `%XX`. A request
/// therefore cannot write a second line, move the terminal's cursor or shift the fields
/// after it; the result reads like the URL it came from and decodes back unambiguously.
pub fn log_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `If-None-Match: header` matches `etag` (weak comparison, `*` matches).
pub fn none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(h) = header else {
        return false;
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    h.split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// The reason phrase of `status`.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range(None, 10), RangeAsk::Whole);
        assert_eq!(
            range(Some("bytes=0-3"), 10),
            RangeAsk::Part { start: 0, end: 3 }
        );
        assert_eq!(
            range(Some("bytes=5-"), 10),
            RangeAsk::Part { start: 5, end: 9 }
        );
        assert_eq!(
            range(Some("bytes=-3"), 10),
            RangeAsk::Part { start: 7, end: 9 }
        );
        assert_eq!(
            range(Some("bytes=-30"), 10),
            RangeAsk::Part { start: 0, end: 9 }
        );
        assert_eq!(
            range(Some("bytes=8-99"), 10),
            RangeAsk::Part { start: 8, end: 9 }
        );
        assert_eq!(range(Some("bytes=10-"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=5-2"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=x-2"), 10), RangeAsk::Unsatisfiable);
        assert_eq!(range(Some("bytes=0-1,4-5"), 10), RangeAsk::Whole);
        assert_eq!(range(Some("items=0-1"), 10), RangeAsk::Whole);
    }

    #[test]
    fn range_end_beyond_u64_means_to_the_end() {
        // RFC 9110 §14.1.2.
        let to_end = RangeAsk::Part { start: 0, end: 9 };
        assert_eq!(range(Some("bytes=0-99999999999999999999"), 10), to_end);
        assert_eq!(range(Some("bytes=0-18446744073709551615"), 10), to_end);
        assert_eq!(range(Some("bytes=-99999999999999999999"), 10), to_end);
        assert_eq!(
            range(Some("bytes=3-99999999999999999999999999999999"), 10),
            RangeAsk::Part { start: 3, end: 9 }
        );
        for beyond in [
            "bytes=99999999999999999999-",
            "bytes=99999999999999999999-99999999999999999999",
            "bytes=18446744073709551615-",
        ] {
            assert_eq!(range(Some(beyond), 10), RangeAsk::Unsatisfiable, "{beyond}");
        }
        assert_eq!(
            range(Some("bytes=0-99999999999999999999"), u64::MAX),
            RangeAsk::Part {
                start: 0,
                end: u64::MAX - 1
            }
        );
    }

    #[test]
    fn log_escape_leaves_no_control_byte_and_no_space() {
        assert_eq!(log_escape("/pxe/boot.ipxe"), "/pxe/boot.ipxe");
        assert_eq!(log_escape("/a\nGET /b"), "/a%0AGET%20/b");
        assert_eq!(log_escape("\x1b[2J\r\t\x7f%"), "%1B[2J%0D%09%7F%25");
        // C1 CSI and a right-to-left override, byte by byte.
        assert_eq!(log_escape("\u{9b}\u{202e}"), "%C2%9B%E2%80%AE");
    }

    #[test]
    fn heads() {
        let raw = b"\r\nGET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1\r\n\r\nbody";
        let end = head_end(raw).unwrap();
        assert_eq!(&raw[end..], b"body");
        let r = parse_request(&raw[..end]).unwrap();
        assert_eq!(r.path, "/a b");
        assert_eq!(r.header("range"), Some("bytes=0-1"));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nx"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\n"), None);
        assert!(parse_request(b"GET /%zz HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_request(b"GET / HTTP/2\r\n\r\n").is_err());
        assert!(parse_request(b"GET /\xff HTTP/1.1\r\n\r\n").is_err());
        assert!(none_match(Some("\"a\", W/\"b\""), "\"b\""));
        assert!(!none_match(Some("\"a\""), "\"b\""));
    }
}
