#!/usr/bin/env bash
# The README's worked example, end to end: keygen, mint, attenuate, delegate,
# inspect, verify (allowed), verify (denied). Fails if any step misbehaves.
# Usage: scripts/demo.sh [TESSERA_BINARY]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -ge 1 ]; then
  tessera="$1"
else
  cargo build --quiet --release --manifest-path "$here/Cargo.toml"
  tessera="${CARGO_TARGET_DIR:-$here/target}/release/tessera"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "tessera keygen --out root.key"
tessera() { "$tessera" "$@"; }
ROOT_PUB=$(tessera keygen --out root.key); echo "$ROOT_PUB"
AGENT_PUB=$(tessera keygen --out planner.key)
SUB_PUB=$(tessera keygen --out summarizer.key)
tessera keys jwks --root-key root.key > jwks.json

step "tessera token mint ... > planner.tok"
tessera token mint --root-key root.key \
  --agent agent://acme/planner --action docs:read --resource 'docs/team-a/*' \
  --audience https://docs.acme.example --ttl 10m --bind-key "$AGENT_PUB" > planner.tok
cut -c1-60 planner.tok

step "tessera token attenuate planner.tok --ttl 5m > planner-5m.tok"
tessera token attenuate planner.tok --ttl 5m > planner-5m.tok

step "tessera token delegate planner-5m.tok --holder-key planner.key --to agent://acme/summarizer ..."
tessera token delegate planner-5m.tok --holder-key planner.key \
  --to agent://acme/summarizer --to-key "$SUB_PUB" \
  --resource 'docs/team-a/reports/*' > summarizer.tok

step "tessera token inspect summarizer.tok --keys jwks.json"
tessera token inspect summarizer.tok --keys jwks.json

step "tessera token verify summarizer.tok ... --resource docs/team-a/reports/q3.pdf   (allowed)"
tessera token verify summarizer.tok --keys jwks.json --no-revocation-check \
  --operation docs:read --resource docs/team-a/reports/q3.pdf \
  --service https://docs.acme.example --holder-key summarizer.key

step "tessera token verify summarizer.tok ... --resource docs/team-a/salaries.xlsx   (denied)"
set +e
tessera token verify summarizer.tok --keys jwks.json --no-revocation-check \
  --operation docs:read --resource docs/team-a/salaries.xlsx \
  --service https://docs.acme.example --holder-key summarizer.key
code=$?
set -e
if [ "$code" -ne 1 ]; then
  echo "demo: expected the out-of-scope request to be denied with exit 1, got $code" >&2
  exit 1
fi
echo
echo "demo: all steps behaved as expected"
