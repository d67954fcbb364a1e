#!/usr/bin/env bash
# The E2B tier: berth's e2b dialect driven through the real, unchanged Python
# SDK (e2b==2.63.0 from PyPI, in a venv kept under target/). It starts
# `berth serve --backend docker --dialect e2b` on free loopback ports (the
# control plane and envd listeners moved off 3000/49983 by a config file),
# runs tests/e2b/test_sdk.py against it, stops that berth and exits with the
# tests' status. It builds nothing: it expects berth and its sandbox helper.
#
#   scripts/e2b-sdk.sh [TEST-NAME-SUBSTRING...]
#
#   BERTH_BIN             default target/debug/berth          (cargo build --bin berth)
#   BERTH_SANDBOX_HELPER  default target/x86_64-unknown-linux-gnu/helper/berth-sandboxd
#                                                              (scripts/sandbox-helper.sh)
#   BERTH_E2B_VENV        default target/e2b-venv
#   BERTH_E2B_TIMEOUT     default 600 (seconds, the whole test run)
#   BERTH_E2B_SCRIPT      default tests/e2b/test_sdk.py (scripts/e2b-bench.sh runs the benchmark)
#   BERTH_E2B_CONFIG      more of berth's configuration file (TOML), appended
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.63.0
target=${CARGO_TARGET_DIR:-target}
venv=${BERTH_E2B_VENV:-target/e2b-venv}
berth=${BERTH_BIN:-$target/debug/berth}
helper=${BERTH_SANDBOX_HELPER:-$target/x86_64-unknown-linux-gnu/helper/berth-sandboxd}
budget=${BERTH_E2B_TIMEOUT:-600}
script=${BERTH_E2B_SCRIPT:-tests/e2b/test_sdk.py}

say() { echo "e2b-sdk: $*"; }
die() { echo "e2b-sdk: $*" >&2; exit 1; }

# The SDK, pinned, in its own venv (made once, checked every time).
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('e2b') != '$version')" 2>/dev/null; then
    say "installing e2b $version into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "e2b==$version" "h2>=4"   # h2: the h2c check
fi

[ -x "$berth" ] || die "no berth binary at $berth (cargo build --bin berth, or set BERTH_BIN)"
[ -f "$helper" ] || die "no sandbox helper at $helper (scripts/sandbox-helper.sh, or set BERTH_SANDBOX_HELPER)"
berth=$(realpath "$berth")
helper=$(realpath "$helper")

work=$(mktemp -d /tmp/berth-e2b-sdk.XXXXXX)
server=
cleanup() {
    status=$?
    set +e
    trap '' PIPE  # a reader gone early (| head) must not stop the cleanup
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -TERM "$server" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$server" 2>/dev/null && { say "berth did not stop within 10 s; killing it"; kill -KILL "$server" 2>/dev/null || true; }
        wait "$server" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$work/serve.log" ]; then
        echo "---- the last 200 lines of berth's log ----" >&2
        tail -n 200 "$work/serve.log" >&2 || true
        echo "---- end of berth's log ----" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Three distinct free ports, held at once so that none is handed out twice.
read -r listen api envd < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

cat >"$work/berth.toml" <<EOF
[dialects.e2b]
api = "127.0.0.1:$api"
envd = "127.0.0.1:$envd"
EOF
printf '%s\n' "${BERTH_E2B_CONFIG:-}" >>"$work/berth.toml"

say "berth on 127.0.0.1:$listen, e2b control plane on :$api, envd on :$envd"
# Nothing from the caller's environment may move the listeners elsewhere.
(cd "$work" && exec env -u BERTH_DIALECTS -u BERTH_CONFIG -u BERTH_LISTEN -u BERTH_DATA -u BERTH_BACKEND \
    BERTH_TOKENS=e2b-key-a=tenant-a,e2b-key-b=tenant-b \
    BERTH_SANDBOX_HELPER="$helper" \
    "$berth" serve --backend docker --dialect e2b --config "$work/berth.toml" \
    --data "$work/data" --listen "127.0.0.1:$listen") >"$work/serve.log" 2>&1 &
server=$!

# Bounded wait (30 s) for both e2b listeners to give any HTTP answer.
answers() { [ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)" != 000 ]; }
ready=
for _ in $(seq 1 300); do
    kill -0 "$server" 2>/dev/null || die "berth exited before it answered (is the e2b dialect built in?)"
    if answers "http://127.0.0.1:$api/health" && answers "http://127.0.0.1:$envd/health"; then ready=1; break; fi
    sleep 0.1
done
[ -n "$ready" ] || die "the e2b listeners did not answer on :$api and :$envd within 30 s"

say "running $script (at most $budget s)"
status=0
timeout --kill-after=10 "$budget" env \
    -u E2B_DEBUG -u E2B_ACCESS_TOKEN -u E2B_HTTP_VERSION \
    -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
    NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
    E2B_API_URL="http://127.0.0.1:$api" \
    E2B_SANDBOX_URL="http://127.0.0.1:$envd" \
    E2B_API_KEY=e2b-key-a \
    E2B_API_KEY_B=e2b-key-b \
    E2B_DOMAIN=berth.localhost \
    BERTH_URL="http://127.0.0.1:$listen" \
    "$venv/bin/python" -u "$script" "$@" || status=$?
[ "$status" = 124 ] && say "the tests did not finish within $budget s"

kill -0 "$server" 2>/dev/null || { say "berth died during the tests"; [ "$status" != 0 ] || status=1; }
[ "$status" = 0 ] && say "every test passed" || say "failures (exit $status)"
exit "$status"
