//! The invalid-spec corpus: every file under `fixtures/invalid/` is a small complete spec with
//! exactly one problem. Its first lines say what `kiln check` must report:
//!
//! ```text
//! # expect: error 12:7 duplicate MAC address
//! # expect: warning 7:3 even ZooKeeper ensemble
//! ```
//!
//! (severity, `LINE:COL` of the caret, 1-based, then a substring of the message). A fixture
//! with an `error` must be refused with exit code 2; a fixture with only warnings must pass
//! `kiln check` (exit 0, warnings on stderr) and be refused by `kiln check --strict`.
//! Every pinned diagnostic must print `--> FILE:LINE:COL` with the path as given on the
//! command line, and a `= help:` line.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{fixture, kiln};

/// Fewer fixtures than this means the corpus was lost or the directory moved.
const MIN_FIXTURES: usize = 150;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect {
    severity: String,
    line: usize,
    col: usize,
    message: String,
}

/// The `# expect:` lines at the top of a fixture (before its first non-comment line).
fn expectations(path: &Path) -> Vec<Expect> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("# expect:") else {
            continue;
        };
        let mut parts = rest.trim().splitn(3, ' ');
        let (Some(severity), Some(pos), Some(message)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("{}: malformed expect line {line:?}", path.display());
        };
        assert!(
            severity == "error" || severity == "warning",
            "{}: severity must be error or warning in {line:?}",
            path.display()
        );
        let (l, c) = pos
            .split_once(':')
            .and_then(|(l, c)| Some((l.parse().ok()?, c.parse().ok()?)))
            .unwrap_or_else(|| panic!("{}: bad LINE:COL in {line:?}", path.display()));
        out.push(Expect {
            severity: severity.to_string(),
            line: l,
            col: c,
            message: message.trim().to_string(),
        });
    }
    out
}

/// The `*.toml` fixtures of `fixtures/DIR`, sorted so failures come in a stable order.
fn fixtures_in(rel: &str) -> Vec<PathBuf> {
    let dir = fixture(rel);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("reading fixtures/invalid").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The corpus.
fn corpus() -> Vec<PathBuf> {
    fixtures_in("invalid")
}

/// The diagnostics of `stderr`, as (message, `-->` location, has a help line) blocks. A
/// message may span several lines (TOML syntax errors do): everything up to `-->`.
fn blocks(stderr: &str) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = Vec::new();
    for line in stderr.lines() {
        if line.starts_with("error: ") || line.starts_with("warning: ") {
            out.push((line.to_string(), String::new(), false));
        } else if let Some(b) = out.last_mut() {
            let t = line.trim_start();
            if let Some(loc) = t.strip_prefix("--> ") {
                b.1 = loc.to_string();
            } else if t.starts_with("= help:") {
                b.2 = true;
            } else if b.1.is_empty() {
                b.0.push('\n');
                b.0.push_str(line);
            }
        }
    }
    out
}

/// Checks one fixture; returns what is wrong with it (empty when it passes).
fn check_fixture(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut problems = Vec::new();
    let expects = expectations(path);
    if expects.is_empty() {
        return vec![format!("{name}: no `# expect:` line")];
    }
    // The path as given (absolute, with `builder/../tests`): diagnostics must print it as is.
    let rel = path.to_str().expect("utf-8 fixture path").to_string();
    let run = |args: &[&str]| {
        let out = kiln(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let warning_only = expects.iter().all(|e| e.severity == "warning");
    let (code, stderr) = run(&["check", &rel]);
    let want_code = if warning_only { 0 } else { 2 };
    if code != Some(want_code) {
        problems.push(format!(
            "{name}: `kiln check` exited with {code:?}, expected {want_code}\n{stderr}"
        ));
    }
    if stderr.contains("panicked") {
        problems.push(format!("{name}: kiln panicked\n{stderr}"));
    }
    let found = blocks(&stderr);
    for e in &expects {
        let head = format!("{}: ", e.severity);
        let at = format!("{rel}:{}:{}", e.line, e.col);
        let hit = found
            .iter()
            .find(|(h, loc, _)| h.starts_with(&head) && h.contains(&e.message) && *loc == at);
        match hit {
            Some((_, _, true)) => {}
            Some((_, _, false)) => problems.push(format!(
                "{name}: {:?} has no `= help:` line\n{stderr}",
                e.message
            )),
            None => problems.push(format!(
                "{name}: expected `{}{}` at {at}\n{stderr}",
                head, e.message
            )),
        }
    }
    if warning_only {
        let (code, strict_err) = run(&["check", "--strict", &rel]);
        if code != Some(2) {
            problems.push(format!(
                "{name}: `kiln check --strict` exited with {code:?}, expected 2\n{strict_err}"
            ));
        }
        if strict_err.contains("panicked") {
            problems.push(format!("{name}: kiln --strict panicked\n{strict_err}"));
        }
        for e in &expects {
            if !strict_err.contains(&e.message)
                || !strict_err.contains(&format!("{rel}:{}:{}", e.line, e.col))
            {
                problems.push(format!(
                    "{name}: --strict does not report {:?} at {rel}:{}:{}\n{strict_err}",
                    e.message, e.line, e.col
                ));
            }
        }
    }
    problems
}

#[test]
fn invalid_corpus_is_large_enough() {
    let n = corpus().len();
    assert!(
        n >= MIN_FIXTURES,
        "tests/fixtures/invalid has {n} fixtures, expected at least {MIN_FIXTURES}"
    );
}

#[test]
fn invalid_specs_are_reported_where_they_are_wrong() {
    let files = corpus();
    assert!(files.len() >= MIN_FIXTURES, "only {} fixtures", files.len());
    let problems: Vec<String> = files.iter().flat_map(|p| check_fixture(p)).collect();
    assert!(
        problems.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        problems.len(),
        files.len(),
        problems.join("\n\n")
    );
}

/// Every fixture's header parses (a typo in `# expect:` must not silently pin nothing).
#[test]
fn invalid_fixture_headers_parse() {
    for p in corpus() {
        let text = fs::read_to_string(&p).unwrap();
        let declared = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter(|l| l.contains("expect"))
            .count();
        assert_eq!(
            expectations(&p).len(),
            declared,
            "{}: a header line mentions `expect` but is not `# expect: SEV L:C MESSAGE`",
            p.display()
        );
    }
}

/// A password typed where its hash belongs is never echoed: the message does not quote it,
/// and the source line under the diagnostic shows it masked (the caret still under it).
#[test]
fn a_plaintext_password_is_never_echoed() {
    for (file, password) in [
        ("access-plaintext-password.toml", "hunter2"),
        (
            "access-host-plaintext-password.toml",
            "correct horse battery staple",
        ),
    ] {
        let path = fixture("invalid").join(file);
        for args in [&["check"][..], &["check", "--json"]] {
            let mut args = args.to_vec();
            args.push(path.to_str().unwrap());
            let out = kiln(&args);
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(2), "{all}");
            assert!(
                !all.contains(password),
                "{file}: the password is shown:\n{all}"
            );
            assert!(all.contains("plaintext password"), "{all}");
        }
        let out = kiln(&["check", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let masked = format!("root_password_hash = \"{}\"", "*".repeat(password.len()));
        assert!(stderr.contains(&masked), "{stderr}");
    }
}
