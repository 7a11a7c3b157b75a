"""The values lanes speak in: a lane as an artifact declares it, the answer to `acquire`, and a
lane's state at one moment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

QueuePolicy = Literal["fifo", "latest", "reject"]
Outcome = Literal["granted", "queued", "rejected", "superseded", "rate-limited"]


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
