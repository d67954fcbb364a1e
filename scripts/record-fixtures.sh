#!/usr/bin/env bash
# Re-records every scenario against the real daemon.
#
#   scripts/record-fixtures.sh [ROOT]     (default: fixtures)
#
# Runs the hermetic scenarios with BERTH_RECORD_FIXTURES=ROOT: the same flows,
# over a recording transport wrapped around the real one, written to
# ROOT/<suite>/<scenario>.json. This is the only way fixtures are written.
#   suite engine-api: engine-api/tests/hermetic/scenarios.rs
#   suite berth:      tests/hermetic/orchestration.rs
#   suite http:       tests/hermetic/http.rs
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-fixtures}
mkdir -p "$root"
root=$(cd "$root" && pwd)
echo "recording scenarios into $root"
export BERTH_RECORD_FIXTURES="$root"
cargo test -q -p engine-api --test hermetic -- scenarios:: --test-threads=1
cargo test -q -p berth --test hermetic -- --test-threads=1 orchestration:: http::
find "$root" -name '*.json' | sort
