"""Work on every core: loading many documents, and writing many artifacts.

Parsing and validating is CPU-bound Python, so a cold repository of thousands of intents is
loaded by forked workers: each takes every k-th document and sends back what the parse cache
would keep (`DocResult.to_json()` and the artifact), marshalled through a pipe. A worker that
fails for any reason is ignored and its share is done again here, so the results (and any error)
are exactly those of doing everything in this process. Documents loaded this way carry no
`model`, like documents from the cache.

Only where `fork` is safe: on Linux (macOS system libraries are not fork-safe), with no other
thread running in this process. `ALLOY_JOBS=N` sets the number of processes (default: the CPUs
this process may use, at most 8); `ALLOY_JOBS=1` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import marshal
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from alloy.load._document import DocResult, Entry, load_document
from alloy.model import Project

#: Below this many items per process, forking costs more than it saves.
MIN_PER_WORKER = 64
MAX_WORKERS = 8

T = TypeVar("T")
Job = tuple[str, Entry, str | None]  # path, entry, expected kind
Loader = Callable[..., DocResult]  # load_document's signature


def shares_for(count: int) -> int:
    """How many processes should share `count` items (1: do them all here)."""
    if sys.platform != "linux" or threading.active_count() > 1:
        return 1
    asked = os.environ.get("ALLOY_JOBS", "")
    cpus = int(asked) if asked.isdigit() else len(os.sched_getaffinity(0))
    return max(1, min(cpus, MAX_WORKERS, count // MIN_PER_WORKER))


def fork_map(work: Callable[[int, int], T], shares: int) -> list[T]:
    """`[work(share, shares) for share in range(shares)]`: share 0 here, the others in forked
    children whose results (plain data that `marshal` can carry) come back through pipes."""
    results: list[Any] = [None] * shares
    children: list[tuple[int, int, int]] = []  # share, pid, read end
    here = [0]
    try:
        for share in range(1, shares):
            read_fd, write_fd = os.pipe()
            try:
                pid = os.fork()
            except OSError:  # no more processes: this one does the rest
                os.close(read_fd)
                os.close(write_fd)
                here.extend(range(share, shares))
                break
            if pid == 0:  # pragma: no cover - runs in the child
                _child(functools.partial(work, share, shares), read_fd, write_fd)
            os.close(write_fd)
            children.append((share, pid, read_fd))
        for share in here:
            results[share] = work(share, shares)
        while children:
            share, pid, read_fd = children.pop(0)
            try:
                with os.fdopen(read_fd, "rb") as pipe:
                    data = pipe.read()
            except BaseException:
                _stop(pid)
                raise
            _, status = os.waitpid(pid, 0)
            done, value = _received(data, status)
            results[share] = value if done else work(share, shares)
    finally:
        for _, pid, read_fd in children:  # only when interrupted: stop the others
            with contextlib.suppress(OSError):
                os.close(read_fd)
            _stop(pid)
    return results


def _stop(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _child(
    work: Callable[[], Any], read_fd: int, write_fd: int
) -> NoReturn:  # pragma: no cover - runs in the child
    """Run `work` and send its result back; never return."""
    code = 1
    try:
        os.close(read_fd)
        data = marshal.dumps(work())
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)  # never return into the parent's code, never run its exit handlers


def _received(data: bytes, status: int) -> tuple[bool, Any]:
    if status != 0:
        return False, None
    try:
        return True, marshal.loads(data)  # noqa: S302 - written by our own child, just now
    except (EOFError, ValueError, TypeError):
        return False, None


def _load(jobs: Sequence[Job], project: Project, max_bytes: int, load: Loader) -> list[DocResult]:
    return [
        load(path, entry, project, expected=expected, max_bytes=max_bytes)
        for path, entry, expected in jobs
    ]


def load_documents(
    jobs: Sequence[Job], project: Project, max_bytes: int, load: Loader = load_document
) -> list[DocResult]:
    """`load(path, entry, project, expected=..., max_bytes=...)` of every job, in order."""
    shares = shares_for(len(jobs))
    if shares == 1:
        return _load(jobs, project, max_bytes, load)

    def work(share: int, shares: int) -> list[tuple[dict[str, Any], Any]]:
        loaded = _load(jobs[share::shares], project, max_bytes, load)
        return [(r.to_json(), r.artifact) for r in loaded]

    results: list[DocResult] = [DocResult("")] * len(jobs)
    for share, plain in enumerate(fork_map(work, shares)):
        revived = []
        for (path, _, _), (raw, artifact) in zip(jobs[share::shares], plain, strict=True):
            result = DocResult.from_json(path, raw)
            result.artifact = artifact
            revived.append(result)
        results[share::shares] = revived
    return results
