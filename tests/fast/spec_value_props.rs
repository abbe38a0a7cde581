//! Property test over spec values (issue 7): arbitrary text — control characters, newlines,
//! spaces, quotes, `%`, `$`, path tricks, unicode, very long values — put into any
//! string-typed key of `fixtures/specs/props.toml` (every such key is set there, flag names
//! included) either gets the spec refused with every diagnostic located (file, line, column)
//! and printable on a terminal, or renders, and then every rendered file parses with an
//! independent parser and has the shape (keys, line count, fields, arguments) of the same file
//! rendered from the plain spec: a value can change what a line says, never how many lines,
//! keys, fields or arguments there are.
//!
//! Parsers (in `common/shapes.rs`), by kind: systemd units (`[Section]` and `Key=Value` lines,
//! continuations joined; the shape counts each line's arguments and its quotes, `%` specifiers
//! and `$` variables), env files (`KEY=VALUE`), Mesos flag files (exactly one line), JSON
//! (serde_json), XML (Python's `xml.etree`, one batched call at the end), tmpfiles.d,
//! sysusers.d and `/etc/hosts` (whitespace-separated fields), `zoo.cfg` (`key=value`).
//!
//! `PROPTEST_CASES` sets the cases per key (default 64); a failure prints the shrunk value.

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::sync::Mutex;

use kiln_layers::EntryKind;
use kiln_pipeline::components::{self, Rendered};
use kiln_pipeline::diag::{Diagnostic, Severity, SpecSource};
use kiln_pipeline::validate;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use toml_edit::{DocumentMut, Item, Value};

use crate::common::shapes::{diff, is_hidden, kind_of, shapes, Shapes};
use crate::common::{fixture, proptest_cases};

/// The name diagnostics must carry.
const NAME: &str = "props.toml";

/// Cases per key unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 64;

// ---------------------------------------------------------------------------------------
// Where the strings are

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A string in the spec: a value, or (`name`) the name of a free-form flag.
#[derive(Debug, Clone)]
struct Target {
    path: Vec<Seg>,
    name: bool,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.path.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        if self.name {
            write!(f, " (its name)")?;
        }
        Ok(())
    }
}

/// Every string value of the document, and the name of every entry of a `flags` table.
fn targets(doc: &DocumentMut) -> Vec<Target> {
    let mut out = Vec::new();
    walk_table(doc.as_table(), &mut Vec::new(), &mut out);
    out
}

fn walk_table(t: &dyn toml_edit::TableLike, path: &mut Vec<Seg>, out: &mut Vec<Target>) {
    let is_flags = matches!(path.last(), Some(Seg::Key(k)) if k == "flags");
    for (k, item) in t.iter() {
        path.push(Seg::Key(k.to_string()));
        if is_flags {
            out.push(Target {
                path: path.clone(),
                name: true,
            });
        }
        walk_item(item, path, out);
        path.pop();
    }
}

fn walk_item(item: &Item, path: &mut Vec<Seg>, out: &mut Vec<Target>) {
    match item {
        Item::Table(t) => walk_table(t, path, out),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk_table(t, path, out);
                path.pop();
            }
        }
        Item::Value(v) => walk_value(v, path, out),
        Item::None => {}
    }
}

fn walk_value(v: &Value, path: &mut Vec<Seg>, out: &mut Vec<Target>) {
    match v {
        Value::String(_) => out.push(Target {
            path: path.clone(),
            name: false,
        }),
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk_value(v, path, out);
                path.pop();
            }
        }
        Value::InlineTable(t) => walk_table(t, path, out),
        _ => {}
    }
}

/// The item at `path` (tables, arrays of tables, arrays and inline tables on the way).
fn item_mut<'a>(doc: &'a mut DocumentMut, path: &[Seg]) -> Option<Node<'a>> {
    let mut node = Node::Table(doc.as_table_mut());
    for seg in path {
        node = match (node, seg) {
            (Node::Table(t), Seg::Key(k)) => Node::Item(t.get_mut(k)?),
            (Node::Item(Item::Table(t)), Seg::Key(k)) => Node::Item(t.get_mut(k)?),
            (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => Node::Table(a.get_mut(*i)?),
            (Node::Item(Item::Value(v)), seg) | (Node::Value(v), seg) => match (v, seg) {
                (Value::Array(a), Seg::Index(i)) => Node::Value(a.get_mut(*i)?),
                (Value::InlineTable(t), Seg::Key(k)) => Node::Value(t.get_mut(k)?),
                _ => return None,
            },
            _ => return None,
        };
    }
    Some(node)
}

enum Node<'a> {
    Table(&'a mut toml_edit::Table),
    Item(&'a mut Item),
    Value(&'a mut Value),
}

/// The spec text with `target` set to `text`.
fn with_text(doc: &DocumentMut, target: &Target, text: &str) -> String {
    let mut doc = doc.clone();
    if target.name {
        let (last, parent) = target.path.split_last().expect("a flag has a parent");
        let Seg::Key(old) = last else {
            panic!("{target}: not a key")
        };
        let table: &mut dyn toml_edit::TableLike = match item_mut(&mut doc, parent) {
            Some(Node::Item(i)) => i.as_table_like_mut().expect("flags is a table"),
            Some(Node::Value(Value::InlineTable(t))) => t,
            _ => panic!("{target}: no table"),
        };
        let item = table.remove(old).expect("the flag exists");
        table.insert(text, item);
    } else {
        let v = match item_mut(&mut doc, &target.path) {
            Some(Node::Item(Item::Value(v))) | Some(Node::Value(v)) => v,
            _ => panic!("{target}: not a value"),
        };
        let decor = v.decor().clone();
        *v = Value::from(text);
        *v.decor_mut() = decor;
    }
    doc.to_string()
}

/// The text at `target` in `doc` (the value, or the flag's name).
fn text_at(doc: &DocumentMut, target: &Target) -> String {
    let mut doc = doc.clone();
    if target.name {
        match target.path.last() {
            Some(Seg::Key(k)) => k.clone(),
            _ => panic!("{target}: not a key"),
        }
    } else {
        match item_mut(&mut doc, &target.path) {
            Some(Node::Item(Item::Value(v))) | Some(Node::Value(v)) => {
                v.as_str().expect("a string").to_string()
            }
            _ => panic!("{target}: not a value"),
        }
    }
}

/// Whether the text written for `target` reads back as `text` (the TOML encoder escaped it).
fn reads_back(spec: &str, target: &Target, text: &str) -> bool {
    let Ok(doc) = spec.parse::<DocumentMut>() else {
        return false;
    };
    if target.name {
        let parent = &target.path[..target.path.len() - 1];
        let mut d = doc.clone();
        let keys: Vec<String> = match item_mut(&mut d, parent) {
            Some(Node::Item(i)) => i
                .as_table_like()
                .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
                .unwrap_or_default(),
            Some(Node::Value(Value::InlineTable(t))) => {
                t.iter().map(|(k, _)| k.to_string()).collect()
            }
            _ => Vec::new(),
        };
        keys.iter().any(|k| k == text)
    } else {
        text_at(&doc, target) == text
    }
}

// ---------------------------------------------------------------------------------------
// What goes in

/// Pieces that break files and command lines when they get through.
const ATOMS: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    "\0",
    "\u{1b}[31m",
    "\u{1b}]0;x\u{7}",
    "\u{7f}",
    "\u{85}",
    "\u{9b}",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "\u{2028}",
    " ",
    "\t",
    "\u{a0}",
    "\"",
    "'",
    "\\",
    "%",
    "%n",
    "%%",
    "$",
    "${IP}",
    "$(id)",
    "`id`",
    ";",
    "&",
    "|",
    "#",
    "=",
    ":",
    "@",
    "/",
    "//",
    ".",
    "..",
    "/../",
    "-",
    "--x",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    "&amp;",
    "]]>",
    "*",
    "?",
    ",",
    "é",
    "Ü",
    "ß",
    "😀",
    "x",
    "X",
    "0",
    "9",
    "_",
    "~",
    "+",
];

fn atom() -> impl Strategy<Value = &'static str> {
    prop::sample::select(ATOMS)
}

/// Arbitrary text, much of it close to `plain` (the valid value), where injections hide.
fn text_for(plain: String) -> BoxedStrategy<String> {
    let (p1, p2, p3) = (plain.clone(), plain.clone(), plain);
    prop_oneof![
        // the plain value with pieces inserted
        4 => prop::collection::vec((any::<Index>(), atom()), 1..4)
            .prop_map(move |ins| insert(&p1, &ins)),
        // the plain value with a run of characters removed or replaced
        2 => (any::<Index>(), 0usize..4, prop::option::of(atom()))
            .prop_map(move |(at, n, with)| splice(&p2, at, n, with.unwrap_or(""))),
        // pieces alone
        2 => prop::collection::vec(atom(), 0..8).prop_map(|v| v.concat()),
        // any unicode, control characters included
        1 => any::<String>(),
        // a very long value
        1 => (1usize..5000).prop_map(move |n| format!("{p3}{}", "a".repeat(n))),
    ]
    .boxed()
}

fn char_starts(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect()
}

fn insert(plain: &str, ins: &[(Index, &str)]) -> String {
    let mut s = plain.to_string();
    for (at, piece) in ins {
        let starts = char_starts(&s);
        s.insert_str(starts[at.index(starts.len())], piece);
    }
    s
}

fn splice(plain: &str, at: Index, n: usize, with: &str) -> String {
    let starts = char_starts(plain);
    let i = at.index(starts.len());
    let j = (i + n).min(starts.len() - 1);
    format!("{}{with}{}", &plain[..starts[i]], &plain[starts[j]..])
}

// ---------------------------------------------------------------------------------------
// The property

/// XML files of accepted values, each with the plain spec's file it must match in shape
/// (`None` for a choice key: only parsed).
type XmlPairs = Mutex<BTreeMap<Vec<u8>, (Option<Vec<u8>>, String)>>;

/// Keys whose value chooses behaviour (versions and closed sets): another accepted value may
/// rightly render other files (`cluster_store = ""` is "off"). For them the property is that an
/// accepted value is a plain token and every file still parses; for every other key, that the
/// files keep the plain spec's shape.
const CHOICE_KEYS: &[&str] = &[
    "version",
    "cni_version",
    "cluster_store",
    "cluster_advertise",
    "containerizers",
    "isolation",
    "backend",
    "ipip",
    "nodename",
    "variant",
    "mode",
    "roles",
    "layout",
    // `public` leaves the base's firewalld.conf alone; any other zone is made the default
    // zone in a firewalld.conf of kiln's (issue 8, item 8).
    "zone",
];

fn is_choice(target: &Target) -> bool {
    !target.name
        && target.path.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(CHOICE_KEYS.contains(&k.as_str())),
            Seg::Index(_) => None,
        }) == Some(true)
}

/// A value that can add no line, argument or field wherever it is written (empty is one:
/// `cluster_store = ""` means "off").
fn is_token(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._:/${}+~-".contains(c))
}

/// Every diagnostic of a refused spec is located in it and shows no control characters.
fn located(src: &SpecSource, diags: &[Diagnostic]) -> Result<(), TestCaseError> {
    prop_assert!(
        diags.iter().any(|d| d.severity == Severity::Error),
        "refused without an error: {diags:?}"
    );
    let lines = src.text.split('\n').count();
    for d in diags {
        let Some(loc) = &d.location else {
            return Err(TestCaseError::fail(format!("no location: {d:?}")));
        };
        prop_assert_eq!(&loc.file, NAME);
        prop_assert!(
            (1..=lines).contains(&loc.line) && loc.column >= 1,
            "{}:{} outside the spec ({lines} lines): {}",
            loc.line,
            loc.column,
            d.message
        );
        let shown = d.to_string();
        prop_assert!(
            !shown.chars().any(|c| is_hidden(c, true)),
            "diagnostic shows a control character: {shown:?}"
        );
        prop_assert!(shown.len() < 4096, "diagnostic of {} bytes", shown.len());
    }
    Ok(())
}

/// XML files of `r` that differ from the plain render, paired with the plain file at the same
/// path, or the only plain file of the same directory (a zone file named after its zone).
fn collect_xml(
    plain: &Rendered,
    r: &Rendered,
    xml: &XmlPairs,
    choice: bool,
) -> Result<(), TestCaseError> {
    for (profile, tree) in &r.profiles {
        let base = &plain.profiles[profile];
        for (path, e) in tree.iter() {
            let (EntryKind::File(data), "xml") = (&e.kind, kind_of(path)) else {
                continue;
            };
            if choice {
                if base.get(path).and_then(|e| e.data()) != Some(data.as_slice()) {
                    let mut x = xml.lock().unwrap();
                    x.entry(data.clone()).or_insert((None, path.to_string()));
                }
                continue;
            }
            let dir = &path[..path.rfind('/').unwrap_or(0) + 1];
            let same_dir: Vec<_> = base
                .iter()
                .filter(|(p, _)| p.starts_with(dir) && !p[dir.len()..].contains('/'))
                .collect();
            let twin = base.get(path).or(match same_dir.as_slice() {
                [(_, e)] => Some(*e),
                _ => None,
            });
            let Some(twin) = twin.and_then(|e| e.data()) else {
                return Err(TestCaseError::fail(format!(
                    "{path}: no plain XML to match"
                )));
            };
            if twin != data.as_slice() {
                xml.lock()
                    .unwrap()
                    .entry(data.clone())
                    .or_insert_with(|| (Some(twin.to_vec()), path.to_string()));
            }
        }
    }
    Ok(())
}

fn check_one(
    doc: &DocumentMut,
    target: &Target,
    value: &str,
    plain: (&Rendered, &Shapes),
    xml: &XmlPairs,
) -> Result<bool, TestCaseError> {
    let text = with_text(doc, target, value);
    prop_assert!(
        reads_back(&text, target, value),
        "the TOML written does not hold the value"
    );
    let src = SpecSource {
        name: NAME.into(),
        text,
    };
    let loaded = match validate::load(&src) {
        Err(rejected) => {
            located(&src, &rejected.diagnostics)?;
            return Ok(false);
        }
        Ok(l) => l,
    };
    located_warnings(&loaded.warnings)?;
    let r = components::render(&loaded.plan)
        .map_err(|e| TestCaseError::fail(format!("accepted, then render failed: {e}")))?;
    let s = shapes(&r).map_err(|e| TestCaseError::fail(format!("accepted, but {e}")))?;
    let (plain_r, plain_s) = plain;
    if is_choice(target) {
        prop_assert!(
            is_token(value),
            "accepted {value:?}, which is not a plain token"
        );
        collect_xml(plain_r, &r, xml, true)?;
        return Ok(true);
    }
    prop_assert_eq!(
        s.profiles.keys().collect::<Vec<_>>(),
        plain_s.profiles.keys().collect::<Vec<_>>()
    );
    for (name, got) in &s.profiles {
        let want = &plain_s.profiles[name];
        prop_assert!(
            got == want,
            "profile {name} has another shape:\n{}",
            diff(want, got)
        );
    }
    for (got, want) in s.hosts.iter().zip(&plain_s.hosts) {
        prop_assert!(
            got == want,
            "an identity tree has another shape:\n{}",
            diff(want, got)
        );
    }
    prop_assert_eq!(s.hosts.len(), plain_s.hosts.len());
    collect_xml(plain_r, &r, xml, false)?;
    Ok(true)
}

fn located_warnings(warnings: &[Diagnostic]) -> Result<(), TestCaseError> {
    for w in warnings {
        let ok = w
            .location
            .as_ref()
            .is_some_and(|l| l.file == NAME && l.line >= 1);
        prop_assert!(ok, "warning without a location: {w:?}");
    }
    Ok(())
}

/// Python's `xml.etree` parses every XML file an accepted value changed, and each has the
/// elements and attributes (and line count) of its plain twin when it has one.
fn xml_shapes(pairs: &BTreeMap<Vec<u8>, (Option<Vec<u8>>, String)>) {
    if pairs.is_empty() {
        return;
    }
    kiln_test_support::require_tool("python3", "python3");
    let tmp = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    // Each file changed, then its plain twin (or itself again).
    for (i, (got, (want, _))) in pairs.iter().enumerate() {
        for (tag, data) in [("got", got), ("want", want.as_ref().unwrap_or(got))] {
            let p = tmp.path().join(format!("{i}-{tag}.xml"));
            fs::write(&p, data).unwrap();
            args.push(p);
        }
    }
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
for p in sys.argv[1:]:
    data = open(p, "rb").read()
    root = ET.fromstring(data)
    print(json.dumps([data.count(b"\n"), [[e.tag, sorted(e.attrib)] for e in root.iter()]]))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "an XML file does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), args.len());
    for (i, (_, (_, path))) in pairs.iter().enumerate() {
        assert_eq!(
            lines[2 * i],
            lines[2 * i + 1],
            "{path}: XML of another shape than with the plain value"
        );
    }
}

#[test]
fn arbitrary_text_in_any_string_key_is_refused_where_it_is_or_renders_well_formed_files() {
    let plain_text = fs::read_to_string(fixture("specs/props.toml")).unwrap();
    let doc: DocumentMut = plain_text.parse().unwrap();
    let src = SpecSource {
        name: NAME.into(),
        text: plain_text.clone(),
    };
    let loaded = validate::load(&src).expect("props.toml is valid");
    let plain = components::render(&loaded.plan).unwrap();
    let plain_shapes = shapes(&plain).expect("the plain spec renders well-formed files");

    let targets = targets(&doc);
    assert!(targets.len() >= 50, "only {} string keys", targets.len());
    let xml: XmlPairs = Mutex::new(BTreeMap::new());
    let n = proptest_cases(DEFAULT_CASES);
    let (mut accepted, mut refused) = (0u32, 0u32);
    for target in &targets {
        let mut runner = TestRunner::new(Config {
            cases: n,
            failure_persistence: None,
            ..Config::default()
        });
        let counts = Mutex::new((0u32, 0u32));
        runner
            .run(&text_for(text_at(&doc, target)), |value| {
                let ok = check_one(&doc, target, &value, (&plain, &plain_shapes), &xml)?;
                let mut c = counts.lock().unwrap();
                if ok {
                    c.0 += 1;
                } else {
                    c.1 += 1;
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let c = counts.into_inner().unwrap();
        accepted += c.0;
        refused += c.1;
    }
    xml_shapes(&xml.into_inner().unwrap());
    eprintln!(
        "{} keys: {accepted} values accepted (files well-formed), {refused} refused (located)",
        targets.len()
    );
    assert!(refused > 0 && accepted > 0);
}

/// Regression: a directory key set to `/` rendered `//zoo.cfg` (render failed after the spec
/// was accepted) and the catalog silently dropped the CNI plugins it would place in `//`.
#[test]
fn directories_at_the_root_render_their_files_there() {
    let text = fs::read_to_string(fixture("specs/props.toml"))
        .unwrap()
        .replace("conf_dir = \"/etc/zookeeper/conf\"", "conf_dir = \"/\"")
        .replace("\"/etc/cni/net.d\"", "\"/\"");
    let src = SpecSource {
        name: NAME.into(),
        text,
    };
    let loaded = validate::load(&src).unwrap_or_else(|e| panic!("{e}"));
    let r = components::render(&loaded.plan).unwrap();
    let tree = &r.profiles["master-agent"];
    assert!(tree.get("/zoo.cfg").is_some());
    assert!(tree.get("/calico.conf").is_some());
    let unit = String::from_utf8(
        tree.get("/etc/systemd/system/zookeeper.service")
            .and_then(|e| e.data())
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(unit.contains(" start-foreground /zoo.cfg\n"), "{unit}");
    let root = kiln_pipeline::values::AbsPath::parse("/").unwrap();
    let version = kiln_pipeline::values::Version::parse("1.11.8").unwrap();
    let dests: Vec<String> = kiln_pipeline::sources::catalog::calico_cni(&version, &root)
        .iter()
        .filter_map(|s| s.dest.as_ref().map(ToString::to_string))
        .collect();
    assert_eq!(dests, ["/calico", "/calico-ipam", "/"]);
}
