"""Benchmark of `alloy ui` on a remote with 10,000 intents and their traces.

Run by hand, never as a test:

    .venv/bin/python benchmarks/ui.py [--intents 10000] [--repeat 7] [--pushes 7] [--keep]
        [--profile]

It generates (in a temporary directory, from the fixed seed of `benchmarks/compile.py`) a real
git repository of N intents, compiles and commits them on `main` and pushes them to a bare
remote; then it puts a Trace document (and its Markdown summary) for most active intents on the
traces branch `alloy/traces` of that remote, built by Foundry's own trace writer
(`foundry.traces.trace_document`) from ledger records made up here (succeeded, failed, waiting
on an approval gate, running; older executions, some of an older artifact digest), committed
with `git fast-import`. No block really runs.

It starts the real server as a process (`python -m alloy ui --repo REMOTE --poll 0.2`) and
measures, next to `alloy status --json` on a clone of the same remote (the whole command, as a
subprocess) and `git ls-remote` (what each poll costs) in the same run:

* startup: the process started until `/healthz` answers (imports, the first fetch into an empty
  cache, reading every intent and trace);
* warm pages (each URL fetched once first), best and median of `--repeat`, from the request to
  the last byte on one keep-alive connection: the overview (HTML, `?format=json`, filtered),
  an intent page, an execution page;
* push to page: an event stream is kept open on `/events`; a new trace commit is pushed to the
  traces branch (as Foundry pushes it: a commit on top of the branch); the clock stops when the
  `change` event has arrived and the overview fragment shows the new execution;
* the server's memory (VmRSS, VmHWM) after the warm-up and after the pushes.

`--profile` then runs a second server under cProfile (every thread) and prints where the time
of its startup, of each warm page and of the pushes goes, with the pauses of the cycle collector,
and where the memory is after startup (tracemalloc).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import pstats
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile import (  # type: ignore[import-not-found]  # the sibling benchmark script
    GIT,
    Timing,
    alloy_command,
    generate,
    in_scratch,
    intent_names,
)

TRACES_BRANCH = "alloy/traces"
BASE_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z: generated executions start after this
PUSH_TIME = BASE_TIME + 400 * 86_400  # pushed executions are newer than every generated one
FOUNDRY = "Foundry <foundry@example.invalid>"

TARGETS = {
    "overview": 0.150,
    "intent": 0.050,
    "execution": 0.050,
    "push": 1.0,
    "memory": 300 * 1024 * 1024,
}


# --- the repository -------------------------------------------------------------------------


@dataclass
class World:
    """The generated repositories and what the measurements need to know of them."""

    work: Path
    remote: Path
    clone: Path
    mirror: Path  # a bare clone standing for Foundry's mirror: it makes the pushed commits
    traces_tip: str
    #: compiled active intents: name -> artifact file bytes
    artifacts: dict[str, bytes]
    #: executions per intent, newest first: (id, status)
    executions: dict[str, list[tuple[str, str]]]
    counts: dict[str, int] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # execution ids on the traces branch
    pushed: int = 0  # executions pushed by the benchmark


def _git(args: Sequence[str], cwd: Path, data: bytes | None = None) -> str:
    proc = subprocess.run([*GIT, *args], cwd=cwd, input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"git {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return proc.stdout.decode("utf-8", "surrogateescape").strip()


def _stamp(seconds: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{round((seconds % 1) * 1000) % 1000:03d}Z"


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _event(rng: random.Random, artifact: Any, name: str, t: float) -> tuple[str, str]:
    """An event the artifact's triggers allow, keyed as Foundry's planner keys it."""
    triggers = artifact.spec.triggers
    kinds = [k for k in ("apply", "push", "schedule", "request") if getattr(triggers, k)]
    kind = rng.choice(kinds or ["request"])
    if kind == "apply":
        return kind, str(artifact.digest)
    if kind == "push":
        return kind, _hex(rng, 40)
    if kind == "schedule":
        return kind, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(t) // 3600 * 3600))
    return kind, f"{name}-run-{rng.randrange(10_000)}@sha256:{_hex(rng, 64)}"


def _gate_reason(gate: Any, decision: str) -> str:
    kind = gate.kind
    if kind == "approval":
        who = ", ".join(gate.from_)
        if decision == "waiting":
            return f"0 of {gate.quorum} approvals from {who}"
        return f"{gate.quorum} of {gate.quorum} approvals from {who}"
    if kind == "window":
        return f"inside the window {gate.cron} ({gate.timezone})"
    if kind == "check":
        return f"check runs {', '.join(gate.names)} succeeded"
    if kind == "after":
        return f"{gate.intent} succeeded within the period"
    return "the command exited 0"


def ledger_records(
    rng: random.Random,
    artifact: Any,
    *,
    execution: str,
    event: tuple[str, str],
    status: str,
    t: float,
) -> list[dict[str, Any]]:
    """The ledger of one execution that ends (or stands) at `status`: succeeded, failed,
    waiting (on the first approval gate; the artifact must have one) or running."""
    blocks = artifact.spec.blocks
    records: list[dict[str, Any]] = []

    def add(record_type: str, **fields: Any) -> None:
        nonlocal t
        t += rng.uniform(0.05, 30.0)
        records.append({"seq": len(records) + 1, "type": record_type, "at": _stamp(t), **fields})

    add(
        "planned",
        execution=execution,
        artifact={"name": artifact.metadata.name, "digest": artifact.digest},
        event={"type": event[0], "key": event[1]},
        inputs={},
    )
    stop_at = len(blocks)  # the block where the execution stopped (or stands)
    if status in ("failed", "running"):
        stop_at = rng.randrange(len(blocks))
    elif status == "waiting":
        stop_at = next(
            i for i, b in enumerate(blocks) if any(g.kind == "approval" for g in b.gates)
        )
    for index, block in enumerate(blocks):
        if index > stop_at:
            if status == "failed":  # what comes after a failed block is skipped
                add("block-finished", block=block.id, status="skipped")
            continue
        for g, gate in enumerate(block.gates):
            decision = (
                "waiting"
                if status == "waiting" and index == stop_at and gate.kind == "approval"
                else "passed"
            )
            add(
                "gate",
                block=block.id,
                index=g,
                kind=gate.kind,
                decision=decision,
                reason=_gate_reason(gate, decision),
            )
            if decision == "waiting":
                break
        if status == "waiting" and index == stop_at:
            break
        add("attempt-started", block=block.id, attempt=1)
        if status == "running" and index == stop_at:
            break
        ok = not (status == "failed" and index == stop_at)
        log = f"{block.id}: {'done' if ok else 'error: exit status 1'}\n".encode()
        add(
            "attempt-finished",
            block=block.id,
            attempt=1,
            outcome="succeeded" if ok else "failed",
            exitCode=0 if ok else 1,
            durationMs=rng.randrange(200, 600_000),
            logDigest="sha256:" + hashlib.sha256(log).hexdigest(),
            logTail=log.decode(),
            outputs=[
                {
                    "path": path,
                    "digest": f"sha256:{_hex(rng, 64)}",
                    "size": rng.randrange(100, 200_000),
                }
                for path in (block.outputs if ok else [])
            ],
        )
        add("block-finished", block=block.id, status="succeeded" if ok else "failed")
    if status in ("succeeded", "failed"):
        failed = blocks[stop_at].id if status == "failed" else None
        add(
            "execution-finished",
            status=status,
            **({"reason": f"block {failed} failed"} if failed else {}),
        )
    return records


class TraceWriter:
    """Trace documents and their Markdown summaries, exactly as Foundry renders them."""

    def __init__(self, used: set[str]) -> None:
        from foundry.boundary import read_artifact
        from foundry.ids import Event, execution_id
        from foundry.traces import markdown_summary, trace_document, trace_path

        self.read_artifact = read_artifact
        self.Event: Any = Event  # the event types are the planner's Literal
        self.execution_id = execution_id
        self.markdown, self.document, self.path = markdown_summary, trace_document, trace_path
        self.parsed: dict[str, Any] = {}
        self.used = used  # execution ids taken: the same artifact and event never run twice

    def artifact(self, name: str, data: bytes) -> Any:
        if name not in self.parsed:
            self.parsed[name] = self.read_artifact(f".alloy/artifacts/{name}.json", data)
        return self.parsed[name]

    def files(
        self,
        rng: random.Random,
        name: str,
        data: bytes,
        status: str,
        t: float,
        *,
        old_digest: bool = False,
    ) -> tuple[str, dict[str, bytes]]:
        """One execution of the artifact `name` (`data`): its id and its files on the traces
        branch (`traces/<intent>/<execution>.json` and `.md`)."""
        artifact = self.artifact(name, data)
        if old_digest:  # an execution of an earlier version of the intent's automation
            artifact = artifact.model_copy(update={"digest": f"sha256:{_hex(rng, 64)}"})
        event = _event(rng, artifact, name, t)
        execution = self.execution_id(artifact.digest, self.Event(*event))
        while execution in self.used:  # apply ran already: another event
            event = ("push", _hex(rng, 40))
            execution = self.execution_id(artifact.digest, self.Event(*event))
        self.used.add(execution)
        records = ledger_records(
            rng, artifact, execution=execution, event=event, status=status, t=t
        )
        trace = self.document(records, artifact)
        path = self.path(trace)
        body = (json.dumps(trace, indent=2, sort_keys=True) + "\n").encode()
        return execution, {
            path: body,
            path.removesuffix(".json") + ".md": self.markdown(trace).encode(),
        }


def _latest_status(rng: random.Random, artifact: Any) -> str:
    status = rng.choices(["succeeded", "failed", "waiting", "running"], weights=[70, 14, 8, 8])[0]
    if status == "waiting" and not any(
        g.kind == "approval" for b in artifact.spec.blocks for g in b.gates
    ):
        status = rng.choice(["succeeded", "running"])
    return status


def _fast_import(repo: Path, commits: list[tuple[str, dict[str, bytes]]], t: float) -> str:
    """Commit each `(message, files)` on the traces branch of the bare `repo`, in one
    `git fast-import` stream; returns the branch's new tip."""
    out = bytearray()
    for i, (message, files) in enumerate(commits):
        msg = message.encode()
        out += f"commit refs/heads/{TRACES_BRANCH}\n".encode()
        out += f"committer {FOUNDRY} {int(t) + i * 60} +0000\n".encode()
        out += f"data {len(msg)}\n".encode() + msg + b"\n"
        for path, body in sorted(files.items()):
            out += f"M 100644 inline {path}\ndata {len(body)}\n".encode() + body + b"\n"
    _git(["fast-import", "--quiet"], repo, data=bytes(out))
    return _git(["rev-parse", f"refs/heads/{TRACES_BRANCH}"], repo)


def _message(names: list[str]) -> str:
    more = f" (+{len(names) - 5} more)" if len(names) > 5 else ""
    return f"traces: {', '.join(names[:5])}{more}"


def build_world(tmp: Path, alloy: list[str], n: int, seed: int) -> World:
    t0 = time.perf_counter()
    work = tmp / "work"
    work.mkdir()
    generate(work, n, seed)
    _git(["init", "-q", "-b", "main"], work)
    _git(["add", "-A"], work)
    _git(["commit", "-q", "-m", "intents"], work)
    subprocess.run([*alloy, "compile"], cwd=work, check=True, capture_output=True)
    _git(["add", "-A"], work)
    _git(["commit", "-q", "-m", "artifacts"], work)
    remote = tmp / "remote.git"
    _git(["clone", "-q", "--bare", str(work), str(remote)], tmp)
    built = time.perf_counter() - t0

    t1 = time.perf_counter()
    artifacts_dir = work / ".alloy" / "artifacts"
    artifacts = {
        name: (artifacts_dir / f"{name}.json").read_bytes()
        for name in intent_names(n)
        if (artifacts_dir / f"{name}.json").exists()
        and "\n  state: active" in (work / ".alloy" / "intents" / f"{name}.yaml").read_text()
    }
    rng = random.Random(seed + 1)  # noqa: S311 - reproducible test data, not secrets
    used: set[str] = set()
    writer = TraceWriter(used)
    executions: dict[str, list[tuple[str, str]]] = {}
    counts: dict[str, int] = {}
    commits: list[tuple[str, dict[str, bytes]]] = []
    pending: dict[str, bytes] = {}
    names: list[str] = []
    clock = float(BASE_TIME)
    for name, data in artifacts.items():
        if rng.random() >= 0.9:  # most active intents have run, not all
            continue
        older = rng.choices([0, 1, 2, 4], weights=[70, 15, 10, 5])[0]
        statuses = [(_latest_status(rng, writer.artifact(name, data)), False)] + [
            (rng.choice(["succeeded", "succeeded", "failed"]), rng.random() < 0.5)
            for _ in range(older)
        ]
        mine = []
        # oldest first, so that the latest execution has the latest start
        for k, (status, old) in enumerate(reversed(statuses)):
            start = clock + k * 3600 * rng.uniform(1, 48)
            exe, files = writer.files(rng, name, data, status, start, old_digest=old)
            pending.update(files)
            mine.append((exe, status))
            counts[status] = counts.get(status, 0) + 1
        clock += 37.0
        executions[name] = list(reversed(mine))
        names.append(name)
        if len(pending) >= 100:  # about 50 executions per commit, as a busy reconcile pass
            commits.append((_message(names), pending))
            pending, names = {}, []
    if pending:
        commits.append((_message(names), pending))
    tip = _fast_import(remote, commits, BASE_TIME)
    traced = time.perf_counter() - t1

    mirror = tmp / "foundry-mirror.git"
    _git(["clone", "-q", "--mirror", str(remote), str(mirror)], tmp)
    clone = tmp / "clone"
    _git(["clone", "-q", str(remote), str(clone)], tmp)
    total = sum(counts.values())
    on_branch = _git(["ls-tree", "-r", "--name-only", tip, "--", "traces"], remote).count("\n") + 1
    print(
        f"generated {n} intents, {len(artifacts)} active and compiled, and pushed them to a bare "
        f"remote in {built:.1f} s; {total} executions of {len(executions)} intents "
        f"({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}) in {len(commits)} "
        f"commits on {TRACES_BRANCH} ({on_branch} files) in {traced:.1f} s\n"
    )
    return World(work, remote, clone, mirror, tip, artifacts, executions, counts, used)


# --- the server and the client ---------------------------------------------------------------

PROFILED = r"""
import cProfile, gc, os, pstats, signal, sys, threading, time, tracemalloc
import concurrent.futures.thread as pool

out, sys.argv = sys.argv[1], ["alloy", *sys.argv[2:]]
on, local, threads, count = threading.Event(), threading.local(), [], [0]
main = cProfile.Profile()
plain = pool._WorkItem.run

def run(self):
    if not on.is_set():
        return plain(self)
    prof = getattr(local, "prof", None)
    if prof is None:
        prof = local.prof = cProfile.Profile()
        threads.append(prof)
    prof.enable()
    try:
        return plain(self)
    finally:
        prof.disable()

pool._WorkItem.run = run
pauses, began = {0: [], 1: [], 2: []}, [0.0]  # the cycle collector's pauses, by generation

def collector(phase, info):
    if phase == "start":
        began[0] = time.perf_counter()
    else:
        pauses[info["generation"]].append(time.perf_counter() - began[0])

gc.callbacks.append(collector)

def start(signum, frame):
    on.set()
    main.enable()

def stop(signum, frame):
    main.disable()
    on.clear()
    time.sleep(0.3)  # a work item in flight ends
    if tracemalloc.is_tracing():  # the first profile (startup): where the memory is
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        with open(os.path.join(out, f"{count[0] + 1}.prof.mem.txt"), "w") as fh:
            for key in ("filename", "lineno"):
                for stat in snapshot.statistics(key)[:20]:
                    fh.write(f"{stat.size / 2**20:8.1f} MiB {stat.count:>10,} blocks  {stat.traceback}\n")
                fh.write("\n")
    stats = None
    for prof in [main, *threads]:
        try:
            stats = pstats.Stats(prof) if stats is None else stats.add(prof)
        except TypeError:  # nothing recorded
            pass
        prof.clear()
    count[0] += 1
    path = os.path.join(out, f"{count[0]}.prof")
    with open(path + ".gc.txt", "w") as fh:
        for generation, seen in pauses.items():
            if seen:
                fh.write(
                    f"generation {generation}: {len(seen)} collections, "
                    f"{sum(seen) * 1000:,.0f} ms in all, the longest {max(seen) * 1000:,.0f} ms\n"
                )
            seen.clear()
    if stats is not None:
        stats.dump_stats(path + ".tmp")
        os.replace(path + ".tmp", path)
    else:
        open(path, "w").close()

signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
tracemalloc.start()
start(None, None)  # the startup is the first profile
from alloy.cli import main as alloy_main
alloy_main()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


STARTED: list[Server] = []  # stopped at the end, whatever happens


class Server:
    """`alloy ui` as a process; `profile_dir` runs it under the profiling wrapper above."""

    def __init__(self, remote: Path, cache: Path, *, profile_dir: Path | None = None) -> None:
        self.port = _free_port()
        self.profile_dir = profile_dir
        args = [
            "ui",
            "--repo",
            str(remote),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--cache",
            str(cache),
            "--poll",
            "0.2",
        ]
        argv = (
            [sys.executable, "-c", PROFILED, str(profile_dir), *args]
            if profile_dir
            else [sys.executable, "-m", "alloy", *args]
        )
        self.started = time.perf_counter()
        self.serving: float | None = None
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        STARTED.append(self)
        threading.Thread(target=self._stderr, daemon=True).start()
        self.ready = self._wait_healthy()

    def _stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if self.serving is None and "serving" in line:
                self.serving = time.perf_counter() - self.started
            self.lines.append(line)

    def _wait_healthy(self) -> float:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"alloy ui exited {self.proc.returncode}:\n" + "\n".join(self.lines[-30:]))
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/healthz")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.02)
        sys.exit("alloy ui did not answer /healthz in 600 s")

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM in bytes."""
        found = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) * 1024
        return found

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client:
    """One keep-alive HTTP/1.1 connection (opened again, untimed, when the server closed it
    after its keep-alive timeout)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[float, bytes, str]:
        """Seconds from the request to the last byte, the body, and the server-timing header."""
        for again in (True, False):
            start = time.perf_counter()
            try:
                self.conn.request("GET", path, headers=headers or {})
                response = self.conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()
                if not again:
                    raise
                continue
            elapsed = time.perf_counter() - start
            if response.status != 200:
                sys.exit(f"GET {path}: {response.status}\n{body[:2000]!r}")
            return elapsed, body, response.getheader("server-timing") or ""
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


class Events:
    """An open `/events` stream, read in a thread: the arrival time of every `change`."""

    def __init__(self, port: int) -> None:
        self.changes: queue.Queue[float] = queue.Queue()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
        self.conn.request("GET", "/events", headers={"accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            sys.exit(f"GET /events: {self.response.status}")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                line = self.response.readline()
                if not line:
                    return
                if line.startswith(b"event: change"):
                    self.changes.put(time.perf_counter())
        except Exception:  # noqa: BLE001 - the stream ended (closed by either side)
            return

    def drain(self) -> None:
        while True:
            try:
                self.changes.get_nowait()
            except queue.Empty:
                return

    def close(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


# --- measurements ----------------------------------------------------------------------------


@dataclass
class Page:
    label: str
    path: str
    target: float
    headers: dict[str, str] = field(default_factory=dict)


def pages_of(world: World, client: Client) -> tuple[list[Page], str]:
    """The URLs measured, and the intent whose new executions the pushes add (the first row of
    the overview's first page: a failed execution keeps it there)."""
    _, body, _ = client.get("/?format=json")
    overview = json.loads(body)
    repo = overview["repositories"][0]["key"]
    first = next(r["name"] for r in overview["intents"] if r["name"] in world.artifacts)
    # The richest intent page: most executions, the latest one waiting on an approval.
    waiting = [n for n, ex in world.executions.items() if ex[0][1] == "waiting"]
    candidates = waiting or list(world.executions)
    intent = max(candidates, key=lambda n: (len(world.executions[n]), n))
    execution, status = world.executions[intent][0]
    pages = [
        Page("overview `/` (HTML)", "/", TARGETS["overview"]),
        Page("overview `/?format=json`", "/?format=json", TARGETS["overview"]),
        Page("overview filtered `/?q=billing`", "/?q=billing", TARGETS["overview"]),
        Page(
            "overview fragment (live update)", "/", TARGETS["overview"], {"x-alloy-fragment": "1"}
        ),
        Page(f"intent page ({intent})", f"/r/{repo}/intents/{quote(intent)}", TARGETS["intent"]),
        Page(
            f"execution page ({execution}, {status})",
            f"/r/{repo}/executions/{execution}",
            TARGETS["execution"],
        ),
    ]
    return pages, first


def measure_pages(client: Client, pages: list[Page], times: int) -> dict[str, tuple[Timing, str]]:
    for page in pages:  # warm: one request of each first
        client.get(page.path, page.headers)
    out: dict[str, tuple[Timing, str]] = {}
    for page in pages:
        samples, timing_header, size = [], "", 0
        for _ in range(times):
            elapsed, body, timing_header = client.get(page.path, page.headers)
            samples.append(elapsed)
            size = len(body)
        out[page.label] = (
            Timing(samples),
            f"{size:,} B" + (f"; {timing_header}" if timing_header else ""),
        )
    return out


class Pusher:
    """New executions of one intent pushed to the traces branch as Foundry pushes them: a
    commit on top of the branch made in its mirror, then `git push`."""

    def __init__(self, world: World, intent: str, seed: int) -> None:
        self.world, self.intent = world, intent
        self.rng = random.Random(seed + 2)  # noqa: S311 - reproducible test data, not secrets
        self.writer = TraceWriter(world.used)
        self.index = world.mirror / "bench-index"

    def prepare(self) -> tuple[str, str]:
        """The next commit (not pushed yet): (execution id, commit)."""
        self.world.pushed += 1
        exe, files = self.writer.files(
            self.rng,
            self.intent,
            self.world.artifacts[self.intent],
            "failed",
            PUSH_TIME + self.world.pushed * 600,
        )
        env = {**os.environ, "GIT_INDEX_FILE": str(self.index)}
        mirror = self.world.mirror

        def git(*args: str, data: bytes | None = None) -> str:
            proc = subprocess.run(
                [*GIT, *args], cwd=mirror, input=data, capture_output=True, check=True, env=env
            )
            return proc.stdout.decode().strip()

        git("read-tree", self.world.traces_tip)
        for path, body in files.items():
            sha = git("hash-object", "-w", "--stdin", data=body)
            git("update-index", "--add", "--cacheinfo", f"100644,{sha},{path}")
        tree = git("write-tree")
        commit = git(
            "commit-tree", tree, "-p", self.world.traces_tip, "-m", _message([self.intent])
        )
        return exe, commit

    def push(self, commit: str) -> None:
        _git(
            ["push", "-q", str(self.world.remote), f"{commit}:refs/heads/{TRACES_BRANCH}"],
            self.world.mirror,
        )
        self.world.traces_tip = commit


@dataclass
class PushTimes:
    push: list[float] = field(default_factory=list)
    event: list[float] = field(default_factory=list)
    page: list[float] = field(default_factory=list)


def push_to_page(port: int, client: Client, pusher: Pusher, times: int) -> PushTimes:
    events = Events(port)
    time.sleep(0.5)  # the stream is open (its `hello` read)
    out = PushTimes()
    fragment = {"x-alloy-fragment": "1"}
    try:
        for _ in range(times):
            exe, commit = pusher.prepare()
            time.sleep(0.6)  # a few polls pass between pushes
            events.drain()
            start = time.perf_counter()
            pusher.push(commit)
            out.push.append(time.perf_counter() - start)
            try:
                arrived = events.changes.get(timeout=60)
            except queue.Empty:
                sys.exit("no `change` event within 60 s of the push")
            out.event.append(arrived - start)
            while True:
                _, body, _ = client.get("/", fragment)
                if exe.encode() in body:
                    break
                if time.perf_counter() - start > 60:
                    sys.exit(f"the overview did not show {exe} within 60 s of the push")
                time.sleep(0.01)
            out.page.append(time.perf_counter() - start)
    finally:
        events.close()
    return out


def timed(argv: Sequence[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one whole subprocess."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}: {err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss * 1024


# --- the report ------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:,.0f} MiB"


def _print_table(head: Sequence[str], rows: list[Sequence[str]]) -> None:
    widths = [max(len(r[c]) for r in (head, *rows)) for c in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    print(line)


def _verdict(value: float, target: float) -> str:
    return "met" if value < target else "NOT met"


def _push_verdict(samples: list[float]) -> str:
    """By the median, and how many single pushes took longer."""
    over = sum(1 for x in samples if x >= TARGETS["push"])
    verdict = _verdict(Timing(samples).median, TARGETS["push"])
    return verdict + (f" ({over} of {len(samples)} over)" if over else "")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--intents", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7, help="samples of each page and peer")
    parser.add_argument("--pushes", type=int, default=7, help="trace pushes timed to the page")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--keep", action="store_true", help="keep the generated repositories")
    parser.add_argument(
        "--profile", action="store_true", help="profile each warm page and one push (cProfile)"
    )
    args = parser.parse_args(argv)
    alloy = alloy_command(None)
    in_scratch("alloy-ui-bench-", keep=args.keep, body=lambda tmp: _guarded(tmp, alloy, args))


def _guarded(tmp: Path, alloy: list[str], args: argparse.Namespace) -> None:
    """The benchmark; every server it started is stopped, and on a failure its last words
    are shown."""
    ok = False
    try:
        _bench(tmp, alloy, args)
        ok = True
    finally:
        for server in STARTED:
            running = server.proc.poll() is None
            server.stop()
            if not ok:
                state = "stopped" if running else f"had exited {server.proc.returncode}"
                print(
                    f"\nalloy ui on port {server.port} {state}; its last output:", file=sys.stderr
                )
                print("\n".join(server.lines[-40:]), file=sys.stderr)


def _bench(tmp: Path, alloy: list[str], args: argparse.Namespace) -> None:
    n, times = args.intents, args.repeat
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s); "
        f"load average {os.getloadavg()[0]:.2f}; repeat {times}, pushes {args.pushes}"
    )
    world = build_world(tmp, alloy, n, args.seed)

    # The peers first, on a quiet machine: `alloy status --json` (warm parse cache) and the poll.
    timed([*alloy, "status", "--json"], world.clone)
    status_runs = [timed([*alloy, "status", "--json"], world.clone) for _ in range(times)]
    status_t = Timing([s for s, _ in status_runs])
    status_rss = max(r for _, r in status_runs)
    ls_remote = Timing(
        [timed(["git", "ls-remote", str(world.remote)], world.clone)[0] for _ in range(times)]
    )

    server = Server(world.remote, tmp / "cache")
    startup = server.ready
    serving = server.serving
    client = Client(server.port)
    pages, first = pages_of(world, client)
    results = measure_pages(client, pages, times)
    warm_mem = server.memory()
    cpu_idle_start = server.cpu_seconds()
    time.sleep(5)
    idle_cpu = (server.cpu_seconds() - cpu_idle_start) / 5
    pusher = Pusher(world, first, args.seed)
    pushes = push_to_page(server.port, client, pusher, args.pushes)
    pushed_mem = server.memory()
    client.close()
    server.stop()
    restart = Server(world.remote, tmp / "cache")
    warm_start = restart.ready
    restart.stop()

    print(
        f"\nserver start (empty cache): 'serving' printed after {serving or 0:.2f} s (imports, "
        f"fetch of the remote), /healthz after {startup:.2f} s (the first full read); "
        f"again with the cache filled: {warm_start:.2f} s"
    )
    print(f"server CPU while idle (polling every 0.2 s): {idle_cpu * 100:.1f}% of one core\n")
    head = ("measurement", "best ms", "median ms", "target", "", "vs status --json", "notes")
    rows: list[Sequence[str]] = []
    ref = status_t.median
    for page in pages:
        timing, note = results[page.label]
        rows.append(
            (
                page.label,
                _ms(timing.best),
                _ms(timing.median),
                f"< {page.target * 1000:.0f} ms",
                _verdict(timing.median, page.target),
                f"{timing.median / ref:.2g}x",
                note,
            )
        )
    for label, samples in (
        ("push -> change event", pushes.event),
        ("push -> page shows it", pushes.page),
    ):
        t = Timing(samples)
        target = "< 1000 ms" if "page" in label else ""
        rows.append(
            (
                label,
                _ms(t.best),
                _ms(t.median),
                target,
                _push_verdict(samples) if target else "",
                f"{t.median / ref:.2g}x",
                ", ".join(f"{x * 1000:.0f}" for x in samples) + " ms",
            )
        )
    push_t = Timing(pushes.push)
    rows.append(("  of which `git push`", _ms(push_t.best), _ms(push_t.median), "", "", "", ""))
    rows.append(
        (
            "server memory, warm (VmRSS / VmHWM)",
            "",
            _mib(warm_mem["VmRSS"]),
            "< 300 MiB",
            _verdict(warm_mem["VmHWM"], TARGETS["memory"]),
            f"{warm_mem['VmHWM'] / status_rss:.2f}x",
            f"HWM {_mib(warm_mem['VmHWM'])}",
        )
    )
    rows.append(
        (
            "server memory after the pushes",
            "",
            _mib(pushed_mem["VmRSS"]),
            "< 300 MiB",
            _verdict(pushed_mem["VmHWM"], TARGETS["memory"]),
            f"{pushed_mem['VmHWM'] / status_rss:.2f}x",
            f"HWM {_mib(pushed_mem['VmHWM'])}",
        )
    )
    rows.append(
        (
            "peer: `alloy status --json` (whole command)",
            _ms(status_t.best),
            _ms(status_t.median),
            "",
            "",
            "1x",
            f"peak RSS {_mib(status_rss)}",
        )
    )
    rows.append(
        (
            "peer: `git ls-remote` (one poll)",
            _ms(ls_remote.best),
            _ms(ls_remote.median),
            "",
            "",
            f"{ls_remote.median / ref:.2g}x",
            "",
        )
    )
    _print_table(head, rows)
    print(
        "warm pages: request to last byte on one keep-alive connection; ratios median/median; "
        "memory ratio: the server's VmHWM / the peak RSS of `alloy status --json`"
    )
    print(f"load average now {os.getloadavg()[0]:.2f}")
    if args.profile:
        _profile(tmp, world, pages, times, args)


def _profile(
    tmp: Path, world: World, pages: list[Page], times: int, args: argparse.Namespace
) -> None:
    out = tmp / "profiles"
    out.mkdir()
    server = Server(world.remote, tmp / "cache", profile_dir=out)
    client = Client(server.port)
    done = 0

    def collect() -> Path:
        nonlocal done
        done += 1
        path = out / f"{done}.prof"
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline:
                sys.exit("the profiled server wrote no profile")
            time.sleep(0.05)
        return path

    server.signal(signal.SIGUSR2)
    profiles: list[tuple[str, Path, float]] = [
        (
            "startup until /healthz, cache filled (imports, the first full read)",
            collect(),
            server.ready,
        )
    ]
    for page in pages:
        client.get(page.path, page.headers)
    for page in pages:
        server.signal(signal.SIGUSR1)
        time.sleep(0.1)
        start = time.perf_counter()
        for _ in range(times):
            client.get(page.path, page.headers)
        wall = time.perf_counter() - start
        server.signal(signal.SIGUSR2)
        profiles.append((f"{page.label}, {times} requests", collect(), wall))
    pusher = Pusher(world, pages_first_intent(client, world), args.seed + 100)
    server.signal(signal.SIGUSR1)
    pushes = push_to_page(server.port, client, pusher, args.pushes)
    server.signal(signal.SIGUSR2)
    profiles.append(
        (f"{args.pushes} pushes to the page, one at a time", collect(), sum(pushes.page))
    )
    client.close()
    server.stop()
    for label, path, wall in profiles:
        _print_profile(label, path, wall)
    memory = profiles[0][1].with_name(profiles[0][1].name + ".mem.txt")
    if memory.exists():
        print(
            "\n== memory after startup (tracemalloc: Python allocations alive, by file, then by "
            "line; tracing slows the profiled startup)"
        )
        print(memory.read_text())


def pages_first_intent(client: Client, world: World) -> str:
    _, body, _ = client.get("/?format=json")
    return str(next(r["name"] for r in json.loads(body)["intents"] if r["name"] in world.artifacts))


def _print_profile(label: str, path: Path, wall: float) -> None:
    print(f"\n== profile: {label} (client wall time {wall * 1000:,.0f} ms; every thread)")
    pauses = path.with_name(path.name + ".gc.txt")
    if pauses.exists():
        for line in pauses.read_text().splitlines() or ["no collection"]:
            print(f"   cycle collector: {line}")
    if path.stat().st_size == 0:
        print("   nothing recorded")
        return
    stats = pstats.Stats(str(path))
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    # The event loop waiting for the next request is idle time, not the request's.
    idle = [f for f in table if f[2] == "<method 'poll' of 'select.epoll' objects>"]
    for func in idle:
        del table[func]
    total = sum(tt for (_, _, tt, _, _) in table.values()) or 1e-9

    def where(func: tuple[str, int, str]) -> str:
        file, line, name = func
        for marker in ("/site-packages/", "/lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
                break
        else:
            file = file.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
        return f"{name} ({file}:{line})"

    print(
        f"   self time recorded: {total * 1000:,.0f} ms (the event loop's idle epoll left out); "
        "top functions by self time:"
    )
    for func, (_, nc, tt, _ct, _) in sorted(table.items(), key=lambda kv: -kv[1][2])[:15]:
        print(f"   {tt * 1000:9.1f} ms {tt / total:6.1%}  calls {nc:>9,}  {where(func)}")
    print("   top by cumulative time (project code):")
    ours = [
        (func, row)
        for func, row in table.items()
        if "/alloy/" in func[0] or "/controllers/" in func[0]
    ]
    for func, (_, nc, _tt, ct, _) in sorted(ours, key=lambda kv: -kv[1][3])[:15]:
        print(f"   {ct * 1000:9.1f} ms {ct / total:6.1%}  calls {nc:>9,}  {where(func)}")


if __name__ == "__main__":
    main()
