"""What the state directory knows about executions, read from their ledgers (the ledger is the
truth; nothing else is kept that could disagree with it).

Layout: `<state>/executions/<execution>/ledger.jsonl` (+ `logs/`); dry runs under `dry-runs/`.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def status_of(records: Sequence[dict[str, Any]]) -> str:
    """planned | running | waiting | queued | indeterminate | succeeded | failed | cancelled |
    skipped — the same reading as the trace's (foundry.traces)."""
    status = "planned"
    open_indeterminate: set[str] = set()
    gates: dict[tuple[str, int], str] = {}
    finished_blocks: set[str] = set()
    queued = False
    for r in records:
        kind = r.get("type")
        if kind == "execution-finished":
            return str(r["status"])
        if kind == "lane":  # queued until a later record shows it got further
            queued = r.get("decision") in ("queued", "rate-limited")
            continue
        if kind in (
            "attempt-started",
            "attempt-finished",
            "gate",
            "indeterminate",
            "resolved",
            "block-finished",
        ):
            queued = False
        if kind == "attempt-started":
            status = "running"
        elif kind == "indeterminate":
            open_indeterminate.add(r["block"])
        elif kind == "resolved":
            open_indeterminate.discard(r["block"])
        elif kind == "gate":
            gates[(r["block"], r["index"])] = r["decision"]
        elif kind == "block-finished":
            finished_blocks.add(r["block"])
            open_indeterminate.discard(r["block"])
    if open_indeterminate:
        return "indeterminate"
    if queued:
        return "queued"
    if any(d == "waiting" and b not in finished_blocks for (b, _), d in gates.items()):
        return "waiting"
    return status


@dataclass(frozen=True)
class Summary:
    """One execution as its ledger tells it: the `planned` record and the status now."""

    execution: str
    planned: dict[str, Any]
    status: str


class LedgerIndex:
    """Executions of one state directory, by id (implements the planner's `Known`)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "executions"

    def _records(self, execution: str) -> list[dict[str, Any]] | None:
        path = self.root / execution / "ledger.jsonl"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        out = []
        # "\n" only: records are written with ensure_ascii=False, and str.splitlines would also
        # split a record at an unescaped U+2028, U+2029 or U+0085 in a log tail.
        for line in text.split("\n"):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a torn last line; the ledger drops it when opened for writing
        return out

    def status(self, execution: str) -> str | None:
        records = self._records(execution)
        if not records:
            return None
        return status_of(records)

    def executions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "ledger.jsonl").is_file())

    def planned(self, execution: str) -> dict[str, Any] | None:
        records = self._records(execution)
        return records[0] if records and records[0].get("type") == "planned" else None

    def records(self, execution: str) -> list[dict[str, Any]]:
        return self._records(execution) or []

    def summaries(self) -> list[Summary]:
        """Every planned execution, each ledger read once."""
        out = []
        for execution in self.executions():
            records = self._records(execution)
            if records and records[0].get("type") == "planned":
                out.append(Summary(execution, records[0], status_of(records)))
        return out

    def unfinished_keys(self, artifact: str, event_type: str) -> Sequence[tuple[str, str]]:
        return [
            (s.execution, str(s.planned["event"]["key"]))
            for s in self.summaries()
            if s.planned["artifact"]["name"] == artifact
            and s.planned["event"]["type"] == event_type
            and s.status not in ("succeeded", "failed", "cancelled", "skipped")
        ]


def private(directory: Path, group: int | None = None) -> None:
    """Only its owner may enter `directory` (a state directory holds ledgers, worktrees and
    logs of one repository: another repository's blocks, run as another user, never read
    them), and `group` when given may read it, never write it (the repository's blocks run as
    a user of that group: they reach their worktrees through it). A directory of someone
    else's is left as it is."""
    info = directory.stat()
    if info.st_uid != os.getuid():
        return
    shared = 0
    if group is not None:
        if info.st_gid != group:
            os.chown(directory, -1, group)
        shared = stat.S_IRGRP | stat.S_IXGRP
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO) != shared:  # the owner's own bits stay as they are
        directory.chmod((mode & ~(stat.S_IRWXG | stat.S_IRWXO)) | shared)
