"""The port: what the executor needs of throttle lanes. `Lanes` (SQLite, one machine) fills it
here; `controllers.lanes.RemoteLanes` fills it with state kept on a git remote."""

from __future__ import annotations

from typing import Protocol

from foundry.throttle._types import Decision, LaneSpec, LaneStatus


class LanePort(Protocol):
    """Throttle lanes as the executor uses them (the rules: `foundry.throttle`). Arguments are
    positional, as the executor passes them."""

    @property
    def lease_seconds(self) -> float:
        """How long a slot is held without `renew` (the executor renews well within it)."""
        ...

    def acquire(self, spec: LaneSpec, execution: str, /, *, holder: str) -> Decision:
        """Take a slot of `spec`'s lane for `execution`, or say why not; idempotent."""
        ...

    def renew(self, lane_name: str, execution: str, /) -> bool:
        """Keep the slot; False when it is lost or its cancellation was requested (stop)."""
        ...

    def release(self, lane_name: str, execution: str, /) -> None:
        """Free the slot or leave the queue; nothing happens when neither is held."""
        ...

    def status(self, lane_name: str, /) -> LaneStatus:
        """Live holders and live places in the queue, now."""
        ...

    def close(self) -> None: ...
