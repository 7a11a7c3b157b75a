"""Errors raised by the Foundry core.

One root, split by meaning (permanent vs temporary, as an execution needs to know)::

    FoundryError                    every error Foundry raises on purpose
    ├── BoundaryError               an artifact or request was refused (fails closed)
    ├── TraceError                  a ledger cannot be read as a trace (foundry.traces)
    ├── UserError                   the user's input is wrong; exit 1, no traceback
    ├── PermanentError              retrying cannot help (a block's exit code not listed)
    │   └── LaneStateError          a lane's recorded state is unreadable (foundry.throttle)
    └── TemporaryError              retrying later may help; carries the delay
"""

from __future__ import annotations


class FoundryError(Exception):
    """Root of every error Foundry raises on purpose."""


class BoundaryError(FoundryError):
    """An artifact or request was refused: unknown version, kind, field or gate, or a digest
    that does not match the content."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class UserError(FoundryError):
    """The user's input is wrong."""


class PermanentError(FoundryError):
    """Retrying cannot help."""


class TemporaryError(FoundryError):
    """Retrying after `delay` seconds may help."""

    def __init__(self, message: str, delay: float) -> None:
        self.delay = delay
        super().__init__(message)
