"""The publish outbox: what could not be delivered now (a trace commit, a check run, a claim
release) is written here first and delivered later, so a remote or forge that is down loses
nothing (DESIGN section 8).

One file per entry under `<state>/outbox/`, written atomically (temporary file, fsync, rename),
removed only after delivery succeeded. Entries are delivered oldest first; one that fails stays
and is tried again on the next pass (a daemon restart included), with its attempt count and
last error kept in the entry.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    """One undelivered publication."""

    path: Path
    kind: str
    payload: dict[str, Any]
    attempts: int
    error: str


class Outbox:
    """Undelivered publications of one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, kind: str, payload: dict[str, Any], error: str = "") -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{os.getpid()}-{kind}.json"
        target = self.root / name
        self._write(target, {"kind": kind, "payload": payload, "attempts": 0, "error": error})
        return target

    @staticmethod
    def _write(target: Path, body: dict[str, Any]) -> None:
        tmp = target.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(body, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(target)

    def entries(self) -> Iterator[Entry]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*.json")):
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
                entry = Entry(
                    path,
                    str(body["kind"]),
                    dict(body["payload"]),
                    int(body.get("attempts", 0)),
                    str(body.get("error", "")),
                )
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue  # not an entry (a stray file): never delivered, never a crash
            yield entry

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.json")) if self.root.is_dir() else 0

    def drain(self, deliver: Callable[[Entry], None]) -> tuple[int, int]:
        """Deliver each entry; (delivered, still pending). `deliver` raises to keep an entry."""
        delivered = pending = 0
        for entry in self.entries():
            try:
                deliver(entry)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the entry for later
                pending += 1
                self._write(
                    entry.path,
                    {
                        "kind": entry.kind,
                        "payload": entry.payload,
                        "attempts": entry.attempts + 1,
                        "error": str(exc)[:500],
                    },
                )
                continue
            entry.path.unlink(missing_ok=True)
            delivered += 1
        return delivered, pending
