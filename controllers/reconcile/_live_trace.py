"""A Trace document as bytes: the file on the traces branch and in a claim (`trace_bytes`),
and the live trace of a ledger as it is now, which every claim commit carries (`live_trace`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foundry.boundary import Artifact


def trace_bytes(trace: dict[str, Any]) -> bytes:
    """A Trace document as a file: on the traces branch and in a claim (`trace.json`)."""
    return (json.dumps(trace, indent=2, sort_keys=True) + "\n").encode()


def live_trace(ledger: bytes | None, artifact: Artifact, secrets: list[str]) -> bytes | None:
    """The Trace of a ledger as it is now, for the claim (the same document the traces
    branch gets from it: `trace_bundle` builds it with `trace_document`), masked of `secrets`
    (the ledger was masked where it was written; masked again here). None when there is none
    yet (no `planned` record) or it cannot be built: a view of the ledger never keeps the
    ledger itself from being published."""
    if not ledger:
        return None
    from foundry.traces import trace_document

    whole = ledger[: ledger.rfind(b"\n") + 1]  # a line being written is not read
    try:
        records = [json.loads(line) for line in whole.splitlines() if line.strip()]
        return trace_bytes(trace_document(records, artifact, secrets=secrets))
    except Exception:  # noqa: BLE001 - a ledger a trace cannot be built from yet
        return None
