#!/usr/bin/env bash
# An OpenAPI-driven fuzz run of the native API: schemathesis (from PyPI,
# pinned, in a venv kept under ~/.cache) generates requests from
# /openapi.json against `berth serve` on the oci-dry-run backend, bounded in
# time, and fails on any 5xx, on a server that crashes, or on one that does
# not shut down cleanly afterwards.
#
#   scripts/api-fuzz.sh [SECONDS]      (default 60; BERTH_API_FUZZ_SECONDS)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-${BERTH_API_FUZZ_SECONDS:-60}}
version=4.32.5
# The newest Python at hand: CPython 3.11 up to 3.11.7 can fail inside
# hypothesis's ast.parse with "AST constructor recursion depth mismatch"
# (a CPython bug, fixed later), which schemathesis reports as an error.
python=python3
for candidate in python3.13 python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3 \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        python=$candidate
        break
    fi
done
pyversion=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=${XDG_CACHE_HOME:-$HOME/.cache}/berth/schemathesis-$version-py$pyversion
if [ ! -x "$venv/bin/schemathesis" ]; then
    echo "api-fuzz: installing schemathesis $version into $venv ($python)"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==$version"
fi

cargo build -q --bin berth
work=$(mktemp -d /tmp/berth-api-fuzz.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BERTH_TOKENS=fuzz-token=fuzz "${CARGO_TARGET_DIR:-target}/debug/berth" serve --backend oci-dry-run \
    --listen "127.0.0.1:$port" --data "$work/data" >"$work/serve.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/v1/health" && break
    sleep 0.1
done
grep -q "oci-dry-run" "$work/serve.log" || { cat "$work/serve.log"; echo "api-fuzz: not on the dry run" >&2; exit 1; }

echo "api-fuzz: $seconds s of schemathesis against http://127.0.0.1:$port"
status=0
(cd "$work" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
    -H "Authorization: Bearer fuzz-token" \
    --checks not_a_server_error \
    --phases examples,coverage,fuzzing \
    --exclude-path '/v1/agents/{id}/exec/ws' \
    --max-time "$seconds" -w 2 --seed 1) || status=$?

kill -0 "$server" 2>/dev/null || { cat "$work/serve.log"; echo "api-fuzz: the server died" >&2; exit 1; }
kill -TERM "$server"
wait "$server" || { cat "$work/serve.log"; echo "api-fuzz: the server did not shut down cleanly" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT
[ "$status" = 0 ] || { echo "api-fuzz: schemathesis found failures" >&2; exit "$status"; }
echo "api-fuzz: no 5xx, no crash"
