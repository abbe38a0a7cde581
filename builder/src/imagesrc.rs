//! Container images named by an `oci` source on disk: `oci:DIR[:REF]` (an OCI image layout)
//! or `docker-archive:FILE` (`docker save` output). Used for the base of role images and for
//! the component images the units run.

use std::path::Path;

use kiln_images::oci::layout::{resolve_in_store, Layout, ResolvedImage};
use kiln_images::{BlobStore, Layer, Platform};
use kiln_layers::FileTree;

/// Imports the image `src` into `store` (every digest verified) and resolves it. Relative
/// paths are taken from `spec_dir`.
pub fn load(src: &str, spec_dir: &Path, store: &BlobStore) -> Result<ResolvedImage, String> {
    let fail = |e: &dyn std::fmt::Display| format!("image source {src:?}: {e}");
    if let Some(rest) = src.strip_prefix("oci:") {
        let (dir, reference) = match rest.rsplit_once(':') {
            Some((d, r)) if !r.contains('/') => (d, Some(r)),
            _ => (rest, None),
        };
        let layout = Layout::open(spec_dir.join(dir)).map_err(|e| fail(&e))?;
        let reference = match reference {
            Some(r) => r.to_string(),
            None => {
                let refs = layout.refs();
                match refs.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        return Err(fail(&format!(
                            "the layout has refs {refs:?}; name one as oci:{dir}:REF"
                        )))
                    }
                }
            }
        };
        let image = layout.resolve(&reference).map_err(|e| fail(&e))?;
        for digest in std::iter::once(&image.manifest_descriptor.digest)
            .chain(std::iter::once(&image.config_descriptor.digest))
            .chain(image.layers.iter().map(|l| &l.digest))
        {
            store
                .copy_from(layout.store(), digest)
                .map_err(|e| fail(&e))?;
        }
        return resolve_in_store(
            store,
            image.manifest_descriptor.clone(),
            &Platform::linux_amd64(),
        )
        .map_err(|e| fail(&e));
    }
    if let Some(file) = src.strip_prefix("docker-archive:") {
        let images = kiln_images::archive::read_docker_archive(&spec_dir.join(file), store)
            .map_err(|e| fail(&e))?;
        let [image] = images.as_slice() else {
            return Err(fail(&format!(
                "the archive holds {} images; kiln needs exactly one",
                images.len()
            )));
        };
        return resolve_in_store(store, image.manifest.clone(), &Platform::linux_amd64())
            .map_err(|e| fail(&e));
    }
    Err(fail(
        &"not an image on disk; write oci:DIR[:REF] or docker-archive:FILE",
    ))
}

/// The root filesystem of `layers` (OCI whiteouts applied, hostile entries refused), with file
/// contents dropped: checks need paths, kinds, modes and link targets, and a base of a few GB
/// must not sit in memory.
pub fn flatten(store: &BlobStore, layers: &[Layer]) -> Result<FileTree, String> {
    let mut tree = FileTree::new();
    for l in layers {
        let blob = store.open_blob(&l.digest).map_err(|e| e.to_string())?;
        kiln_layers::apply_layer_metadata(&mut tree, std::io::BufReader::new(blob))
            .map_err(|e| format!("layer {}: {e}", l.digest))?;
    }
    Ok(tree)
}
