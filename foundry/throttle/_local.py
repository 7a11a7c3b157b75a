"""Lanes of one machine: the lane rules over one SQLite file shared by its engine processes.

Every read-modify-write runs in `BEGIN IMMEDIATE` (see `foundry._sqlite`), so two processes
pointed at the same file never both take the last slot. Time comes from the injected `Clock`,
read once per transaction."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from foundry._sqlite import Store
from foundry.ports import Clock
from foundry.throttle import _rules
from foundry.throttle._types import Decision, LaneSpec, LaneStatus

if TYPE_CHECKING:
    from foundry.throttle._port import LanePort


class Lanes:
    """Throttle lanes kept in a SQLite file shared by the engine processes of one machine."""

    def __init__(
        self,
        db_path: Path,
        clock: Clock,
        *,
        lease_seconds: float = 300.0,
        queue_seconds: float | None = None,
        busy_timeout: float = 30.0,
    ) -> None:
        if lease_seconds <= 0 or (queue_seconds is not None and queue_seconds <= 0):
            raise ValueError("lease_seconds and queue_seconds must be positive")
        self._clock = clock
        self._lease = lease_seconds
        self._queue_lease = lease_seconds if queue_seconds is None else queue_seconds
        self._store = Store(
            db_path, schema=_rules.SCHEMA, version=_rules.SCHEMA_VERSION, busy_timeout=busy_timeout
        )

    @property
    def lease_seconds(self) -> float:
        """How long a slot is held without `renew`."""
        return self._lease

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def acquire(self, lane: LaneSpec, execution: str, *, holder: str) -> Decision:
        """Take a slot of `lane` for `execution`, or say why not (queued, rejected, ...)."""
        with self._store.immediate() as db:
            return _rules.acquire(
                db,
                lane,
                execution,
                holder=holder,
                now=self._clock.now(),
                lease=self._lease,
                queue_lease=self._queue_lease,
            )

    def renew(self, lane_name: str, execution: str) -> bool:
        """Extend the lease; False when it is lost or its cancellation was requested."""
        with self._store.immediate() as db:
            return _rules.renew(db, lane_name, execution, now=self._clock.now(), lease=self._lease)

    def release(self, lane_name: str, execution: str) -> None:
        """Free the slot or leave the queue; nothing happens when neither is held."""
        with self._store.immediate() as db:
            _rules.release(db, lane_name, execution)

    def status(self, lane_name: str) -> LaneStatus:
        with self._store.read() as db:
            return _rules.status(db, lane_name, now=self._clock.now())


if TYPE_CHECKING:

    def _is_a_lane_port(lanes: Lanes) -> LanePort:
        return lanes
