"""The append-only ledger of one execution (JSON Lines), which recovery reads.

Every record is one line `{"seq": n, "at": "<RFC 3339>", "type": ..., ...}` (plus `gen`, the
claim generation of its writer, when it was written under a claim), written with one
`os.write` on an `O_APPEND` descriptor, so a crash of the engine process never loses a record it
wrote (the page cache survives the process). `fsync` makes records survive a machine crash; it
is done where the effects require it (before a reversible or irreversible attempt starts, and
when an execution finishes or parks) and for everything written before, in one group.

A torn last line (a machine crash mid-write) is dropped when the ledger is opened.

Record types:

=====================  ==============================================================
planned                execution, artifact {name, digest}, event {type, key}, inputs
gate                   block, index, kind, decision (waiting|passed|failed), reason
attempt-started        block, attempt, effects
attempt-finished       block, attempt, outcome (succeeded|failed|timeout|cancelled|
                       interrupted), exitCode, durationMs, logDigest, logTail, outputs
block-finished         block, status (succeeded|failed|skipped|cancelled), reason
indeterminate          block, attempt, reason (an unfinished reversible/irreversible attempt)
resolved               block, decision (approve|reject) (how an indeterminate ended)
lane                   lane, decision (granted|queued|rejected|superseded|rate-limited),
                       reason, cancel (executions the lane asked to cancel)
execution-finished     status (succeeded|failed|cancelled|skipped), reason (why, when it
                       failed before any block could run, was cancelled or superseded)
held                   reason (an operator's pause stopped it here; it goes on after)
merged                 holder, orphans, kept (records of an earlier holder that never
                       reached the remote, and what was kept of them; see `merge_ledgers`)
=====================  ==============================================================
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_SECOND: tuple[int, str] = (0, "1970-01-01T00:00:00.")  # the last second formatted


def rfc3339(seconds: float) -> str:
    """`2026-11-25T02:00:00.123Z` (milliseconds, UTC; rounded to microseconds first, as
    `datetime.fromtimestamp` does, then truncated)."""
    global _SECOND  # noqa: PLW0603 - a one-entry cache: records come many to a second
    whole = math.floor(seconds)
    micro = round((seconds - whole) * 1e6)
    if micro >= 1_000_000:
        whole += 1
        micro -= 1_000_000
    cached, prefix = _SECOND
    if cached != whole:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole))
        _SECOND = (whole, prefix)
    return f"{prefix}{micro // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of a ledger timestamp."""
    return datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class Ledger:
    """One execution's ledger file."""

    def __init__(self, path: Path, *, generation: int | None = None) -> None:
        self.path = path
        #: The claim generation of the writer (DESIGN section 9), stamped on every record as
        #: `gen`; None writes no stamp (a run outside any claim).
        self.generation = generation
        path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = list(self._read())
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._dirty = False

    def _read(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last line: drop it, and the bytes with it
            with self.path.open("r+b") as fh:
                fh.truncate(end)
        for line in data[:end].splitlines():
            if line.strip():
                yield json.loads(line)

    def append(self, record: dict[str, Any], *, at: float, sync: bool = False) -> dict[str, Any]:
        full = {"seq": len(self.records) + 1, "at": rfc3339(at), **record}
        if self.generation is not None:
            full["gen"] = self.generation
        os.write(self._fd, (_ENCODE(full) + "\n").encode())
        self.records.append(full)
        self._dirty = True
        if sync:
            self.sync()
        return full

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["type"] == kind]
