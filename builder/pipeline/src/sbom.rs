//! SBOM: one SPDX 2.3 JSON document per role image, `dist/sbom/CLUSTER-PROFILE.spdx.json`.
//!
//! It lists what the image holds, each as an SPDX package the image `CONTAINS`:
//! - every Debian package of the base, from its dpkg status (name, version, architecture as a
//!   `pkg:deb` purl) with the license its DEP-5 copyright file declares, else `NOASSERTION`;
//! - every source artifact placed in the image (the lock entries of the components the
//!   profile runs: origin, sha256);
//! - every baked container image, by manifest digest;
//!
//! and the base it starts from (`DESCENDANT_OF`). The document `DESCRIBES` the image, named by
//! its manifest digest.
//!
//! The bytes depend only on the build's inputs: `created` is `SOURCE_DATE_EPOCH`, the
//! namespace is `https://kiln.invalid/spdx/CLUSTER/PROFILE/<sha256 of the document>`, packages
//! and relationships are sorted, and SPDX ids are derived from names.
//!
//! The base is not read again: the build's one pass over it (a tarball's or an image's layers,
//! streamed for the base's metadata tree) keeps the contents of the few files the SBOM reads,
//! [`reads`] — dpkg's status, the copyright files, os-release; a tree base has them all.

mod dpkg;

pub use dpkg::{reads, BasePackages, DebPackage, LicenseRef};

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use kiln_layers::{Digest, FileTree, IoError};
use kiln_model::plan::{Plan, Profile};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::components::{self, LOAD_UNIT};
use crate::sources::{hex_of, BaseSource, Resolved};
use crate::stages::{Dist, ImageReport};

/// Errors from writing an SBOM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("serialising the SBOM: {0}")]
    Json(#[from] serde_json::Error),
}

/// A `Result` alias for SBOM operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One SBOM in the build report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SbomReport {
    pub profile: String,
    /// Path under the output directory (`sbom/CLUSTER-PROFILE.spdx.json`).
    pub path: String,
    pub sha256: String,
}

impl BasePackages {
    /// The Debian packages of the base: from `tree`, the base as the build ingested it (with
    /// the contents of [`reads`]), or from a tree base itself. None without a dpkg status.
    pub fn of(base: Option<&BaseSource>, tree: &FileTree) -> Self {
        match base {
            Some(BaseSource::Tree(t)) => BasePackages::from_tree(t),
            _ => BasePackages::from_tree(tree),
        }
    }
}

/// Writes the SBOM of every role image in `images` under `dist/sbom/`. `base` is the base's
/// tree as the build ingested it (metadata, and the contents of [`reads`]).
pub fn write_all(
    plan: &Plan,
    resolved: &Resolved,
    base: &FileTree,
    images: &[ImageReport],
    epoch: u64,
    dist: &Dist,
) -> Result<Vec<SbomReport>> {
    let base = BasePackages::of(resolved.base.as_ref(), base);
    fs::create_dir_all(dist.sbom_dir()).map_err(IoError::new("creating sbom/"))?;
    let mut out = Vec::new();
    for image in images.iter().filter(|i| i.kind == "role") {
        let Some(profile) = plan.profile(&image.of) else {
            continue;
        };
        let doc = document(plan, profile, &base, resolved, image, epoch)?;
        let rel = Dist::sbom_rel(&image.reference);
        let sha256 = write(&doc, &dist.root().join(&rel))?;
        out.push(SbomReport {
            profile: profile.name.clone(),
            path: rel,
            sha256,
        });
    }
    Ok(out)
}

/// Writes `doc` as pretty JSON with a trailing newline; returns the file's sha256 (hex).
pub fn write(doc: &Document, out: &Path) -> Result<String> {
    let bytes = to_bytes(doc)?;
    fs::write(out, &bytes).map_err(IoError::at("writing", out))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn to_bytes(doc: &Document) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The SPDX document of `profile`'s role image `image`.
pub fn document(
    plan: &Plan,
    profile: &Profile,
    base: &BasePackages,
    resolved: &Resolved,
    image: &ImageReport,
    epoch: u64,
) -> Result<Document> {
    let mut ids = Ids::default();
    let image_id = ids.get(&format!("image-{}", image.reference));
    let mut packages = vec![Package {
        primary_package_purpose: Some("CONTAINER".into()),
        version_info: image.tags.first().cloned(),
        checksums: vec![Checksum::of_digest(&image.manifest_digest)],
        external_refs: vec![ExternalRef::purl(oci_purl(
            &image.repository,
            &image.manifest_digest,
            image.tags.first().map(String::as_str),
        ))],
        comment: Some(format!(
            "role image of profile {} of cluster {}",
            profile.name, plan.cluster
        )),
        ..Package::new(image_id.clone(), &image.repository)
    }];
    let mut rels = Vec::new();
    let mut contains = |p: Package, rels: &mut Vec<Relationship>, kind: &str| {
        rels.push(Relationship::new(&image_id, kind, &p.spdx_id));
        packages.push(p);
    };

    // The base, then the sources the profile's components place, as in the build's layers.
    let sets = components::source_sets(plan);
    for e in &resolved.lock {
        let set = sets.iter().find(|s| s.name == e.component);
        let base = e.component == "base";
        if !base && !set.is_some_and(|s| s.profiles.contains(&profile.name.as_str())) {
            continue;
        }
        let name = match (&plan.base.debian, base, e.origin.strip_prefix("image:")) {
            (Some(d), true, _) => format!("debian-{}-{}", d.suite, d.variant),
            (_, _, Some(reference)) => reference.to_string(),
            _ => crate::sources::file_name_of(&e.origin),
        };
        let id = ids.get(&format!("{}-{name}", e.component));
        let url = e.origin.starts_with("https://") || e.origin.starts_with("http://");
        let p = Package {
            primary_package_purpose: base.then(|| "OPERATING-SYSTEM".into()),
            version_info: set.map(|s| s.version.to_string()),
            download_location: if url {
                e.origin.clone()
            } else {
                NOASSERTION.into()
            },
            checksums: vec![Checksum::sha256(&e.sha256)],
            source_info: Some(format!("kiln source of {}: {}", e.component, e.origin)),
            ..Package::new(id, &name)
        };
        contains(
            p,
            &mut rels,
            if base { "DESCENDANT_OF" } else { "CONTAINS" },
        );
    }

    // The baked container images, on profiles that load them.
    if profile.runs(LOAD_UNIT) {
        for b in components::images_of(plan, profile) {
            let Some(img) = resolved.images.get(b.name) else {
                continue;
            };
            let runs_as = b.runs_as.to_string();
            let (repo, tag) = split_tag(&runs_as);
            let digest = &img.image.manifest_descriptor.digest;
            let p = Package {
                primary_package_purpose: Some("CONTAINER".into()),
                version_info: Some(tag.to_string()),
                checksums: vec![Checksum::of_digest(digest)],
                external_refs: vec![ExternalRef::purl(oci_purl(repo, digest, Some(tag)))],
                source_info: Some(format!("kiln image {}: {}", b.name, img.reference)),
                ..Package::new(ids.get(&format!("container-{}", b.name)), repo)
            };
            contains(p, &mut rels, "CONTAINS");
        }
    }

    // The base's Debian packages.
    let distro = base.distro.as_deref().unwrap_or("debian");
    for d in &base.packages {
        let license = d.license.clone().unwrap_or_else(|| NOASSERTION.into());
        let p = Package {
            version_info: Some(d.version.clone()),
            license_declared: license,
            homepage: d
                .homepage
                .clone()
                .filter(|h| h.starts_with("http") && !h.contains(char::is_whitespace)),
            summary: d.summary.clone(),
            source_info: d
                .source
                .as_ref()
                .map(|s| format!("built from source package {s}")),
            external_refs: vec![ExternalRef::purl(deb_purl(distro, d))],
            ..Package::new(
                ids.get(&format!("deb-{}-{}", d.name, d.architecture)),
                &d.name,
            )
        };
        contains(p, &mut rels, "CONTAINS");
    }

    packages.sort_by(|a, b| a.spdx_id.cmp(&b.spdx_id));
    rels.sort();
    rels.insert(0, Relationship::new(DOCUMENT_ID, "DESCRIBES", &image_id));
    let mut doc = Document {
        spdx_version: "SPDX-2.3".into(),
        data_license: "CC0-1.0".into(),
        spdx_id: DOCUMENT_ID.into(),
        name: image.reference.clone(),
        document_namespace: String::new(),
        creation_info: CreationInfo {
            created: kiln_oci::oci::rfc3339(epoch as i64),
            creators: vec![format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
            // The image's digest, not the spec's: an SBOM describes the image and changes
            // only with it (a comment in the spec changes neither).
            comment: Some(format!(
                "kiln build of cluster {}, profile {}, image {}",
                plan.cluster, profile.name, image.manifest_digest
            )),
        },
        has_extracted_licensing_infos: base
            .license_refs
            .iter()
            .map(|(id, r)| ExtractedLicense {
                license_id: id.clone(),
                extracted_text: r.text.clone(),
                name: r.name.clone(),
            })
            .collect(),
        packages,
        relationships: rels,
    };
    let content = hex::encode(Sha256::digest(to_bytes(&doc)?));
    doc.document_namespace = format!(
        "https://kiln.invalid/spdx/{}/{}/{content}",
        plan.cluster, profile.name
    );
    Ok(doc)
}

const DOCUMENT_ID: &str = "SPDXRef-DOCUMENT";
const NOASSERTION: &str = "NOASSERTION";

/// `s` with every character outside SPDX's id alphabet `[A-Za-z0-9.-]` turned into `-`.
fn sanitise(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `SPDXRef-` ids derived from names; two names that sanitise alike get `-2`, `-3`, … in the
/// order they are asked for (which is deterministic).
#[derive(Default)]
struct Ids(BTreeSet<String>);

impl Ids {
    fn get(&mut self, name: &str) -> String {
        let stem = format!("SPDXRef-{}", sanitise(name));
        let mut id = stem.clone();
        let mut n = 1;
        while !self.0.insert(id.clone()) {
            n += 1;
            id = format!("{stem}-{n}");
        }
        id
    }
}

/// `name:tag` → (`name`, `tag`); `latest` without a tag (a registry port is not a tag).
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}

/// Percent-encodes what a purl component may not hold literally.
fn purl_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`.
fn deb_purl(distro: &str, d: &DebPackage) -> String {
    let mut p = format!(
        "pkg:deb/{distro}/{}@{}",
        purl_escape(&d.name),
        purl_escape(&d.version)
    );
    if !d.architecture.is_empty() {
        p.push_str(&format!("?arch={}", purl_escape(&d.architecture)));
    }
    p
}

/// `pkg:oci/NAME@sha256%3AHEX?repository_url=REPO[&tag=TAG]`.
fn oci_purl(repository: &str, digest: &Digest, tag: Option<&str>) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let mut p = format!(
        "pkg:oci/{}@{}%3A{}?repository_url={}",
        purl_escape(&name.to_ascii_lowercase()),
        digest.algorithm(),
        digest.hex(),
        purl_escape(repository).replace("%2F", "/")
    );
    if let Some(t) = tag {
        p.push_str(&format!("&tag={}", purl_escape(t)));
    }
    p
}

/// An SPDX 2.3 document (the JSON fields kiln writes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub spdx_version: String,
    pub data_license: String,
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    pub document_namespace: String,
    pub creation_info: CreationInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub has_extracted_licensing_infos: Vec<ExtractedLicense>,
    pub packages: Vec<Package>,
    pub relationships: Vec<Relationship>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreationInfo {
    pub created: String,
    pub creators: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A license off the SPDX list, referenced as `LicenseRef-…`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExtractedLicense {
    pub license_id: String,
    pub extracted_text: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    #[serde(rename = "SPDXID")]
    pub spdx_id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_package_purpose: Option<String>,
    pub download_location: String,
    pub files_analyzed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<Checksum>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<String>,
    pub license_concluded: String,
    pub license_declared: String,
    pub copyright_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_refs: Vec<ExternalRef>,
}

impl Package {
    /// A package kiln knows only the name of: everything else `NOASSERTION`.
    fn new(spdx_id: String, name: &str) -> Self {
        Package {
            spdx_id,
            name: name.to_string(),
            version_info: None,
            primary_package_purpose: None,
            download_location: NOASSERTION.into(),
            files_analyzed: false,
            checksums: Vec::new(),
            homepage: None,
            source_info: None,
            license_concluded: NOASSERTION.into(),
            license_declared: NOASSERTION.into(),
            copyright_text: NOASSERTION.into(),
            summary: None,
            comment: None,
            external_refs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    pub algorithm: String,
    pub checksum_value: String,
}

impl Checksum {
    fn sha256(digest: &str) -> Self {
        Checksum {
            algorithm: "SHA256".into(),
            checksum_value: hex_of(digest),
        }
    }

    /// The checksum an OCI digest carries (SPDX `SHA256` or `SHA512`).
    fn of_digest(digest: &Digest) -> Self {
        Checksum {
            algorithm: digest.algorithm().name().to_ascii_uppercase(),
            checksum_value: digest.hex(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRef {
    pub reference_category: String,
    pub reference_type: String,
    pub reference_locator: String,
}

impl ExternalRef {
    fn purl(locator: String) -> Self {
        ExternalRef {
            reference_category: "PACKAGE-MANAGER".into(),
            reference_type: "purl".into(),
            reference_locator: locator,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Relationship {
    pub spdx_element_id: String,
    pub relationship_type: String,
    pub related_spdx_element: String,
}

impl Relationship {
    fn new(from: &str, kind: &str, to: &str) -> Self {
        Relationship {
            spdx_element_id: from.into(),
            relationship_type: kind.into(),
            related_spdx_element: to.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SpecSource;
    use crate::sources::LockEntry;
    use kiln_layers::Entry;
    use std::collections::BTreeMap;

    const STATUS: &str = "\
Package: libstdc++6
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14
Source: gcc-12

Package: etcd-server
Status: install ok installed
Architecture: amd64
Version: 3.4.23-4+b1
Homepage: https://etcd.io
Description: highly-available key value store -- daemon
";

    fn plan() -> Plan {
        let src = SpecSource {
            name: "demo".into(),
            text: crate::DEMO_SPEC.into(),
        };
        crate::validate::load(&src).expect("the demo is valid").plan
    }

    fn resolved(plan: &Plan) -> Resolved {
        let mut base = FileTree::new();
        let copyright = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: Apache-2.0\n";
        for (p, c) in [
            (dpkg::STATUS, STATUS),
            ("/usr/share/doc/etcd-server/copyright", copyright),
        ] {
            base.insert(p, Entry::file(c, 0o644)).unwrap();
        }
        let set = components::source_sets(plan)
            .into_iter()
            .find(|s| s.source.map_or(true, |s| !s.is_base()))
            .expect("the demo fetches some component");
        Resolved {
            trees: BTreeMap::new(),
            base: Some(BaseSource::Tree(base)),
            images: BTreeMap::new(),
            lock: vec![
                LockEntry {
                    component: "base".into(),
                    origin: "debian:0123".into(),
                    sha256: "b".repeat(64),
                    size: None,
                },
                LockEntry {
                    component: set.name.into(),
                    origin: "https://example.invalid/dl/thing-1.0.tar.gz".into(),
                    sha256: "a".repeat(64),
                    size: Some(3),
                },
            ],
            recorded: Vec::new(),
            repaired: Vec::new(),
        }
    }

    fn image() -> ImageReport {
        ImageReport {
            reference: "demo-master-agent".into(),
            kind: "role".into(),
            of: "master-agent".into(),
            repository: "kiln/demo-master-agent".into(),
            push_name: "demo-master-agent".into(),
            tags: vec!["latest".into()],
            manifest_digest: format!("sha256:{}", "c".repeat(64)).parse().unwrap(),
            manifest_media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            config_digest: format!("sha256:{}", "d".repeat(64)).parse().unwrap(),
            layers: Vec::new(),
        }
    }

    fn doc(plan: &Plan, resolved: &Resolved) -> Document {
        let base = BasePackages::of(resolved.base.as_ref(), &FileTree::new());
        let profile = plan.profile("master-agent").unwrap();
        document(plan, profile, &base, resolved, &image(), 1_700_000_000).unwrap()
    }

    #[test]
    fn the_document_describes_the_image_and_lists_what_it_holds() {
        let plan = plan();
        let resolved = resolved(&plan);
        let d = doc(&plan, &resolved);
        assert_eq!(d.spdx_version, "SPDX-2.3");
        assert_eq!(d.data_license, "CC0-1.0");
        assert_eq!(d.spdx_id, "SPDXRef-DOCUMENT");
        assert_eq!(d.creation_info.created, "2023-11-14T22:13:20Z");
        let ns = d
            .document_namespace
            .strip_prefix("https://kiln.invalid/spdx/demo/master-agent/")
            .unwrap();
        assert!(
            ns.len() == 64 && ns.bytes().all(|b| b.is_ascii_hexdigit()),
            "{ns}"
        );

        let ids: Vec<&str> = d.packages.iter().map(|p| p.spdx_id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "packages are sorted");
        for id in &ids {
            let rest = id.strip_prefix("SPDXRef-").unwrap();
            assert!(
                rest.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'),
                "{id}"
            );
        }
        let pkg = |id: &str| d.packages.iter().find(|p| p.spdx_id == id).unwrap();
        let image = pkg("SPDXRef-image-demo-master-agent");
        assert_eq!(image.checksums[0].checksum_value, "c".repeat(64));
        assert_eq!(
            d.relationships[0],
            Relationship::new("SPDXRef-DOCUMENT", "DESCRIBES", &image.spdx_id)
        );

        let etcd = pkg("SPDXRef-deb-etcd-server-amd64");
        assert_eq!(etcd.version_info.as_deref(), Some("3.4.23-4+b1"));
        assert_eq!(etcd.license_declared, "Apache-2.0");
        assert_eq!(
            etcd.external_refs[0].reference_locator,
            "pkg:deb/debian/etcd-server@3.4.23-4%2Bb1?arch=amd64"
        );
        let libstdc = pkg("SPDXRef-deb-libstdc--6-amd64");
        assert_eq!(libstdc.license_declared, "NOASSERTION");
        assert_eq!(libstdc.name, "libstdc++6");

        let src = d
            .packages
            .iter()
            .find(|p| p.name == "thing-1.0.tar.gz")
            .unwrap();
        assert_eq!(src.checksums[0].algorithm, "SHA256");
        assert_eq!(src.checksums[0].checksum_value, "a".repeat(64));
        assert_eq!(
            src.download_location,
            "https://example.invalid/dl/thing-1.0.tar.gz"
        );
        let base = pkg("SPDXRef-base-debian-bookworm-minbase");
        assert_eq!(base.checksums[0].checksum_value, "b".repeat(64));

        // Every package but the image is related to the image, once.
        let related: Vec<(&str, &str)> = d.relationships[1..]
            .iter()
            .map(|r| {
                assert_eq!(r.spdx_element_id, image.spdx_id);
                (
                    r.relationship_type.as_str(),
                    r.related_spdx_element.as_str(),
                )
            })
            .collect();
        assert_eq!(related.len(), d.packages.len() - 1);
        assert!(related.contains(&("DESCENDANT_OF", base.spdx_id.as_str())));
        assert!(related.contains(&("CONTAINS", etcd.spdx_id.as_str())));
        assert!(related.contains(&("CONTAINS", src.spdx_id.as_str())));

        // The JSON uses SPDX's field names.
        let json: serde_json::Value = serde_json::from_slice(&to_bytes(&d).unwrap()).unwrap();
        assert_eq!(json["packages"][0]["SPDXID"], d.packages[0].spdx_id);
        assert_eq!(json["packages"][0]["filesAnalyzed"], false);
        assert!(json["creationInfo"]["creators"][0]
            .as_str()
            .unwrap()
            .starts_with("Tool: kiln-"));
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_and_the_namespace_follows_the_content() {
        let plan = plan();
        let mut resolved = resolved(&plan);
        let a = to_bytes(&doc(&plan, &resolved)).unwrap();
        assert_eq!(a, to_bytes(&doc(&plan, &resolved)).unwrap());
        let before = doc(&plan, &resolved).document_namespace;
        resolved.lock[1].sha256 = "e".repeat(64);
        assert_ne!(before, doc(&plan, &resolved).document_namespace);
    }

    #[test]
    fn ids_are_sanitised_and_unique() {
        let mut ids = Ids::default();
        assert_eq!(
            ids.get("deb-libstdc++6-amd64"),
            "SPDXRef-deb-libstdc--6-amd64"
        );
        assert_eq!(
            ids.get("deb-libstdc--6-amd64"),
            "SPDXRef-deb-libstdc--6-amd64-2"
        );
        assert_eq!(
            crate::sources::file_name_of("deb:etcd-server=3.4"),
            "etcd-server=3.4"
        );
        assert_eq!(crate::sources::file_name_of("file:vendor/etcd"), "etcd");
        assert_eq!(
            oci_purl("calico/node", &Digest::sha256_of(b""), Some("v2.6.12")),
            "pkg:oci/node@sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\
             ?repository_url=calico/node&tag=v2.6.12"
        );
    }
}
