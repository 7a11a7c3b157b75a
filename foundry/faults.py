"""Named crash points, for tests that prove recovery (DESIGN section 9).

`crash_point(name, detail)` does nothing unless the variable `FOUNDRY_CRASH_AT` names that
point, as `NAME` (its first arrival), `NAME@N` (its N-th arrival in this process), `NAME:DETAIL`
or `NAME:DETAIL@N` (only arrivals with that detail count: for the engine's points, the block;
for ledger pushes, the blocks about to start, or `renewal`). Then the process
dies the way a host does: every block process it started is killed with its process group,
then the process itself, with SIGKILL, so no `finally`, no flush and no atexit runs.

The variable is read once, when this module is imported; without it a crash point costs one
comparison. Tests and the fault-matrix script set it on the process they mean to kill.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

VARIABLE = "FOUNDRY_CRASH_AT"

#: Every crash point, in the order a pass reaches them (docs/reconcile.md explains each).
POINTS = (
    "claim-taken",
    "attempt-recorded",
    "ledger-push-before",
    "ledger-push-after",
    "mid-block",
    "process-exited",
    "renewal",
    "release-before",
    "release-after",
    "check-publish",
    "trace-push-before",
    "trace-push-after",
)


def _parse(value: str) -> tuple[str, str | None, int] | None:
    if not value:
        return None
    where, _, nth = value.partition("@")
    name, sep, detail = where.partition(":")
    if name not in POINTS:
        raise SystemExit(f"{VARIABLE}={value}: unknown crash point; known: {', '.join(POINTS)}")
    return name, detail if sep else None, int(nth) if nth.isdigit() and int(nth) > 0 else 1


_TARGET = _parse(os.environ.get(VARIABLE, ""))
_LOCK = threading.Lock()
_SEEN: dict[str, int] = {}
#: Process groups of the block attempts running now (a crash kills them with the engine).
LIVE_GROUPS: set[int] = set()


def armed() -> bool:
    """Whether a crash point is set for this process."""
    return _TARGET is not None


def crash_point(name: str, detail: str = "") -> None:
    """Die here, like a host losing power, when `FOUNDRY_CRASH_AT` names this point."""
    if _TARGET is None or _TARGET[0] != name:
        return
    if _TARGET[1] is not None and _TARGET[1] != detail:
        return
    with _LOCK:
        _SEEN[name] = _SEEN.get(name, 0) + 1
        if _SEEN[name] != _TARGET[2]:
            return
        for group in list(LIVE_GROUPS):
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
