"""Throttle lanes (DESIGN section 5): how many executions of a lane run at once, who waits, and
how often a slot may be granted — shared by every engine process on the machine.

State lives in one SQLite file (see `foundry._sqlite`: WAL, busy timeout, and every
read-modify-write in `BEGIN IMMEDIATE`), so two engine processes pointed at the same file never
both take the last slot. Time comes from an injected `Clock`, read once per transaction.

Interface::

    LaneSpec(name, limit, queue, max_queued=None, cancel_running=False,
             rate_count=None, rate_period=None)          # an artifact's spec.lane
    LaneSpec.from_artifact(artifact.spec.lane)

    lanes = Lanes(db_path, clock, lease_seconds=300.0, queue_seconds=None, busy_timeout=30.0)
    lanes.acquire(spec, execution, holder=...) -> Decision   # outcome, reason, position,
                                                             # retry_at, cancel
    lanes.renew(lane_name, execution) -> bool     # extend the lease; False: stop the work
    lanes.release(lane_name, execution) -> None   # free the slot or leave the queue
    lanes.status(lane_name) -> LaneStatus          # holders (with lease expiry), queue
    lanes.close()

Rules:

* **A slot is a lease** that ends at `now + lease_seconds`; `renew` moves the end. An expired
  lease counts as free, so a crashed holder never wedges a lane. `renew` returns False when the
  lease is gone (expired, released) or its cancellation was requested: the caller must stop.
* **A place in a queue is a lease too**, of `queue_seconds` (default: `lease_seconds`), renewed
  each time the waiting execution asks again with `acquire`. A waiter that stops asking loses its
  place, so a crashed waiter never blocks the queue behind it.
* **`acquire` is idempotent** per (lane, execution): a holder gets `granted` again (its lease is
  not moved; that is `renew`'s job), a waiter its current position.
* **Order**: an execution takes a slot only if its place in the queue is within the free
  slots: with one free slot only the head may take it; a newcomer queues behind any waiter.
* **Queue policies** decide what a newcomer gets when the lane is full for it:
  `fifo` queues it in arrival order; `latest` keeps only the newest pending execution — the
  older ones are removed and get `superseded` when they ask again (a slot kept for them goes to
  the newcomer); `reject` answers `rejected`.
  `max_queued` bounds the queue: a full `fifo` queue rejects newcomers; `max_queued: 0` means
  nobody waits (with `latest` a newcomer replaces the pending one, so its queue is never full
  otherwise).
* **`cancel_running`**: a newcomer that finds no slot it may take is queued and
  `Decision.cancel` lists every running holder (`Slot.cancel_requested` in `status`); the caller
  must cancel them. Their leases stay until they release
  (or the leases expire; `renew` no longer extends them), so no more than `limit` executions ever
  run at once. With `queue: reject` the newcomer still gets a place to wait for the slots it
  cancelled: one place, kept for the newest newcomer as `latest` would.
* **Rate**: at most `rate_count` grants in any `rate_period` seconds (a sliding window over the
  recorded grants: a grant at `t` counts until `t + rate_period`). The slot check comes first;
  when a slot is there but the window is used up the answer is `rate-limited` with `retry_at`,
  the earliest time this execution may be granted given its place (exact for the head of the
  queue). Under `fifo` and `latest` it keeps (or takes) its place in the queue meanwhile, so a
  newcomer cannot overtake it when the window opens; under `reject` it keeps none.
* **Waiting on a gate holds no slot.** That is the caller's job: release the slot (or the place
  in the queue) before parking an execution on a gate, and acquire again once the gate passes.

Errors: a database locked past `busy_timeout` raises `TemporaryError` (retry later); a file of
another schema version, or not a database, `PermanentError` naming the file. Deleting the file
is always safe to recover: it holds only leases, queues and recent grants.

Limitation: SQLite's WAL mode needs shared memory, so the processes must share one machine (not
a network file system). Superseded marks are kept for 30 days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from foundry._sqlite import Store, Txn
from foundry.ports import Clock

__all__ = ["Decision", "LaneSpec", "LaneStatus", "Lanes", "Outcome", "Queued", "Slot"]

QueuePolicy = Literal["fifo", "latest", "reject"]
Outcome = Literal["granted", "queued", "rejected", "superseded", "rate-limited"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE holders (
    lane TEXT NOT NULL,
    execution TEXT NOT NULL,
    holder TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (lane, execution)
) WITHOUT ROWID;
CREATE TABLE waiting (
    seq INTEGER PRIMARY KEY,
    lane TEXT NOT NULL,
    execution TEXT NOT NULL,
    holder TEXT NOT NULL,
    queued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    UNIQUE (lane, execution)
);
CREATE TABLE superseded (
    lane TEXT NOT NULL,
    execution TEXT NOT NULL,
    by_execution TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (lane, execution)
) WITHOUT ROWID;
CREATE TABLE grants (
    lane TEXT NOT NULL,
    execution TEXT NOT NULL,
    granted_at REAL NOT NULL
);
CREATE INDEX grants_by_lane ON grants (lane, granted_at);
"""
_SUPERSEDED_KEPT = 30 * 24 * 3600.0


class _ArtifactRate(Protocol):
    @property
    def count(self) -> int: ...
    @property
    def period_seconds(self) -> int: ...


class _ArtifactLane(Protocol):
    """What `foundry.boundary` reads from an artifact's `spec.lane`."""

    @property
    def name(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def queue(self) -> QueuePolicy: ...
    @property
    def max_queued(self) -> int | None: ...
    @property
    def cancel_running(self) -> bool: ...
    @property
    def rate(self) -> _ArtifactRate | None: ...


@dataclass(frozen=True)
class LaneSpec:
    """A lane as an artifact declares it (`spec.lane`); raises ValueError when inconsistent."""

    name: str
    limit: int
    queue: QueuePolicy
    max_queued: int | None = None
    cancel_running: bool = False
    rate_count: int | None = None
    rate_period: int | None = None

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"lane {self.name}: limit must be at least 1, got {self.limit}")
        if self.queue not in ("fifo", "latest", "reject"):
            raise ValueError(f"lane {self.name}: unknown queue policy {self.queue!r}")
        if self.max_queued is not None and self.max_queued < 0:
            raise ValueError(f"lane {self.name}: maxQueued must not be negative")
        if (self.rate_count is None) != (self.rate_period is None):
            raise ValueError(f"lane {self.name}: a rate needs both a count and a period")
        if self.rate_count is not None and self.rate_count < 1:
            raise ValueError(f"lane {self.name}: a rate count must be at least 1")
        if self.rate_period is not None and self.rate_period < 1:
            raise ValueError(f"lane {self.name}: a rate period must be at least 1 second")

    @classmethod
    def from_artifact(cls, lane: _ArtifactLane) -> LaneSpec:
        """The lane of an artifact as `foundry.boundary` read it."""
        return cls(
            name=lane.name,
            limit=lane.limit,
            queue=lane.queue,
            max_queued=lane.max_queued,
            cancel_running=lane.cancel_running,
            rate_count=lane.rate.count if lane.rate else None,
            rate_period=lane.rate.period_seconds if lane.rate else None,
        )


@dataclass(frozen=True)
class Decision:
    """The answer to `acquire`; `reason` is for people, the other fields for the engine."""

    outcome: Outcome
    reason: str
    position: int | None = None
    retry_at: float | None = None
    cancel: tuple[str, ...] = ()


@dataclass(frozen=True)
class Slot:
    """A lease on one slot of a lane."""

    execution: str
    holder: str
    acquired_at: float
    expires_at: float
    cancel_requested: bool


@dataclass(frozen=True)
class Queued:
    """A place in a lane's queue (1-based position)."""

    execution: str
    holder: str
    position: int
    queued_at: float
    expires_at: float


@dataclass(frozen=True)
class LaneStatus:
    """A lane at one moment: live leases and live places in the queue."""

    name: str
    holders: tuple[Slot, ...]
    queue: tuple[Queued, ...]


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
            db_path, schema=_SCHEMA, version=_SCHEMA_VERSION, busy_timeout=busy_timeout
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
            now = self._clock.now()
            return _Acquire(
                db,
                lane,
                execution,
                holder=holder,
                now=now,
                lease=self._lease,
                queue_lease=self._queue_lease,
            ).run()

    def renew(self, lane_name: str, execution: str) -> bool:
        """Extend the lease; False when it is lost or its cancellation was requested."""
        with self._store.immediate() as db:
            now = self._clock.now()
            row = db.execute(
                "SELECT expires_at, cancel_requested FROM holders WHERE lane = ? AND execution = ?",
                (lane_name, execution),
            ).fetchone()
            if row is None:
                return False
            if row[0] <= now:
                db.execute(
                    "DELETE FROM holders WHERE lane = ? AND execution = ?", (lane_name, execution)
                )
                return False
            if row[1]:
                return False
            db.execute(
                "UPDATE holders SET expires_at = ? WHERE lane = ? AND execution = ?",
                (now + self._lease, lane_name, execution),
            )
            return True

    def release(self, lane_name: str, execution: str) -> None:
        """Free the slot or leave the queue; nothing happens when neither is held."""
        with self._store.immediate() as db:
            key = (lane_name, execution)
            db.execute("DELETE FROM holders WHERE lane = ? AND execution = ?", key)
            db.execute("DELETE FROM waiting WHERE lane = ? AND execution = ?", key)

    def status(self, lane_name: str) -> LaneStatus:
        with self._store.read() as db:
            now = self._clock.now()
            holders = tuple(
                Slot(
                    execution=r[0],
                    holder=r[1],
                    acquired_at=r[2],
                    expires_at=r[3],
                    cancel_requested=bool(r[4]),
                )
                for r in db.execute(
                    "SELECT execution, holder, acquired_at, expires_at, cancel_requested "
                    "FROM holders WHERE lane = ? AND expires_at > ? "
                    "ORDER BY acquired_at, execution",
                    (lane_name, now),
                )
            )
            queue = tuple(
                Queued(execution=r[0], holder=r[1], position=i, queued_at=r[2], expires_at=r[3])
                for i, r in enumerate(
                    db.execute(
                        "SELECT execution, holder, queued_at, expires_at FROM waiting "
                        "WHERE lane = ? AND expires_at > ? ORDER BY seq",
                        (lane_name, now),
                    ),
                    start=1,
                )
            )
        return LaneStatus(name=lane_name, holders=holders, queue=queue)


class _Acquire:
    """One `acquire`, inside one write transaction."""

    def __init__(
        self,
        db: Txn,
        lane: LaneSpec,
        execution: str,
        *,
        holder: str,
        now: float,
        lease: float,
        queue_lease: float,
    ) -> None:
        self.db = db
        self.lane = lane
        self.execution = execution
        self.holder = holder
        self.now = now
        self.lease = lease
        self.queue_lease = queue_lease

    def run(self) -> Decision:
        lane, execution = self.lane, self.execution
        self._forget_expired()
        held = self.db.execute(
            "SELECT expires_at, cancel_requested FROM holders WHERE lane = ? AND execution = ?",
            (lane.name, execution),
        ).fetchone()
        if held is not None:
            note = "; its cancellation was requested" if held[1] else ""
            return Decision(
                "granted",
                f"{execution} already holds a slot of lane {lane.name} "
                f"(lease until {_when(held[0])}){note}",
            )
        by = self.db.execute(
            "SELECT by_execution FROM superseded WHERE lane = ? AND execution = ?",
            (lane.name, execution),
        ).fetchone()
        if by is not None:
            self._leave_queue()
            return Decision(
                "superseded", f"{execution} was superseded in lane {lane.name} by {by[0]}"
            )
        holders = self._column(
            "SELECT execution FROM holders WHERE lane = ? ORDER BY acquired_at, execution"
        )
        queue = self._column("SELECT execution FROM waiting WHERE lane = ? ORDER BY seq")
        free = lane.limit - len(holders)
        grants = self._grants_in_window()
        room = free if lane.rate_count is None else min(free, lane.rate_count - len(grants))
        cancel: tuple[str, ...] = ()

        if execution in queue:
            place = queue.index(execution) + 1
            self.db.execute(
                "UPDATE waiting SET expires_at = ?, holder = ? WHERE lane = ? AND execution = ?",
                (self.now + self.queue_lease, self.holder, lane.name, execution),
            )
        else:
            place = len(queue) + 1
            if place > room:  # it cannot go straight in: it waits, or is turned away
                policy = lane.queue
                if policy == "reject":
                    if place <= free:  # only the rate says no: come back at retry_at
                        return self._rate_limited(grants, place, None)
                    if not lane.cancel_running:
                        return Decision(
                            "rejected",
                            f"lane {lane.name} is full ({len(holders)} of {lane.limit}) and "
                            "rejects newcomers (queue: reject)",
                        )
                    policy = "latest"  # one place, kept for the newcomer that cancelled
                taken = self._enqueue(queue, policy, len(holders))
                if isinstance(taken, Decision):
                    return taken
                place = taken
                if lane.cancel_running and place > free and holders:
                    cancel = tuple(holders)
                    self.db.execute(
                        "UPDATE holders SET cancel_requested = 1 WHERE lane = ?", (lane.name,)
                    )

        if place <= room:
            return self._grant(len(holders))
        if place <= free:
            return self._rate_limited(grants, place, place)
        reason = self._waiting(len(holders), place, free)
        if cancel:
            reason += f"; cancelling the running {', '.join(cancel)}"
        return Decision("queued", reason, place, cancel=cancel)

    def _grant(self, held: int) -> Decision:
        lane = self.lane
        self._leave_queue()
        self.db.execute(
            "INSERT INTO holders (lane, execution, holder, acquired_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (lane.name, self.execution, self.holder, self.now, self.now + self.lease),
        )
        if lane.rate_count is not None:
            self.db.execute(
                "INSERT INTO grants (lane, execution, granted_at) VALUES (?, ?, ?)",
                (lane.name, self.execution, self.now),
            )
        return Decision(
            "granted", f"lane {lane.name} had a free slot ({held + 1} of {lane.limit} now held)"
        )

    def _grants_in_window(self) -> list[float]:
        """Times of the grants that still count against the rate (none when there is none)."""
        lane = self.lane
        if lane.rate_period is None:
            self.db.execute("DELETE FROM grants WHERE lane = ?", (lane.name,))
            return []
        self.db.execute(
            "DELETE FROM grants WHERE lane = ? AND granted_at <= ?",
            (lane.name, self.now - lane.rate_period),
        )
        return [
            float(r[0])
            for r in self.db.execute(
                "SELECT granted_at FROM grants WHERE lane = ? ORDER BY granted_at", (lane.name,)
            )
        ]

    def _rate_limited(self, grants: list[float], place: int, position: int | None) -> Decision:
        """A slot is there but the rate says not yet. The execution at `place` may be granted
        once all but `rate_count - place` of the grants in the window have aged out."""
        lane = self.lane
        assert lane.rate_count is not None
        assert lane.rate_period is not None
        index = len(grants) - lane.rate_count + place - 1
        # Beyond the recorded grants, those ahead in the queue must be granted first.
        retry_at = (grants[index] if index < len(grants) else self.now) + lane.rate_period
        where = f"; {_ordinal(position)} in queue" if position is not None else ""
        return Decision(
            "rate-limited",
            f"lane {lane.name} allows {lane.rate_count} start(s) per {lane.rate_period}s and "
            f"has made {len(grants)} in that time{where}; next grant at {_when(retry_at)}",
            position,
            retry_at=retry_at,
        )

    def _enqueue(self, queue: list[str], policy: QueuePolicy, held: int) -> int | Decision:
        """Put the newcomer in the queue; its position, or why it may not wait."""
        lane = self.lane
        if lane.max_queued is not None and (
            lane.max_queued == 0 or (policy == "fifo" and len(queue) >= lane.max_queued)
        ):
            return Decision(
                "rejected",
                f"lane {lane.name} is full ({held} of {lane.limit}) and so is its queue "
                f"({len(queue)} of {lane.max_queued})",
            )
        if policy == "latest" and queue:
            self.db.execute(
                "INSERT OR REPLACE INTO superseded (lane, execution, by_execution, at) "
                "SELECT lane, execution, ?, ? FROM waiting WHERE lane = ?",
                (self.execution, self.now, lane.name),
            )
            self.db.execute("DELETE FROM waiting WHERE lane = ?", (lane.name,))
            queue = []
        self.db.execute(
            "INSERT INTO waiting (lane, execution, holder, queued_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (lane.name, self.execution, self.holder, self.now, self.now + self.queue_lease),
        )
        return len(queue) + 1

    def _waiting(self, held: int, position: int, free: int) -> str:
        lane = self.lane
        if free > 0:
            return (
                f"lane {lane.name} has {free} free slot(s), kept for the {position - 1} "
                f"ahead in its queue; {_ordinal(position)} in queue"
            )
        return f"lane {lane.name} is full ({held} of {lane.limit}); {_ordinal(position)} in queue"

    def _column(self, sql: str) -> list[str]:
        return [str(r[0]) for r in self.db.execute(sql, (self.lane.name,))]

    def _leave_queue(self) -> None:
        self.db.execute(
            "DELETE FROM waiting WHERE lane = ? AND execution = ?", (self.lane.name, self.execution)
        )

    def _forget_expired(self) -> None:
        name, now = self.lane.name, self.now
        self.db.execute("DELETE FROM holders WHERE lane = ? AND expires_at <= ?", (name, now))
        self.db.execute("DELETE FROM waiting WHERE lane = ? AND expires_at <= ?", (name, now))
        self.db.execute(
            "DELETE FROM superseded WHERE lane = ? AND at <= ?", (name, now - _SUPERSEDED_KEPT)
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _when(t: float) -> str:
    if not math.isfinite(t):
        return str(t)
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
