#!/usr/bin/env bash
# Re-records every engine-api scenario against the real daemon.
#
#   scripts/record-fixtures.sh [DIR]     (default: fixtures/engine-api)
#
# Runs the hermetic scenarios (engine-api/tests/hermetic/scenarios.rs) with
# BERTH_RECORD_FIXTURES=DIR: the same flows, over a recording transport
# wrapped around the real one. This is the only way fixtures are written.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-fixtures/engine-api}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
echo "recording engine-api scenarios into $dir"
BERTH_RECORD_FIXTURES="$dir" cargo test -q -p engine-api --test hermetic -- scenarios:: --test-threads=1
ls "$dir"
