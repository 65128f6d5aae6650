#!/usr/bin/env bash
# Runs every test. On a fresh machine it first installs what the tests need:
# a redis-server binary (Redis store tests), a Python virtual environment
# with Authlib (interop tests), and Node.js with the test identity provider's
# packages (tests/idp, oidc-provider from package-lock.json) and the JavaScript
# example's (examples/js). Tests start their own
# redis-server processes; they never use one already running.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (needed by the Redis store tests)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: installing nodejs and npm (needed by the identity provider tests)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

# The test identity provider's packages, exactly as locked; installed again
# when the lock file changed since the last install.
idp_lock="tests/idp/package-lock.json"
idp_stamp="tests/idp/node_modules/.tessera-lock.sha256"
idp_sum="$(sha256sum "$idp_lock" | cut -d' ' -f1)"
if [ ! -d tests/idp/node_modules ] || [ "$(cat "$idp_stamp" 2>/dev/null)" != "$idp_sum" ]; then
  echo "test.sh: npm ci in tests/idp (the test identity provider)"
  npm ci --prefix tests/idp --no-audit --no-fund >/dev/null
  echo "$idp_sum" > "$idp_stamp"
fi

# The JavaScript example's packages (examples/js: biscuit-wasm and the MCP
# TypeScript SDK, for tests/it/interop_js.rs), the same way.
js_sum="$(sha256sum examples/js/package-lock.json | cut -d' ' -f1)"
js_stamp="examples/js/node_modules/.tessera-lock.sha256"
if [ ! -d examples/js/node_modules ] || [ "$(cat "$js_stamp" 2>/dev/null)" != "$js_sum" ]; then
  echo "test.sh: npm ci in examples/js (the JavaScript example)"
  npm ci --prefix examples/js --no-audit --no-fund >/dev/null
  echo "$js_sum" > "$js_stamp"
fi

# Debian's chromium for the browser tests of the web pages (tests/browser
# drives it with playwright-core, which downloads no browser).
if [ -z "${TESSERA_CHROMIUM:-}" ] && ! [ -x /usr/bin/chromium ]; then
  echo "test.sh: installing chromium (needed by the browser tests)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

# The browser tests' packages (playwright-core), the same way.
browser_sum="$(sha256sum tests/browser/package-lock.json | cut -d' ' -f1)"
browser_stamp="tests/browser/node_modules/.tessera-lock.sha256"
if [ ! -d tests/browser/node_modules ] || [ "$(cat "$browser_stamp" 2>/dev/null)" != "$browser_sum" ]; then
  echo "test.sh: npm ci in tests/browser (playwright-core)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund >/dev/null
  echo "$browser_sum" > "$browser_stamp"
fi

# Python (Authlib) for the interop tests, in ./.venv.
python="$(bash scripts/python-env.sh | tail -n 1)"
export TESSERA_PYTHON="$python"

# Redis, Python and Node tests fail instead of skipping when their tools are missing.
export TESSERA_REQUIRE_REDIS=1
export TESSERA_REQUIRE_PYTHON=1
export TESSERA_REQUIRE_NODE=1
export TESSERA_REQUIRE_BROWSER=1
cargo test --locked --all-features
