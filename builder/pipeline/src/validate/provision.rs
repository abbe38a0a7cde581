//! `[provision]`: the URL `dist/` is published at and the PXE tree (`dist/pxe/`).

use kiln_model::plan::{BootablePlan, ProvisionPlan};
use kiln_model::values::{quote, HttpUrl};

use super::Checker;
use crate::spec::Spec;

impl Checker {
    /// The provision plan: `Some(None)` without `provision.url`, `None` on errors.
    pub(super) fn provision(
        &mut self,
        spec: &Spec,
        boot: Option<&Option<BootablePlan>>,
    ) -> Option<Option<ProvisionPlan>> {
        let p = &spec.provision;
        let has_boot = matches!(boot, Some(Some(_)));
        let Some(raw) = &p.url else {
            if p.pxe == Some(true) {
                self.err(
                    "provision.pxe",
                    "the PXE tree needs the URL hosts fetch it from",
                    "set provision.url to where dist/ is published, e.g. \"http://10.0.0.5:8080/\" (`kiln serve`)",
                );
                return None;
            }
            return Some(None);
        };
        let url = self.url("provision.url", raw)?;
        let pxe = p.pxe.unwrap_or(has_boot);
        if pxe && !has_boot && boot.is_some() {
            self.err(
                "provision.pxe",
                "the PXE tree boots the role's kernel, initramfs and root image, and there are no bootable outputs",
                "turn boot outputs on (base.debian.kernel or boot.enabled = true), or set provision.pxe = false",
            );
            return None;
        }
        Some(Some(ProvisionPlan {
            url,
            pxe,
            installer: None,
        }))
    }

    /// `provision.url`: an `http://` URL without query or fragment, kept without its
    /// trailing `/`.
    fn url(&mut self, key: &str, raw: &str) -> Option<HttpUrl> {
        let url: HttpUrl = self.val(key, raw)?;
        if url.scheme() != "http" {
            self.err(
                key,
                format!("{} is not an http:// URL", quote(raw)),
                "use http://: the initramfs fetches the root image with busybox wget, which \
                 checks no TLS certificate; integrity comes from the root hash on the kernel \
                 command line",
            );
            return None;
        }
        if url.path().contains(['?', '#']) {
            self.err(
                key,
                format!("{} has a query or fragment", quote(raw)),
                "give the directory dist/ is published at, e.g. \"http://10.0.0.5:8080/\"",
            );
            return None;
        }
        let trimmed = raw.trim_end_matches('/');
        self.val(key, trimmed)
    }
}
