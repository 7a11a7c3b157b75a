"""What a `Reconciler` remembers between passes, also across processes (`--once` runs): the
state file (`reconcile.json`: the heads a pass handled, what is parked, when to look again), and
when the next schedule slot comes due, worked out when a pass planned so that a pass that finds
nothing moved parses no cron (and imports nothing) to know it."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.reconcile._model import STATE_FILE

if TYPE_CHECKING:
    from foundry.boundary import Boundary


class Remembering:
    """The memory of a `Reconciler` (its state lives there)."""

    state: Path
    _memory: dict[str, Any]

    def _load_memory(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.state / STATE_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            data = {}
        data.setdefault("heads", {})
        data.setdefault("parked", [])
        data.setdefault("checked", 0.0)
        data.setdefault("claims", {})
        return data

    def _save_memory(self) -> None:
        target = self.state / STATE_FILE
        # A name of its own: processes that share a state directory each replace the file whole.
        tmp = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(self._memory, sort_keys=True), encoding="utf-8")
        tmp.replace(target)

    # -- schedules: due slots without reading anything -----------------------------------

    def _slots_due(self, now: float) -> bool:
        """Whether a schedule slot came due since the last pass: its time was worked out then,
        so this parses no cron (and imports nothing). A state file without it: look once."""
        wake = self._memory.get("nextSlot", 0.0)
        return wake is not None and now >= wake

    def _remember_schedules(self, boundary: Boundary, now: float) -> None:
        """The earliest slot of any schedule after `now`: the next pass that finds nothing
        moved still reads and plans once that time has come (slots up to `now` were planned)."""
        from datetime import datetime
        from zoneinfo import ZoneInfo

        from croniter import CroniterBadDateError, croniter

        upcoming = []
        for artifact in boundary.artifacts.values():
            s = artifact.spec.triggers.schedule
            if s is not None:
                start = datetime.fromtimestamp(now, ZoneInfo(s.timezone))
                try:
                    upcoming.append(croniter(s.cron, start).get_next(datetime).timestamp())
                except CroniterBadDateError:
                    continue  # a cron that never matches has no slot (the planner says so)
        self._memory["nextSlot"] = min(upcoming) if upcoming else None
