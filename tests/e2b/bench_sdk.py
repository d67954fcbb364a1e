#!/usr/bin/env python3
"""The sandboxes' benchmark, through the real E2B Python SDK, beside the engine.

Run by scripts/e2b-bench.sh, which starts a release `berth serve --dialect
e2b` with spares of `base` and a template `cold` of the same image without
spares, and sets what scripts/e2b-sdk.sh sets (E2B_API_URL, E2B_SANDBOX_URL,
E2B_API_KEY) plus BERTH_URL (the native API, for the pools' numbers) and
DOCKER_SOCK (the engine, for the floors).

It prints one table. Each row is a measurement through the SDK and its
floor measured in the same run on the same image (`berth/base:1`):

  create to first output   Sandbox.create() until commands.run("echo hi")
                           delivers its first stdout, pooled (a spare
                           adopted) and cold (template `cold`), beside
                           `docker run --rm IMAGE echo hi` (the CLI) and the
                           Engine API's create, attach, start to first output
  command round trip       commands.run("echo hi") on a running sandbox,
                           beside a bare engine exec (create, start attached,
                           read to the end, inspect the exit code) in a
                           plain container of the image
  file write + read        files.write() then files.read() of 1 MiB and of
                           50 MiB, beside the Engine API's archive PUT then
                           GET of the same bytes in that plain container

Order: each pair is measured interleaved (berth, floor, berth, floor, ...)
after one warm-up of each, so that load and caches fall on both alike.
Sample counts are small and bounded (the run takes about two minutes;
BERTH_BENCH_QUICK=1 takes a few samples of each, to keep it working).
"""

import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import time

from e2b import Sandbox

BERTH_URL = os.environ["BERTH_URL"].rstrip("/")
KEY = os.environ["E2B_API_KEY"]
SOCK = os.environ.get("DOCKER_SOCK", "/var/run/docker.sock")
IMAGE = "berth/base:1"
SPARES = int(os.environ.get("BENCH_SPARES", "4"))
# Quick mode (BERTH_BENCH_QUICK=1, as CI runs it) keeps the bench working;
# its numbers are not the README's.
QUICK = os.environ.get("BERTH_BENCH_QUICK") == "1"
N_CREATE = 2 if QUICK else int(os.environ.get("BENCH_CREATES", "20"))
N_COLD = 1 if QUICK else int(os.environ.get("BENCH_COLD", "10"))
N_COMMAND = 3 if QUICK else int(os.environ.get("BENCH_COMMANDS", "50"))
FILE_ROUNDS = ((1 << 20, 1), (50 << 20, 1)) if QUICK else ((1 << 20, 10), (50 << 20, 3))
TIMEOUT = 60


# ------------------------------------------------------------ the engine


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Engine:
    """The Engine API over its socket, one kept-alive connection for calls
    that answer with a body, a fresh one for each stream."""

    def __init__(self, path):
        self.path = path
        self.conn = UnixConnection(path)

    def call(self, method, url, body=None, headers=None, ok=(200, 201, 204)):
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        hdrs = {"Content-Type": "application/json"} if isinstance(body, (dict, list)) else {}
        hdrs.update(headers or {})
        self.conn.request(method, url, body=data, headers=hdrs)
        r = self.conn.getresponse()
        out = r.read()
        if r.status not in ok:
            raise RuntimeError(f"{method} {url}: {r.status} {out[:300]!r}")
        return out

    def json(self, method, url, body=None):
        out = self.call(method, url, body)
        return json.loads(out) if out else None

    def stream(self, method, url, body=None):
        """A call whose answer is a stream read by the caller (it owns the connection)."""
        conn = UnixConnection(self.path)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        if r.status not in (200, 101):
            raise RuntimeError(f"{method} {url}: {r.status} {r.read()[:300]!r}")
        return conn, r


def first_frame_payload(r):
    """Reads the multiplexed stream until its first stdout/stderr frame with bytes."""
    while True:
        header = r.read(8)
        if len(header) < 8:
            return b""
        size = int.from_bytes(header[4:8], "big")
        payload = r.read(size)
        if payload:
            return payload


def run_via_api(engine):
    """create (attached stdout), attach, start, first output; then wait and remove."""
    c = engine.json("POST", "/containers/create", {
        "Image": IMAGE, "Cmd": ["echo", "hi"], "AttachStdout": True, "AttachStderr": True,
        "HostConfig": {"NetworkMode": "none"},
    })
    cid = c["Id"]
    conn, r = engine.stream("POST", f"/containers/{cid}/attach?stream=1&stdout=1&stderr=1")
    engine.call("POST", f"/containers/{cid}/start")
    out = first_frame_payload(r)
    t = time.perf_counter()
    conn.close()
    engine.call("DELETE", f"/containers/{cid}?force=1", ok=(204, 404, 409))
    assert out.strip() == b"hi", out
    return t


def exec_round_trip(engine, cid):
    e = engine.json("POST", f"/containers/{cid}/exec", {"Cmd": ["echo", "hi"], "AttachStdout": True, "AttachStderr": True})
    conn, r = engine.stream("POST", f"/exec/{e['Id']}/start", {"Detach": False, "Tty": False})
    out = b""
    while True:
        header = r.read(8)
        if len(header) < 8:
            break
        out += r.read(int.from_bytes(header[4:8], "big"))
    conn.close()
    code = engine.json("GET", f"/exec/{e['Id']}/json")["ExitCode"]
    assert (out, code) == (b"hi\n", 0), (out, code)


def archive_round_trip(engine, cid, data):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("bench.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    engine.call("PUT", f"/containers/{cid}/archive?path=/tmp", buf.getvalue(),
                {"Content-Type": "application/x-tar"}, ok=(200,))
    back = engine.call("GET", f"/containers/{cid}/archive?path=/tmp/bench.bin", ok=(200,))
    with tarfile.open(fileobj=io.BytesIO(back)) as tar:
        got = tar.extractfile("bench.bin").read()
    assert len(got) == len(data)


# ------------------------------------------------------------ berth


def spares_ready():
    conn = http.client.HTTPConnection(BERTH_URL.removeprefix("http://"), timeout=10)
    conn.request("GET", "/v1/pools", headers={"Authorization": f"Bearer {KEY}"})
    r = conn.getresponse()
    pools = json.loads(r.read())
    conn.close()
    return next((p["idle"] for p in pools if p["name"] == "sandbox:base"), 0)


def wait_for_spares(n, within=60):
    deadline = time.monotonic() + within
    while spares_ready() < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the spares of base did not reach {n} within {within} s")
        time.sleep(0.05)


def create_to_first_output(template):
    first = []
    t0 = time.perf_counter()
    sbx = Sandbox.create(template=template, timeout=120, api_key=KEY, request_timeout=TIMEOUT)
    try:
        sbx.commands.run("echo hi", on_stdout=lambda _: first or first.append(time.perf_counter()), timeout=TIMEOUT)
    finally:
        sbx.kill()
    return (first[0] - t0) * 1000


# ------------------------------------------------------------ the table


def timed(f, *args):
    t0 = time.perf_counter()
    f(*args)
    return (time.perf_counter() - t0) * 1000


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


ROWS = []
POOLED = "create to first output: pooled (SDK)"
CLI = "  floor: `docker run --rm` (CLI)"
COMMAND = 'commands.run("echo hi") round trip (SDK)'
EXEC = "  floor: bare engine exec"


def row(what, xs, n=None):
    ROWS.append((what, statistics.median(xs), pct(xs, 99), len(xs) if n is None else n))
    return statistics.median(xs), pct(xs, 99)


def main():
    engine = Engine(SOCK)
    plain = engine.json("POST", "/containers/create", {"Image": IMAGE, "Cmd": ["sleep", "infinity"],
                                                         "HostConfig": {"NetworkMode": "none"}})["Id"]
    engine.call("POST", f"/containers/{plain}/start")
    try:
        bench(engine, plain)
    finally:
        engine.call("DELETE", f"/containers/{plain}?force=1", ok=(204, 404, 409))


def bench(engine, plain):
    # Warm-ups: the image's layers in the page cache, the SDK's imports, the CLI.
    wait_for_spares(SPARES)
    create_to_first_output("base")
    create_to_first_output("cold")
    subprocess.run(["docker", "run", "--rm", "--network", "none", IMAGE, "echo", "hi"], check=True, capture_output=True)
    run_via_api(engine)

    pooled, cold, cli, api = [], [], [], []
    for i in range(N_CREATE):
        wait_for_spares(SPARES)
        pooled.append(create_to_first_output("base"))
        if i < N_COLD:
            cold.append(create_to_first_output("cold"))
            t0 = time.perf_counter()
            p = subprocess.Popen(["docker", "run", "--rm", "--network", "none", IMAGE, "echo", "hi"],
                                 stdout=subprocess.PIPE)
            line = p.stdout.readline()
            cli.append((time.perf_counter() - t0) * 1000)
            p.wait()
            assert line == b"hi\n", line
            t0 = time.perf_counter()
            api.append((run_via_api(engine) - t0) * 1000)
    row(POOLED, pooled)
    row("create to first output: cold (SDK)", cold)
    row(CLI, cli)
    row("  floor: Engine API create, attach, start", api)

    sbx = Sandbox.create(template="base", timeout=300, api_key=KEY, request_timeout=TIMEOUT)
    try:
        sbx.commands.run("echo hi", timeout=TIMEOUT)
        exec_round_trip(engine, plain)
        berth_cmd, bare_exec = [], []
        for _ in range(N_COMMAND):
            berth_cmd.append(timed(lambda: sbx.commands.run("echo hi", timeout=TIMEOUT)))
            bare_exec.append(timed(exec_round_trip, engine, plain))
        row(COMMAND, berth_cmd)
        row(EXEC, bare_exec)

        for size, n in FILE_ROUNDS:
            data = os.urandom(size)
            label = f"{size >> 20} MiB"

            def through_sdk():
                sbx.files.write("/home/user/bench.bin", data)
                back = sbx.files.read("/home/user/bench.bin", format="bytes")
                assert len(back) == len(data)

            through_sdk()
            archive_round_trip(engine, plain, data)
            sdk_t, arc_t = [], []
            for _ in range(n):
                sdk_t.append(timed(through_sdk))
                arc_t.append(timed(archive_round_trip, engine, plain, data))
            row(f"file write + read, {label} (SDK)", sdk_t)
            row(f"  floor: archive API PUT + GET, {label}", arc_t)
    finally:
        sbx.kill()

    print()
    print("| measurement | p50 ms | p99 ms | n |")
    print("| --- | ---: | ---: | ---: |")
    for what, p50, p99, n in ROWS:
        print(f"| {what} | {p50:.1f} | {p99:.1f} | {n} |")
    print()
    by = {what: p50 for what, p50, _, _ in ROWS}
    pooled, cli = by[POOLED], by[CLI]
    print("| ratio (p50) | value | target |")
    print("| --- | ---: | --- |")
    print(f"| pooled create to first output | {pooled:.1f} ms | under 50 ms |")
    print(f"| pooled vs `docker run` | {pooled / cli:.2f}x | |")
    print(f"| command round trip vs bare exec | {by[COMMAND] / by[EXEC]:.2f}x | at most 1.1x |")
    for label in ("1 MiB", "50 MiB"):
        sdk, floor = by[f"file write + read, {label} (SDK)"], by[f"  floor: archive API PUT + GET, {label}"]
        print(f"| file transfer {label}: speed vs the archive API | {floor / sdk:.2f}x | at least 0.9x |")

if __name__ == "__main__":
    main()
