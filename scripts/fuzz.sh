#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for SECONDS (default
# 10), failing on any crash, leak, timeout or out-of-memory. Stable Rust is
# enough: the fuzz crate is built with the coverage flags cargo-fuzz passes
# (SanitizerCoverage, --cfg fuzzing, debug assertions, overflow checks), no
# sanitizer and no nightly flag, so cargo-fuzz is not needed.
#
#   bash scripts/fuzz.sh [SECONDS]          build all targets, run each SECONDS
#   FUZZ_TARGETS="dpop jwks" bash scripts/fuzz.sh 60
#   FUZZ_BUILD_ONLY=1 bash scripts/fuzz.sh  build only
#
# Each run starts from the committed seeds (fuzz/seeds/<target>/) and keeps
# what it finds in fuzz/corpus/<target>/ (not committed); a crashing input is
# written to fuzz/artifacts/<target>/. Replay one with
#   $FUZZ_TARGET_DIR/x86_64-unknown-linux-gnu/release/<target> <file>
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-10}
case $seconds in
  '' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

# The targets CI builds and runs. `token_form` and `feed_page` reach parsers
# private to the issuer and the verifier through src/fuzzing.rs, with the
# fuzz crate's `private` feature (the whole issuer): FUZZ_PRIVATE=1 adds them.
targets=${FUZZ_TARGETS:-token_authorize dpop client_assertion jwks}
features=()
if [ "${FUZZ_PRIVATE:-0}" = 1 ]; then
  [ -n "${FUZZ_TARGETS:-}" ] || targets="$targets token_form feed_page"
  features=(--features private)
fi

host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$root/target}/fuzz}
# The flags cargo-fuzz passes (without a sanitizer), all stable.
export RUSTFLAGS="--cfg fuzzing \
-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth \
-Cdebug-assertions \
-Coverflow-checks \
-Cdebuginfo=1"
unset RUSTC_WRAPPER

echo "== fuzz: build ($targets) into $CARGO_TARGET_DIR"
bins=()
for t in $targets; do bins+=(--bin "$t"); done
# --target keeps the instrumentation off build scripts and proc macros.
cargo build --locked --release --manifest-path fuzz/Cargo.toml \
  --target "$host" "${features[@]}" "${bins[@]}"

if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
  exit 0
fi

failed=()
for t in $targets; do
  bin=$CARGO_TARGET_DIR/$host/release/$t
  corpus=$root/fuzz/corpus/$t
  artifacts=$root/fuzz/artifacts/$t
  mkdir -p "$corpus" "$artifacts"
  log=$(mktemp)
  echo "== fuzz: $t for ${seconds}s"
  if "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" "$root/fuzz/seeds/$t" >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done )' "$log" || true
    tail -n 1 "$log"
  else
    tail -n 60 "$log" >&2
    echo "fuzz: $t FAILED; input in $artifacts" >&2
    failed+=("$t")
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${targets// /, }: no crash"
