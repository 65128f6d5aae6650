#!/usr/bin/env bash
# Creates the Python virtual environment for examples/python (at .venv in the
# repository root) when it is missing, and installs the pinned requirements
# from PyPI when they changed. Safe to run again. Progress goes to standard
# error; the last line on standard output is the path of the venv's python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
req="$root/examples/python/requirements.txt"
py="$venv/bin/python"
stamp="$venv/.tessera-requirements.sha256"

if [ ! -x "$py" ]; then
  command -v python3 >/dev/null 2>&1 || { echo "python-env.sh: python3 is not installed" >&2; exit 1; }
  echo "python-env.sh: creating $venv" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >&2; then
    echo "python-env.sh: 'python3 -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  fi
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "python-env.sh: installing examples/python/requirements.txt" >&2
  "$py" -m pip install --quiet --disable-pip-version-check --requirement "$req" >&2
  echo "$want" > "$stamp"
fi

echo "$py"
