"""Errors raised by the Alloy core.

One root, split by meaning::

    AlloyError                      every error Alloy raises on purpose
    ├── UserError                   the user's input is wrong; exit 1, no traceback
    │   ├── InvalidDocuments        documents failed to load; carries every diagnostic
    │   ├── NotFound                a named intent, artifact or repository does not exist
    │   └── StaleArtifacts          `alloy compile --check` found artifacts out of date
    └── InternalError               a bug in Alloy; exit 3 with a crash log
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alloy.diagnostics import Diagnostic


class AlloyError(Exception):
    """Root of every error Alloy raises on purpose."""


class UserError(AlloyError):
    """The user's input is wrong; the message says where and how to fix it."""


class InvalidDocuments(UserError):
    """One or more documents under `.alloy/` are invalid."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        errors = sum(1 for d in self.diagnostics if d.severity == "error")
        super().__init__(f"{errors} error(s) in .alloy/")


class NotFound(UserError):
    """A named thing does not exist."""


class StaleArtifacts(UserError):
    """Artifacts do not match what the compiler would write."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{len(self.problems)} artifact(s) out of date")


class InternalError(AlloyError):
    """A bug in Alloy."""
