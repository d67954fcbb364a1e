#!/usr/bin/env bash
# berth in its own container (Dockerfile, compose.yaml): the image built from
# the host's binaries, then run with Debian's docker-compose beside the host's
# engine and checked as a user would check it.
#
#   scripts/container.sh build   the image berth/berth:dev only
#   scripts/container.sh test    build, up, check, down (what scripts/test.sh runs):
#                                CodeRunner's README examples against berth inside it,
#                                the client on the host against it, berth doctor inside it
#
# The check's listeners are on the host's network (127.0.0.1:18787 and
# 127.0.0.1:18080), under the compose project berth-container-ci, which it
# takes down (with its volume) however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly IMAGE=berth/berth:dev
readonly PROJECT=berth-container-ci
readonly API=127.0.0.1:18787
readonly CODERUNNER=127.0.0.1:18080

log() { echo "container: $*" >&2; }
die() { echo "container: ERROR: $*" >&2; exit 1; }

build() {
    log "building the binary (release) and the sandbox helper"
    cargo build --release --bin berth
    helper=$(bash scripts/sandbox-helper.sh | tail -1)
    [ "$helper" = target/x86_64-unknown-linux-gnu/helper/berth-sandboxd ] \
        || die "the helper is at $helper, not where the Dockerfile takes it"
    docker image inspect python:3.11-slim >/dev/null 2>&1 || die "no python:3.11-slim (scripts/provision.sh builds it)"
    docker build -q -t "$IMAGE" . >/dev/null
    log "built $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
}

compose() {
    BERTH_LISTEN=$API BERTH_DIALECTS="coderunner=$CODERUNNER" docker-compose -p "$PROJECT" -f compose.yaml "$@"
}

down() { compose down -v --remove-orphans >/dev/null 2>&1 || true; }

expect() { # expect WHAT TEXT NEEDLE
    case "$2" in
        *"$3"*) log "ok: $1" ;;
        *) die "$1: expected $3 in: $2" ;;
    esac
}

check() {
    trap down EXIT
    down
    compose up -d
    for _ in $(seq 1 60); do
        curl -sf "http://$API/v1/health" >/dev/null && break
        sleep 0.5
    done
    curl -sf "http://$API/v1/health" >/dev/null || { compose logs; die "berth in its container did not answer"; }
    log "berth answers from its container on $API"

    # CodeRunner's README, as written there (its port moved to $CODERUNNER).
    expect "GET /health" "$(curl -s "http://$CODERUNNER/health")" '"status":"healthy"'
    expect "GET /" "$(curl -s "http://$CODERUNNER/")" '"status":"running"'
    ran=$(curl -s -X POST "http://$CODERUNNER/execute" \
        -H "Content-Type: application/json" \
        -d '{
          "code": "print(\"Hello from CodeRunner!\")",
          "language": "python",
          "timeout": 30
        }')
    expect "POST /execute" "$ran" '"output":"Hello from CodeRunner!\n"'
    expect "POST /execute succeeds" "$ran" '"success":true'

    # The client on the host, against berth in the container.
    out=$(target/release/berth run --url "http://$API" --language sh --code 'echo from the container; exit 4') \
        && die "the run's exit code 4 was not berth's" || code=$?
    [ "${code:-0}" = 4 ] || die "berth run exited $code, not 4"
    expect "berth run against the container" "$out" "from the container"

    # berth doctor inside it: the engine through the socket, the oci backend off and why.
    said=$(BERTH_DIALECTS= compose exec -T -e BERTH_DIALECTS= berth berth doctor --listen 127.0.0.1:0) \
        || die "berth doctor inside the container found something blocking: $said"
    expect "doctor: the engine through the mounted socket" "$said" "ok    engine      the engine at unix:///var/run/docker.sock"
    expect "doctor: the oci backend off inside a container" "$said" "berth runs in a container"
    down
    trap - EXIT
    [ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] || die "the project left containers"
    log "berth in its container: every check passed"
}

case "${1:-}" in
    build) build ;;
    test) build; check ;;
    *) die "usage: scripts/container.sh build|test" ;;
esac
