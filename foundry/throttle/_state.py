"""One lane's state as plain data, and its JSON document: how a store that is not a SQLite file
(the git remote of `controllers.lanes`) keeps a lane. Each decision loads the state into an
in-memory SQLite database, runs the very rules `Lanes` runs (`_rules`), and reads the rows back
as a new state, so the two stores cannot drift apart. States are values: comparing the state
before and after a decision says whether there is anything to write.

The document, version 1 (times in seconds since the epoch)::

    {"kind": "FoundryLane", "version": 1, "lane": "deploy",
     "holders":    [{"execution", "holder", "acquiredAt", "expiresAt", "cancelRequested"}, ...],
     "waiting":    [{"execution", "holder", "queuedAt", "expiresAt"}, ...],   # in queue order
     "superseded": [{"execution", "by", "at"}, ...],
     "grants":     [{"execution", "at"}, ...]}

Another kind, a newer version, another lane or a wrong shape is refused with `LaneStateError`
(naming where the document came from), never guessed at.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from foundry._sqlite import Txn
from foundry.errors import PermanentError
from foundry.throttle import _rules
from foundry.throttle._types import Decision, LaneSpec, LaneStatus

KIND = "FoundryLane"
VERSION = 1
_T = TypeVar("_T")


class LaneStateError(PermanentError):
    """A lane's recorded state is not one this Foundry can read."""

    @classmethod
    def unreadable(cls, source: str, problem: str) -> LaneStateError:
        """The error for a document at `source` that is no lane state: what is wrong and the
        way out."""
        return cls(
            f"{source}: {problem}, so it is not a lane state this Foundry can read. It holds "
            "only leases, queues and recent grants: deleting it recovers the lane (best while "
            "nothing runs in it)"
        )


class Held(NamedTuple):
    """A row of `holders`: a lease on a slot."""

    execution: str
    holder: str
    acquired_at: float
    expires_at: float
    cancel_requested: bool


class Waiter(NamedTuple):
    """A row of `waiting`: a place in the queue (the tuple's order is the queue's)."""

    execution: str
    holder: str
    queued_at: float
    expires_at: float


class Superseded(NamedTuple):
    """A row of `superseded`: a pending execution a newer one replaced."""

    execution: str
    by_execution: str
    at: float


class Grant(NamedTuple):
    """A row of `grants`: a slot granted (kept while it counts against the rate)."""

    execution: str
    granted_at: float


@dataclass(frozen=True)
class LaneState:
    """Everything one lane holds, in canonical order; each method runs one rule of
    `foundry.throttle` on it and returns the answer with the state after."""

    lane: str
    holders: tuple[Held, ...] = ()
    waiting: tuple[Waiter, ...] = ()
    superseded: tuple[Superseded, ...] = ()
    grants: tuple[Grant, ...] = ()

    # -- the rules ----------------------------------------------------------------------

    def acquire(
        self,
        spec: LaneSpec,
        execution: str,
        *,
        holder: str,
        now: float,
        lease: float,
        queue_lease: float,
    ) -> tuple[Decision, LaneState]:
        if spec.name != self.lane:
            raise ValueError(f"lane {spec.name}: asked of the state of lane {self.lane}")
        return self._run(
            lambda db: _rules.acquire(
                db,
                spec,
                execution,
                holder=holder,
                now=now,
                lease=lease,
                queue_lease=queue_lease,
            )
        )

    def renew(self, execution: str, *, now: float, lease: float) -> tuple[bool, LaneState]:
        return self._run(lambda db: _rules.renew(db, self.lane, execution, now=now, lease=lease))

    def release(self, execution: str) -> LaneState:
        return self._run(lambda db: _rules.release(db, self.lane, execution))[1]

    def status(self, *, now: float) -> LaneStatus:
        return self._run(lambda db: _rules.status(db, self.lane, now=now))[0]

    def lease_end(self, execution: str) -> float | None:
        """When `execution`'s recorded lease ends (live or not); None when it holds none."""
        return next((h.expires_at for h in self.holders if h.execution == execution), None)

    def _run(self, rule: Callable[[Txn], _T]) -> tuple[_T, LaneState]:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            db = Txn(conn)
            db.executescript_in_transaction(_rules.SCHEMA)
            lane = self.lane
            conn.executemany(
                "INSERT INTO holders (lane, execution, holder, acquired_at, expires_at, "
                "cancel_requested) VALUES (?, ?, ?, ?, ?, ?)",
                [(lane, *h[:4], int(h.cancel_requested)) for h in self.holders],
            )
            conn.executemany(
                "INSERT INTO waiting (seq, lane, execution, holder, queued_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(i, lane, *w) for i, w in enumerate(self.waiting, start=1)],
            )
            conn.executemany(
                "INSERT INTO superseded (lane, execution, by_execution, at) VALUES (?, ?, ?, ?)",
                [(lane, *s) for s in self.superseded],
            )
            conn.executemany(
                "INSERT INTO grants (lane, execution, granted_at) VALUES (?, ?, ?)",
                [(lane, *g) for g in self.grants],
            )
            answer = rule(db)
            return answer, self._read_back(db)
        finally:
            conn.close()

    def _read_back(self, db: Txn) -> LaneState:
        key = (self.lane,)
        return LaneState(
            lane=self.lane,
            holders=tuple(
                Held(r[0], r[1], float(r[2]), float(r[3]), bool(r[4]))
                for r in db.execute(
                    "SELECT execution, holder, acquired_at, expires_at, cancel_requested "
                    "FROM holders WHERE lane = ? ORDER BY acquired_at, execution",
                    key,
                )
            ),
            waiting=tuple(
                Waiter(r[0], r[1], float(r[2]), float(r[3]))
                for r in db.execute(
                    "SELECT execution, holder, queued_at, expires_at FROM waiting "
                    "WHERE lane = ? ORDER BY seq",
                    key,
                )
            ),
            superseded=tuple(
                Superseded(r[0], r[1], float(r[2]))
                for r in db.execute(
                    "SELECT execution, by_execution, at FROM superseded "
                    "WHERE lane = ? ORDER BY execution",
                    key,
                )
            ),
            grants=tuple(
                Grant(r[0], float(r[1]))
                for r in db.execute(
                    "SELECT execution, granted_at FROM grants "
                    "WHERE lane = ? ORDER BY granted_at, execution",
                    key,
                )
            ),
        )

    # -- the document -------------------------------------------------------------------

    def to_json(self) -> bytes:
        doc = {
            "kind": KIND,
            "version": VERSION,
            "lane": self.lane,
            "holders": [
                {
                    "execution": h.execution,
                    "holder": h.holder,
                    "acquiredAt": h.acquired_at,
                    "expiresAt": h.expires_at,
                    "cancelRequested": h.cancel_requested,
                }
                for h in self.holders
            ],
            "waiting": [
                {
                    "execution": w.execution,
                    "holder": w.holder,
                    "queuedAt": w.queued_at,
                    "expiresAt": w.expires_at,
                }
                for w in self.waiting
            ],
            "superseded": [
                {"execution": s.execution, "by": s.by_execution, "at": s.at}
                for s in self.superseded
            ],
            "grants": [{"execution": g.execution, "at": g.granted_at} for g in self.grants],
        }
        return (json.dumps(doc, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, lane: str, source: str) -> LaneState:
        """The state of `lane` from its document; `source` names where it came from (for
        errors)."""
        try:
            return _parse(data, lane)
        except _Refused as exc:
            raise LaneStateError.unreadable(source, str(exc)) from None
        except _Newer as exc:
            raise LaneStateError(f"{source}: {exc}; use that Foundry (or a newer one)") from None


class _Refused(Exception):
    """The document is not a lane state."""


class _Newer(Exception):
    """The document is a lane state of a newer version."""


_TOP = {"kind", "version", "lane", "holders", "waiting", "superseded", "grants"}


def _parse(data: bytes, lane: str) -> LaneState:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise _Refused(f"not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise _Refused(f"no kind {KIND!r}")
    version = doc.get("version")
    if type(version) is int and version > VERSION:
        raise _Newer(f"written by a newer Foundry (lane state version {version}, not {VERSION})")
    if type(version) is not int or version != VERSION:
        raise _Refused(f"unknown lane state version {version!r}")
    if doc.get("lane") != lane:
        raise _Refused(f"it is the state of lane {doc.get('lane')!r}, not of {lane!r}")
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise _Refused(f"unknown field(s) {', '.join(unknown)}")
    holders = [
        Held(*row)
        for row in _rows(
            doc,
            "holders",
            {
                "execution": _text,
                "holder": _text,
                "acquiredAt": _time,
                "expiresAt": _time,
                "cancelRequested": _flag,
            },
        )
    ]
    waiting = [
        Waiter(*row)
        for row in _rows(
            doc,
            "waiting",
            {"execution": _text, "holder": _text, "queuedAt": _time, "expiresAt": _time},
        )
    ]
    superseded = [
        Superseded(*row)
        for row in _rows(doc, "superseded", {"execution": _text, "by": _text, "at": _time})
    ]
    grants = [Grant(*row) for row in _rows(doc, "grants", {"execution": _text, "at": _time})]
    for name, executions in (
        ("holders", [h.execution for h in holders]),
        ("waiting", [w.execution for w in waiting]),
        ("superseded", [s.execution for s in superseded]),
        ("holders and waiting", [h.execution for h in holders] + [w.execution for w in waiting]),
    ):
        twice = sorted({e for e in executions if executions.count(e) > 1})
        if twice:
            raise _Refused(f"{', '.join(twice)} listed twice in {name}")
    state = LaneState(lane, tuple(holders), tuple(waiting), tuple(superseded), tuple(grants))
    # Once through the database: the rows come back in canonical order.
    return state._run(lambda db: None)[1]


def _rows(
    doc: Mapping[str, Any], name: str, fields: Mapping[str, Callable[[object], object]]
) -> list[tuple[Any, ...]]:
    items = doc.get(name)
    if not isinstance(items, list):
        raise _Refused(f"{name}: a list expected")
    rows = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != set(fields):
            raise _Refused(f"{name}[{i}]: an object with exactly {', '.join(fields)} expected")
        try:
            rows.append(tuple(check(item[key]) for key, check in fields.items()))
        except _Refused as exc:
            raise _Refused(f"{name}[{i}]: {exc}") from None
    return rows


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _Refused(f"a non-empty string expected, got {value!r}")
    return value


def _time(value: object) -> float:
    seconds = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an integer beyond any float stays NaN
            seconds = float(value)
    if not math.isfinite(seconds):
        raise _Refused(f"a time in seconds expected, got {value!r}")
    return seconds


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Refused(f"true or false expected, got {value!r}")
    return value
