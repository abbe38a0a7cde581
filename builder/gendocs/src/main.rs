//! `kiln-gendocs DIR`: writes kiln's generated reference into DIR (`docs/reference` in the
//! repository; `./dev gen` runs it). See the library for what is written.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: kiln-gendocs DIR   (writes kiln's generated reference into DIR)";
    let dir = match (args.next(), args.next()) {
        (Some(a), None) if a == "-h" || a == "--help" => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        (Some(dir), None) if !dir.to_string_lossy().starts_with('-') => dir,
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
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
