//! Pushing images: blobs (skip if present, cross-repository mount, monolithic or chunked
//! upload), then manifests by digest and tag.

use kiln_layers::{Algorithm, Digest};

use super::client::{expect_status, is_retryable, Body, Client};
use super::{validate_repository, Progress, ProgressEvent};
use crate::oci::manifest::{parse_index, parse_manifest};
use crate::oci::{Descriptor, MEDIA_TYPE_DOCKER_MANIFEST_LIST, MEDIA_TYPE_INDEX};
use crate::store::{check, BlobStore};
use crate::{Error, Result};

/// What to push where.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Repository (`kiln/agent`).
    pub repository: String,
    /// Tags to put the manifest (or index) under. Empty: push by digest only.
    pub tags: Vec<String>,
    /// A repository on the same registry that may already hold the blobs: try mounting from it.
    pub mount_from: Option<String>,
    /// Blobs larger than this are uploaded in chunks.
    pub chunk_threshold: u64,
    /// Chunk size for chunked uploads.
    pub chunk_size: u64,
}

impl PushOptions {
    /// Push to `repository` under `tags`, defaults otherwise (8 MiB chunks above 16 MiB).
    pub fn new(repository: &str, tags: &[&str]) -> Self {
        PushOptions {
            repository: repository.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            mount_from: None,
            chunk_threshold: 16 << 20,
            chunk_size: 8 << 20,
        }
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The registry had it already.
    Skipped,
    /// Mounted from another repository.
    Mounted,
    /// Uploaded in one request.
    Uploaded,
    /// Uploaded in chunks.
    UploadedChunked,
}

/// Counts of what a push did, e.g. to check that re-pushing an unchanged image uploads nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs uploaded (monolithic or chunked).
    pub blobs_uploaded: u32,
    /// Of those, chunked uploads.
    pub blobs_chunked: u32,
    /// Blobs the registry already had.
    pub blobs_skipped: u32,
    /// Blobs mounted from `mount_from`.
    pub blobs_mounted: u32,
    /// Blob bytes uploaded (by successful uploads).
    pub bytes_uploaded: u64,
    /// Manifests and indexes stored (by digest or tag).
    pub manifests_pushed: u32,
    /// Upload sessions started over after a failure.
    pub upload_restarts: u32,
    /// Digest of the pushed top-level manifest or index.
    pub digest: Digest,
}

struct Pusher<'a> {
    client: &'a Client,
    store: &'a BlobStore,
    opts: &'a PushOptions,
    progress: &'a mut dyn Progress,
    report: PushReport,
    scopes: Vec<String>,
    /// Location of the upload session in progress, to cancel it if the attempt fails.
    session: Option<String>,
}

/// Pushes the manifest or index `top` (and everything it references) from `store`.
pub fn push(
    client: &Client,
    store: &BlobStore,
    top: &Descriptor,
    opts: &PushOptions,
    progress: &mut dyn Progress,
) -> Result<PushReport> {
    validate_repository(&opts.repository)?;
    if let Some(from) = &opts.mount_from {
        validate_repository(from)?;
    }
    let mut scopes = vec![format!("repository:{}:pull,push", opts.repository)];
    if let Some(from) = &opts.mount_from {
        scopes.push(format!("repository:{from}:pull"));
    }
    let mut p = Pusher {
        client,
        store,
        opts,
        progress,
        report: PushReport {
            blobs_uploaded: 0,
            blobs_chunked: 0,
            blobs_skipped: 0,
            blobs_mounted: 0,
            bytes_uploaded: 0,
            manifests_pushed: 0,
            upload_restarts: 0,
            digest: top.digest,
        },
        scopes,
        session: None,
    };
    let bytes = store.read_verified(&top.digest)?;
    if top.media_type == MEDIA_TYPE_INDEX || top.media_type == MEDIA_TYPE_DOCKER_MANIFEST_LIST {
        for child in parse_index(&bytes)?.manifests {
            let child_bytes = store.read_verified(&child.digest)?;
            p.push_image_blobs(&child_bytes)?;
            p.put_manifest(&child.digest.to_string(), &child.media_type, &child_bytes)?;
        }
    } else {
        p.push_image_blobs(&bytes)?;
    }
    if opts.tags.is_empty() {
        p.put_manifest(&top.digest.to_string(), &top.media_type, &bytes)?;
    }
    for tag in &opts.tags {
        p.put_manifest(tag, &top.media_type, &bytes)?;
    }
    Ok(p.report)
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

impl Pusher<'_> {
    fn repo_path(&self, rest: &str) -> String {
        self.client.url(&format!("{}/{rest}", self.opts.repository))
    }

    fn push_image_blobs(&mut self, manifest_bytes: &[u8]) -> Result<()> {
        let manifest = parse_manifest(manifest_bytes)?;
        // Layers first, config last, as Docker does: a config present means the image is.
        for desc in manifest
            .layers
            .iter()
            .chain(std::iter::once(&manifest.config))
        {
            let size = self.store.size(&desc.digest)?;
            if size != desc.size {
                return Err(Error::invalid(
                    format!("blob {}", desc.digest),
                    format!("manifest says {} bytes, store has {size}", desc.size),
                ));
            }
            self.push_blob(&desc.digest, size)?;
        }
        Ok(())
    }

    fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        let url = self.repo_path(&format!("blobs/{digest}"));
        let resp = self
            .client
            .send("HEAD", &url, &[], Body::Empty, &self.scopes, true)?;
        match resp.status() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(super::client::status_error("HEAD", &url, resp)),
        }
    }

    fn push_blob(&mut self, digest: &Digest, size: u64) -> Result<()> {
        self.progress
            .on_event(&ProgressEvent::BlobStarted { digest, size });
        let started = std::time::Instant::now();
        let mut attempt = 1;
        let outcome = loop {
            match self.try_push_blob(digest, size) {
                Ok(o) => break o,
                Err(e) => match self.client.retry.backoff(attempt, started) {
                    Some(wait) if is_retryable(&e) || is_session_error(&e) => {
                        self.cancel_session();
                        attempt += 1;
                        self.report.upload_restarts += 1;
                        self.progress.on_event(&ProgressEvent::Restarted {
                            digest,
                            attempt,
                            error: &e,
                        });
                        std::thread::sleep(wait);
                    }
                    _ => return Err(e),
                },
            }
        };
        match outcome {
            BlobOutcome::Skipped => self.report.blobs_skipped += 1,
            BlobOutcome::Mounted => self.report.blobs_mounted += 1,
            BlobOutcome::Uploaded | BlobOutcome::UploadedChunked => {
                self.report.blobs_uploaded += 1;
                self.report.bytes_uploaded += size;
                if outcome == BlobOutcome::UploadedChunked {
                    self.report.blobs_chunked += 1;
                }
            }
        }
        self.progress
            .on_event(&ProgressEvent::BlobFinished { digest, outcome });
        Ok(())
    }

    /// One whole attempt: HEAD, then mount or a fresh upload session. A failed attempt is
    /// started over from the HEAD; a session that died half-way is cancelled first.
    fn try_push_blob(&mut self, digest: &Digest, size: u64) -> Result<BlobOutcome> {
        if self.blob_exists(digest)? {
            return Ok(BlobOutcome::Skipped);
        }
        let start_url = match &self.opts.mount_from {
            Some(from) => self.repo_path(&format!("blobs/uploads/?mount={digest}&from={from}")),
            None => self.repo_path("blobs/uploads/"),
        };
        let resp = self
            .client
            .send("POST", &start_url, &[], Body::Empty, &self.scopes, true)?;
        let resp = expect_status("POST", &start_url, resp, &[201, 202])?;
        if resp.status() == 201 && self.opts.mount_from.is_some() {
            return Ok(BlobOutcome::Mounted);
        }
        let mut location = self.location(&resp, &start_url)?;
        self.session = Some(location.clone());
        let path = self.store.path(digest);
        let chunked = size > self.opts.chunk_threshold;
        if chunked {
            let chunk = self.opts.chunk_size.max(1);
            let mut offset = 0;
            while offset < size {
                let len = chunk.min(size - offset);
                let range = format!("{}-{}", offset, offset + len - 1);
                let body = Body::File {
                    path: &path,
                    offset,
                    len,
                };
                let headers = [
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", range.as_str()),
                ];
                let resp =
                    self.client
                        .send("PATCH", &location, &headers, body, &self.scopes, false)?;
                let resp = expect_status("PATCH", &location, resp, &[202, 204])?;
                location = self.location(&resp, &location)?;
                self.session = Some(location.clone());
                offset += len;
                self.progress.on_event(&ProgressEvent::BlobBytes {
                    digest,
                    done: offset,
                    size,
                });
            }
            let url = with_digest(&location, digest);
            let resp = self
                .client
                .send("PUT", &url, &[], Body::Empty, &self.scopes, false)?;
            expect_status("PUT", &url, resp, &[201, 204])?;
            self.session = None;
            Ok(BlobOutcome::UploadedChunked)
        } else {
            let url = with_digest(&location, digest);
            let body = Body::File {
                path: &path,
                offset: 0,
                len: size,
            };
            let headers = [("Content-Type", "application/octet-stream")];
            let resp = self
                .client
                .send("PUT", &url, &headers, body, &self.scopes, false)?;
            expect_status("PUT", &url, resp, &[201, 204])?;
            self.session = None;
            self.progress.on_event(&ProgressEvent::BlobBytes {
                digest,
                done: size,
                size,
            });
            Ok(BlobOutcome::Uploaded)
        }
    }

    /// Best effort: tells the registry to drop an abandoned upload session before starting a
    /// fresh one (it would expire anyway).
    fn cancel_session(&mut self) {
        if let Some(location) = self.session.take() {
            let _ = self
                .client
                .send("DELETE", &location, &[], Body::Empty, &self.scopes, false);
        }
    }

    fn location(&self, resp: &ureq::Response, url: &str) -> Result<String> {
        resp.header("location")
            .map(|l| self.client.url(l))
            .ok_or_else(|| Error::invalid(format!("answer to {url}"), "no Location header"))
    }

    fn put_manifest(&mut self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        let url = self.repo_path(&format!("manifests/{reference}"));
        let headers = [("Content-Type", media_type)];
        let resp = self.client.send(
            "PUT",
            &url,
            &headers,
            Body::Bytes(bytes),
            &self.scopes,
            true,
        )?;
        let resp = expect_status("PUT", &url, resp, &[200, 201, 202])?;
        // The registry may name the manifest in another algorithm (sha512): check it in that.
        let server: Option<Digest> = resp
            .header("docker-content-digest")
            .map(str::parse)
            .transpose()?;
        let algo = server.map_or(Algorithm::Sha256, |d| d.algorithm());
        let digest = Digest::of(algo, bytes);
        if let Some(server) = server {
            check(
                &format!("manifest {url} (registry's digest)"),
                &digest,
                server,
            )?;
        }
        self.report.manifests_pushed += 1;
        self.progress.on_event(&ProgressEvent::ManifestPushed {
            reference,
            digest: &digest,
        });
        Ok(())
    }
}

/// Errors of an upload session that a fresh session may cure (unknown or expired upload,
/// range mismatch after a half-sent chunk).
fn is_session_error(e: &Error) -> bool {
    matches!(
        e,
        Error::Registry {
            status: 404 | 416,
            ..
        }
    )
}
