//! The Debian packages of a base: dpkg's status database (`/var/lib/dpkg/status`) for names,
//! versions and architectures, and each package's `/usr/share/doc/PKG/copyright` for its
//! license when that file is machine-readable (DEP-5, `Format:` …copyright-format…), turned
//! into an SPDX license expression. Anything else is "not known" (`NOASSERTION`), never a
//! guess.

use std::collections::BTreeMap;

use kiln_layers::{resolve_parents, EntryKind, FileTree};

/// dpkg's database of installed packages.
pub const STATUS: &str = "/var/lib/dpkg/status";
/// Where the base says what it is (`ID=debian`).
const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];

/// The files of a base the SBOM reads: dpkg's status, every package's copyright file and
/// os-release. Everything else of the base is read as metadata only.
pub fn reads(path: &str) -> bool {
    path == STATUS
        || OS_RELEASE.contains(&path)
        || path
            .strip_prefix("/usr/share/doc/")
            .and_then(|r| r.strip_suffix("/copyright"))
            .is_some_and(|pkg| !pkg.is_empty() && !pkg.contains('/'))
}

/// One installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The source package, when it differs from the name (`Source:` without its version).
    pub source: Option<String>,
    /// SPDX license expression from the DEP-5 copyright file; `None`: not known.
    pub license: Option<String>,
    pub homepage: Option<String>,
    /// The first line of `Description:`.
    pub summary: Option<String>,
}

/// A license a copyright file names that is not on the SPDX license list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseRef {
    /// The name as the copyright file writes it (`public-domain`).
    pub name: String,
    /// Its text from the copyright file's stand-alone `License:` paragraph, or where it was
    /// named.
    pub text: String,
}

/// The Debian packages of a base and the license references their expressions use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasePackages {
    /// `ID` of the base's os-release (`debian`), the purl namespace.
    pub distro: Option<String>,
    /// Sorted by name, then architecture.
    pub packages: Vec<DebPackage>,
    /// `LicenseRef-…` → what it stands for.
    pub license_refs: BTreeMap<String, LicenseRef>,
}

impl BasePackages {
    /// The installed packages of `tree` (a base with the contents of [`reads`] files); empty
    /// when it has no dpkg status (not a Debian base).
    pub fn from_tree(tree: &FileTree) -> Self {
        let mut out = BasePackages {
            distro: OS_RELEASE
                .iter()
                .find_map(|p| file_data(tree, p))
                .and_then(|d| os_id(&String::from_utf8_lossy(d))),
            ..Default::default()
        };
        let Some(status) = file_data(tree, STATUS) else {
            return out;
        };
        let mut refs = RefNames::default();
        for p in paragraphs(&String::from_utf8_lossy(status)) {
            let installed = p
                .get("Status")
                .is_some_and(|s| s.split_whitespace().last() == Some("installed"));
            let (Some(name), Some(version)) = (p.get("Package"), p.get("Version")) else {
                continue;
            };
            if !installed {
                continue;
            }
            let copyright = format!("/usr/share/doc/{name}/copyright");
            let license = file_data(tree, &copyright)
                .and_then(|d| license_of(&String::from_utf8_lossy(d), &copyright, &mut refs));
            let source = p
                .get("Source")
                .and_then(|s| s.split_whitespace().next())
                .filter(|s| s != name)
                .map(String::from);
            out.packages.push(DebPackage {
                name: name.clone(),
                version: version.clone(),
                architecture: p.get("Architecture").cloned().unwrap_or_default(),
                source,
                license,
                homepage: p.get("Homepage").cloned(),
                summary: p
                    .get("Description")
                    .and_then(|d| d.lines().next())
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            });
        }
        out.packages.sort();
        out.license_refs = refs.into_refs();
        out
    }
}

/// The contents of the regular file at `path`, following the tree's symlinks (a package's
/// doc dir may link to another's: `libgcc-s1 -> gcc-12-base`) and hard links.
fn file_data<'t>(tree: &'t FileTree, path: &str) -> Option<&'t [u8]> {
    let mut p = resolve_parents(tree, path);
    for _ in 0..40 {
        match &tree.get(&p)?.kind {
            EntryKind::File(data) => return Some(data),
            EntryKind::Hardlink(target) => p = target.clone(),
            EntryKind::Symlink(target) => {
                let dir = p.rsplit_once('/').map_or("", |(d, _)| d);
                p = resolve_parents(tree, &join_link(dir, target));
            }
            _ => return None,
        }
    }
    None
}

/// `target` of a link in `dir`, as a normalised absolute path.
fn join_link(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|c| !c.is_empty()).collect()
    };
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `ID=` of an os-release file, if it is a plain lowercase name.
fn os_id(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        .filter(|v| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        })
}

/// deb822 paragraphs (dpkg status, DEP-5): field → value, continuation lines joined with
/// `\n` and their leading space removed. Comment lines (`#`) are skipped.
fn paragraphs(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines().map(|l| l.trim_end_matches('\r')) {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
        } else if line.starts_with('#') {
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                v.push('\n');
                v.push_str(line[1..].trim_end());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_string();
            cur.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The SPDX expression of a DEP-5 copyright file: the licenses of its `Files` paragraphs (and
/// of the header paragraph), each once, joined with `AND` (the package holds files under
/// each). `None` when the file is not machine-readable or names no license.
fn license_of(text: &str, path: &str, refs: &mut RefNames) -> Option<String> {
    let paras = paragraphs(text);
    let header = paras.first()?;
    let format = header.get("Format")?;
    if !(format.contains("copyright-format") || format.contains("dep5")) {
        return None;
    }
    // Stand-alone `License:` paragraphs give the text of a license named elsewhere.
    let texts: BTreeMap<&str, &str> = paras
        .iter()
        .skip(1)
        .filter(|p| !p.contains_key("Files"))
        .filter_map(|p| p.get("License"))
        .filter_map(|l| l.split_once('\n'))
        .map(|(name, body)| (name.trim(), body))
        .collect();
    let mut exprs: Vec<String> = paras
        .iter()
        .enumerate()
        .filter(|(i, p)| *i == 0 || p.contains_key("Files"))
        .filter_map(|(_, p)| p.get("License"))
        .map(|l| {
            let (name, body) = l.split_once('\n').unwrap_or((l, ""));
            (name.trim(), body)
        })
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, body)| {
            expression(name, &mut |term| {
                let own = if term == name { body } else { "" };
                refs.id(term, texts.get(term).copied().unwrap_or(own), path)
            })
        })
        // `A AND B` adds A and B: each once.
        .flat_map(|e: String| {
            if e.contains(" OR ") {
                vec![e]
            } else {
                e.split(" AND ").map(String::from).collect()
            }
        })
        .collect();
    exprs.sort();
    exprs.dedup();
    match exprs.len() {
        0 => None,
        1 => exprs.pop(),
        _ => Some(
            exprs
                .iter()
                .map(|e| {
                    if e.contains(' ') {
                        format!("({e})")
                    } else {
                        e.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

/// A DEP-5 license name (`GPL-2+ or Artistic-1.0`) as an SPDX expression: terms joined with
/// `or`/`and` are translated one by one (`and` binds tighter in both grammars); anything else
/// (commas, `with … exception`, several words) becomes one license reference from `unknown`.
fn expression(dep5: &str, unknown: &mut dyn FnMut(&str) -> String) -> String {
    let tokens: Vec<&str> = dep5.split_whitespace().collect();
    let simple = !tokens.is_empty()
        && tokens.len() % 2 == 1
        && tokens.iter().enumerate().all(|(i, t)| {
            let op = t.eq_ignore_ascii_case("or") || t.eq_ignore_ascii_case("and");
            (i % 2 == 1) == op && !t.contains([',', '(', ')'])
        });
    if !simple {
        return unknown(dep5);
    }
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| match i % 2 {
            1 => t.to_ascii_uppercase(),
            _ => spdx_id(t).map_or_else(|| unknown(t), String::from),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// License identifiers of the SPDX license list that Debian copyright files use, as SPDX
/// spells them.
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.0",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "CPL-1.0",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.1-only",
    "GFDL-1.1-or-later",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ICU",
    "IJG",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libpng-2.0",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "NTP",
    "OFL-1.1",
    "OpenSSL",
    "PostgreSQL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-DFS-2016",
    "Unlicense",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// The SPDX identifier of one DEP-5 license name, when there is one for sure: SPDX's own
/// spelling in any case, DEP-5's `Expat`, `WTFPL-2`, `Boost-1.0`, and the GNU licenses as `GPL-2`/`GPL-2+`/`LGPL-2.1+`.
fn spdx_id(term: &str) -> Option<&'static str> {
    let known = |s: &str| SPDX_IDS.iter().copied().find(|i| i.eq_ignore_ascii_case(s));
    if let Some(id) = known(term) {
        return Some(id);
    }
    // DEP-5's own names for licenses SPDX names otherwise.
    for (dep5, id) in [
        ("Expat", "MIT"),
        ("WTFPL-2", "WTFPL"),
        ("Boost-1.0", "BSL-1.0"),
    ] {
        if term.eq_ignore_ascii_case(dep5) {
            return Some(id);
        }
    }
    let (base, later) = match term.strip_suffix('+') {
        Some(b) => (b, true),
        None => (term, false),
    };
    let (family, version) = base.rsplit_once('-')?;
    let family = ["GPL", "LGPL", "AGPL", "GFDL"]
        .into_iter()
        .find(|f| f.eq_ignore_ascii_case(family))?;
    let version = match version {
        v if v.contains('.') => v.to_string(),
        v => format!("{v}.0"),
    };
    known(&format!(
        "{family}-{version}-{}",
        if later { "or-later" } else { "only" }
    ))
}

/// `LicenseRef-` identifiers for names off the SPDX list: the same name always gets the same
/// identifier; two names that sanitise alike get distinct ones.
#[derive(Default)]
struct RefNames {
    by_name: BTreeMap<String, String>,
    refs: BTreeMap<String, LicenseRef>,
}

impl RefNames {
    fn id(&mut self, name: &str, text: &str, path: &str) -> String {
        if let Some(id) = self.by_name.get(name) {
            return id.clone();
        }
        let clean = super::sanitise(&name.replace('+', "-plus"));
        let words: Vec<&str> = clean.split('-').filter(|w| !w.is_empty()).collect();
        let stem = format!("LicenseRef-{}", words.join("-"));
        let mut id = stem.clone();
        let mut n = 1;
        while self.refs.contains_key(&id) {
            n += 1;
            id = format!("{stem}-{n}");
        }
        let text = text.trim();
        let text = if text.is_empty() {
            format!("The license \"{name}\", as named in {path}; that file gives no text for it.")
        } else {
            // deb822: a line holding only "." is an empty line.
            text.lines()
                .map(|l| if l.trim() == "." { "" } else { l })
                .collect::<Vec<_>>()
                .join("\n")
        };
        self.refs.insert(
            id.clone(),
            LicenseRef {
                name: name.to_string(),
                text,
            },
        );
        self.by_name.insert(name.to_string(), id.clone());
        id
    }

    fn into_refs(self) -> BTreeMap<String, LicenseRef> {
        self.refs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_layers::Entry;

    fn spdx(dep5: &str) -> String {
        let mut refs = RefNames::default();
        expression(dep5, &mut |t| refs.id(t, "", "c"))
    }

    #[test]
    fn dep5_names_become_spdx_expressions() {
        assert_eq!(spdx("GPL-2+"), "GPL-2.0-or-later");
        assert_eq!(spdx("GPL-2"), "GPL-2.0-only");
        assert_eq!(spdx("LGPL-2.1+"), "LGPL-2.1-or-later");
        assert_eq!(spdx("GPL-3.0+"), "GPL-3.0-or-later");
        assert_eq!(spdx("Expat"), "MIT");
        assert_eq!(spdx("Boost-1.0"), "BSL-1.0");
        assert_eq!(spdx("BSD-3-clause"), "BSD-3-Clause");
        assert_eq!(spdx("zlib"), "Zlib");
        assert_eq!(
            spdx("GPL-2+ or Artistic-2.0"),
            "GPL-2.0-or-later OR Artistic-2.0"
        );
        assert_eq!(
            spdx("GPL-2+ and BSD-3-clause"),
            "GPL-2.0-or-later AND BSD-3-Clause"
        );
        assert_eq!(spdx("public-domain"), "LicenseRef-public-domain");
        assert_eq!(spdx("GPL"), "LicenseRef-GPL");
        assert_eq!(
            spdx("GPL-2+ with OpenSSL exception"),
            "LicenseRef-GPL-2-plus-with-OpenSSL-exception"
        );
        assert_eq!(
            spdx("GPL-2+ or Artistic, and BSD-3-clause"),
            "LicenseRef-GPL-2-plus-or-Artistic-and-BSD-3-clause"
        );
    }

    const COPYRIGHT: &str = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files:
 debian/*
Copyright: 2021 Someone Else
License: public-domain

Files: lib/*
Copyright: 2019 Other
License: Expat or GPL-2+

License: public-domain
 The author disclaims copyright.
 .
 Do what you like.
";

    fn tree(files: &[(&str, &str)]) -> FileTree {
        let mut t = FileTree::new();
        for (p, c) in files {
            t.insert(p, Entry::file(*c, 0o644)).unwrap();
        }
        t
    }

    #[test]
    fn packages_come_from_dpkg_status_with_their_dep5_licenses() {
        let status = "\
Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib (1:1.2.13.dfsg-1)
Version: 1:1.2.13.dfsg-1
Homepage: http://zlib.net/
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found

Package: demo
Status: install ok installed
Architecture: all
Version: 1.0-1

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 2.0

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12
Version: 12.2.0-14
";
        let mut t = tree(&[
            (STATUS, status),
            ("/usr/share/doc/demo/copyright", COPYRIGHT),
            ("/usr/share/doc/zlib1g/copyright", "Not machine-readable.\n"),
            (
                "/usr/share/doc/gcc-12-base/copyright",
                "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: FSF\nLicense: GPL-3+\n",
            ),
            ("/etc/os-release", "PRETTY_NAME=\"Debian\"\nID=debian\n"),
        ]);
        t.insert("/usr/share/doc/libgcc-s1", Entry::symlink("gcc-12-base"))
            .unwrap();
        let base = BasePackages::from_tree(&t);
        assert_eq!(base.distro.as_deref(), Some("debian"));
        let names: Vec<_> = base.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["demo", "libgcc-s1", "zlib1g"]);
        let demo = &base.packages[0];
        assert_eq!(demo.architecture, "all");
        assert_eq!(
            demo.license.as_deref(),
            Some("GPL-2.0-or-later AND LicenseRef-public-domain AND (MIT OR GPL-2.0-or-later)")
        );
        let pd = &base.license_refs["LicenseRef-public-domain"];
        assert_eq!(
            pd.text,
            "The author disclaims copyright.\n\nDo what you like."
        );
        assert_eq!(
            base.packages[1].license.as_deref(),
            Some("GPL-3.0-or-later")
        );
        assert_eq!(base.packages[1].source.as_deref(), Some("gcc-12"));
        let zlib = &base.packages[2];
        assert_eq!(zlib.version, "1:1.2.13.dfsg-1");
        assert_eq!(zlib.source.as_deref(), Some("zlib"));
        assert_eq!(zlib.license, None, "not DEP-5: not known");
        assert_eq!(
            zlib.summary.as_deref(),
            Some("compression library - runtime")
        );
    }

    #[test]
    fn a_base_without_dpkg_has_no_packages() {
        let base = BasePackages::from_tree(&tree(&[("/bin/sh", "")]));
        assert!(base.packages.is_empty());
        assert!(reads(STATUS));
        assert!(reads("/usr/share/doc/bash/copyright"));
        assert!(!reads("/usr/share/doc/bash/changelog.gz"));
        assert!(!reads("/usr/share/doc/a/b/copyright"));
    }
}
