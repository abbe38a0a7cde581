//! `.deb` packages: an `ar` archive holding `debian-binary`, `control.tar.*` and
//! `data.tar.*`. The payload (`data.tar` plain, gzip, xz or zstd) is read with the layers
//! crate's safe tar reader; maintainer scripts in `control.tar` are not run.

use kiln_layers::FileTree;

use super::{Error, Result};

/// One member of an `ar` archive.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// Lists the members of an `ar` archive (common/GNU format, as dpkg writes it).
pub fn ar_members<'a>(what: &str, bytes: &'a [u8]) -> Result<Vec<Member<'a>>> {
    let bad = |reason: String| Error::Archive {
        what: what.into(),
        reason,
    };
    if !bytes.starts_with(b"!<arch>\n") {
        return Err(bad(
            "not an ar archive (a .deb starts with \"!<arch>\")".into()
        ));
    }
    let mut pos = 8;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let h = bytes
            .get(pos..pos + 60)
            .ok_or_else(|| bad(format!("truncated ar header at byte {pos}")))?;
        if &h[58..60] != b"`\n" {
            return Err(bad(format!("bad ar header magic at byte {pos}")));
        }
        let name = std::str::from_utf8(&h[..16])
            .map_err(|_| bad(format!("non-UTF-8 member name at byte {pos}")))?
            .trim_end()
            .trim_end_matches('/');
        let size: usize = std::str::from_utf8(&h[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad(format!("bad member size at byte {pos}")))?;
        let start = pos + 60;
        let data = bytes.get(start..start + size).ok_or_else(|| {
            bad(format!(
                "member {name} is truncated ({size} bytes announced)"
            ))
        })?;
        out.push(Member { name, data });
        pos = start + size + (size & 1);
    }
    Ok(out)
}

/// The files a `.deb` installs, from its `data.tar.*`.
pub fn data_tree(what: &str, bytes: &[u8], of: super::unpack::Of) -> Result<FileTree> {
    let members = ar_members(what, bytes)?;
    if members.first().map(|m| m.name) != Some("debian-binary") {
        return Err(Error::Archive {
            what: what.into(),
            reason: "not a Debian package (first member is not debian-binary)".into(),
        });
    }
    let data = members
        .iter()
        .find(|m| m.name.starts_with("data.tar"))
        .ok_or_else(|| Error::Archive {
            what: what.into(),
            reason: "no data.tar member".into(),
        })?;
    if !matches!(
        data.name,
        "data.tar" | "data.tar.gz" | "data.tar.xz" | "data.tar.zst"
    ) {
        return Err(Error::Archive {
            what: what.into(),
            reason: format!(
                "{} is not supported (kiln reads data.tar with no compression, gzip, xz or zstd)",
                data.name
            ),
        });
    }
    let what = format!("{what} ({})", data.name);
    match of {
        super::unpack::Of::Base => super::unpack::read_base_tar(&what, data.data),
        super::unpack::Of::Component => read_tar(&what, data.data),
    }
}

/// A (compressed) tar member read with the layers reader (escapes refused).
fn read_tar(what: &str, bytes: &[u8]) -> Result<FileTree> {
    kiln_layers::read_layer(bytes).map_err(|source| Error::Layer {
        what: what.into(),
        source,
    })
}

/// The `control` file of a `.deb` (fields such as `Package:` and `Version:`).
pub fn control(what: &str, bytes: &[u8]) -> Result<String> {
    let members = ar_members(what, bytes)?;
    let c = members
        .iter()
        .find(|m| m.name.starts_with("control.tar"))
        .ok_or_else(|| Error::Archive {
            what: what.into(),
            reason: "no control.tar member".into(),
        })?;
    let tree = read_tar(&format!("{what} ({})", c.name), c.data)?;
    let data = tree
        .get("/control")
        .and_then(|e| e.data())
        .ok_or_else(|| Error::Archive {
            what: what.into(),
            reason: "control.tar has no control file".into(),
        })?;
    Ok(String::from_utf8_lossy(data).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_ar_is_refused() {
        let mut b = b"!<arch>\n".to_vec();
        b.extend_from_slice(b"debian-binary   0           0     0     100644  4         `\n2.0");
        let e = ar_members("x.deb", &b).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
