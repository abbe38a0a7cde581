//! Unit tests of the kickstart renderer's checks; whole kickstarts of every target and mode
//! are rendered from a spec and checked with `ksvalidator` in `tests/fast/kickstart.rs`.

use super::*;

#[test]
fn liveimg_names_are_those_anaconda_unpacks() {
    for ok in [
        "rootfs.tar",
        "r.tgz",
        "r.tar.gz",
        "r.txz",
        "r.tar.xz",
        "r.tbz",
        "r.tar.bz2",
    ] {
        assert!(liveimg_name_ok(ok), "{ok}");
    }
    for bad in [
        "rootfs.img",
        "rootfs.tar.zst",
        "rootfs.squashfs",
        "rootfs.gz",
        "tar.gz/x",
    ] {
        assert!(!liveimg_name_ok(bad), "{bad}");
    }
}

#[test]
fn netmasks_of_prefixes() {
    assert_eq!(netmask(24).to_string(), "255.255.255.0");
    assert_eq!(netmask(0).to_string(), "0.0.0.0");
    assert_eq!(netmask(32).to_string(), "255.255.255.255");
    assert_eq!(netmask(20).to_string(), "255.255.240.0");
}

#[test]
fn nothing_ends_a_line_a_word_or_a_shell_quote() {
    for bad in ["a b", "a\nb", "a#b", "a\"b", "", "a'b", "a\\b"] {
        assert!(word(bad, "x").is_err(), "{bad:?}");
    }
    assert_eq!(word("Europe/Berlin", "x").unwrap(), "Europe/Berlin");
    for bad in ["it's", "a\nb", ""] {
        assert!(sh(bad, "x").is_err(), "{bad:?}");
    }
    assert_eq!(sh("/etc/a b", "x").unwrap(), "'/etc/a b'");
}
