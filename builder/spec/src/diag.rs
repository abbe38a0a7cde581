//! Diagnostics that point into the spec: file, line, column, the problem and the fix.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use kiln_model::values::is_unsafe_char;
use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One segment of a key path into the spec (`hosts[2].mac`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path into the spec (`hosts[2].mac`, `mesos.agent.flags."a.b"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// Parses `hosts[2].mac` / `etcd.proxy.mode`; a segment may be a quoted key
    /// (`flags."a.b"`, with `\"` and `\\` escaped) as [`KeyPath::key`] writes it.
    pub fn parse(s: &str) -> KeyPath {
        let mut segs = Vec::new();
        let mut cur = String::new();
        let mut chars = s.chars();
        let flush = |cur: &mut String, segs: &mut Vec<Seg>| {
            if !cur.is_empty() {
                segs.push(Seg::Key(std::mem::take(cur)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '.' => flush(&mut cur, &mut segs),
                '"' if cur.is_empty() => {
                    let mut key = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => key.extend(chars.next()),
                            c => key.push(c),
                        }
                    }
                    segs.push(Seg::Key(key));
                }
                '[' => {
                    flush(&mut cur, &mut segs);
                    let idx: String = chars.by_ref().take_while(|&c| c != ']').collect();
                    if let Ok(i) = idx.parse() {
                        segs.push(Seg::Index(i));
                    }
                }
                c => cur.push(c),
            }
        }
        flush(&mut cur, &mut segs);
        KeyPath(segs)
    }

    /// `name` as one segment of a key path: itself when it is a bare TOML key (letters,
    /// digits, `_`, `-`), else quoted, so a key taken from the spec (a flag name such as
    /// `"../x"`) still locates its own entry.
    pub fn key(name: &str) -> String {
        let bare = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if bare {
            return name.to_string();
        }
        let mut out = String::with_capacity(name.len() + 2);
        out.push('"');
        for c in name.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{}", KeyPath::key(k))?,
                Seg::Key(k) => write!(f, ".{}", KeyPath::key(k))?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where in which file a diagnostic points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    #[serde(skip)]
    pub line_text: String,
    #[serde(skip)]
    pub width: usize,
}

/// A problem found in a spec.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Key path into the spec (`hosts[1].mac`), empty for the whole file.
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The value at `key` may be a secret (a password typed where its hash belongs): the
    /// source line is shown with the value masked.
    #[serde(skip)]
    pub secret: bool,
}

impl Diagnostic {
    /// An error at `key` (a path such as `hosts[1].mac`).
    pub fn error(key: &str, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, key, message)
    }
    /// A warning at `key`.
    pub fn warning(key: &str, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, key, message)
    }
    fn new(severity: Severity, key: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            message: message.into(),
            help: None,
            key: key.into(),
            location: None,
            secret: false,
        }
    }
    /// Marks the value at the key as possibly secret: [`SpecSource::attach`] masks it in the
    /// source line shown (the caret still points at it).
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    /// Adds how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// rustc-style: headline, `--> file:line:col`, the source line with a caret, help. What
    /// comes from the spec is escaped and cut (see [`terminal_text`] and [`MAX_LINE_COLUMNS`]),
    /// so a diagnostic stays a few lines of plain text whatever the file holds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{sev}: {}", terminal_text(&self.message))?;
        let help = self.help.as_deref().map(terminal_text);
        if let Some(loc) = &self.location {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            let file = escape(&loc.file, false);
            writeln!(f, "{pad}--> {file}:{}:{}", loc.line, loc.column)?;
            writeln!(f, "{pad} |")?;
            let shown = ShownLine::new(&loc.line_text, loc.column, loc.width);
            writeln!(f, "{num} | {}", shown.text)?;
            writeln!(
                f,
                "{pad} | {}{}",
                shown.caret_pad,
                "^".repeat(shown.caret_width)
            )?;
            if let Some(h) = &help {
                writeln!(f, "{pad} = help: {h}")?;
            }
        } else if let Some(h) = &help {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
    }
}

/// Widest source line shown whole under a diagnostic, in shown characters; a longer one is
/// shown as a window of this width around the caret, with `…` where it was cut.
pub const MAX_LINE_COLUMNS: usize = 120;
/// Shown characters of a cut line kept left of the caret (when the line has them).
const LEFT_CONTEXT: usize = 40;
/// Longest run of non-blank characters of a message shown whole (a pasted value, a URL).
const MAX_WORD: usize = 120;
/// Longest message shown whole, in characters.
const MAX_MESSAGE: usize = 400;

/// Whether `c` is written as an escape rather than sent to a terminal: control characters (C0
/// but tab, DEL, C1) could move the cursor or start an escape sequence, and the bidirectional,
/// zero-width and line-separator characters could make a line read differently from what the
/// parser sees. The same set as the values refuse ([`is_unsafe_char`]), so a message and the
/// source line under it show a value alike.
fn needs_escape(c: char) -> bool {
    c != '\t' && is_unsafe_char(c)
}

/// Appends `c` as shown: `\n`, `\r`, `\u{1b}` (as Rust's `{:?}` writes them), or itself.
fn push_shown(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        c if needs_escape(c) => {
            use fmt::Write;
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// How many characters `c` takes once shown.
fn shown_width(c: char) -> usize {
    if !needs_escape(c) {
        return 1;
    }
    let mut s = String::new();
    push_shown(&mut s, c);
    s.chars().count()
}

/// `s` with every control character but line breaks escaped (see `needs_escape`), nothing
/// cut: for multi-line error reports whose paths must stay whole.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let kept = |c: char| !needs_escape(c) || (keep_newlines && c == '\n');
    if s.chars().all(kept) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if kept(c) {
            out.push(c);
        } else {
            push_shown(&mut out, c);
        }
    }
    out.into()
}

/// `s` made safe and short for a terminal: words (runs without a space) longer than
/// `MAX_WORD` characters keep their start and end around `…`, a message longer than
/// `MAX_MESSAGE` is cut with `…`, and control characters are escaped. A value of a megabyte
/// echoed in a message is shown in a few hundred bytes.
pub fn terminal_text(s: &str) -> String {
    let mut cut = String::new();
    for (i, word) in s.split(' ').enumerate() {
        if i > 0 {
            cut.push(' ');
        }
        let n = word.chars().count();
        if n > MAX_WORD {
            let head = MAX_WORD * 2 / 3;
            let tail = MAX_WORD - head - 1;
            cut.extend(word.chars().take(head));
            cut.push('…');
            cut.extend(word.chars().skip(n - tail));
        } else {
            cut.push_str(word);
        }
    }
    if cut.chars().count() > MAX_MESSAGE {
        cut = cut.chars().take(MAX_MESSAGE - 1).chain(['…']).collect();
    }
    escape(&cut, false).into_owned()
}

/// A source line as shown under a diagnostic: escaped, windowed, and where its caret goes.
#[derive(Debug, PartialEq, Eq)]
struct ShownLine {
    text: String,
    /// What goes before the caret: a space per shown character, a tab under a tab (so the
    /// caret lines up whatever the terminal's tab stops).
    caret_pad: String,
    caret_width: usize,
}

impl ShownLine {
    /// `column` is 1-based in characters of `line`; `width` is the span's length in characters.
    fn new(line: &str, column: usize, width: usize) -> ShownLine {
        let chars: Vec<char> = line.chars().collect();
        let widths: Vec<usize> = chars.iter().map(|&c| shown_width(c)).collect();
        let at = column.saturating_sub(1).min(chars.len());
        let (mut start, mut end) = (0, chars.len());
        if widths.iter().sum::<usize>() > MAX_LINE_COLUMNS {
            // Up to LEFT_CONTEXT before the caret, then as much as fits after it; if the line
            // ends first, the rest of the budget goes back to the left.
            let mut used = 0;
            start = at;
            while start > 0 && used + widths[start - 1] <= LEFT_CONTEXT {
                start -= 1;
                used += widths[start];
            }
            end = start;
            used = 0;
            while end < chars.len() && used + widths[end] <= MAX_LINE_COLUMNS {
                used += widths[end];
                end += 1;
            }
            while start > 0 && used + widths[start - 1] <= MAX_LINE_COLUMNS {
                start -= 1;
                used += widths[start];
            }
        }
        let mut text = String::new();
        let mut caret_pad = String::new();
        if start > 0 {
            text.push('…');
            caret_pad.push(' ');
        }
        for &c in &chars[start..end] {
            push_shown(&mut text, c);
        }
        if end < chars.len() {
            text.push('…');
        }
        for (&c, &w) in chars[start..at.max(start)].iter().zip(&widths[start..]) {
            if c == '\t' {
                caret_pad.push('\t');
            } else {
                caret_pad.push_str(&" ".repeat(w));
            }
        }
        let span_end = at.saturating_add(width).min(end);
        let caret_width = widths[at.min(span_end)..span_end]
            .iter()
            .sum::<usize>()
            .max(1);
        ShownLine {
            text,
            caret_pad,
            caret_width,
        }
    }
}

/// The text of a spec and the name to show for it.
#[derive(Debug, Clone)]
pub struct SpecSource {
    /// Shown in diagnostics (`cluster.toml`, `<built-in demo>`).
    pub name: String,
    pub text: String,
}

impl SpecSource {
    /// A spec from the bytes of a file named `name`. TOML is UTF-8: a file that is not is
    /// refused with a diagnostic naming the line, column and byte offset of the first invalid
    /// byte (shown as `\xNN`) and how to fix it.
    pub fn from_bytes(
        name: impl Into<String>,
        bytes: Vec<u8>,
    ) -> Result<SpecSource, Box<Diagnostic>> {
        let name = name.into();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SpecSource { name, text }),
            Err(e) => Err(Box::new(not_utf8(name, e.as_bytes(), e.utf8_error()))),
        }
    }

    /// Line/column of a byte range of the text.
    pub fn locate(&self, span: Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = self.text[start..end].chars().count();
        Location {
            file: self.name.clone(),
            line,
            column,
            line_text: self.text[line_start..line_end]
                .trim_end_matches('\r')
                .to_string(),
            width,
        }
    }

    /// Attaches a location to each diagnostic from its key path.
    pub fn attach(&self, diags: &mut [Diagnostic]) {
        let doc = toml_edit::ImDocument::parse(self.text.as_str()).ok();
        for d in diags.iter_mut().filter(|d| d.location.is_none()) {
            let span = doc
                .as_ref()
                .and_then(|doc| span_of(doc, &KeyPath::parse(&d.key)));
            d.location = Some(match span {
                Some(s) if d.secret => mask(self.locate(s)),
                Some(s) => self.locate(s),
                // No key in the file (a missing table or a whole-spec problem): point at line 1.
                None => {
                    let mut l = self.locate(0..0);
                    l.width = l.line_text.chars().count();
                    l
                }
            });
        }
    }
}

/// `loc` with the characters of its span written as `*` (a quoted value keeps its quotes).
fn mask(mut loc: Location) -> Location {
    let start = loc.column.saturating_sub(1);
    let end = start + loc.width;
    let chars: Vec<char> = loc.line_text.chars().collect();
    let quoted = |i: usize| {
        loc.width >= 2 && (i == start || i + 1 == end) && matches!(chars.get(i), Some('"' | '\''))
    };
    loc.line_text = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (start..end).contains(&i) && !quoted(i) {
                '*'
            } else {
                c
            }
        })
        .collect();
    loc
}

/// The diagnostic for a file that is not UTF-8, pointing at the first invalid byte.
fn not_utf8(file: String, bytes: &[u8], e: std::str::Utf8Error) -> Diagnostic {
    let offset = e.valid_up_to();
    // `None`: the file ends inside a character.
    let bad_len = e.error_len().unwrap_or(bytes.len() - offset);
    let line_start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| offset + i);
    let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
    // Everything before `offset` is valid UTF-8.
    let before = String::from_utf8_lossy(&bytes[line_start..offset]);
    let bad: String = bytes[offset..offset + bad_len]
        .iter()
        .map(|b| format!("\\x{b:02x}"))
        .collect();
    let after = String::from_utf8_lossy(&bytes[offset + bad_len..line_end]);
    let column = before.chars().count() + 1;
    let location = Location {
        file,
        line,
        column,
        width: bad.chars().count(),
        line_text: format!("{before}{bad}{}", after.trim_end_matches('\r')),
    };
    let mut d = Diagnostic::error(
        "",
        format!(
            "the spec is not valid UTF-8: {bad} at byte offset {offset} (line {line}, column \
             {column}) is not a UTF-8 character"
        ),
    )
    .help(
        "save the file as UTF-8 (TOML files are always UTF-8), e.g. \
         `iconv -f LATIN1 -t UTF-8 old.toml > cluster.toml`",
    );
    d.location = Some(location);
    d
}

enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl SpecSource {
    /// Whether the spec text sets `key` (a path such as `zookeeper.client_port`) itself.
    pub fn has_key(&self, key: &str) -> bool {
        toml_edit::ImDocument::parse(self.text.as_str())
            .ok()
            .is_some_and(|doc| lookup(&doc, &KeyPath::parse(key)).1)
    }
}

/// The span of the deepest part of `path` that exists in the document.
fn span_of(doc: &toml_edit::ImDocument<&str>, path: &KeyPath) -> Option<Range<usize>> {
    lookup(doc, path).0
}

/// The span of the deepest part of `path` that exists, and whether all of it exists.
fn lookup(doc: &toml_edit::ImDocument<&str>, path: &KeyPath) -> (Option<Range<usize>>, bool) {
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for seg in &path.0 {
        let next = match (seg, &node) {
            (Seg::Key(k), Node::Table(t)) => t
                .get_key_value(k)
                .map(|(key, it)| (key.span(), Node::Item(it))),
            (Seg::Key(k), Node::Item(i)) => i
                .as_table_like()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, it)| (key.span(), Node::Item(it))),
            (Seg::Key(k), Node::Value(v)) => v
                .as_inline_table()
                .and_then(|t| t.get_key_value(k))
                .map(|(key, it)| (key.span(), Node::Item(it))),
            (Seg::Index(n), Node::Item(toml_edit::Item::ArrayOfTables(a))) => {
                a.get(*n).map(|t| (t.span(), Node::Table(t)))
            }
            (Seg::Index(n), Node::Item(toml_edit::Item::Value(toml_edit::Value::Array(a))))
            | (Seg::Index(n), Node::Value(toml_edit::Value::Array(a))) => {
                a.get(*n).map(|v| (v.span(), Node::Value(v)))
            }
            _ => None,
        };
        let Some((key_span, n)) = next else {
            return (best, false);
        };
        let own = match &n {
            Node::Item(toml_edit::Item::Value(v)) => v.span(),
            Node::Value(v) => v.span(),
            _ => None,
        };
        best = own.or(key_span).or(best);
        node = n;
    }
    (best, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys() {
        let src = SpecSource {
            name: "c.toml".into(),
            text: "[cluster]\nname = \"x\"\n\n[[hosts]]\nname = \"a\"\n\n[[hosts]]\nname = \"b\"\nmac = \"zz\"\n"
                .into(),
        };
        let mut d = [Diagnostic::error("hosts[1].mac", "bad mac")];
        src.attach(&mut d);
        let loc = d[0].location.clone().unwrap();
        assert_eq!((loc.line, loc.column, loc.width), (9, 7, 4));
        assert_eq!(KeyPath::parse("hosts[1].mac").to_string(), "hosts[1].mac");
    }

    #[test]
    fn zero_width_and_separator_characters_are_escaped_in_the_line() {
        for (c, esc) in [
            ('\u{200b}', "\\u{200b}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{2028}', "\\u{2028}"),
        ] {
            let d = located(
                &format!("[cluster]\nname = \"{c}x\"\n"),
                "cluster.name",
                "bad",
            );
            let (line, caret_line) = shown(&d);
            assert_eq!(line, format!("name = \"{esc}x\""));
            assert_eq!(caret(&caret_line), (7, esc.len() + 3), "{line}");
        }
    }

    #[test]
    fn locates_quoted_keys() {
        // A flag name from the spec holding dots, quotes and brackets still finds its entry.
        for name in [
            "../../etc/cron.d/x",
            "a\"b",
            "x[0]",
            "a\\b",
            "hostname_lookup",
        ] {
            let key = format!("mesos.master.flags.{}", KeyPath::key(name));
            let path = KeyPath::parse(&key);
            assert_eq!(path.0.last(), Some(&Seg::Key(name.to_string())), "{key}");
            assert_eq!(path.0.len(), 4, "{key}");
            assert_eq!(path.to_string(), key);
        }
        let text =
            "[cluster]\nname = \"x\"\n\n[mesos.master.flags]\n\"../../etc/cron.d/x\" = \"x\"\n";
        let d = located(
            text,
            &format!("mesos.master.flags.{}", KeyPath::key("../../etc/cron.d/x")),
            "bad",
        );
        let loc = d.location.unwrap();
        assert_eq!((loc.line, loc.column, loc.width), (5, 24, 3));
        assert_eq!(
            KeyPath::parse("hosts[2].dns[0]").0,
            vec![
                Seg::Key("hosts".into()),
                Seg::Index(2),
                Seg::Key("dns".into()),
                Seg::Index(0)
            ]
        );
    }

    /// The line and caret lines of a displayed diagnostic.
    fn shown(d: &Diagnostic) -> (String, String) {
        let text = d.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let strip = |l: &str| l.split_once(" | ").map(|(_, r)| r.to_string()).unwrap();
        (strip(lines[3]), strip(lines[4]))
    }

    fn located(text: &str, key: &str, message: &str) -> Diagnostic {
        let src = SpecSource {
            name: "c.toml".into(),
            text: text.into(),
        };
        let mut d = [Diagnostic::error(key, message)];
        src.attach(&mut d);
        d[0].clone()
    }

    /// Where the caret starts and how wide it is, in characters of the shown line.
    fn caret(caret_line: &str) -> (usize, usize) {
        let start = caret_line.chars().take_while(|&c| c != '^').count();
        (start, caret_line.chars().filter(|&c| c == '^').count())
    }

    #[test]
    fn control_characters_are_escaped_and_the_caret_follows() {
        // Raw control characters are not TOML: the parser's error points into such a line.
        let text = "[cluster]\nname = \"a\\u001b[31mred\"\ndomain = \"\x1b]0;x\x07\" # \x1b[2J\n";
        let src = SpecSource {
            name: "c\x1b[1m.toml".into(),
            text: text.into(),
        };
        let start = text.find("\"\x1b]").unwrap();
        let mut d = Diagnostic::error("cluster.domain", "bad domain \"\x1b]0;x\x07\"");
        d.location = Some(src.locate(start..start + 8));
        let text = d.to_string();
        assert!(!text.bytes().any(|b| b < 0x20 && b != b'\n'), "{text:?}");
        assert!(
            text.starts_with("error: bad domain \"\\u{1b}]0;x\\u{7}\""),
            "{text}"
        );
        let (line, caret_line) = shown(&d);
        assert_eq!(line, r#"domain = "\u{1b}]0;x\u{7}" # \u{1b}[2J"#);
        let (at, width) = caret(&caret_line);
        let under: String = line.chars().skip(at).take(width).collect();
        assert_eq!(under, r#""\u{1b}]0;x\u{7}""#);
    }

    #[test]
    fn a_secret_value_is_masked_in_the_line_and_the_caret_stays() {
        let src = SpecSource {
            name: "c.toml".into(),
            text: "[access]\nroot_password_hash = \"hunter2\" # x\n".into(),
        };
        let mut d = [Diagnostic::error("access.root_password_hash", "m").secret()];
        src.attach(&mut d);
        let shown = d[0].to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("root_password_hash = \"*******\" # x"),
            "{shown}"
        );
        assert!(shown.contains("c.toml:2:22"), "{shown}");
        assert!(shown.contains("                     ^^^^^^^^^"), "{shown}");
    }

    #[test]
    fn a_tab_stays_a_tab_in_line_and_caret() {
        let d = located("[cluster]\n\tname = \"x\"\n", "cluster.name", "bad");
        let (line, caret_line) = shown(&d);
        assert_eq!(line, "\tname = \"x\"");
        assert_eq!(caret_line, "\t       ^^^");
    }

    #[test]
    fn a_long_line_is_a_window_around_the_caret() {
        let line = format!(
            "name = \"{}\" # {}",
            "a".repeat(200) + "TARGET" + &"b".repeat(300),
            "c".repeat(100)
        );
        let src = SpecSource {
            name: "c.toml".into(),
            text: format!("[cluster]\n{line}\n"),
        };
        let start = line.find("TARGET").unwrap();
        let mut d = Diagnostic::error("cluster.name", "bad");
        d.location = Some(src.locate(10 + start..10 + start + 6));
        let (shown_line, caret_line) = shown(&d);
        assert!(
            shown_line.starts_with('…') && shown_line.ends_with('…'),
            "{shown_line}"
        );
        assert_eq!(shown_line.chars().count(), MAX_LINE_COLUMNS + 2);
        let (at, width) = caret(&caret_line);
        assert_eq!(width, 6);
        let under: String = shown_line.chars().skip(at).take(width).collect();
        assert_eq!(under, "TARGET");
        assert_eq!(at, 1 + LEFT_CONTEXT);
    }

    #[test]
    fn the_window_fills_leftwards_at_the_end_of_a_line() {
        let s = ShownLine::new(&format!("{}X", "a".repeat(300)), 301, 1);
        assert_eq!(s.text.chars().count(), MAX_LINE_COLUMNS + 1);
        assert!(s.text.starts_with('…') && s.text.ends_with('X'));
        assert_eq!(s.caret_pad.len() + 1, s.text.chars().count());
        let short = ShownLine::new("abc", 4, 0);
        assert_eq!((short.caret_pad.as_str(), short.caret_width), ("   ", 1));
    }

    #[test]
    fn a_megabyte_value_gives_a_short_diagnostic() {
        let value = "x".repeat(1 << 20);
        let d = located(
            &format!("[cluster]\nname = \"{value}\"\n"),
            "cluster.name",
            &format!("invalid cluster name {value:?}"),
        )
        .help(format!("use a DNS label, not {value}"));
        let text = d.to_string();
        assert!(text.len() < 1000, "{} bytes:\n{text}", text.len());
        assert!(text.contains("--> c.toml:2:8"), "{text}");
        assert!(text.contains("invalid cluster name \"xxx") && text.contains("xxx\""));
        let (line, caret_line) = shown(&d);
        assert!(
            line.starts_with("name = \"xxx") && line.ends_with('…'),
            "{line}"
        );
        assert_eq!(caret(&caret_line), (7, MAX_LINE_COLUMNS - 7));
    }

    #[test]
    fn long_words_keep_their_start_and_end() {
        let url = format!("https://example.invalid/{}/etcd.tar.gz", "d".repeat(300));
        let t = terminal_text(&format!("cannot fetch {url}: 404"));
        assert!(
            t.starts_with("cannot fetch https://example.invalid/ddd"),
            "{t}"
        );
        assert!(t.ends_with("ddd/etcd.tar.gz: 404"), "{t}");
        assert!(t.contains('…') && t.chars().count() < 150, "{t}");
        let short = "a normal message with \"quotes\" and a\ttab";
        assert_eq!(terminal_text(short), short);
        assert_eq!(escape_controls("two\nlines\x1b[0m"), "two\nlines\\u{1b}[0m");
        assert!(terminal_text(&"word ".repeat(1000)).chars().count() <= MAX_MESSAGE);
    }

    #[test]
    fn a_file_that_is_not_utf8_is_located() {
        let mut bytes = b"[cluster]\nname = \"x\"\n# caf".to_vec();
        bytes.extend([0xe9, b' ', b'!', b'\n', b'\n']);
        let d = SpecSource::from_bytes("latin1.toml", bytes).unwrap_err();
        let loc = d.location.clone().unwrap();
        assert_eq!((loc.line, loc.column, loc.width), (3, 6, 4));
        assert!(
            d.message.contains("at byte offset 26 (line 3, column 6)"),
            "{}",
            d.message
        );
        assert!(d.message.contains("\\xe9"), "{}", d.message);
        assert!(d
            .help
            .as_deref()
            .unwrap()
            .contains("save the file as UTF-8"));
        let (line, caret_line) = shown(&d);
        assert_eq!(line, "# caf\\xe9 !");
        assert_eq!(caret_line, "     ^^^^");
        // A file that ends inside a character.
        let d = SpecSource::from_bytes("cut.toml", b"a = 1\n\xe2\x82".to_vec()).unwrap_err();
        let loc = d.location.unwrap();
        assert_eq!(
            (loc.line, loc.column, loc.line_text.as_str()),
            (2, 1, "\\xe2\\x82")
        );
        assert!(SpecSource::from_bytes("ok.toml", "é = 1".into()).is_ok());
    }
}
