//! The `kiln` binary. Everything, from argument parsing to exit codes, is in the `kiln_cli`
//! library.

fn main() -> std::process::ExitCode {
    kiln_cli::main()
}
