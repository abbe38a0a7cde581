//! Mutated specs never make kiln panic: the in-suite stand-in for the `cargo fuzz` target
//! (`builder/fuzz/`, see the README's Testing section), bounded so that it runs in seconds.
//!
//! The bytes of a valid spec (the built-in demo and the specs under `fixtures/specs/`) are
//! mutated — bytes inserted, deleted, replaced and bit-flipped (invalid UTF-8 included), TOML
//! tokens inserted, lines deleted, swapped and spliced in from another spec — and then go the
//! way a spec file goes: [`SpecSource::from_bytes`] → [`validate::load`] →
//! [`components::render`]. Whatever the bytes, nothing panics; a refused spec has every
//! diagnostic located and each prints; an accepted one renders.
//!
//! `PROPTEST_CASES` sets the number of mutated specs (default 1000, under a second).

use std::fs;

use kiln_pipeline::components;
use kiln_pipeline::diag::SpecSource;
use kiln_pipeline::validate;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::fixture;
use crate::common::proptest_cases;

/// The valid specs mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = vec![kiln_pipeline::DEMO_SPEC.as_bytes().to_vec()];
    let dir = fixture("specs");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    out.extend(files.iter().map(|p| fs::read(p).unwrap()));
    out
}

/// TOML that changes a document's structure or types.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[hosts]]\n",
    "[mesos.agent.flags]\n",
    "[calico]\n",
    "{",
    "}",
    "{ base = true }",
    "=",
    " = ",
    ",",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    "#",
    "\n",
    "\r\n",
    "\\",
    "\\u0000",
    "\\u001b",
    "\\u202e",
    "\\uD800",
    "\\U0010FFFF",
    ".",
    "..",
    "-",
    "+",
    "0",
    "-1",
    "0o777",
    "0x1F",
    "1e999",
    "inf",
    "nan",
    "true",
    "18446744073709551616",
    "4294967296",
    "65536",
    "1979-05-27",
    "[]",
    "[\"master\", \"master\"]",
    "\u{202e}",
    "\u{feff}",
    "é",
    "😀",
];

#[derive(Debug, Clone)]
enum Mutation {
    InsertByte(Index, u8),
    ReplaceByte(Index, u8),
    FlipBit(Index, u8),
    Delete(Index, usize),
    InsertToken(Index, &'static str),
    DeleteLine(Index),
    SwapLines(Index, Index),
    /// A line of seed `.0` (any spec) inserted before line `.2`.
    SpliceLine(Index, Index, Index),
    /// The spec cut at a byte (a truncated file).
    Truncate(Index),
}

/// Mostly ASCII (a spec that is not UTF-8 stops at the first step), sometimes any byte.
fn byte() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 0u8..0x80, 1 => any::<u8>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    use Mutation::*;
    let i = any::<Index>;
    prop_oneof![
        2 => (i(), byte()).prop_map(|(a, b)| InsertByte(a, b)),
        2 => (i(), byte()).prop_map(|(a, b)| ReplaceByte(a, b)),
        1 => (i(), 0u8..8).prop_map(|(a, b)| FlipBit(a, b)),
        2 => (i(), 1usize..16).prop_map(|(a, n)| Delete(a, n)),
        3 => (i(), prop::sample::select(TOKENS)).prop_map(|(a, t)| InsertToken(a, t)),
        2 => i().prop_map(DeleteLine),
        1 => (i(), i()).prop_map(|(a, b)| SwapLines(a, b)),
        3 => (i(), i(), i()).prop_map(|(a, b, c)| SpliceLine(a, b, c)),
        1 => i().prop_map(Truncate),
    ]
}

fn lines(b: &[u8]) -> Vec<Vec<u8>> {
    b.split_inclusive(|&c| c == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn apply(seeds: &[Vec<u8>], mut b: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: &Index, b: &[u8]| i.index(b.len() + 1);
    match m {
        Mutation::InsertByte(i, v) => {
            let p = at(i, &b);
            b.insert(p, *v);
        }
        Mutation::ReplaceByte(i, v) if !b.is_empty() => {
            let p = i.index(b.len());
            b[p] = *v;
        }
        Mutation::FlipBit(i, bit) if !b.is_empty() => {
            let p = i.index(b.len());
            b[p] ^= 1 << bit;
        }
        Mutation::Delete(i, n) => {
            let p = at(i, &b);
            let end = (p + n).min(b.len());
            b.drain(p..end);
        }
        Mutation::InsertToken(i, t) => {
            let p = at(i, &b);
            b.splice(p..p, t.bytes());
        }
        Mutation::DeleteLine(i) => {
            let mut l = lines(&b);
            if !l.is_empty() {
                l.remove(i.index(l.len()));
            }
            b = l.concat();
        }
        Mutation::SwapLines(i, j) => {
            let mut l = lines(&b);
            if !l.is_empty() {
                let (x, y) = (i.index(l.len()), j.index(l.len()));
                l.swap(x, y);
            }
            b = l.concat();
        }
        Mutation::SpliceLine(s, i, j) => {
            let from = lines(&seeds[s.index(seeds.len())]);
            let mut l = lines(&b);
            if !from.is_empty() {
                let mut line = from[i.index(from.len())].clone();
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                l.insert(j.index(l.len() + 1), line);
            }
            b = l.concat();
        }
        Mutation::Truncate(i) => {
            let p = at(i, &b);
            b.truncate(p);
        }
        _ => {}
    }
    b
}

/// How far a mutated spec got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    NotUtf8,
    Refused,
    Rendered,
}

/// What a spec file's bytes go through, checking what kiln promises on the way.
fn load_and_render(bytes: Vec<u8>) -> Result<Outcome, TestCaseError> {
    let src = match SpecSource::from_bytes("mutated.toml", bytes) {
        Ok(src) => src,
        Err(d) => {
            prop_assert!(d.location.is_some(), "not UTF-8, without a location");
            let _ = d.to_string();
            return Ok(Outcome::NotUtf8);
        }
    };
    match validate::load(&src) {
        Err(rejected) => {
            prop_assert!(!rejected.diagnostics.is_empty(), "refused without a reason");
            for d in &rejected.diagnostics {
                prop_assert!(d.location.is_some(), "no location: {d:?}");
                let _ = d.to_string();
            }
            let _ = rejected.to_string();
            Ok(Outcome::Refused)
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                let _ = w.to_string();
            }
            if let Err(e) = components::render(&loaded.plan) {
                return Err(TestCaseError::fail(format!(
                    "accepted, then render failed: {e}\n--- spec ---\n{}",
                    src.text
                )));
            }
            Ok(Outcome::Rendered)
        }
    }
}

#[test]
fn mutated_specs_never_panic_and_are_refused_with_a_location_or_render() {
    let seeds = seeds();
    assert!(seeds.len() >= 5, "only {} seed specs", seeds.len());
    let mut runner = TestRunner::new(Config {
        cases: proptest_cases(1000),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (any::<Index>(), prop::collection::vec(mutation(), 1..6));
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<Outcome, u32>::new());
    runner
        .run(&strategy, |(seed, muts)| {
            let mut b = seeds[seed.index(seeds.len())].clone();
            for m in &muts {
                b = apply(&seeds, b, m);
            }
            let outcome = load_and_render(b)?;
            *seen.lock().unwrap().entry(outcome).or_default() += 1;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner().unwrap();
    eprintln!("mutated specs: {seen:?}");
    // Mutations that all fail early would test little.
    for o in [Outcome::Refused, Outcome::Rendered] {
        assert!(seen.contains_key(&o), "no mutated spec was {o:?}: {seen:?}");
    }
}
