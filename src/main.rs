//! The `tessera` binary: parses the command line and calls into the library.

/// The issuer allocates and frees many small buffers per request (HTTP,
/// Datalog, JSON, store pages); mimalloc spends less CPU on them than
/// glibc's allocator (see the issuer section of docs/performance.md).
#[cfg(feature = "server")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
