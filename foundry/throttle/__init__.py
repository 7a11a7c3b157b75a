"""Throttle lanes (DESIGN section 5): how many executions of a lane run at once, who waits, and
how often a slot may be granted.

The rules are written once (`_rules`: SQL over one lane's rows in a transaction) and kept by two
stores that fill one port, `LanePort`:

* `Lanes`: one SQLite file shared by every engine process of a machine (see `foundry._sqlite`:
  WAL, busy timeout, and every read-modify-write in `BEGIN IMMEDIATE`), so two engine processes
  pointed at the same file never both take the last slot;
* `LaneState`: one lane as plain data with a versioned JSON document; each decision runs the
  same rules over it in an in-memory database. `controllers.lanes.RemoteLanes` keeps it on the
  git remote, so a lane holds across every host that reconciles a repository.

Time comes from an injected `Clock`, read once per decision.

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

    state = LaneState(lane_name)                   # or LaneState.from_json(data, lane=, source=)
    decision, state = state.acquire(spec, execution, holder=..., now=..., lease=...,
                                    queue_lease=...)  # and renew, release, status, to_json

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

Limitation: SQLite's WAL mode needs shared memory, so the processes sharing `Lanes` must share
one machine (not a network file system); hosts that share only a git remote use
`controllers.lanes.RemoteLanes`. Superseded marks are kept for 30 days.
"""

from foundry.throttle._local import Lanes
from foundry.throttle._port import LanePort
from foundry.throttle._state import LaneState, LaneStateError
from foundry.throttle._types import (
    Decision,
    LaneSpec,
    LaneStatus,
    Outcome,
    Queued,
    QueuePolicy,
    Slot,
)

__all__ = [
    "Decision",
    "LanePort",
    "LaneSpec",
    "LaneState",
    "LaneStateError",
    "LaneStatus",
    "Lanes",
    "Outcome",
    "QueuePolicy",
    "Queued",
    "Slot",
]
