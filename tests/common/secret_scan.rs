//! The secret scanner: finds a secret (as it is, and base64'd at each alignment) in a file,
//! decompressed by magic, and in tar members one by one (compressed members too).

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;

/// The cluster's test key (a throwaway made with `ssh-keygen`), which the fixture specs of
/// the secrets and PXE tests give root.
pub const CLUSTER_KEY_BODY: &str =
    "AAAAC3NzaC1lZDI1NTE5AAAAIGtIe7kPEAXCJt+AmYd+hNmM7P7js86e6VqK3CNj/wel";

/// What must not be found of the secrets `secrets` (what, text): each as it is, and its
/// base64 at the three alignments (the middle of the encoding, which does not depend on the
/// bytes around it). `secrets` (what, text).
pub fn needles_of(secrets: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for &(what, s) in secrets {
        out.push((what.to_string(), s.as_bytes().to_vec()));
        for pad in 0..3 {
            let mut bytes = vec![b'x'; pad];
            bytes.extend_from_slice(s.as_bytes());
            let enc = base64::engine::general_purpose::STANDARD.encode(&bytes);
            // Skip the characters that mix in the padding bytes, keep a long middle.
            let start = (pad * 4).div_ceil(3) + 1;
            let end = enc.len() - 4;
            out.push((
                format!("{what} (base64, offset {pad})"),
                enc.as_bytes()[start..end].to_vec(),
            ));
        }
    }
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Every secret found in `data` (decompressed, and inside tar members), with where.
pub fn scan(name: &str, data: &[u8], needles: &[(String, Vec<u8>)], found: &mut Vec<String>) {
    let data = kiln_layers::decompress_all(data).unwrap_or_else(|e| panic!("{name}: {e}"));
    for (what, n) in needles {
        if contains(&data, n) {
            found.push(format!("{what} in {name}"));
        }
    }
    // A tar (a layer, a docker-archive, a rootfs tarball): its members may be compressed.
    if data.len() > 262 && &data[257..262] == b"ustar" {
        let mut ar = tar::Archive::new(&data[..]);
        for entry in ar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut member = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut member).unwrap();
            if kiln_layers::decompress::detect(&member) != kiln_layers::decompress::Format::Plain
                || (member.len() > 262 && &member[257..262] == b"ustar")
            {
                scan(&format!("{name}!{path}"), &member, needles, found);
            }
        }
    }
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
