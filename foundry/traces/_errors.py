"""The one error of `foundry.traces`: records that cannot be made into a trace."""

from __future__ import annotations

from foundry.errors import FoundryError


class TraceError(FoundryError):
    """Ledger records (or a trace) that cannot be read: a missing planned record, a missing
    field, a bad timestamp, or an artifact that is not the one the ledger ran."""
