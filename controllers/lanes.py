"""Throttle lanes kept on the git remote (DESIGN sections 5, 8, 9): a lane's `limit`, queue
policy and rate hold across every host that reconciles a repository, without a shared database.

Lane L is the ref `refs/alloy/lanes/L`. It points at a commit without parents whose only file,
`lane.json`, is the lane's state (`foundry.throttle.LaneState`, version 1): holders with their
lease ends and cancel flags, the waiting queue in order, superseded marks, recent grants.

Every change reads the ref (`git ls-remote`, and a fetch only when it moved since this process
last saw it), decides with the same rules as the SQLite lanes (`LaneState` runs them over an
in-memory database), commits the new state and pushes it with
`--force-with-lease=<ref>:<the commit read>` (creation: the ref must not exist). git checks that
under the ref's lock on the remote, so of several hosts deciding from one state exactly one
writes; the others read again and decide again, a few times with a little jitter, then give up
with `GitError`. A decision that changes nothing (a holder asking again) is not pushed.

`renew` runs about every second while a slot is held, so it pushes only when less than two
thirds of the lease is left. Otherwise one `ls-remote` says whether the ref moved since this
process last read or wrote it; only then is it fetched again, to see a cancellation or a lost
lease. Likewise a waiter asking again moves the end of its place in the queue on the remote only
when less than two thirds of that lease is left. When the remote cannot be reached, `renew`
answers from the lease it last saw: True until that lease ends, then False — a blip does not
stop running blocks, an outage stops them by the time another host could take the slot.

Times are each host's wall clock, compared with lease ends other hosts wrote: hosts must keep
their clocks in step (NTP); a skew of S seconds moves every lease end by S.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import git

from controllers.gitops import GitError, Mirror
from foundry.ports import Clock
from foundry.throttle import Decision, LaneSpec, LaneState, LaneStateError, LaneStatus

if TYPE_CHECKING:
    from foundry.throttle import LanePort

PREFIX = "refs/alloy/lanes/"
FILE = "lane.json"
#: Push a renewal once less than this share of the lease is left.
RENEW_BELOW = 2 / 3
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_T = TypeVar("_T")


def lane_ref(lane_name: str) -> str:
    """The ref that holds `lane_name` (ValueError for a name that cannot be part of a ref)."""
    if not _NAME.match(lane_name):
        raise ValueError(
            f"lane {lane_name!r}: a lane kept on a git remote needs a name of letters, digits, "
            "'-' and '_' (at most 100)"
        )
    return PREFIX + lane_name


class RemoteLanes:
    """Throttle lanes whose state lives on a git remote, reached through `mirror`."""

    def __init__(
        self,
        mirror: Mirror,
        clock: Clock,
        *,
        lease_seconds: float = 300.0,
        queue_seconds: float | None = None,
        attempts: int = 10,
    ) -> None:
        if lease_seconds <= 0 or (queue_seconds is not None and queue_seconds <= 0):
            raise ValueError("lease_seconds and queue_seconds must be positive")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._mirror = mirror
        self._clock = clock
        self._lease = lease_seconds
        self._queue_lease = lease_seconds if queue_seconds is None else queue_seconds
        self._attempts = attempts
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography
        self._lock = threading.RLock()
        #: What this process last read or wrote per ref: the commit and the state in it.
        self._seen: dict[str, tuple[str, LaneState]] = {}

    @property
    def lease_seconds(self) -> float:
        """How long a slot is held without `renew`."""
        return self._lease

    def close(self) -> None:
        """Forget what was seen; the mirror is the caller's to close."""
        with self._lock:
            self._seen.clear()

    def __enter__(self) -> RemoteLanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the port -----------------------------------------------------------------------

    def acquire(self, spec: LaneSpec, execution: str, *, holder: str) -> Decision:
        """Take a slot of `spec`'s lane for `execution`, or say why not (queued, rejected, ...);
        GitError when the remote cannot be reached or kept moving under us."""

        def decide(state: LaneState, now: float) -> tuple[Decision, LaneState]:
            decision, new = state.acquire(
                spec,
                execution,
                holder=holder,
                now=now,
                lease=self._lease,
                queue_lease=self._queue_lease,
            )
            return decision, self._unless_fresh(state, new, execution, now)

        return self._change(spec.name, decide, f"{execution} asks ({holder})")

    def renew(self, lane_name: str, execution: str) -> bool:
        """Keep the slot; False when it is lost or its cancellation was requested."""

        def decide(state: LaneState, now: float) -> tuple[bool, LaneState]:
            held, renewed = state.renew(execution, now=now, lease=self._lease)
            end = state.lease_end(execution)
            if held and end is not None and end - now >= RENEW_BELOW * self._lease:
                return True, state  # fresh enough: nothing to push
            return held, renewed

        try:
            return self._change(lane_name, decide, f"{execution} renews")
        except GitError:
            with self._lock:
                seen = self._seen.get(lane_ref(lane_name))
            if seen is None:
                return False
            held, _ = seen[1].renew(execution, now=self._clock.now(), lease=self._lease)
            return held

    def release(self, lane_name: str, execution: str) -> None:
        """Free the slot or leave the queue; nothing is pushed when neither is held."""

        def decide(state: LaneState, now: float) -> tuple[None, LaneState]:
            return None, state.release(execution)

        self._change(lane_name, decide, f"{execution} leaves")

    def status(self, lane_name: str) -> LaneStatus:
        """Live holders and live places in the queue, as the remote has them now."""
        with self._lock:
            ref = lane_ref(lane_name)
            _, state = self._read(lane_name, ref)
            return state.status(now=self._clock.now())

    def _unless_fresh(
        self, state: LaneState, new: LaneState, execution: str, now: float
    ) -> LaneState:
        """`state` itself when all `new` changed is the end of `execution`'s place in the queue,
        and the place still had two thirds of its lease left (a waiter asking again need not
        write each time, as a holder renewing need not)."""
        place = next((w for w in state.waiting if w.execution == execution), None)
        if place is None or place.expires_at - now < RENEW_BELOW * self._queue_lease:
            return new
        kept = tuple(
            place if w.execution == execution and w.holder == place.holder else w
            for w in new.waiting
        )
        return state if replace(new, waiting=kept) == state else new

    # -- reading and writing the ref ----------------------------------------------------

    def _change(
        self,
        lane_name: str,
        decide: Callable[[LaneState, float], tuple[_T, LaneState]],
        what: str,
    ) -> _T:
        """Read, decide, compare-and-swap; again while someone else moved the ref first."""
        ref = lane_ref(lane_name)
        tried = 0
        with self._lock:
            for attempt in range(self._attempts):
                if attempt and not self._clock.sleep(
                    self._rng.uniform(0.0, min(1.0, 0.02 * 2**attempt))
                ):
                    break  # stopping
                tried += 1
                sha, state = self._read(lane_name, ref)
                answer, new = decide(state, self._clock.now())
                if new == state:
                    return answer
                with _in_mirror(ref, "write"):
                    commit = self._mirror.commit(
                        None, {FILE: new.to_json()}, f"lane {lane_name}: {what}"
                    )
                if self._mirror.push([(commit, ref, sha)]).ok:
                    self._seen[ref] = (commit, new)
                    return answer
            raise GitError(
                f"{ref}: other hosts moved it each time we tried to write it "
                f"({tried} attempts); try again"
            )

    def _read(self, lane_name: str, ref: str) -> tuple[str | None, LaneState]:
        """The commit the remote's ref points at (None: no such ref) and the state in it."""
        sha = self._mirror.heads([ref]).get(ref)
        if sha is None:
            return None, LaneState(lane_name)
        seen = self._seen.get(ref)
        if seen is not None and seen[0] == sha:
            return seen
        self._mirror.fetch([ref])
        # It may have moved again since `ls-remote`: read what was fetched, which is newer.
        commit = self._mirror.rev(ref)
        where = f"{ref} on {self._mirror.url}"
        if commit is None:
            raise LaneStateError.unreadable(where, "not a commit")
        with _in_mirror(ref, "read"):
            blob = self._mirror.tree(commit, FILE).get(FILE)
            data = self._mirror.blob(blob) if blob is not None else b""
        if blob is None:
            raise LaneStateError.unreadable(f"{where} (commit {commit[:12]})", f"no {FILE}")
        state = LaneState.from_json(data, lane=lane_name, source=f"{where} (commit {commit[:12]})")
        self._seen[ref] = (commit, state)
        return commit, state


@contextmanager
def _in_mirror(ref: str, what: str) -> Iterator[None]:
    """git failing on the local mirror (a broken object store, a full disk) as a GitError."""
    try:
        yield
    except git.GitCommandError as exc:
        detail = str(exc.stderr or "").strip() or f"exit {exc.status}"
        raise GitError(f"{ref}: cannot {what} it in the local mirror: {detail}") from None


if TYPE_CHECKING:

    def _is_a_lane_port(lanes: RemoteLanes) -> LanePort:
        return lanes
