"""The lanes a running execution takes its slots in, fenced by its claim (`_FencedLanes`)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from controllers.claims import Claim, Claims, NotAClaim
from controllers.gitops import GitError
from controllers.lanes import RemoteLanes

if TYPE_CHECKING:
    from foundry.throttle import Decision, LaneSpec, LaneStatus


class _FencedLanes:
    """A lane store that only the claim's current holder may change: the slot belongs to the
    execution, and after a takeover its new holder uses it. Once this holder lost the claim —
    or cannot show it still has it — it renews nothing and releases nothing (an unreleased slot
    runs out with its lease)."""

    def __init__(self, lanes: RemoteLanes, claims: Claims, claim: Claim, lost: threading.Event):
        self._lanes, self._claims, self._claim, self._lost = lanes, claims, claim, lost

    @property
    def lease_seconds(self) -> float:
        return self._lanes.lease_seconds

    def acquire(self, lane: LaneSpec, execution: str, /, *, holder: str) -> Decision:
        return self._lanes.acquire(lane, execution, holder=holder)

    def renew(self, lane_name: str, execution: str, /) -> bool:
        if self._lost.is_set():
            return False
        return self._lanes.renew(lane_name, execution)

    def release(self, lane_name: str, execution: str, /) -> None:
        if self._lost.is_set() or not self._still_ours():
            return
        self._lanes.release(lane_name, execution)

    def status(self, lane_name: str, /) -> LaneStatus:
        return self._lanes.status(lane_name)

    def close(self) -> None:
        self._lanes.close()

    def _still_ours(self) -> bool:
        try:
            held = self._claims.read(self._claim.execution)
        except (GitError, NotAClaim):
            return False
        ours = (self._claims.holder, self._claim.generation)
        return held is not None and (held.holder, held.generation) == ours
