#!/usr/bin/env bash
# berth's one test command: provisions the engine and runs every tier.
#
#   1. provisioning (scripts/provision.sh): dockerd, local images, loopback registry;
#   2. unit + property tests, the real-engine tier and the swarm tier (cargo test
#      --workspace); the real-engine tier fails, never skips, when the daemon is
#      unreachable, and the swarm tier when its rig (scripts/swarm-rig.sh) cannot be built;
#   3. the hermetic tier again with DOCKER_HOST pointing at nothing, over the
#      committed recordings and over a fresh recording made just now (freshness);
#   4. the e2b SDK tier (scripts/e2b-sdk.sh): the real e2b Python SDK, unchanged,
#      against berth serve --dialect e2b on the real engine; then berth in its own
#      container (scripts/container.sh test);
#   5. the benchmark binaries in quick mode, so they keep working (numbers in
#      README.md come from full runs: cargo bench -p engine-api --bench engine,
#      cargo bench -p berth --bench orchestration, cargo bench -p berth --bench pools,
#      cargo bench -p berth --bench oci, cargo bench -p berth --bench swarm (on the rig),
#      scripts/e2b-bench.sh);
#   6. schemathesis against the native API's OpenAPI on the oci-dry-run backend
#      (BERTH_API_FUZZ_SECONDS, default 60): no 5xx, no crash;
#   7. every fuzz target for a bounded time (BERTH_FUZZ_SECONDS, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long the one before it took, and the end says the total.
started=$SECONDS
step_at=$SECONDS
step_name=
step() {
  if [ -n "$step_name" ]; then printf '== %s: %d s\n' "$step_name" $((SECONDS - step_at)); fi
  step_name=$*
  step_at=$SECONDS
  printf '\n== %s\n' "$*"
}

step "provisioning the engine"
bash scripts/provision.sh

step "the sandbox helper (a static binary)"
BERTH_SANDBOX_HELPER=$(bash scripts/sandbox-helper.sh)
export BERTH_SANDBOX_HELPER

step "unit, property, real-engine and swarm tests"
# Libraries, binaries and test targets; the bench binaries run in their own
# step below, in quick mode (under cargo test they would run in full). The
# swarm tier (tests/swarm.rs) brings the three-node rig up itself
# (scripts/swarm-rig.sh); it goes down once this step ends, however it ends.
rig_down() { bash scripts/swarm-rig.sh down >/dev/null 2>&1 || true; }
trap rig_down EXIT
cargo test --workspace --lib --bins --tests
rig_down
# The console's Chromium test leaves its screenshot here.
test -f target/console.png
echo "test.sh: the console as Chromium showed it: $(pwd)/target/console.png"

# The hermetic tier, with DOCKER_HOST pointing at nothing; every replay
# first checks that nothing answers there (BERTH_REQUIRE_NO_DAEMON).
hermetic() {
  DOCKER_HOST=unix:///nonexistent/berth-no-daemon.sock BERTH_REQUIRE_NO_DAEMON=1 \
    cargo test -p engine-api --test hermetic
  DOCKER_HOST=unix:///nonexistent/berth-no-daemon.sock BERTH_REQUIRE_NO_DAEMON=1 \
    cargo test -p berth --test hermetic
}
step "hermetic tier with no daemon reachable (committed fixtures)"
hermetic

step "fixture freshness: re-record every scenario, then replay the fresh recordings"
fresh=$(mktemp -d /tmp/berth-fixtures.XXXXXX)
trap 'rm -rf "$fresh"; rig_down' EXIT
bash scripts/record-fixtures.sh "$fresh"
# A committed recording that no scenario makes any more is stale.
if ! diff <(cd fixtures && find . -name '*.json' | sort) <(cd "$fresh" && find . -name '*.json' | sort); then
  echo "the committed fixtures and the scenarios that record them differ (see above)" >&2
  exit 1
fi
BERTH_FIXTURES_DIR=$fresh hermetic

step "the e2b SDK tier: e2b==2.63.0 from PyPI drives berth serve --dialect e2b"
cargo build --bin berth
bash scripts/e2b-sdk.sh

step "berth in its own container (scripts/container.sh): built, run under compose, checked"
bash scripts/container.sh test

step "benchmarks (quick mode)"
BERTH_BENCH_QUICK=1 cargo bench -p engine-api --bench engine
BERTH_BENCH_QUICK=1 cargo bench -p berth --bench orchestration
BERTH_BENCH_QUICK=1 cargo bench -p berth --bench http
BERTH_BENCH_QUICK=1 cargo bench -p berth --bench pools
BERTH_BENCH_QUICK=1 cargo bench -p berth --bench oci
BERTH_BENCH_QUICK=1 cargo bench -p berth --bench swarm
BERTH_BENCH_QUICK=1 bash scripts/e2b-bench.sh

step "API fuzzing: schemathesis against berth serve on the oci-dry-run backend (${BERTH_API_FUZZ_SECONDS:-60} s)"
bash scripts/api-fuzz.sh "${BERTH_API_FUZZ_SECONDS:-60}"

step "fuzzing (${BERTH_FUZZ_SECONDS:-30} s per target)"
bash scripts/fuzz.sh "${BERTH_FUZZ_SECONDS:-30}"

step "all tiers passed"
printf '== total: %d s\n' $((SECONDS - started))
