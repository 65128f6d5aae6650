#!/usr/bin/env bash
# Runs every test. On a fresh machine it first installs what the tests need:
# a redis-server binary (Redis store tests) and a Python virtual environment
# with Authlib (interop tests). Tests start their own
# redis-server processes; they never use one already running.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (needed by the Redis store tests)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

# Python (Authlib) for the interop tests, in ./.venv.
python="$(bash scripts/python-env.sh | tail -n 1)"
export TESSERA_PYTHON="$python"

# Redis and Python tests fail instead of skipping when their tools are missing.
export TESSERA_REQUIRE_REDIS=1
export TESSERA_REQUIRE_PYTHON=1
cargo test --locked --all-features
