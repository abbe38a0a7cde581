//! `kiln-gendocs DIR`: writes kiln's generated reference into DIR (`docs/reference` in the
//! repository; `./dev gen` runs it). See the library for what is written.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: kiln-gendocs DIR");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match kiln_gendocs::write_all(&dir) {
        Ok(files) => {
            eprintln!("wrote {} file(s) under {}", files.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: writing {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
