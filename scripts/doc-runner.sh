#!/usr/bin/env bash
# Runs every shell block of README.md, examples/**/README*.md and docs/*.md as
# written, in order, one fresh directory per document, with the given tessera
# binary on PATH and an issuer started when a document needs one
# (scripts/doc-runner.py says how blocks are marked). Fails on any drift.
# Usage: scripts/doc-runner.sh TESSERA_BINARY [DOC.md ...]
#        scripts/doc-runner.sh --together TESSERA_BINARY [DOC.md ...]
#        scripts/doc-runner.sh --self-check TESSERA_BINARY
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ "${1:-}" != "--self-check" ]; then
  # The Python examples' blocks use .venv; documents run in copies that link to it.
  bash "$here/python-env.sh" > /dev/null
fi
exec python3 "$here/doc-runner.py" "$@"
