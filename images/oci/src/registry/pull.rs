//! Pulling an image: manifest (OCI or Docker schema 2; an index resolves to the wanted
//! platform), config and layers into a blob store, every digest verified.

use std::io::Read;

use kiln_layers::{Algorithm, Digest, IoError};

use super::client::{expect_status, is_retryable, Body, Client};
use super::{validate_repository, Progress, ProgressEvent};
use crate::oci::layout::{layers_of, select_platform, ResolvedImage};
use crate::oci::manifest::{parse_config, parse_index, parse_manifest};
use crate::oci::{
    Descriptor, Platform, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
};
use crate::store::{check, BlobStore};
use crate::{Error, Result};

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// Largest manifest accepted.
const MAX_MANIFEST: u64 = 4 << 20;

/// Pulls `repository:reference` (a tag or a `sha256:`/`sha512:` digest) into `store`. An index or manifest
/// list resolves to `platform`'s manifest. Blobs already in the store are verified, not
/// fetched again. Returns the resolved image (manifest, config, layers).
pub fn pull(
    client: &Client,
    repository: &str,
    reference: &str,
    platform: &Platform,
    store: &BlobStore,
    progress: &mut dyn Progress,
) -> Result<ResolvedImage> {
    validate_repository(repository)?;
    let scopes = vec![format!("repository:{repository}:pull")];
    let mut reference = reference.to_string();
    for _ in 0..4 {
        let (desc, bytes) = fetch_manifest(client, repository, &reference, &scopes)?;
        // Stored under the digest that names it (sha512 if the registry uses that).
        store.put_reader(bytes.as_slice(), Some(&desc.digest))?;
        if desc.media_type == MEDIA_TYPE_INDEX || desc.media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST
        {
            reference = select_platform(&parse_index(&bytes)?, platform)?
                .digest
                .to_string();
            continue;
        }
        let manifest = parse_manifest(&bytes)?;
        fetch_blob(
            client,
            repository,
            &manifest.config,
            store,
            &scopes,
            progress,
        )?;
        let config_bytes = store.read_verified(&manifest.config.digest)?;
        let config = parse_config(&config_bytes)?;
        let layers = layers_of(&manifest, &config)?;
        for layer in &manifest.layers {
            fetch_blob(client, repository, layer, store, &scopes, progress)?;
        }
        return Ok(ResolvedImage {
            manifest_descriptor: desc,
            config_descriptor: manifest.config.clone(),
            manifest,
            config,
            config_bytes,
            layers,
        });
    }
    Err(Error::invalid("image index", "indexes nested too deeply"))
}

fn fetch_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    scopes: &[String],
) -> Result<(Descriptor, Vec<u8>)> {
    let url = client.url(&format!("{repository}/manifests/{reference}"));
    let resp = client.send(
        "GET",
        &url,
        &[("Accept", ACCEPT)],
        Body::Empty,
        scopes,
        true,
    )?;
    if resp.status() == 404 {
        return Err(Error::NotFound(format!(
            "{repository}:{reference} on {}",
            client.registry()
        )));
    }
    let resp = expect_status("GET", &url, resp, &[200])?;
    let header_type = resp
        .header("content-type")
        .map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
    // A digest reference names the content; otherwise the registry's digest (in whichever
    // algorithm it uses) does, when it sends one.
    let expected: Option<Digest> = if reference.contains(':') {
        Some(reference.parse()?)
    } else {
        resp.header("docker-content-digest")
            .map(str::parse)
            .transpose()?
    };
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(IoError::new(format!("reading {url}")))?;
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(Error::invalid(
            format!("manifest {url}"),
            "larger than 4 MiB",
        ));
    }
    let algo = expected.map_or(Algorithm::Sha256, |d| d.algorithm());
    let digest = Digest::of(algo, &bytes);
    if let Some(expected) = expected {
        check(&format!("manifest {url}"), &expected, digest)?;
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(&bytes)
        .map_err(|e| Error::json(format!("parsing manifest {url}"), e))?;
    let media_type = probe
        .media_type
        .or(header_type.filter(|t| {
            [
                MEDIA_TYPE_MANIFEST,
                MEDIA_TYPE_INDEX,
                MEDIA_TYPE_DOCKER_MANIFEST,
                MEDIA_TYPE_DOCKER_MANIFEST_LIST,
            ]
            .contains(&t.as_str())
        }))
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                MEDIA_TYPE_INDEX
            } else {
                MEDIA_TYPE_MANIFEST
            }
            .to_string()
        });
    Ok((
        Descriptor::new(&media_type, digest, bytes.len() as u64),
        bytes,
    ))
}

fn fetch_blob(
    client: &Client,
    repository: &str,
    desc: &Descriptor,
    store: &BlobStore,
    scopes: &[String],
    progress: &mut dyn Progress,
) -> Result<()> {
    let digest = &desc.digest;
    progress.on_event(&ProgressEvent::BlobStarted {
        digest,
        size: desc.size,
    });
    if store.contains(digest) && store.verify(digest).is_ok_and(|n| n == desc.size) {
        progress.on_event(&ProgressEvent::BlobFinished {
            digest,
            outcome: super::BlobOutcome::Skipped,
        });
        return Ok(());
    }
    let url = client.url(&format!("{repository}/blobs/{digest}"));
    let started = std::time::Instant::now();
    let mut attempt = 1;
    loop {
        let result = client
            .send("GET", &url, &[], Body::Empty, scopes, true)
            .and_then(|resp| expect_status("GET", &url, resp, &[200]))
            .and_then(|resp| {
                // Streams to a temporary file; renamed into place only if the digest matches.
                store
                    .put_reader(resp.into_reader().take(desc.size + 1), Some(digest))
                    .map_err(|e| match e {
                        // A read from the connection failed (retried); a full disk is a
                        // write error on the named file, and retrying does not help.
                        Error::Io(e) if e.path.is_some() && !e.is_disk_full() => {
                            IoError::new(format!("downloading {url}"))(e.source).into()
                        }
                        other => other,
                    })
            });
        match result {
            Ok((_, size)) if size == desc.size => break,
            Ok((_, size)) => {
                return Err(Error::invalid(
                    format!("blob {digest}"),
                    format!("descriptor says {} bytes, got {size}", desc.size),
                ))
            }
            Err(e) => match client.retry.backoff(attempt, started) {
                Some(wait) if is_retryable(&e) => {
                    attempt += 1;
                    client.note_retry();
                    progress.on_event(&ProgressEvent::Restarted {
                        digest,
                        attempt,
                        error: &e,
                    });
                    std::thread::sleep(wait);
                }
                _ => return Err(e),
            },
        }
    }
    progress.on_event(&ProgressEvent::BlobBytes {
        digest,
        done: desc.size,
        size: desc.size,
    });
    progress.on_event(&ProgressEvent::BlobFinished {
        digest,
        outcome: super::BlobOutcome::Uploaded,
    });
    Ok(())
}
