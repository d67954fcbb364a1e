#!/usr/bin/env bash
# The sandboxes' benchmark through the real E2B SDK: builds a release berth
# and the sandbox helper, then runs tests/e2b/bench_sdk.py through
# scripts/e2b-sdk.sh (same venv, same listeners) with spares of `base` and a
# template `cold` of the same image that keeps none. It prints one table of
# berth beside its floors (docker run, a bare exec, the archive API); the
# README's table comes from it. Bounded: at most BERTH_E2B_TIMEOUT (600) s.
#
#   BENCH_SPARES (4)  BENCH_CREATES (20)  BENCH_COLD (10)  BENCH_COMMANDS (50)
#   BERTH_BENCH_QUICK=1  a few samples of each, on the debug berth already
#                        built (CI's run, to keep the bench working)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}

if [ "${BERTH_BENCH_QUICK:-}" = 1 ]; then
    berth=${BERTH_BIN:-$target/debug/berth}
else
    cargo build --release --bin berth
    bash scripts/sandbox-helper.sh >/dev/null
    berth=${BERTH_BIN:-$target/release/berth}
fi
BERTH_BIN="$berth" \
BERTH_E2B_SCRIPT=tests/e2b/bench_sdk.py \
BERTH_SPARES="base=${BENCH_SPARES:-4}" \
BERTH_E2B_CONFIG='[templates.cold]
image = "berth/base:1"' \
    exec bash scripts/e2b-sdk.sh
