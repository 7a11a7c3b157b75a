"""A trace as OpenTelemetry OTLP/JSON (an `ExportTraceServiceRequest`): one span for the
execution, one per block (its child), one per attempt (the block's child).

Ids are hex (OTLP/JSON's rule, unlike protobuf's base64 for bytes) and derived from the
execution id, so exporting the same execution twice gives the same spans, and a trace exported
while the execution waits is continued, not duplicated, by the export after it finishes.
Unfinished spans end at the latest time the trace knows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from foundry._version import __version__
from foundry.boundary import Artifact
from foundry.traces._redact import redact
from foundry.traces._time import unix_nanos

SPAN_KIND_INTERNAL = 1
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
SCOPE = "foundry.traces"


def span_id(execution: str, *path: str) -> str:
    """16 hex digits for the span at `path` (empty: the execution) of `execution`."""
    return _hex(execution, "span", *path, width=16)


def trace_id(execution: str) -> str:
    """32 hex digits for the whole execution."""
    return _hex(execution, "trace", width=32)


def _hex(*parts: str, width: int) -> str:
    digest = hashlib.sha256("\0".join(("foundry", *parts)).encode()).hexdigest()[:width]
    return digest if int(digest, 16) else digest[:-1] + "1"  # all zeros is an invalid id


def _attribute(key: str, value: str | int | bool) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _attributes(pairs: dict[str, str | int | bool | None]) -> list[dict[str, Any]]:
    return [_attribute(k, v) for k, v in pairs.items() if v is not None]


def _status(failed: bool, ok: bool, message: str = "") -> dict[str, Any]:
    if failed:
        return {"code": STATUS_ERROR, "message": message}
    return {"code": STATUS_OK if ok else STATUS_UNSET}


def _span(
    ids: tuple[str, str, str | None],
    name: str,
    window: tuple[int, int],
    *,
    attributes: list[dict[str, Any]],
    status: dict[str, Any],
    events: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    trace, span, parent = ids
    start, end = window
    out: dict[str, Any] = {"traceId": trace, "spanId": span}
    if parent is not None:
        out["parentSpanId"] = parent
    out.update(
        name=name,
        kind=SPAN_KIND_INTERNAL,
        startTimeUnixNano=str(start),
        endTimeUnixNano=str(max(start, end)),
        attributes=attributes,
    )
    if events:
        out["events"] = events
    out["status"] = status
    return out


def _attempt_window(attempt: dict[str, Any]) -> tuple[int, int | None]:
    start = unix_nanos(attempt["startedAt"])
    if attempt.get("durationMs") is not None:
        return start, start + attempt["durationMs"] * 1_000_000
    if attempt.get("finishedAt"):
        return start, unix_nanos(attempt["finishedAt"])
    return start, None


def _horizon(spec: dict[str, Any]) -> int:
    """The latest time the trace knows of."""
    known = [unix_nanos(spec[k]) for k in ("startedAt", "finishedAt") if spec.get(k)]
    known += [unix_nanos(g["at"]) for g in spec.get("gates", [])]
    for block in spec.get("blocks", []):
        for attempt in block.get("attempts", []):
            start, end = _attempt_window(attempt)
            known += [start] if end is None else [start, end]
            if attempt.get("finishedAt"):
                known.append(unix_nanos(attempt["finishedAt"]))
    return max(known, default=0)


def _attempt_span(
    ids: tuple[str, str], block_id: str, attempt: dict[str, Any], effects: str | None, now: int
) -> dict[str, Any]:
    tid, parent = ids
    start, end = _attempt_window(attempt)
    outcome, code = attempt.get("outcome"), attempt.get("exitCode")
    if outcome == "timeout":
        message = f"timed out after {attempt.get('durationMs')} ms"
    else:
        message = f"exit code {code}" if code is not None else str(outcome)
    execution = _execution_of[tid]
    return _span(
        (tid, span_id(execution, "attempt", block_id, str(attempt["number"])), parent),
        f"attempt {block_id}#{attempt['number']}",
        (start, now if end is None else end),
        attributes=_attributes(
            {
                "foundry.block.id": block_id,
                "foundry.attempt": attempt["number"],
                "foundry.attempt.outcome": outcome,
                "process.exit.code": code,
                "foundry.block.effects": effects,
                "foundry.log.digest": attempt.get("logDigest"),
            }
        ),
        status=_status(outcome in ("failed", "timeout"), outcome == "succeeded", message),
    )
