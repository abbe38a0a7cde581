//! Container images a plan needs (the base and the baked component images): from an OCI
//! layout, a docker-archive or a registry, verified and kept in the cache's blob store.
//! Split from [`super::resolve`], whose run state it shares.

use kiln_oci::oci::layout::{resolve_in_store, Layout, ResolvedImage};
use kiln_oci::registry::client::{Client, ClientOptions};
use kiln_oci::registry::{pull::pull, NoProgress};
use kiln_oci::{Descriptor, Platform};

use super::resolve::{Ready, Run};
use super::{Error, ImageSource, Result};

impl Run<'_> {
    /// An image into the cache's blob store. A corrupt blob of it in the cache is removed
    /// and the image obtained again from its source (the registry, the local OCI layout or
    /// docker-archive), one corrupt blob per pass.
    pub(super) fn obtain_image(
        &mut self,
        component: &str,
        key: &str,
        reference: &str,
        spec_pin: Option<&str>,
    ) -> Result<Option<Ready>> {
        let origin = format!("image:{reference}");
        if self.locked_out(component, &origin) {
            return Ok(None);
        }
        let mut corrupt = Vec::new();
        loop {
            match self.image_once(component, key, reference, spec_pin) {
                Err(e) if corrupt.len() < 256 => match self.corrupt_in_cache(&e) {
                    Some(c) => corrupt.push(c),
                    None => return Err(e),
                },
                Err(e) => return Err(e),
                Ok(r) => {
                    self.restored(corrupt, &origin, r.is_some());
                    return Ok(r);
                }
            }
        }
    }

    fn image_once(
        &mut self,
        component: &str,
        key: &str,
        reference: &str,
        spec_pin: Option<&str>,
    ) -> Result<Option<Ready>> {
        let origin = format!("image:{reference}");
        let expected = self.expected(component, &origin, spec_pin, key);
        let exp = expected.as_ref().map(|(h, by)| (h.as_str(), by.as_str()));
        let store = self.cache.store().clone();
        let img_err = |source| Error::Image {
            reference: reference.into(),
            source,
        };
        let image = if let Some(rest) = reference.strip_prefix("oci:") {
            let (dir, tag) = split_tag(rest);
            let layout = Layout::open(self.spec_dir.join(dir)).map_err(img_err)?;
            let tag = match tag {
                Some(t) => t.to_string(),
                None => layout
                    .refs()
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| "latest".into()),
            };
            let img = layout.resolve(&tag).map_err(img_err)?;
            self.check(&origin, exp, &img.manifest_descriptor.digest.hex())?;
            let mut digests = vec![img.manifest_descriptor.digest, img.config_descriptor.digest];
            digests.extend(img.layers.iter().map(|l| l.digest));
            for d in digests {
                store.copy_from(layout.store(), &d).map_err(img_err)?;
            }
            resolve_in_store(
                &store,
                img.manifest_descriptor.clone(),
                &Platform::linux_amd64(),
            )
            .map_err(img_err)?
        } else if let Some(rest) = reference.strip_prefix("docker-archive:") {
            let (file, tag) = split_tag(rest);
            let imported =
                kiln_oci::archive::read_docker_archive(&self.spec_dir.join(file), &store)
                    .map_err(img_err)?;
            let chosen = imported
                .iter()
                .find(|i| {
                    tag.map_or(true, |t| {
                        i.repo_tags
                            .iter()
                            .any(|r| r == t || r.ends_with(&format!(":{t}")))
                    })
                })
                .ok_or_else(|| Error::Source {
                    key: key.into(),
                    reason: format!("{file} has no image tagged {}", tag.unwrap_or("")),
                })?;
            let img = resolve_in_store(&store, chosen.manifest.clone(), &Platform::linux_amd64())
                .map_err(img_err)?;
            self.check(&origin, exp, &img.manifest_descriptor.digest.hex())?;
            img
        } else {
            let cached = expected
                .as_ref()
                .filter(|(h, _)| self.cache.contains(h))
                .map(|(h, _)| h.clone());
            let from_cache = match cached {
                Some(hex) => self.cached_image(&hex, reference)?,
                None => None,
            };
            if let Some(img) = from_cache {
                img
            } else if self.opts.offline {
                self.miss(component, &origin, expected.as_ref().map(|e| e.0.as_str()), "image not in the cache (--offline): use an `oci:DIR:TAG` or `docker-archive:FILE` source, or pull it with `kiln fetch` first");
                return Ok(None);
            } else {
                let (registry, repo, tag) = parse_reference(reference)?;
                let client = Client::new(ClientOptions::new(&registry)).map_err(img_err)?;
                let want = expected
                    .as_ref()
                    .map(|(h, _)| format!("sha256:{h}"))
                    .unwrap_or(tag);
                let img = pull(
                    &client,
                    &repo,
                    &want,
                    &Platform::linux_amd64(),
                    &store,
                    &mut NoProgress,
                )
                .map_err(img_err)?;
                self.check(&origin, exp, &img.manifest_descriptor.digest.hex())?;
                img
            }
        };
        let hex = image.manifest_descriptor.digest.hex();
        self.record(
            component,
            &origin,
            &hex,
            Some(image.manifest_descriptor.size),
            expected.is_some(),
        );
        Ok(Some(Ready::Image(Box::new(ImageSource {
            reference: reference.into(),
            store,
            image,
        }))))
    }

    /// A registry image whose manifest is in the cache, resolved there. `None` when one of
    /// its blobs is missing and the registry may be asked (online): a pull fetches it.
    fn cached_image(&self, hex: &str, reference: &str) -> Result<Option<ResolvedImage>> {
        let bytes = self.cache.read_verified(hex)?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(String::from)
            })
            .unwrap_or_else(|| kiln_oci::oci::MEDIA_TYPE_MANIFEST.into());
        let image_err = |source| Error::Image {
            reference: reference.into(),
            source,
        };
        let digest = format!("sha256:{hex}")
            .parse()
            .map_err(|e| image_err(kiln_oci::Error::InvalidDigest(e)))?;
        let desc = Descriptor::new(&media_type, digest, bytes.len() as u64);
        match resolve_in_store(self.cache.store(), desc, &Platform::linux_amd64()) {
            Ok(img) => Ok(Some(img)),
            Err(kiln_oci::Error::MissingBlob(_)) if !self.opts.offline => Ok(None),
            Err(source) => Err(image_err(source)),
        }
    }
}

/// `DIR:TAG` → (DIR, Some(TAG)); a colon inside the last path component only.
pub(super) fn split_tag(s: &str) -> (&str, Option<&str>) {
    let last = s.rfind('/').map_or(0, |i| i + 1);
    match s[last..].rfind(':') {
        Some(i) => (&s[..last + i], Some(&s[last + i + 1..])),
        None => (s, None),
    }
}

/// Registry, repository and tag or digest of a registry reference (see
/// [`kiln_model::values::ImageRef::pull_target`]); the reference was checked with the spec.
pub fn parse_reference(r: &str) -> Result<(String, String, String)> {
    kiln_model::values::ImageRef::parse(r)
        .map(|i| i.pull_target())
        .map_err(|e| Error::Source {
            key: r.into(),
            reason: e.problem,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("calico/node:v2.6.12").unwrap(),
            (
                "registry-1.docker.io".into(),
                "calico/node".into(),
                "v2.6.12".into()
            )
        );
        assert_eq!(
            parse_reference("debian:bookworm").unwrap(),
            (
                "registry-1.docker.io".into(),
                "library/debian".into(),
                "bookworm".into()
            )
        );
        assert_eq!(
            parse_reference("quay.io/calico/node").unwrap(),
            ("quay.io".into(), "calico/node".into(), "latest".into())
        );
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            parse_reference(&format!("127.0.0.1:5000/x@{digest}")).unwrap(),
            ("127.0.0.1:5000".into(), "x".into(), digest)
        );
        assert!(parse_reference("Not A Ref").is_err());
        assert_eq!(split_tag("dir/sub:tag"), ("dir/sub", Some("tag")));
        assert_eq!(split_tag("a:b/dir"), ("a:b/dir", None));
    }
}
