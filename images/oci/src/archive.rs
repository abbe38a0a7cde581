//! docker-archive: the `docker save` / `docker load` tarball.
//!
//! Layout written: `manifest.json` (`[{"Config","RepoTags","Layers"}]`), `repositories`,
//! `<config hex>.json`, and `<diff_id hex>/layer.tar` holding each layer **uncompressed**
//! (the form every `docker load` accepts; gzip layers are decompressed while writing). Entries
//! are sorted by name, owned by 0:0 with one fixed mtime, and shared layers appear once, so the
//! same images always give the same bytes. Layers are streamed, never held in memory.
//!
//! The reader accepts both the classic layout and the OCI-flavoured one of Docker 25+
//! (`blobs/sha256/…`, with symlinks), compressed or uncompressed layers.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use kiln_layers::read::MemberKind;
use kiln_layers::{Digest, HashingReader, IoError};
use serde::{Deserialize, Serialize};

use crate::oci::manifest::{parse_config, parse_manifest, ImageManifest};
use crate::oci::{
    canonical_json, Descriptor, Layer, MEDIA_TYPE_CONFIG, MEDIA_TYPE_DOCKER_LAYER_GZIP,
    MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_MANIFEST,
};
use crate::store::{check, BlobStore};
use crate::{Error, Result};

/// One image of a docker-archive: a manifest in the blob store and the tags it gets.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The image manifest (in the store given to the writer).
    pub manifest: Descriptor,
    /// `name:tag` references `docker load` will create.
    pub repo_tags: Vec<String>,
}

/// One entry of `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArchiveManifestEntry {
    /// Path of the config JSON inside the archive.
    pub config: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// Paths of the layer tars inside the archive, bottom first.
    pub layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

enum Source {
    Dir,
    Bytes(Vec<u8>),
    Layer(Layer),
}

fn is_gzip_layer(media_type: &str) -> Result<bool> {
    match media_type {
        MEDIA_TYPE_LAYER_GZIP | MEDIA_TYPE_DOCKER_LAYER_GZIP => Ok(true),
        MEDIA_TYPE_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => Ok(false),
        other => Err(Error::invalid(
            "layer",
            format!("unsupported media type {other} for docker-archive"),
        )),
    }
}

/// Opens a layer blob as its uncompressed tar stream.
fn uncompressed(store: &BlobStore, layer: &Layer) -> Result<Box<dyn Read>> {
    let file = BufReader::new(store.open_blob(&layer.digest)?);
    Ok(if is_gzip_layer(&layer.media_type)? {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

/// Checks blob digest and diff ID of a layer in one pass; returns the uncompressed size.
fn verify_layer(store: &BlobStore, layer: &Layer) -> Result<u64> {
    let what = |kind: &str| format!("{kind} of layer {}", layer.digest);
    let compressed = HashingReader::with_algorithm(
        BufReader::new(store.open_blob(&layer.digest)?),
        layer.digest.algorithm(),
    );
    let (blob, (diff_id, size)) = if is_gzip_layer(&layer.media_type)? {
        let mut dec = GzDecoder::new(compressed);
        let mut tar = HashingReader::with_algorithm(&mut dec, layer.diff_id.algorithm());
        io::copy(&mut tar, &mut io::sink()).map_err(IoError::new(what("decompressing")))?;
        let tar = tar.finish();
        let mut compressed = dec.into_inner();
        io::copy(&mut compressed, &mut io::sink()).map_err(IoError::new(what("reading")))?;
        (compressed.finish().0, tar)
    } else {
        // An uncompressed layer: blob and tar are the same bytes, hashed once per algorithm.
        let mut r = compressed;
        io::copy(&mut r, &mut io::sink()).map_err(IoError::new(what("reading")))?;
        let (d, n) = r.finish();
        let diff_id = if layer.diff_id.algorithm() == d.algorithm() {
            d
        } else {
            let (d, _) = kiln_layers::hash_reader(
                BufReader::new(store.open_blob(&layer.digest)?),
                layer.diff_id.algorithm(),
            )
            .map_err(IoError::new(what("reading")))?;
            d
        };
        (d, (diff_id, n))
    };
    check(&what("blob"), &layer.digest, blob)?;
    check(&what("diff_id"), &layer.diff_id, diff_id)?;
    Ok(size)
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Splits `name:tag` (the tag is after the last `:` that follows the last `/`).
fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}

/// Writes a docker-archive of `images` (manifests in `store`) to `out`. `epoch` is the mtime
/// of every entry (`SOURCE_DATE_EPOCH`).
pub fn write_docker_archive<W: Write>(
    out: W,
    store: &BlobStore,
    images: &[ArchiveImage],
    epoch: i64,
) -> Result<W> {
    let mut entries: BTreeMap<String, Source> = BTreeMap::new();
    let mut manifest_json = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let manifest = parse_manifest(&store.read_verified(&image.manifest.digest)?)?;
        let config_bytes = store.read_verified(&manifest.config.digest)?;
        let config = parse_config(&config_bytes)?;
        let layers = crate::oci::layout::layers_of(&manifest, &config)?;
        let config_name = format!("{}.json", manifest.config.digest.hex());
        entries.insert(config_name.clone(), Source::Bytes(config_bytes));
        let mut layer_names = Vec::new();
        for layer in layers {
            let dir = layer.diff_id.hex();
            let name = format!("{dir}/layer.tar");
            entries.insert(format!("{dir}/"), Source::Dir);
            layer_names.push(name.clone());
            entries.insert(name, Source::Layer(layer));
        }
        for tag in &image.repo_tags {
            let (repo, t) = split_tag(tag);
            if let Some(top) = layer_names.last() {
                let top = top.trim_end_matches("/layer.tar").to_string();
                repositories
                    .entry(repo.into())
                    .or_default()
                    .insert(t.into(), top);
            }
        }
        manifest_json.push(ArchiveManifestEntry {
            config: config_name,
            repo_tags: image.repo_tags.clone(),
            layers: layer_names,
        });
    }
    entries.insert(
        "manifest.json".into(),
        Source::Bytes(canonical_json("manifest.json", &manifest_json)?),
    );
    entries.insert(
        "repositories".into(),
        Source::Bytes(canonical_json("repositories", &repositories)?),
    );

    let mtime = u64::try_from(epoch).unwrap_or(0);
    let mut builder = tar::Builder::new(out);
    let werr = |name: &str| IoError::new(format!("writing docker-archive entry {name}"));
    for (name, source) in &entries {
        match source {
            Source::Dir => {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                builder
                    .append_data(&mut h, name, io::empty())
                    .map_err(werr(name))?;
            }
            Source::Bytes(bytes) => {
                let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64, mtime);
                builder
                    .append_data(&mut h, name, bytes.as_slice())
                    .map_err(werr(name))?;
            }
            Source::Layer(layer) => {
                // First pass verifies both digests and learns the tar's size (needed up front
                // in the header); the second streams it. Nothing is held in memory.
                let size = verify_layer(store, layer)?;
                let mut h = header(tar::EntryType::Regular, 0o644, size, mtime);
                let mut reader = HashingReader::with_algorithm(
                    uncompressed(store, layer)?.take(size),
                    layer.diff_id.algorithm(),
                );
                builder
                    .append_data(&mut h, name, &mut reader)
                    .map_err(werr(name))?;
                let (diff_id, n) = reader.finish();
                if diff_id != layer.diff_id || n != size {
                    return Err(Error::DigestMismatch {
                        what: format!("layer {} changed while writing", layer.digest),
                        expected: Box::new(layer.diff_id),
                        actual: Box::new(diff_id),
                    });
                }
            }
        }
    }
    builder
        .into_inner()
        .map_err(|e| IoError::new("finishing docker-archive")(e).into())
}

/// Writes a docker-archive to `path` atomically.
pub fn write_docker_archive_file(
    path: &Path,
    store: &BlobStore,
    images: &[ArchiveImage],
    epoch: i64,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(IoError::at("creating temporary file", dir))?;
    let out = io::BufWriter::new(tmp);
    let out = write_docker_archive(out, store, images, epoch)?;
    let tmp = out
        .into_inner()
        .map_err(|e| IoError::at("writing docker-archive", path)(e.into_error()))?;
    tmp.persist(path)
        .map_err(|e| IoError::at("renaming docker-archive into place", path)(e.error))?;
    Ok(())
}

/// An image imported from a docker-archive into a blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// Tags recorded in the archive.
    pub repo_tags: Vec<String>,
    /// The config blob (its digest is the Docker image ID).
    pub config: Descriptor,
    /// Layers as stored (gzip layers keep their bytes, tar layers stay uncompressed).
    pub layers: Vec<Layer>,
    /// An OCI manifest written into the store for this image.
    pub manifest: Descriptor,
}

#[derive(Debug)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// Index of a tar file: member name → position, so members can be read in any order.
struct ArchiveIndex {
    file: File,
    members: HashMap<String, Member>,
}

impl ArchiveIndex {
    fn open(path: &Path) -> Result<Self> {
        let mut members = HashMap::new();
        let rerr = || IoError::at("reading docker-archive", path);
        let file = BufReader::new(File::open(path).map_err(rerr())?);
        let listed = kiln_layers::read::index(file).map_err(|e| {
            Error::invalid(format!("docker-archive {}", path.display()), e.to_string())
        })?;
        for m in listed {
            let Some(name) = normalize(&m.name) else {
                continue;
            };
            match m.kind {
                MemberKind::File => {
                    members.insert(
                        name,
                        Member::File {
                            offset: m.data_offset,
                            size: m.size,
                        },
                    );
                }
                MemberKind::Symlink | MemberKind::Hardlink => {
                    let target = m.link;
                    let resolved = if m.kind == MemberKind::Hardlink || target.starts_with('/') {
                        normalize(&target)
                    } else {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        normalize(&format!("{dir}/{target}"))
                    };
                    if let Some(resolved) = resolved {
                        members.insert(name, Member::Link(resolved));
                    }
                }
                MemberKind::Dir | MemberKind::Other => {}
            }
        }
        let file = File::open(path).map_err(rerr())?;
        Ok(ArchiveIndex { file, members })
    }

    /// Opens a member (following links, bounded) as a reader over its bytes.
    fn member(&mut self, name: &str) -> Result<(io::Take<&mut File>, u64)> {
        let mut name = normalize(name).unwrap_or_default();
        for _ in 0..16 {
            match self.members.get(&name) {
                Some(Member::Link(target)) => name = target.clone(),
                Some(Member::File { offset, size }) => {
                    let (offset, size) = (*offset, *size);
                    self.file
                        .seek(SeekFrom::Start(offset))
                        .map_err(IoError::new("seeking in docker-archive"))?;
                    return Ok(((&mut self.file).take(size), size));
                }
                None => break,
            }
        }
        Err(Error::NotFound(format!("{name:?} in docker-archive")))
    }

    fn read(&mut self, name: &str) -> Result<Vec<u8>> {
        let (mut r, size) = self.member(name)?;
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        r.read_to_end(&mut buf)
            .map_err(IoError::new(format!("reading {name} from docker-archive")))?;
        Ok(buf)
    }
}

/// The digest a member name implies (`<hex>.json`, `blobs/<algorithm>/<hex>`), if any.
fn implied_digest(name: &str) -> Option<Digest> {
    let mut parts = name.rsplit('/');
    let base = parts.next()?.trim_end_matches(".json");
    let algo = parts.next().filter(|a| *a == "sha512").unwrap_or("sha256");
    format!("{algo}:{base}").parse().ok()
}

/// Lists the images of a docker-archive (its `manifest.json`).
pub fn list_docker_archive(path: &Path) -> Result<Vec<ArchiveManifestEntry>> {
    let mut index = ArchiveIndex::open(path)?;
    serde_json::from_slice(&index.read("manifest.json")?)
        .map_err(|e| Error::json("parsing docker-archive manifest.json", e))
}

/// Imports every image of a docker-archive into `store`: config and layers are stored with
/// verified digests (config names and the config's diff IDs are checked), and an OCI manifest
/// is written for each image so it can serve as a base image.
pub fn read_docker_archive(path: &Path, store: &BlobStore) -> Result<Vec<ImportedImage>> {
    let mut index = ArchiveIndex::open(path)?;
    let entries: Vec<ArchiveManifestEntry> = serde_json::from_slice(&index.read("manifest.json")?)
        .map_err(|e| Error::json("parsing docker-archive manifest.json", e))?;
    let mut imported = Vec::new();
    for entry in entries {
        let config_bytes = index.read(&entry.config)?;
        let config_digest = Digest::sha256_of(&config_bytes);
        if let Some(expected) = implied_digest(&entry.config) {
            let actual = Digest::of(expected.algorithm(), &config_bytes);
            check(&entry.config, &expected, actual)?;
        }
        let config = parse_config(&config_bytes)?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(Error::invalid(
                "docker-archive",
                format!(
                    "{} lists {} layers, its config {}",
                    entry.config,
                    entry.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        store.put_bytes(&config_bytes)?;
        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let (reader, _) = index.member(name)?;
            let (digest, size) = store.put_reader(reader, None)?;
            let mut magic = [0u8; 2];
            let gz =
                store.open_blob(&digest)?.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
            let media_type = if gz {
                MEDIA_TYPE_LAYER_GZIP
            } else {
                MEDIA_TYPE_LAYER_TAR
            };
            let layer = Layer {
                digest,
                diff_id: *diff_id,
                size,
                media_type: media_type.into(),
            };
            verify_layer(store, &layer)?;
            layers.push(layer);
        }
        let config_desc =
            Descriptor::new(MEDIA_TYPE_CONFIG, config_digest, config_bytes.len() as u64);
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            config: config_desc.clone(),
            layers: layers.iter().map(Layer::descriptor).collect(),
            annotations: BTreeMap::new(),
        };
        let (digest, size) = store.put_bytes(&manifest.to_json()?)?;
        imported.push(ImportedImage {
            repo_tags: entry.repo_tags,
            config: config_desc,
            layers,
            manifest: Descriptor::new(MEDIA_TYPE_MANIFEST, digest, size),
        });
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_tag_handles_ports_and_missing_tags() {
        assert_eq!(split_tag("kiln/agent:1.0"), ("kiln/agent", "1.0"));
        assert_eq!(
            split_tag("127.0.0.1:5000/kiln/agent"),
            ("127.0.0.1:5000/kiln/agent", "latest")
        );
        assert_eq!(split_tag("127.0.0.1:5000/a:b"), ("127.0.0.1:5000/a", "b"));
    }

    #[test]
    fn normalize_resolves_dots_and_refuses_escapes() {
        assert_eq!(
            normalize("abc/../blobs/sha256/x").as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(
            normalize("./manifest.json").as_deref(),
            Some("manifest.json")
        );
        assert_eq!(normalize("../x"), None);
    }
}
