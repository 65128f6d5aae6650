//! The `tessera` binary: parses the command line and calls into the library.

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
