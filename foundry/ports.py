"""Ports: what the Foundry core needs from the outside world, as Protocols. `controllers` (and
tests) fill them; the fakes that ship here are real implementations for local use."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch, and an interruptible wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`; return False if interrupted by a stop request."""
        ...


class SystemClock:
    """The real clock; `stop()` interrupts every `sleep`."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> bool:
        return not self._stop.wait(max(0.0, seconds))

    def stop(self) -> None:
        self._stop.set()


class FakeClock:
    """A clock that moves only when told to (`advance`), or when something sleeps on it."""

    def __init__(self, start: float = 1_764_000_000.0) -> None:
        self._now = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        self._now += max(0.0, seconds)
        return True

    def advance(self, seconds: float) -> None:
        self._now += seconds
