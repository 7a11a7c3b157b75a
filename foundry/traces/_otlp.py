"""A trace as OpenTelemetry OTLP/JSON (an `ExportTraceServiceRequest`): one span for the
execution, one per block (its child), one per attempt (the block's child).

Ids are hex (OTLP/JSON's rule, unlike protobuf's base64 for bytes) and derived from the
execution id, so exporting the same execution twice gives the same spans, and a trace exported
while the execution waits is continued, not duplicated, by the export after it finishes.
Unfinished spans end at the latest time the trace knows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from foundry._version import __version__
from foundry.boundary import Artifact
from foundry.redaction import redact
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


@dataclass(frozen=True)
class _Context:
    execution: str
    trace_id: str
    effects: Mapping[str, str]
    horizon: int  # the latest time the trace knows: where unfinished spans end

    def span(
        self,
        path: tuple[str, ...],
        parent: str | None,
        name: str,
        window: tuple[int, int],
        *,
        attributes: dict[str, str | int | bool | None],
        status: dict[str, Any],
        events: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        start, end = window
        out: dict[str, Any] = {"traceId": self.trace_id, "spanId": span_id(self.execution, *path)}
        if parent is not None:
            out["parentSpanId"] = parent
        out.update(
            name=name,
            kind=SPAN_KIND_INTERNAL,
            startTimeUnixNano=str(start),
            endTimeUnixNano=str(max(start, end)),
            attributes=_attributes(attributes),
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
    known = [unix_nanos(spec[k]) for k in ("startedAt", "finishedAt") if spec.get(k)]
    known += [unix_nanos(g["at"]) for g in spec.get("gates", [])]
    for block in spec.get("blocks", []):
        for attempt in block.get("attempts", []):
            start, end = _attempt_window(attempt)
            known += [start] if end is None else [start, end]
            if attempt.get("finishedAt"):
                known.append(unix_nanos(attempt["finishedAt"]))
    return max(known, default=0)


def _attempt_span(ctx: _Context, block_id: str, attempt: dict[str, Any]) -> dict[str, Any]:
    start, end = _attempt_window(attempt)
    outcome, code = attempt.get("outcome"), attempt.get("exitCode")
    if outcome == "timeout":
        message = f"timed out after {attempt.get('durationMs')} ms"
    else:
        message = f"exit code {code}" if code is not None else str(outcome)
    return ctx.span(
        ("attempt", block_id, str(attempt["number"])),
        span_id(ctx.execution, "block", block_id),
        f"attempt {block_id}#{attempt['number']}",
        (start, ctx.horizon if end is None else end),
        attributes={
            "foundry.block.id": block_id,
            "foundry.attempt": attempt["number"],
            "foundry.attempt.outcome": outcome,
            "process.exit.code": code,
            "foundry.block.effects": ctx.effects.get(block_id),
            "foundry.log.digest": attempt.get("logDigest"),
        },
        status=_status(outcome in ("failed", "timeout"), outcome == "succeeded", message),
    )


def _gate_event(gate: dict[str, Any]) -> dict[str, Any]:
    return {
        "timeUnixNano": str(unix_nanos(gate["at"])),
        "name": f"gate {gate['decision']}",
        "attributes": _attributes(
            {
                "foundry.gate.index": gate["index"],
                "foundry.gate.kind": gate["kind"],
                "foundry.gate.decision": gate["decision"],
                "foundry.gate.reason": gate.get("reason"),
            }
        ),
    }


def _block_spans(
    ctx: _Context, block: dict[str, Any], gates: list[dict[str, Any]], idle: int
) -> list[dict[str, Any]]:
    """The block's span, then its attempts' spans. A block with no attempt and no gate (skipped,
    pending) is a zero-length span at `idle`."""
    block_id = block["id"]
    children = [_attempt_span(ctx, block_id, a) for a in block.get("attempts", [])]
    mine = [g for g in gates if g["block"] == block_id]
    times = [int(c[k]) for c in children for k in ("startTimeUnixNano", "endTimeUnixNano")]
    times += [unix_nanos(g["at"]) for g in mine]
    status = block["status"]
    span = ctx.span(
        ("block", block_id),
        span_id(ctx.execution),
        f"block {block_id}",
        (min(times), max(times)) if times else (idle, idle),
        attributes={
            "foundry.block.id": block_id,
            "foundry.block.status": status,
            "foundry.block.attempts": len(children),
            "foundry.block.effects": ctx.effects.get(block_id),
        },
        status=_status(status == "failed", status == "succeeded", f"block {block_id} failed"),
        events=[_gate_event(g) for g in mine],
    )
    return [span, *children]


def otlp_json(
    trace: dict[str, Any], *, artifact: Artifact | None = None, secrets: Sequence[str] = ()
) -> dict[str, Any]:
    """`trace` as an OTLP/JSON `ExportTraceServiceRequest`.

    With `artifact`, block and attempt spans carry the block's declared effects. Every string
    is redacted of `secrets`.
    """
    spec = trace["spec"]
    execution = trace["metadata"]["name"]
    effects = {b.id: b.effects for b in artifact.spec.blocks} if artifact is not None else {}
    ctx = _Context(execution, trace_id(execution), effects, _horizon(spec))
    end = unix_nanos(spec["finishedAt"]) if spec.get("finishedAt") else ctx.horizon
    spans = [
        span
        for block in spec.get("blocks", [])
        for span in _block_spans(ctx, block, spec.get("gates", []), end)
    ]
    starts = [int(s["startTimeUnixNano"]) for s in spans]
    ends = [int(s["endTimeUnixNano"]) for s in spans]
    if spec.get("startedAt"):
        starts.append(unix_nanos(spec["startedAt"]))
    status = spec["status"]
    root = ctx.span(
        (),
        None,
        f"execution {spec['intent']}",
        (min(starts, default=end), max([end, *ends])),
        attributes={
            "foundry.execution.id": execution,
            "foundry.execution.status": status,
            "foundry.execution.reason": spec.get("reason"),
            "alloy.intent": spec["intent"],
            "alloy.artifact.name": spec["artifact"]["name"],
            "alloy.artifact.digest": spec["artifact"]["digest"],
            "foundry.event.type": spec["event"]["type"],
            "foundry.event.key": spec["event"]["key"],
        },
        status=_status(status == "failed", status == "succeeded", f"execution {status}"),
    )
    scope = {"name": SCOPE, "version": __version__}
    resource = _attributes({"service.name": "foundry", "service.version": __version__})
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": resource},
                "scopeSpans": [{"scope": scope, "spans": [root, *spans]}],
            }
        ]
    }
    return redact(request, secrets)
