//! Diagnostics that point into the spec: file, line, column, the problem and the fix.

use std::fmt;
use std::ops::Range;

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

/// A dotted key path into the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    /// Parses `hosts[2].mac` / `etcd.proxy.mode`.
    pub fn parse(s: &str) -> KeyPath {
        let mut segs = Vec::new();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let (key, rest) = part.split_once('[').unwrap_or((part, ""));
            if !key.is_empty() {
                segs.push(Seg::Key(key.to_string()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
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
        }
    }
    /// Adds how to fix it.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// rustc-style: headline, `--> file:line:col`, the source line with a caret, help.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{sev}: {}", self.message)?;
        if let Some(loc) = &self.location {
            let num = loc.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad}--> {}:{}:{}", loc.file, loc.line, loc.column)?;
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {}", loc.line_text)?;
            let caret_pad: String = loc
                .line_text
                .chars()
                .take(loc.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {caret_pad}{}", "^".repeat(loc.width.max(1)))?;
            if let Some(h) = &self.help {
                writeln!(f, "{pad} = help: {h}")?;
            }
        } else if let Some(h) = &self.help {
            writeln!(f, "  = help: {h}")?;
        }
        Ok(())
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
}
