"""The lane rules, once: every decision of `acquire`, `renew`, `release` and `status`, as SQL
over one lane's rows inside a transaction. Both stores run exactly this code: the SQLite file of
one machine (`_local.Lanes`) and a lane's state loaded into an in-memory database
(`_state.LaneState`, which the remote lanes of `controllers.lanes` keep on a git ref).

The rules themselves are described in the package docstring (`foundry.throttle`)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from foundry._sqlite import Txn
from foundry.throttle._types import Decision, LaneSpec, LaneStatus, Queued, QueuePolicy, Slot

SCHEMA_VERSION = 1
SCHEMA = """
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
#: How long a superseded execution is still told so when it asks again.
SUPERSEDED_KEPT = 30 * 24 * 3600.0


def acquire(
    db: Txn,
    lane: LaneSpec,
    execution: str,
    *,
    holder: str,
    now: float,
    lease: float,
    queue_lease: float,
) -> Decision:
    """Take a slot of `lane` for `execution`, or say why not (queued, rejected, ...)."""
    return _Acquire(
        db, lane, execution, holder=holder, now=now, lease=lease, queue_lease=queue_lease
    ).run()


def renew(db: Txn, lane_name: str, execution: str, *, now: float, lease: float) -> bool:
    """Extend the lease to `now + lease`; False when it is lost or its cancellation was
    requested (an expired lease is removed)."""
    row = db.execute(
        "SELECT expires_at, cancel_requested FROM holders WHERE lane = ? AND execution = ?",
        (lane_name, execution),
    ).fetchone()
    if row is None:
        return False
    if row[0] <= now:
        db.execute("DELETE FROM holders WHERE lane = ? AND execution = ?", (lane_name, execution))
        return False
    if row[1]:
        return False
    db.execute(
        "UPDATE holders SET expires_at = ? WHERE lane = ? AND execution = ?",
        (now + lease, lane_name, execution),
    )
    return True


def release(db: Txn, lane_name: str, execution: str) -> None:
    """Free the slot or leave the queue; nothing happens when neither is held."""
    key = (lane_name, execution)
    db.execute("DELETE FROM holders WHERE lane = ? AND execution = ?", key)
    db.execute("DELETE FROM waiting WHERE lane = ? AND execution = ?", key)


def status(db: Txn, lane_name: str, *, now: float) -> LaneStatus:
    """Live leases and live places in the queue at `now`."""
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
            "DELETE FROM superseded WHERE lane = ? AND at <= ?", (name, now - SUPERSEDED_KEPT)
        )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _when(t: float) -> str:
    if not math.isfinite(t):
        return str(t)
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
