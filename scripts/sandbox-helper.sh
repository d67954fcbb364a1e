#!/usr/bin/env bash
# Builds berth's in-sandbox helper, berth-sandboxd, as a static binary (it
# is copied into sandboxes of any image, so it cannot lean on their libc)
# and prints its path. Serve finds it beside the berth binary or through
# BERTH_SANDBOX_HELPER; the tests read BERTH_SANDBOX_HELPER, defaulting to
# this path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build -q -p berth-sandboxd --profile helper --target "$target" >&2
bin="${CARGO_TARGET_DIR:-target}/$target/helper/berth-sandboxd"
file "$bin" | grep -q 'static' || { echo "sandbox-helper: $bin is not statically linked" >&2; exit 1; }
echo "$bin"
