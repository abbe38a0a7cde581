//! The shape of a rendered file, read with small independent parsers (not kiln's code): the
//! kind comes from the path, the parser from the kind, and the shape is what a spec value must
//! not change — keys, line count, fields, arguments, quotes and specifiers. Used by the
//! property test over spec values (`fast/spec_value_props.rs`).

use std::collections::{BTreeMap, BTreeSet};

use kiln_layers::{EntryKind, FileTree};
use kiln_pipeline::components::Rendered;

/// Characters that must never reach a rendered file: controls (but newline and, in
/// `/etc/hosts`, tab) and the bidi/zero-width characters that make a line read differently.
pub fn is_hidden(c: char, tab_ok: bool) -> bool {
    (c.is_control() && c != '\n' && !(tab_ok && c == '\t'))
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The kind of a rendered file, from its path.
pub fn kind_of(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or("");
    let parent = &path[..path.len() - name.len()];
    if name == "myid" {
        "myid"
    } else if name == "zoo.cfg" {
        "properties"
    } else if path == "/etc/hosts" {
        "hosts"
    } else if path == "/etc/hostname" {
        "hostname"
    } else if name.ends_with(".json") || name == "calico.conf" || name == "calico.cni" {
        "json"
    } else if name.ends_with(".xml") {
        "xml"
    } else if parent == "/usr/lib/tmpfiles.d/" {
        "tmpfiles"
    } else if parent == "/usr/lib/sysusers.d/" {
        "sysusers"
    } else if name.ends_with(".env") {
        "env"
    } else if parent == "/etc/mesos-master/"
        || parent == "/etc/mesos-slave/"
        || parent == "/etc/mesos-agent/"
        || path == "/etc/mesos/zk"
    {
        "flag"
    } else if parent == "/etc/systemd/system/" {
        "unit"
    } else {
        "other"
    }
}

/// The shape of one file: kind plus what a value must not change. `Err` when it does not
/// parse as its kind.
pub fn shape(path: &str, data: &[u8]) -> Result<String, String> {
    let kind = kind_of(path);
    let text = std::str::from_utf8(data).map_err(|e| format!("not UTF-8: {e}"))?;
    if let Some(c) = text.chars().find(|&c| is_hidden(c, kind == "hosts")) {
        return Err(format!("holds {c:?}"));
    }
    if !text.ends_with('\n') {
        return Err("no trailing newline".into());
    }
    let lines = text.lines().count();
    let body = || {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    };
    let count = |s: &str, set: &str| s.chars().filter(|c| set.contains(*c)).count();
    let detail: Vec<String> = match kind {
        "unit" => unit_shape(text)?,
        "env" => body()
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| format!("not KEY=VALUE: {l:?}"))?;
                let ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(format!("bad key {k:?}"));
                }
                Ok(format!("{k} quotes={}", count(v, "\"'\\$`")))
            })
            .collect::<Result<_, String>>()?,
        "properties" => body()
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .ok_or_else(|| format!("not key=value: {l:?}"))?;
                Ok(format!("{k} escapes={}", count(v, "\\")))
            })
            .collect::<Result<_, String>>()?,
        "flag" | "myid" | "hostname" => {
            if lines != 1 || text.trim().is_empty() {
                return Err(format!("{lines} lines, expected one non-empty line"));
            }
            Vec::new()
        }
        "json" => {
            let v: serde_json::Value =
                serde_json::from_str(text).map_err(|e| format!("JSON: {e}"))?;
            let mut keys = Vec::new();
            json_keys(&v, "", &mut keys);
            keys
        }
        "tmpfiles" | "hosts" => body()
            .map(|l| {
                format!(
                    "fields={} specifiers={}",
                    l.split_whitespace().count(),
                    count(l, "%\\")
                )
            })
            .collect(),
        "sysusers" => body()
            .map(|l| {
                Ok(format!(
                    "fields={} specifiers={}",
                    quoted_fields(l)?,
                    count(l, "%\\")
                ))
            })
            .collect::<Result<_, String>>()?,
        // XML is parsed by Python at the end (see `xml_shapes`).
        _ => Vec::new(),
    };
    Ok(format!("{kind} lines={lines} {}", detail.join(" | ")))
}

/// Keys and lines of a unit: `[Section]`, `Key=Value` (a trailing `\` continues the line);
/// per line the number of arguments and of characters systemd interprets.
fn unit_shape(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut logical = String::new();
    for line in text.lines() {
        if logical.is_empty() && (line.trim().is_empty() || line.starts_with(['#', ';'])) {
            continue;
        }
        if let Some(rest) = line.strip_suffix('\\') {
            logical.push_str(rest);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            out.push(format!("[{s}]"));
            continue;
        }
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("not Key=Value in [{section}]: {l:?}"))?;
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("bad key {k:?} in [{section}]"));
        }
        let special = v.chars().filter(|c| "\"'\\%$;`".contains(*c)).count();
        out.push(format!(
            "{k} args={} special={special}",
            v.split_whitespace().count()
        ));
    }
    if !logical.is_empty() {
        return Err("a continuation at the end".into());
    }
    Ok(out)
}

/// Fields of a sysusers.d line; a `"…"` field may hold spaces.
fn quoted_fields(line: &str) -> Result<usize, String> {
    let mut n = 0;
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').ok_or("unclosed quote")?;
            rest = &r[end + 1..];
        } else {
            rest = rest.trim_start_matches(|c: char| !c.is_whitespace());
        }
        n += 1;
        rest = rest.trim_start();
    }
    Ok(n)
}

fn json_keys(v: &serde_json::Value, at: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{at}.{k}");
                out.push(p.clone());
                json_keys(v, &p, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                json_keys(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Shapes of a tree's files and symlinks (directories come and go with paths), sorted: a path
/// value may move a file, so files are compared as a multiset of shapes.
pub fn tree_shapes(tree: &FileTree) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (path, e) in tree.iter() {
        match &e.kind {
            EntryKind::File(data) => {
                out.push(shape(path, data).map_err(|e| format!("{path}: {e}"))?);
            }
            EntryKind::Symlink(_) => out.push("symlink".into()),
            _ => {}
        }
    }
    out.sort();
    Ok(out)
}

/// Shapes of every profile (by name) and every identity tree (sorted: a host name orders them).
#[derive(Debug, PartialEq, Eq)]
pub struct Shapes {
    pub profiles: BTreeMap<String, Vec<String>>,
    pub hosts: Vec<Vec<String>>,
}

pub fn shapes(r: &Rendered) -> Result<Shapes, String> {
    let mut profiles = BTreeMap::new();
    for (name, tree) in &r.profiles {
        profiles.insert(name.clone(), tree_shapes(tree)?);
    }
    let mut hosts = r
        .hosts
        .values()
        .map(tree_shapes)
        .collect::<Result<Vec<_>, _>>()?;
    hosts.sort();
    Ok(Shapes { profiles, hosts })
}

/// What differs between two shape lists, for a readable failure.
pub fn diff(a: &[String], b: &[String]) -> String {
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
    let only_a: Vec<_> = a.difference(&b).collect();
    let only_b: Vec<_> = b.difference(&a).collect();
    format!("plain only: {only_a:#?}\nthis value only: {only_b:#?}")
}
