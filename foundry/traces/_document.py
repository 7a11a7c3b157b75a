"""The boundary kind Trace, derived from an execution's ledger records and its artifact.

The ledger is the truth (it is what recovery reads); the trace is a view of it at one moment.
An unfinished ledger gives an unfinished trace: `planned` before anything happened,
`queued` while its lane has not let it in (the latest `lane` record queued it and nothing
later shows it got further), `indeterminate` while an interrupted attempt with effects awaits a
decision, `waiting` when the engine parked on a gate, `running` otherwise. The trace of an
unfinished execution always says its current reason in `spec.reason`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from foundry.boundary import GATE_KINDS, Artifact
from foundry.redaction import redact
from foundry.traces._errors import TraceError
from foundry.traces._time import is_stamp

API_VERSION = "alloy.dev/v1"
BLOCK_FINISHED = ("succeeded", "failed", "skipped", "cancelled")
EXECUTION_FINISHED = ("succeeded", "failed", "cancelled", "skipped")
#: Every execution status a Trace may have (the boundary's enum).
EXECUTION_STATUSES = (
    "planned",
    "queued",
    "running",
    "waiting",
    "indeterminate",
    *EXECUTION_FINISHED,
)
#: Lane decisions after which the execution waits for a slot (and runs again later).
LANE_QUEUED = ("queued", "rate-limited")
OUTCOMES = ("succeeded", "failed", "timeout", "cancelled", "interrupted")
DECISIONS = ("waiting", "passed", "failed")
EVENT_TYPES = ("apply", "push", "schedule", "request")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_EXECUTION = re.compile(r"^exe-[0-9a-f]{16}$")


@dataclass
class _BlockState:
    attempts: dict[int, dict[str, Any]] = field(default_factory=dict)
    open: set[int] = field(default_factory=set)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    finished: str | None = None
    indeterminate: bool = False
    #: Why the block is indeterminate (the `indeterminate` record's reason).
    indeterminate_reason: str = ""
    last_gate: str | None = None
    #: The block's latest gate record as the trace shows it (the gate it waits on, if any).
    gate: dict[str, Any] | None = None


@dataclass
class _State:
    planned: dict[str, Any] | None = None
    blocks: dict[str, _BlockState] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    finished: dict[str, Any] | None = None
    activity: bool = False
    #: The latest `lane` record when it left the execution queued and nothing later shows it
    #: got further (a grant, a gate, an attempt, ...); None otherwise.
    queued: dict[str, Any] | None = None
    #: Why the execution stopped where it is (a `held` record: an operator's pause), until a
    #: later record shows it went on.
    held: str | None = None

    def block(self, block_id: str) -> _BlockState:
        return self.blocks.setdefault(block_id, _BlockState())


def _where(record: dict[str, Any]) -> str:
    return f"ledger record {record.get('seq', '?')} ({record.get('type', '?')})"


def _get(
    record: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...] = str,
    *,
    where: str | None = None,
) -> Any:
    value = record.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TraceError(
            f"{where or _where(record)}: field {name!r} is missing or not a {_kind_name(kind)}"
        )
    return value


def _one_of(
    record: dict[str, Any], name: str, allowed: Sequence[str], *, where: str | None = None
) -> str:
    """A field whose values the boundary enumerates (a trace must validate against it)."""
    value: str = _get(record, name, where=where)
    if value not in allowed:
        raise TraceError(
            f"{where or _where(record)}: {name} {value!r} is not one of {', '.join(allowed)}"
        )
    return value


def _digest(
    record: dict[str, Any], name: str, *, where: str | None = None, required: bool = False
) -> str | None:
    value = record.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _DIGEST.match(value):
        raise TraceError(f"{where or _where(record)}: {name} {value!r} is not sha256:<64 hex>")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _at(record: dict[str, Any]) -> str:
    stamp = _get(record, "at")
    if not is_stamp(stamp):
        raise TraceError(
            f"ledger record {record.get('seq', '?')}: 'at' is {stamp!r}, "
            "not an RFC 3339 UTC time like 2026-11-25T02:00:00.123Z"
        )
    return str(stamp)


def _attempt(number: int, started_at: str) -> dict[str, Any]:
    return {
        "number": number,
        "startedAt": started_at,
        "finishedAt": None,
        "durationMs": None,
        "exitCode": None,
        "outcome": None,
        "logDigest": None,
        "logTail": None,
    }


def _optional_int(record: dict[str, Any], name: str) -> int | None:
    value = record.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _optional_str(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    return value if isinstance(value, str) else None


def _outputs(record: dict[str, Any]) -> list[dict[str, Any]]:
    found = record.get("outputs") or []
    if not isinstance(found, list):
        raise TraceError(f"{_where(record)}: 'outputs' is not a list")
    outputs = []
    for index, output in enumerate(found):
        where = f"{_where(record)}, outputs[{index}]"
        if not isinstance(output, dict):
            raise TraceError(f"{where}: not an object")
        outputs.append(
            {
                "path": _get(output, "path", where=where),
                "digest": _digest(output, "digest", where=where, required=True),
                "size": _get(output, "size", int, where=where),
            }
        )
    return outputs


def _replay(records: Sequence[dict[str, Any]]) -> _State:
    state = _State()
    for record in records:
        kind = record.get("type")
        if kind == "planned":
            if state.planned is None:
                state.planned = record
            continue
        if kind == "execution-finished":
            state.finished = record
            continue
        if kind == "held":
            state.held = str(record.get("reason") or "held")
            continue
        state.held = None  # anything later shows it went on
        if kind == "lane":  # asked its lane for a slot: queued until a later record says more
            queued = _get(record, "decision") in LANE_QUEUED
            state.queued = {**record, "lane": _get(record, "lane")} if queued else None
            continue
        if kind not in (
            "gate",
            "attempt-started",
            "attempt-finished",
            "block-finished",
            "indeterminate",
            "resolved",
        ):
            continue  # a record type this reader does not know adds nothing to the trace
        state.activity = True
        state.queued = None  # it got further than its lane's queue
        block = state.block(_get(record, "block"))
        if kind == "gate":
            decision = _one_of(record, "decision", DECISIONS)
            gate = {
                "block": record["block"],
                "index": _get(record, "index", int),
                "kind": _one_of(record, "kind", GATE_KINDS),
                "decision": decision,
                "reason": str(record.get("reason") or ""),
                "at": _at(record),
            }
            state.gates.append(gate)
            block.last_gate = decision
            block.gate = gate
        elif kind == "attempt-started":
            number = _get(record, "attempt", int)
            block.attempts[number] = _attempt(number, _at(record))
            block.open.add(number)
        elif kind == "attempt-finished":
            number = _get(record, "attempt", int)
            attempt = block.attempts.setdefault(number, _attempt(number, _at(record)))
            outcome = _one_of(record, "outcome", OUTCOMES)
            attempt.update(
                finishedAt=_at(record),
                durationMs=_optional_int(record, "durationMs"),
                exitCode=_optional_int(record, "exitCode"),
                outcome=outcome,
                logDigest=_digest(record, "logDigest"),
                logTail=_optional_str(record, "logTail"),
            )
            block.open.discard(number)
            if outcome == "succeeded":
                block.outputs = _outputs(record)
        elif kind == "block-finished":
            block.finished = _one_of(record, "status", BLOCK_FINISHED)
            block.indeterminate = False
        elif kind == "indeterminate":
            block.indeterminate = True
            block.indeterminate_reason = str(record.get("reason") or "")
            block.open.discard(_get(record, "attempt", int))
        else:  # resolved: a block-finished record follows with the outcome
            block.indeterminate = False
    return state


def _block_status(block: _BlockState, *, queued: bool = False) -> str:
    """A block's status; while the execution is `queued` in its lane, a block whose last gate
    said waiting is `pending` (that gate waited in an earlier pass; the lane holds it now)."""
    if block.finished is not None:
        return block.finished
    if block.indeterminate:
        return "indeterminate"
    if block.open:
        return "running"
    if block.last_gate == "waiting" and not queued:
        return "waiting"
    return "pending"


def _execution_status(state: _State, statuses: dict[str, str]) -> str:
    if state.finished is not None:
        return _one_of(state.finished, "status", EXECUTION_FINISHED)
    if state.queued is not None:
        return "queued"
    if not state.activity:
        return "planned"
    values = set(statuses.values())
    if "indeterminate" in values:
        return "indeterminate"
    if "running" in values:
        return "running"
    # A block that has had attempts and is not finished is between retries: the engine runs.
    retrying = any(statuses[b] == "pending" and s.attempts for b, s in state.blocks.items())
    if "waiting" in values and not retrying:
        return "waiting"
    return "running"


def _current_reason(state: _State, statuses: dict[str, str], status: str, execution: str) -> str:
    """Why an unfinished execution is where it is now, in one line (blocks in trace order)."""
    if state.held:
        return f"held: {state.held}"
    if status == "queued":
        lane = state.queued or {}
        what = f"queued in lane {lane.get('lane')}"
        if lane.get("decision") == "rate-limited":
            what += " (rate-limited)"
        said = str(lane.get("reason") or "")
        return f"{what}: {said}" if said else what
    if status == "planned":
        return "planned: no block has started yet"
    blocks = [(b, st, state.blocks.get(b, _BlockState())) for b, st in statuses.items()]
    if status == "indeterminate":
        return "; ".join(
            f"block {b} is indeterminate"
            + (f" ({s.indeterminate_reason})" if s.indeterminate_reason else "")
            + f"; waiting for an owner's Approval (alloy approve {execution} --gate {b} "
            "--resolve, or --reject to fail it)"
            for b, st, s in blocks
            if st == "indeterminate"
        )
    if status == "waiting":
        waits = [
            f"block {g['block']} gate {g['index']} ({g['kind']}): {g['reason']}"
            for _, st, s in blocks
            if st == "waiting" and (g := s.gate) is not None
        ]
        return "waiting on " + "; ".join(waits)
    running = [
        f"{b} (attempt {', '.join(str(n) for n in sorted(s.open))})"
        for b, st, s in blocks
        if st == "running"
    ]
    if running:
        return f"running: {', '.join(running)}"
    between = [
        f"{b} (attempt {n} ended {s.attempts[n]['outcome'] or 'unfinished'})"
        for b, st, s in blocks
        if st == "pending" and s.attempts and (n := max(s.attempts))
    ]
    if between:
        return f"running: between attempts of {', '.join(between)}; it runs again"
    pending = [b for b, st, _ in blocks if st == "pending"]
    if pending:
        return f"running: no block runs at this moment; next: {', '.join(pending)}"
    return "running: every block ended; the execution's end is not recorded yet"


def _evidence(artifact: Artifact, blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    outputs = {
        (b["id"], posixpath.normpath(o["path"])): o["digest"] for b in blocks for o in b["outputs"]
    }
    evidence = []
    for criterion in artifact.spec.intent.acceptance:
        link = criterion.evidence
        if link is None:
            continue
        digest = outputs.get((link.block, posixpath.normpath(link.output)))
        evidence.append(
            {
                "acceptance": criterion.id,
                "block": link.block,
                "output": link.output,
                "digest": digest,
                "status": "produced" if digest is not None else "missing",
            }
        )
    return evidence


def trace_document(
    records: Sequence[dict[str, Any]], artifact: Artifact, *, secrets: Sequence[str] = ()
) -> dict[str, Any]:
    """The Trace (`alloy.dev/v1`) of the execution whose ledger holds `records`.

    `artifact` must be the one the ledger names (same name and digest): evidence is read
    through its acceptance criteria. Every string is redacted of `secrets`.
    """
    state = _replay(records)
    if state.planned is None:
        raise TraceError("the ledger has no 'planned' record; it is not an execution's ledger")
    planned = state.planned
    ran = _get(planned, "artifact", dict)
    if (ran.get("name"), ran.get("digest")) != (artifact.metadata.name, artifact.digest):
        raise TraceError(
            f"the ledger ran artifact {ran.get('name')}@{ran.get('digest')}, not "
            f"{artifact.metadata.name}@{artifact.digest}; pass the artifact the ledger names"
        )
    event = _get(planned, "event", dict)
    execution = _get(planned, "execution")
    if not _EXECUTION.match(execution):
        raise TraceError(f"{_where(planned)}: execution {execution!r} is not exe-<16 hex>")
    order = [b.id for b in artifact.spec.blocks]
    order += sorted(set(state.blocks) - set(order))
    queued = state.finished is None and state.queued is not None
    statuses = {b: _block_status(state.blocks.get(b, _BlockState()), queued=queued) for b in order}
    blocks = []
    for block_id in order:
        block = state.blocks.get(block_id, _BlockState())
        blocks.append(
            {
                "id": block_id,
                "status": statuses[block_id],
                "attempts": [block.attempts[n] for n in sorted(block.attempts)],
                "outputs": block.outputs,
            }
        )
    status = _execution_status(state, statuses)
    document = {
        "apiVersion": API_VERSION,
        "kind": "Trace",
        "metadata": {"name": execution},
        "spec": {
            "intent": artifact.spec.intent.name,
            "artifact": {"name": artifact.metadata.name, "digest": artifact.digest},
            "event": {
                "type": _one_of(event, "type", EVENT_TYPES, where="the planned record's event"),
                "key": _get(event, "key", where="the planned record's event"),
            },
            "status": status,
            "startedAt": _at(planned),
            "finishedAt": _at(state.finished) if state.finished is not None else None,
            "blocks": blocks,
            "gates": state.gates,
            "evidence": _evidence(artifact, blocks),
        },
    }
    spec: dict[str, Any] = document["spec"]  # type: ignore[assignment]
    if state.finished is None:  # not finished: always the current reason
        spec["reason"] = _current_reason(state, statuses, status, execution)
    elif isinstance(state.finished.get("reason"), str):
        spec["reason"] = state.finished["reason"]
    return redact(document, secrets)


def planned_inputs(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The inputs the execution ran with (from its `planned` record)."""
    for record in records:
        if record.get("type") == "planned":
            inputs = record.get("inputs") or {}
            if not isinstance(inputs, dict):
                raise TraceError("the 'planned' record's 'inputs' is not an object")
            return dict(inputs)
    raise TraceError("the ledger has no 'planned' record; it is not an execution's ledger")


def trace_path(trace: dict[str, Any]) -> str:
    """Where the trace lives on the traces branch: `traces/<intent>/<execution>.json`."""
    return f"traces/{trace['spec']['intent']}/{trace['metadata']['name']}.json"
