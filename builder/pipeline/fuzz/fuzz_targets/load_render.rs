//! Bytes → spec source → load (parse, check, derive) → render, as `kiln check` and `kiln
//! render` do with a spec file. Whatever the bytes: no panic, every diagnostic located (and
//! printable), and a spec that was accepted renders (a render error after a successful check
//! is a checker bug). Run it with `cargo +nightly fuzz run load_render` in `builder/fuzz/`.
#![no_main]

use kiln_pipeline::diag::SpecSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = match SpecSource::from_bytes("fuzz.toml", data.to_vec()) {
        Ok(src) => src,
        Err(d) => {
            assert!(d.location.is_some(), "a non-UTF-8 spec without a location");
            let _ = d.to_string();
            return;
        }
    };
    match kiln_pipeline::validate::load(&src) {
        Err(rejected) => {
            for d in &rejected.diagnostics {
                assert!(
                    d.location.is_some(),
                    "a diagnostic without a location: {d:?}"
                );
                let _ = d.to_string();
            }
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                let _ = w.to_string();
            }
            if let Err(e) = kiln_pipeline::components::render(&loaded.plan) {
                panic!("accepted, then render failed: {e}");
            }
        }
    }
});
