"""The run's throttle lane: the slot asked for before blocks run (the decision recorded), and
its lease kept while they run (a lost or cancelled lease cancels the run)."""

from __future__ import annotations

import threading
import time

from foundry.executor._record import Recorder
from foundry.executor._types import HOLDER, RENEW_EVERY
from foundry.throttle import Decision, LanePort, LaneSpec


def acquire(rec: Recorder, lanes: LanePort, spec: LaneSpec) -> Decision:
    """Ask the lane for a slot for the execution, and record what it said."""
    decision = lanes.acquire(spec, rec.execution, holder=HOLDER)
    rec.record(
        {
            "type": "lane",
            "lane": spec.name,
            "decision": decision.outcome,
            "reason": decision.reason,
            "cancel": list(decision.cancel),
        }
    )
    return decision


class Lease:
    """The lease of the lane slot `lane` holds (None: none held), renewed now and then."""

    def __init__(self, lanes: LanePort | None, execution: str, cancel: threading.Event) -> None:
        self._lanes = lanes
        self._execution = execution
        self._cancel = cancel
        self._renewed = time.monotonic()
        self.lane: str | None = None

    def keep(self) -> None:
        """Renew the lane lease now and then; a lost or cancelled lease cancels this run."""
        lanes = self._lanes
        if self.lane is None or lanes is None:
            return
        # Often enough that a newcomer's cancelRunning takes effect within seconds.
        if time.monotonic() - self._renewed < min(lanes.lease_seconds / 3, RENEW_EVERY):
            return
        self._renewed = time.monotonic()
        if not lanes.renew(self.lane, self._execution):
            self._cancel.set()
