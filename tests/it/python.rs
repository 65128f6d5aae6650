//! The Python the interop tests run (`TESSERA_PYTHON`, default `.venv/bin/python`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The python to run with, if it can `import` the given modules; otherwise
/// `None` after a loud message, or a failure when `TESSERA_REQUIRE_PYTHON=1`.
pub fn python_with(imports: &str, what: &str) -> Option<PathBuf> {
    let python = std::env::var_os("TESSERA_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    let problem = match Command::new(&python)
        .args(["-c", &format!("import {imports}")])
        .output()
    {
        Ok(out) if out.status.success() => return Some(python),
        Ok(out) => format!(
            "{} cannot import {imports}: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => format!("cannot run {}: {e}", python.display()),
    };
    let required = std::env::var("TESSERA_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "TESSERA_REQUIRE_PYTHON=1 but {problem}; run `bash scripts/python-env.sh` first"
    );
    eprintln!(
        "\n*** SKIPPED: the {what} did not run: {problem}.\n\
         *** Run `bash scripts/python-env.sh` to create .venv (or set TESSERA_PYTHON);\n\
         *** set TESSERA_REQUIRE_PYTHON=1 to make this a failure.\n"
    );
    None
}
