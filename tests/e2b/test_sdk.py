#!/usr/bin/env python3
"""berth's e2b dialect, driven through the real, unchanged E2B Python SDK.

Run by scripts/e2b-sdk.sh, which starts `berth serve --dialect e2b` and sets:

    E2B_API_URL      the dialect's control plane   (http://127.0.0.1:PORT)
    E2B_SANDBOX_URL  the dialect's envd listener   (http://127.0.0.1:PORT)
    E2B_API_KEY      tenant A's key;  E2B_API_KEY_B  tenant B's key
    E2B_DOMAIN       the sandbox domain get_host() builds names with

Each test is one behaviour, named as a sentence; it prints PASS or FAIL
(with what was expected and what came), is bounded by a wall clock of its
own, and kills the sandboxes it made whatever happens. The script exits 1
if any test failed. Arguments, if given, select the tests whose names
contain one of them.

Behaviour follows what E2B does as the SDK sees it (the SDK wins over the
docs); ARCHITECTURE.md (`dialects/e2b/`) says which wire paths it takes.
"""

import asyncio
import hashlib
import os
import re
import sys
import threading
import time
import traceback
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from e2b import (
    AsyncSandbox,
    AuthenticationException,
    CommandExitException,
    FileNotFoundException,
    FilesystemEventType,
    FileType,
    PtySize,
    Sandbox,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
    Secret,
    Template,
    Volume,
)

API_URL = os.environ["E2B_API_URL"]
SANDBOX_URL = os.environ["E2B_SANDBOX_URL"].rstrip("/")
KEY_A = os.environ["E2B_API_KEY"]
KEY_B = os.environ["E2B_API_KEY_B"]
DOMAIN = os.environ.get("E2B_DOMAIN", "e2b.app")

# Every sandbox this run makes carries this tag, so the final sweep finds
# even one whose create call the client gave up on.
RUN = uuid.uuid4().hex[:10]
TAG = "berth-e2b-run"
REQUEST_TIMEOUT = 30  # seconds, for every SDK call that takes one
ENVD_PORT = "49983"


# ---------------------------------------------------------------- harness


class Failure(Exception):
    pass


def expect(condition, what, expected=None, got=None):
    if not condition:
        detail = what
        if expected is not None or got is not None:
            detail += f"\n      expected: {expected!r}\n      got:      {got!r}"
        raise Failure(detail)


def expect_eq(got, expected, what):
    expect(got == expected, what, expected, got)


def expect_raises(kinds, fn, what):
    """Calls fn, which must raise one of kinds; returns the exception."""
    try:
        value = fn()
    except kinds as e:
        return e
    except Exception as e:
        raise Failure(f"{what}\n      expected: {names(kinds)}\n      got:      {type(e).__name__}: {e}")
    raise Failure(f"{what}\n      expected: {names(kinds)}\n      got:      it returned {value!r}")


def names(kinds):
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(k.__name__ for k in kinds)


def eventually(probe, within, what, every=0.25, show=None):
    """Calls probe until it returns something truthy, for at most `within`
    seconds; on failure says what show() gives (else the last probe)."""
    deadline = time.monotonic() + within
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            seen = show() if show else last
            raise Failure(f"{what}: not within {within} s\n      got:      {seen!r}")
        time.sleep(every)


class Case:
    """What one test made, to be killed when it ends."""

    def __init__(self):
        self.made = []  # (sandbox_id, api_key)

    def create(self, api_key=KEY_A, metadata=None, **kwargs):
        kwargs.setdefault("timeout", 120)
        sbx = Sandbox.create(
            template="base",
            metadata={TAG: RUN, **(metadata or {})},
            api_key=api_key,
            request_timeout=REQUEST_TIMEOUT,
            **kwargs,
        )
        self.made.append((sbx.sandbox_id, api_key))
        return sbx

    def cleanup(self):
        for sandbox_id, key in self.made:
            kill_quietly(sandbox_id, key)


def kill_quietly(sandbox_id, key):
    try:
        Sandbox.kill(sandbox_id, api_key=key, request_timeout=10)
    except Exception as e:
        print(f"      (could not kill {sandbox_id}: {type(e).__name__}: {e})")


TESTS = []


def test(seconds):
    """Registers a test with its wall clock, in seconds."""

    def register(fn):
        TESTS.append((fn, seconds))
        return fn

    return register


def title(fn):
    return fn.__name__.replace("_", " ")


def run_one(fn, seconds):
    case = Case()
    outcome = {}

    def body():
        try:
            fn(case)
            outcome["ok"] = True
        except BaseException as e:  # noqa: BLE001 - every failure is reported
            outcome["error"] = e
            outcome["trace"] = traceback.format_exc()

    started = time.monotonic()
    worker = threading.Thread(target=body, name=fn.__name__, daemon=True)
    worker.start()
    worker.join(seconds)
    elapsed = time.monotonic() - started
    case.cleanup()
    if worker.is_alive():
        print(f"FAIL {title(fn)} ({elapsed:.1f} s)\n      did not finish within its {seconds} s wall clock")
        return False
    if outcome.get("ok"):
        print(f"PASS {title(fn)} ({elapsed:.1f} s)")
        return True
    error = outcome["error"]
    print(f"FAIL {title(fn)} ({elapsed:.1f} s)")
    if isinstance(error, Failure):
        print(f"      {error}")
    else:
        print(f"      unexpected {type(error).__name__}: {error}")
        print("      " + outcome["trace"].rstrip().replace("\n", "\n      "))
    return False


def sweep():
    """Kills whatever this run left behind, for both tenants."""
    for key in (KEY_A, KEY_B):
        try:
            for info in list_all(SandboxQuery(metadata={TAG: RUN}), api_key=key):
                print(f"      (sweeping {info.sandbox_id}, left by this run)")
                kill_quietly(info.sandbox_id, key)
        except Exception as e:
            print(f"      (sweep for a tenant failed: {type(e).__name__}: {e})")


def main(selectors):
    chosen = [(fn, s) for fn, s in TESTS if not selectors or any(x in fn.__name__ or x in title(fn) for x in selectors)]
    if not chosen:
        print(f"no test matches {selectors}")
        return 2
    print(f"e2b SDK tier: {len(chosen)} tests against {API_URL} (envd {SANDBOX_URL}), run {RUN}")
    failed = [title(fn) for fn, seconds in chosen if not run_one(fn, seconds)]
    sweep()
    print(f"\n{len(chosen) - len(failed)} passed, {len(failed)} failed")
    for name in failed:
        print(f"  FAIL {name}")
    return 1 if failed else 0


# ---------------------------------------------------------------- helpers


def list_all(query, api_key=KEY_A, limit=None, max_pages=20):
    """Every sandbox the paginator yields, page by page, as a user would."""
    pager = Sandbox.list(query=query, limit=limit, api_key=api_key, request_timeout=REQUEST_TIMEOUT)
    found = []
    pages = 0
    while pager.has_next:
        pages += 1
        expect(pages <= max_pages, f"the paginator ends within {max_pages} pages", max_pages, pages)
        found.extend(pager.next_items())
    return found


def read_until(handle, predicate):
    """Reads a command handle's output until predicate(stdout, stderr) holds.
    Blocks; the test's wall clock bounds it."""
    out, err = "", ""
    for stdout, stderr, _ in handle:
        out += stdout or ""
        err += stderr or ""
        if predicate(out, err):
            return out, err
    raise Failure(f"the output ended before the expected text came (stdout {out!r}, stderr {err!r})")


def status_of(exc):
    """The HTTP status an SDK exception stands for."""
    if isinstance(exc, SandboxNotFoundException):
        return 404
    if isinstance(exc, AuthenticationException):
        return 401
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    m = re.match(r"\s*(\d{3}):", str(exc))
    return int(m.group(1)) if m else None


def envd(path, sandbox_id, token=None, json=None, method="POST", port=ENVD_PORT, host=None, params=None):
    """A request to the envd listener, as the SDK routes it (by header)."""
    headers = {"E2b-Sandbox-Id": sandbox_id, "E2b-Sandbox-Port": port}
    if json is not None:
        headers["Connect-Protocol-Version"] = "1"
    if token is not None:
        headers["X-Access-Token"] = token
    if host is not None:
        headers["Host"] = host
    with httpx.Client(timeout=10, trust_env=False) as client:
        return client.request(method, SANDBOX_URL + path, headers=headers, json=json, params=params)


def token_of(sbx):
    token = sbx._envd_access_token  # what the SDK sends as X-Access-Token
    expect(token, "create answers an envdAccessToken (the SDK then sends X-Access-Token)", "a token", token)
    return token


# ---------------------------------------------------------------- tests


@test(90)
def a_sandbox_is_created_with_metadata_and_killed(case):
    before = datetime.now(timezone.utc)
    sbx = case.create(metadata={"purpose": "create-kill"}, timeout=120)
    sid = sbx.sandbox_id
    expect(re.fullmatch(r"[a-z0-9][a-z0-9-]*", sid or ""), "the sandbox id is DNS-label safe", "[a-z0-9-]+", sid)
    expect(sbx.is_running(), "is_running() after create", True, False)

    info = sbx.get_info()
    expect_eq(info.sandbox_id, sid, "get_info().sandbox_id")
    expect_eq(info.state, SandboxState.RUNNING, "get_info().state")
    expect_eq(info.metadata.get("purpose"), "create-kill", "get_info().metadata['purpose']")
    expect(info.started_at >= before - timedelta(seconds=5), "started_at is now", f">= {before}", info.started_at)
    lifetime = (info.end_at - info.started_at).total_seconds()
    expect(100 <= lifetime <= 140, "end_at - started_at is the 120 s timeout", 120, lifetime)

    expect_eq(sbx.kill(), True, "kill() of a running sandbox")
    expect_eq(Sandbox.kill(sid, request_timeout=REQUEST_TIMEOUT), False, "Sandbox.kill(id) of a killed sandbox (E2B: 404 → False)")
    expect_raises(SandboxNotFoundException, lambda: Sandbox.get_info(sid, request_timeout=REQUEST_TIMEOUT),
                  "get_info of a killed sandbox")
    expect_raises(SandboxNotFoundException, lambda: Sandbox.connect(sid, request_timeout=REQUEST_TIMEOUT),
                  "connect to a killed sandbox")
    expect_eq(sbx.is_running(), False, "is_running() after kill (envd /health: 502)")


@test(90)
def a_foreground_command_returns_stdout_stderr_and_its_exit_code(case):
    sbx = case.create(envs={"BERTH_E2B_GLOBAL": "from-create"})
    r = sbx.commands.run("echo out; echo err >&2", timeout=30)
    expect_eq((r.stdout, r.stderr, r.exit_code), ("out\n", "err\n", 0), "(stdout, stderr, exit_code)")

    r = sbx.commands.run('echo "$GREETING $BERTH_E2B_GLOBAL $(pwd) $(whoami)"', envs={"GREETING": "hi"}, cwd="/tmp", timeout=30)
    expect_eq(r.stdout, "hi from-create /tmp user\n", "envs, create's envs, cwd and the default user")

    e = expect_raises(CommandExitException, lambda: sbx.commands.run("echo partial; echo boom >&2; exit 3", timeout=30),
                      "a non-zero exit raises CommandExitException")
    expect_eq((e.exit_code, e.stdout, e.stderr), (3, "partial\n", "boom\n"), "the exception's (exit_code, stdout, stderr)")


@test(60)
def on_stdout_and_on_stderr_receive_lines_as_they_come(case):
    sbx = case.create()
    out, err = [], []
    r = sbx.commands.run(
        "for i in 1 2 3; do echo $i; echo e$i >&2; sleep 0.4; done",
        on_stdout=lambda s: out.append((time.monotonic(), s)),
        on_stderr=lambda s: err.append((time.monotonic(), s)),
        timeout=30,
    )
    expect_eq(r.stdout, "1\n2\n3\n", "the result's stdout")
    expect_eq("".join(s for _, s in out), "1\n2\n3\n", "what on_stdout received")
    expect_eq("".join(s for _, s in err), "e1\ne2\ne3\n", "what on_stderr received")
    expect(len(out) >= 2, "stdout arrives in more than one callback", ">= 2 calls", len(out))
    spread = out[-1][0] - out[0][0]
    expect(spread >= 0.5, "the first line arrives while the command still runs (seconds between first and last)", ">= 0.5", round(spread, 2))


@test(90)
def a_background_command_is_reattached_by_pid_from_a_second_client(case):
    sbx = case.create()
    flag = f"/tmp/go-{uuid.uuid4().hex[:8]}"
    h = sbx.commands.run(
        f"echo first; while [ ! -e {flag} ]; do sleep 0.1; done; echo later; echo late-err >&2; exit 7",
        background=True,
        timeout=60,
    )
    pid = h.pid
    read_until(h, lambda out, _: "first" in out)
    h.disconnect()

    other = Sandbox.connect(sbx.sandbox_id, request_timeout=REQUEST_TIMEOUT)
    expect(other is not sbx, "Sandbox.connect gives a second client object")
    pids = [p.pid for p in other.commands.list()]
    expect(pid in pids, "the process outlives its first handle's disconnect", f"{pid} in list()", pids)
    again = other.commands.connect(pid, timeout=60)
    expect_eq(again.pid, pid, "commands.connect(pid).pid")
    other.commands.run(f"touch {flag}", timeout=30)
    e = expect_raises(CommandExitException, again.wait, "the reattached handle sees the exit")
    expect_eq(e.exit_code, 7, "the exit code through the second client")
    expect("later" in e.stdout, "output written after reattaching reaches the second client", "'later' in stdout", e.stdout)
    expect("late-err" in e.stderr, "stderr after reattaching reaches the second client", "'late-err' in stderr", e.stderr)


@test(60)
def stdin_reaches_a_background_command_and_kill_ends_it(case):
    sbx = case.create()
    h = sbx.commands.run("cat", background=True, stdin=True, timeout=60)
    sbx.commands.send_stdin(h.pid, "hi\n")
    out, _ = read_until(h, lambda out, _: "hi\n" in out)
    expect_eq(out, "hi\n", "cat echoes what send_stdin sent")

    expect_eq(sbx.commands.kill(h.pid), True, "commands.kill(pid) of a running command")
    e = expect_raises(CommandExitException, h.wait, "a killed command's handle ends with a non-zero exit")
    expect(e.exit_code != 0, "a killed command's exit code", "non-zero (E2B: -1)", e.exit_code)
    eventually(lambda: h.pid not in [p.pid for p in sbx.commands.list()], 5, "the killed command leaves commands.list()",
               show=lambda: [(p.pid, p.args) for p in sbx.commands.list()])
    expect_eq(sbx.commands.kill(999999), False, "commands.kill of an unknown pid")


@test(60)
def closing_stdin_ends_a_command_reading_it(case):
    sbx = case.create()
    h = sbx.commands.run("cat; echo done", background=True, stdin=True, timeout=60)
    sbx.commands.send_stdin(h.pid, "abc\n")
    sbx.commands.close_stdin(h.pid)
    r = h.wait()
    expect_eq((r.stdout, r.exit_code), ("abc\ndone\n", 0), "cat ends at EOF")


@test(90)
def files_are_written_read_listed_renamed_and_removed(case):
    sbx = case.create()
    d = f"/home/user/files-{uuid.uuid4().hex[:6]}"
    info = sbx.files.write(f"{d}/a.txt", "hello")
    expect_eq((info.name, info.path, info.type), ("a.txt", f"{d}/a.txt", FileType.FILE), "write() answers (name, path, type)")
    expect_eq(sbx.files.read(f"{d}/a.txt"), "hello", "read() of a written file")
    expect_eq(sbx.files.exists(f"{d}/a.txt"), True, "exists() of a written file")
    expect_eq(sbx.files.exists(f"{d}/missing"), False, "exists() of a missing file")
    expect_eq(sbx.files.get_info(f"{d}/a.txt").size, 5, "get_info().size")
    expect_raises(FileNotFoundException, lambda: sbx.files.read(f"{d}/missing"), "read() of a missing file")

    expect_eq(sbx.files.make_dir(f"{d}/sub/deeper"), True, "make_dir() of a new directory (parents too)")
    expect_eq(sbx.files.make_dir(f"{d}/sub/deeper"), False, "make_dir() of an existing directory")
    entries = {e.name: e.type for e in sbx.files.list(d)}
    expect_eq(entries, {"a.txt": FileType.FILE, "sub": FileType.DIR}, "list() of the directory")
    deep = {e.path for e in sbx.files.list(d, depth=2)}
    expect(f"{d}/sub/deeper" in deep, "list(depth=2) goes a level deeper", f"{d}/sub/deeper", sorted(deep))

    moved = sbx.files.rename(f"{d}/a.txt", f"{d}/b.txt")
    expect_eq(moved.path, f"{d}/b.txt", "rename() answers the new path")
    expect_eq((sbx.files.exists(f"{d}/a.txt"), sbx.files.read(f"{d}/b.txt")), (False, "hello"), "after rename: (old exists, new content)")
    sbx.files.remove(f"{d}/b.txt")
    sbx.files.remove(f"{d}/sub")
    expect_eq((sbx.files.exists(f"{d}/b.txt"), sbx.files.exists(f"{d}/sub")), (False, False), "after remove: (file exists, dir exists)")

    wrote = sbx.files.write_files([
        {"path": f"{d}/one.txt", "data": "1"},
        {"path": f"{d}/two/deep.bin", "data": b"\x00\x01\x02"},
        {"path": f"{d}/three.txt", "data": "3"},
    ])
    expect_eq([w.path for w in wrote], [f"{d}/one.txt", f"{d}/two/deep.bin", f"{d}/three.txt"], "write_files() answers each path, in order")
    expect_eq(sbx.files.read(f"{d}/one.txt"), "1", "write_files(): the first file")
    expect_eq(bytes(sbx.files.read(f"{d}/two/deep.bin", format="bytes")), b"\x00\x01\x02", "write_files(): the binary file, parents made")
    expect_eq(sbx.files.read(f"{d}/three.txt"), "3", "write_files(): the third file")
    r = sbx.commands.run(f"cat {d}/one.txt {d}/three.txt; echo; stat -c %U {d}/one.txt", timeout=30)
    expect_eq(r.stdout, "13\nuser\n", "the files as a process in the sandbox sees them (content, then owner)")


@test(60)
def watch_dir_reports_files_created_through_the_api_and_by_a_process(case):
    sbx = case.create()
    w = f"/home/user/watched-{uuid.uuid4().hex[:6]}"
    sbx.files.make_dir(w)
    handle = sbx.files.watch_dir(w)
    try:
        sbx.files.write(f"{w}/api.txt", "x")
        sbx.commands.run(f"echo y > {w}/cmd.txt", timeout=30)
        seen = []
        wanted = {FilesystemEventType.CREATE, FilesystemEventType.WRITE}

        def both_seen():
            seen.extend(handle.get_new_events())
            names_ = {e.name for e in seen if e.type in wanted}
            return {"api.txt", "cmd.txt"} <= names_

        try:
            eventually(both_seen, 10, "create/write events for api.txt and cmd.txt", every=0.3)
        except Failure:
            raise Failure(f"get_new_events() never showed create/write for both files\n      expected: api.txt and cmd.txt"
                          f"\n      got:      {[(e.name, e.type.value) for e in seen]}")
    finally:
        handle.stop()


@test(60)
def signed_urls_open_files_without_the_token_until_they_expire(case):
    sbx = case.create()
    sbx.files.write("/home/user/signed.txt", "signed hello")
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": ENVD_PORT}  # no X-Access-Token
    with httpx.Client(timeout=10, trust_env=False) as client:
        url = sbx.download_url("/home/user/signed.txt")
        expect("signature=v1_" in url, "download_url() signs the URL", "signature=v1_…", url)
        got = client.get(url, headers=headers)
        expect_eq((got.status_code, got.text), (200, "signed hello"), "a signed download URL")
        tampered = url.replace("signed.txt", "other.txt")
        expect_eq(client.get(tampered, headers=headers).status_code, 401, "the same signature for another path")
        up = sbx.upload_url("/home/user/uploaded.txt")
        sent = client.post(up, headers=headers, files={"file": ("uploaded.txt", b"through a signed URL")})
        expect_eq(sent.status_code, 200, "a signed upload URL")
        expect_eq(sbx.files.read("/home/user/uploaded.txt"), "through a signed URL", "what the signed upload wrote")
        expect_eq(client.post(url, headers=headers, files={"file": ("x", b"x")}).status_code, 401,
                  "a download's signature used to upload")
        short = sbx.download_url("/home/user/signed.txt", use_signature_expiration=1)
        time.sleep(2.1)
        expect_eq(client.get(short, headers=headers).status_code, 401, "an expired signed URL")


@test(300)
def a_50_mib_file_goes_in_and_comes_out_intact(case):
    sbx = case.create()
    data = os.urandom(50 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    path = "/home/user/big.bin"
    started = time.monotonic()
    info = sbx.files.write(path, data, request_timeout=180)
    up = time.monotonic() - started
    expect_eq(info.path, path, "write() of 50 MiB answers its path")
    inside = sbx.commands.run(f"sha256sum {path}", timeout=60).stdout.split()[0]
    expect_eq(inside, digest, "sha256 of the file inside the sandbox")
    started = time.monotonic()
    back = sbx.files.read(path, format="bytes", request_timeout=180)
    down = time.monotonic() - started
    expect_eq(len(back), len(data), "length read back")
    expect_eq(hashlib.sha256(back).hexdigest(), digest, "sha256 read back")
    print(f"      (50 MiB up in {up:.1f} s, down in {down:.1f} s)")


@test(60)
def set_timeout_moves_the_end_to_now_plus_the_timeout(case):
    sbx = case.create(timeout=120)
    first = sbx.get_info().end_at
    for seconds in (600, 200):
        sbx.set_timeout(seconds)
        now = datetime.now(timezone.utc)
        end = sbx.get_info().end_at
        off = (end - now).total_seconds()
        expect(seconds - 15 <= off <= seconds + 5, f"after set_timeout({seconds}), end_at - now", seconds, round(off, 1))
    expect(end > first, "the end moved later than create's", f"> {first}", end)


@test(90)
def a_sandbox_expires_when_its_timeout_passes(case):
    # berth's reaper runs every 30 s under serve, so a 5 s sandbox is gone
    # within about 35 s; allow 60.
    sbx = case.create(timeout=5)
    sid = sbx.sandbox_id
    started = time.monotonic()

    def gone():
        try:
            Sandbox.get_info(sid, request_timeout=10)
        except SandboxNotFoundException:
            return "get_info: not found"
        try:
            running = sbx.is_running(request_timeout=10)
        except Exception as e:  # noqa: BLE001 - E2B answers 502 here, which is False
            raise Failure(f"is_running() of an expiring sandbox raised {type(e).__name__}: {e} (E2B: envd /health 502 → False)")
        return None if running else "is_running: False"

    how = eventually(gone, 60, "the expired sandbox disappears", every=2)
    print(f"      ({how} after {time.monotonic() - started:.0f} s)")
    if how.startswith("get_info"):
        expect_raises(SandboxNotFoundException, lambda: Sandbox.connect(sid, request_timeout=10),
                      "connect to an expired sandbox")


@test(120)
def list_with_a_metadata_query_finds_exactly_the_sandboxes_made_with_it(case):
    # A space and an '&' in the value: the SDK double-encodes metadata in the query.
    suite = f"list {RUN}&{uuid.uuid4().hex[:6]}"
    mine = [case.create(metadata={"suite": suite, "n": str(i)}) for i in range(2)]
    case.create(metadata={"suite": suite + "-other"})
    want = sorted(s.sandbox_id for s in mine)

    found = list_all(SandboxQuery(metadata={"suite": suite}), limit=1)
    ids = [s.sandbox_id for s in found]
    expect_eq(sorted(ids), want, "ids listed page by page (limit=1) for the metadata query")
    expect_eq(len(ids), len(set(ids)), "no sandbox listed twice across pages")
    for s in found:
        expect_eq(s.metadata.get("suite"), suite, f"metadata of listed {s.sandbox_id}")
        expect_eq(s.state, SandboxState.RUNNING, f"state of listed {s.sandbox_id}")

    running = list_all(SandboxQuery(metadata={"suite": suite}, state=[SandboxState.RUNNING]))
    expect_eq(sorted(s.sandbox_id for s in running), want, "the same query with state=[running]")
    paused = list_all(SandboxQuery(metadata={"suite": suite}, state=[SandboxState.PAUSED]))
    expect_eq([s.sandbox_id for s in paused], [], "the same query with state=[paused]")

    mine[0].kill()
    left = list_all(SandboxQuery(metadata={"suite": suite}))
    expect_eq([s.sandbox_id for s in left], [mine[1].sandbox_id], "after killing one, the list holds the other only")


@test(120)
def pause_keeps_processes_and_files_and_connect_resumes(case):
    sbx = case.create()
    sid = sbx.sandbox_id
    h = sbx.commands.run("sleep 1000", background=True, timeout=0)
    pid = h.pid
    h.disconnect()
    sbx.files.write("/home/user/paused.txt", "still here")

    expect_eq(sbx.pause(), True, "pause() of a running sandbox")
    expect_eq(Sandbox.get_info(sid, request_timeout=REQUEST_TIMEOUT).state, SandboxState.PAUSED, "state while paused")
    expect_eq(sbx.pause(), False, "pause() of a paused sandbox (E2B: 409 → False)")
    expect_eq(sbx.is_running(), False, "is_running() while paused (envd /health: 502)")

    again = Sandbox.connect(sid, timeout=120, request_timeout=REQUEST_TIMEOUT)
    expect_eq(again.get_info().state, SandboxState.RUNNING, "state after Sandbox.connect")
    procs = {p.pid: p for p in again.commands.list()}
    expect(pid in procs, "the background process survives pause and resume", f"pid {pid}", sorted(procs))
    expect("sleep 1000" in " ".join(procs[pid].args), "commands.list() shows its command", "sleep 1000", procs[pid].args)
    expect_eq(again.files.read("/home/user/paused.txt"), "still here", "a file written before the pause")
    expect_eq(again.commands.run("echo awake", timeout=30).stdout, "awake\n", "a command after resuming")
    expect_eq(again.commands.kill(pid), True, "kill of the resumed process")


PROMPT_OUTPUT = re.compile(rb"(^|[\r\n])hello-pty\r?\n")


@test(60)
def a_pty_echoes_input_and_is_resized_and_killed(case):
    sbx = case.create()
    data = bytearray()
    ended = {}
    term = sbx.pty.create(PtySize(rows=24, cols=80), timeout=60)

    def consume():  # the sync SDK's on_data: wait(on_pty=...)
        try:
            ended["result"] = term.wait(on_pty=data.extend)
        except Exception as e:  # noqa: BLE001 - checked below
            ended["error"] = e

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    sbx.pty.send_stdin(term.pid, b"echo hello-pty\n")
    eventually(lambda: PROMPT_OUTPUT.search(bytes(data)), 10, "the terminal shows the output of `echo hello-pty`",
               show=lambda: bytes(data[-300:]))

    sbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
    sbx.pty.send_stdin(term.pid, b"stty size\n")
    eventually(lambda: b"30 100" in bytes(data), 10, "`stty size` after resize(30 rows, 100 cols) says '30 100'",
               show=lambda: bytes(data[-300:]))

    expect_eq(sbx.pty.kill(term.pid), True, "pty.kill of a running terminal")
    reader.join(10)
    expect(not reader.is_alive(), "the terminal's stream ends after kill")
    expect(isinstance(ended.get("error"), CommandExitException), "a killed terminal's wait() raises CommandExitException",
           "CommandExitException", ended.get("error") or ended.get("result"))


@test(60)
def the_async_sdk_pty_delivers_data_to_on_data(case):
    sbx = case.create()

    async def scenario():
        asbx = await AsyncSandbox.connect(sbx.sandbox_id, request_timeout=REQUEST_TIMEOUT)
        data = bytearray()
        term = await asbx.pty.create(PtySize(rows=24, cols=80), on_data=data.extend, timeout=60)
        await asbx.pty.send_stdin(term.pid, b"echo hello-pty\n")
        deadline = time.monotonic() + 10
        while not PROMPT_OUTPUT.search(bytes(data)):
            expect(time.monotonic() < deadline, "on_data receives the output of `echo hello-pty`", "hello-pty", bytes(data))
            await asyncio.sleep(0.1)
        await asbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
        expect_eq(await asbx.pty.kill(term.pid), True, "async pty.kill")
        try:
            await asyncio.wait_for(term.wait(), 10)
        except CommandExitException:
            pass

    asyncio.run(asyncio.wait_for(scenario(), 45))


@test(90)
def a_dev_server_port_is_reached_through_the_envd_listener_and_only_with_its_token(case):
    sbx = case.create()
    other = case.create(api_key=KEY_B)
    sid = sbx.sandbox_id
    sbx.files.write("/home/user/site/hello-port.txt", "hi from the port")
    server = sbx.commands.run("python3 -m http.server 8000", background=True, timeout=0, cwd="/home/user/site")
    host = sbx.get_host(8000)
    expect_eq(host, f"8000-{sid}.{sbx.sandbox_domain}", "get_host(8000)")
    if sbx.sandbox_domain != DOMAIN:
        print(f"      (the create answer named the domain {sbx.sandbox_domain!r}; E2B_DOMAIN is {DOMAIN!r})")

    def port_request(token, path="/"):
        return envd(path, sid, token=token, method="GET", port="8000", host=host)

    mine = token_of(sbx)
    last = {}

    def listening():
        last["r"] = port_request(mine)
        return last["r"] if last["r"].status_code == 200 else None

    listing = eventually(listening, 20, "GET / on port 8000 answers 200 once the server listens", every=0.5,
                         show=lambda: f"{last['r'].status_code} {last['r'].text[:200]!r}")
    expect("Directory listing" in listing.text and "hello-port.txt" in listing.text,
           "the dev server's directory listing comes back", "a listing naming hello-port.txt", listing.text[:300])
    file = port_request(mine, "/hello-port.txt")
    expect_eq((file.status_code, file.text), (200, "hi from the port"), "a file through the port")

    theirs = token_of(other)
    for label, token in (("tenant B's sandbox token", theirs), ("a wrong token", "wrong")):
        r = port_request(token)
        expect(400 <= r.status_code < 500 and "hello-port.txt" not in r.text,
               f"port 8000 of tenant A's sandbox with {label} is refused", "a 4xx without the listing",
               f"{r.status_code} {r.text[:200]!r}")
    bare = port_request(None)
    print(f"      (with no token at all the port answered {bare.status_code})")
    server.kill()


@test(120)
def another_tenant_can_neither_see_nor_touch_a_sandbox(case):
    a = case.create()
    b = case.create(api_key=KEY_B)
    sid = a.sandbox_id
    opts = {"api_key": KEY_B, "request_timeout": REQUEST_TIMEOUT}
    expect_raises(SandboxNotFoundException, lambda: Sandbox.connect(sid, **opts), "tenant B: Sandbox.connect(A's id)")
    expect_raises(SandboxNotFoundException, lambda: Sandbox.get_info(sid, **opts), "tenant B: Sandbox.get_info(A's id)")
    expect_raises(SandboxNotFoundException, lambda: Sandbox.set_timeout(sid, 30, **opts), "tenant B: Sandbox.set_timeout(A's id)")
    expect_raises(SandboxNotFoundException, lambda: Sandbox.pause(sid, **opts), "tenant B: Sandbox.pause(A's id)")
    expect_eq(Sandbox.kill(sid, **opts), False, "tenant B: Sandbox.kill(A's id) (not found → False)")

    query = SandboxQuery(metadata={TAG: RUN})
    seen_by_b = {s.sandbox_id for s in list_all(query, api_key=KEY_B)}
    seen_by_a = {s.sandbox_id for s in list_all(query, api_key=KEY_A)}
    expect(sid not in seen_by_b and b.sandbox_id in seen_by_b, "tenant B's list: its own sandbox, not A's",
           f"{b.sandbox_id} without {sid}", sorted(seen_by_b))
    expect(sid in seen_by_a and b.sandbox_id not in seen_by_a, "tenant A's list: its own sandbox, not B's",
           f"{sid} without {b.sandbox_id}", sorted(seen_by_a))
    expect_eq(a.commands.run("echo alive", timeout=30).stdout, "alive\n", "A's sandbox still works after B's attempts")

    expect_raises(AuthenticationException,
                  lambda: Sandbox.create(template="base", api_key="not-a-berth-key", request_timeout=REQUEST_TIMEOUT),
                  "an unknown API key is refused (401)")

    stat = {"path": "/home/user"}
    expect_eq(envd("/filesystem.Filesystem/Stat", sid, token=token_of(a), json=stat).status_code, 200,
              "envd Stat with A's own token (the control)")
    for label, token in (("a wrong token", "wrong"), ("no token", None), ("tenant B's sandbox token", token_of(b))):
        r = envd("/filesystem.Filesystem/Stat", sid, token=token, json=stat)
        expect_eq(r.status_code, 401, f"envd Stat of A's sandbox with {label}")
    r = envd("/files", sid, token="wrong", method="GET", params={"path": "/home/user/.bashrc"})
    expect_eq(r.status_code, 401, "envd GET /files of A's sandbox with a wrong token")


def refused(what, call, sandbox_scoped=False):
    """Runs an SDK call that berth must refuse: a 4xx with a message, within 5 s.
    A sandbox-scoped call must not answer 404, which the SDK reports as
    'sandbox not found'. Returns a complaint, or None."""
    started = time.monotonic()
    try:
        value = call()
    except Exception as e:  # noqa: BLE001 - classified below
        elapsed = time.monotonic() - started
        status = status_of(e)
        text = re.sub(r"^\s*\d{3}:\s*", "", str(e))
        problems = []
        if status is None or not 400 <= status < 500 or status in (401, 429):
            problems.append(f"status {status} (want a 4xx other than 401/429)")
        if sandbox_scoped and status == 404:
            problems.append("404, which the SDK reports as 'sandbox not found'")
        if not text or text in ("None", "b''"):
            problems.append("no message")
        elif text.startswith(("b'", 'b"')):
            problems.append("no JSON {code, message} body")
        if elapsed >= 5:
            problems.append(f"took {elapsed:.1f} s (want < 5 s)")
        print(f"      ({what}: {type(e).__name__} {status} in {elapsed:.2f} s: {str(e)[:120]})")
        return f"{what}: " + "; ".join(problems) if problems else None
    return f"{what}: it succeeded ({value!r:.200}) instead of being refused"


@test(60)
def both_listeners_speak_h2c_with_prior_knowledge_as_well_as_http_1_1(case):
    sbx = case.create()
    token = token_of(sbx)
    headers = {"E2b-Sandbox-Id": sbx.sandbox_id, "E2b-Sandbox-Port": ENVD_PORT, "X-Access-Token": token}
    with httpx.Client(http1=False, http2=True, timeout=10, trust_env=False) as h2:
        api = h2.get(API_URL + "/health")
        expect_eq((api.http_version, api.status_code), ("HTTP/2", 200), "the control plane over h2c")
        health = h2.get(SANDBOX_URL + "/health", headers=headers)
        expect_eq((health.http_version, health.status_code), ("HTTP/2", 204), "envd over h2c")
        stat = h2.post(SANDBOX_URL + "/filesystem.Filesystem/Stat", headers={**headers, "Connect-Protocol-Version": "1"},
                       json={"path": "/home/user"})
        expect_eq((stat.http_version, stat.status_code), ("HTTP/2", 200), "a Connect call over h2c")
        expect_eq(stat.json()["entry"]["type"], "FILE_TYPE_DIRECTORY", "what the call answers")


@test(120)
def unsupported_features_are_refused_with_a_clear_4xx_within_5_s(case):
    sbx = case.create()
    opts = {"request_timeout": 10}
    name = f"berth-e2b-refused-{RUN}"
    complaints = [
        refused("Template.build", lambda: Template.build(Template().from_image("ubuntu:22.04"), name, **opts)),
        refused("create_snapshot", lambda: sbx.create_snapshot(**opts), sandbox_scoped=True),
        refused("fork", lambda: fork_or_raise(sbx, case), sandbox_scoped=True),
        refused("Volume.create", lambda: Volume.create(name, **opts)),
        refused("Sandbox.create with volume_mounts",
                lambda: case.create(volume_mounts={"/mnt/data": name}, timeout=60)),
        refused("Secret.create", lambda: Secret.create(name, "value", **opts)),
    ]
    complaints = [c for c in complaints if c]
    expect(not complaints, "every refusal is a clear, quick 4xx:\n      " + "\n      ".join(complaints))
    expect_eq(sbx.commands.run("echo fine", timeout=30).stdout, "fine\n", "the sandbox still works after the refusals")


def fork_or_raise(sbx, case):
    """fork() answers a list of sandboxes or per-fork exceptions; a refusal of
    every fork counts as the call's refusal."""
    results = sbx.fork(count=1, request_timeout=10)
    for r in results:
        if not isinstance(r, Exception):
            case.made.append((r.sandbox_id, KEY_A))
    errors = [r for r in results if isinstance(r, Exception)]
    if results and len(errors) == len(results):
        raise errors[0]
    return results


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads a timed-out test left blocked must not keep the process alive.
    os._exit(status)
