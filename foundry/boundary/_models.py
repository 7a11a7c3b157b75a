"""Foundry's own models of the `alloy.dev/v1` boundary kinds it reads: Artifact, Request,
Approval, and Trace (the kind it writes, read back by `foundry traces convert`).

Closed: a field Foundry does not know is refused, never ignored (it could loosen a guarantee
the writer meant to give). Durations are whole seconds.
"""

from __future__ import annotations

import calendar
import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
BlockId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
Seconds = Annotated[int, Field(ge=0)]
Effects = Literal["none", "idempotent", "reversible", "irreversible"]


class Closed(BaseModel):
    """Strict, frozen, closed, camelCase on the wire."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )


class Evidence(Closed):
    block: BlockId
    output: str


class Acceptance(Closed):
    id: str
    statement: str
    evidence: Evidence | None = None


class IntentRef(Closed):
    name: Name
    title: str | None = None
    state: Literal["proposed", "accepted", "active", "deprecated", "retired", "rejected"]
    owners: list[str]
    acceptance: list[Acceptance]


class Push(Closed):
    paths: list[str]


class Schedule(Closed):
    cron: str
    timezone: str
    catch_up_seconds: Seconds
    overlap: Literal["skip", "queue", "allow"]


class Triggers(Closed):
    apply: bool
    push: Push | None = None
    schedule: Schedule | None = None
    request: bool


class Input(Closed):
    type: Literal["string", "integer", "boolean"]
    required: bool
    default: str | int | bool | None = None


class Rate(Closed):
    count: Annotated[int, Field(ge=1)]
    period_seconds: Annotated[int, Field(ge=1)]


class Lane(Closed):
    name: Name
    limit: Annotated[int, Field(ge=1)]
    queue: Literal["fifo", "latest", "reject"]
    max_queued: Annotated[int, Field(ge=0)] | None = None
    cancel_running: bool
    rate: Rate | None = None


class Retry(Closed):
    max: Annotated[int, Field(ge=0)]
    backoff_seconds: Seconds
    on_exit_codes: list[int]


class ApprovalGate(Closed):
    kind: Literal["approval"]
    from_: list[str] = Field(alias="from")
    quorum: Annotated[int, Field(ge=1)]
    forbid_self: bool
    expires_seconds: Seconds | None = None


class CheckGate(Closed):
    kind: Literal["check"]
    names: list[str]
    timeout_seconds: Seconds | None = None


class WindowGate(Closed):
    kind: Literal["window"]
    cron: str
    timezone: str


class AfterGate(Closed):
    kind: Literal["after"]
    intent: Name
    within_seconds: Seconds | None = None


class CommandGate(Closed):
    kind: Literal["command"]
    run: list[str]
    timeout_seconds: Seconds


Gate = Annotated[
    ApprovalGate | CheckGate | WindowGate | AfterGate | CommandGate,
    Field(discriminator="kind"),
]
GATE_KINDS = ("approval", "check", "window", "after", "command")


class Limits(Closed):
    """Resource limits of a block's process tree (Foundry 0.2.0)."""

    # At most what every kernel interface that enforces them carries (a cgroup's limit, a
    # resource limit): a larger number is refused here, not misread at run time.
    memory_bytes: Annotated[int, Field(ge=1, le=1024**5)] | None = None
    processes: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    file_size_bytes: Annotated[int, Field(ge=1, le=1024**5)] | None = None
    cpu_seconds: Annotated[int, Field(ge=1, le=10**9)] | None = None


class Block(Closed):
    id: BlockId
    needs: list[BlockId]
    run: list[str] = Field(min_length=1)
    timeout_seconds: Annotated[int, Field(ge=1)]
    retry: Retry
    effects: Effects
    gates: list[Gate]
    outputs: list[str]
    env: dict[EnvName, str]
    secrets: list[EnvName]
    workdir: str | None = None
    #: False: the block runs without a network (Foundry 0.2.0)
    network: bool = True
    limits: Limits | None = None


class Provenance(Closed):
    source: str
    source_digest: Digest
    compiler: str
    requires: Annotated[str, StringConstraints(pattern=r"^foundry>=[0-9]+\.[0-9]+\.[0-9]+$")]


class ArtifactSpec(Closed):
    intent: IntentRef
    triggers: Triggers
    inputs: dict[str, Input]
    lane: Lane | None = None
    blocks: list[Block]
    provenance: Provenance


class Metadata(Closed):
    name: Name


class Artifact(Closed):
    """An artifact as Foundry runs it."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Artifact"]
    metadata: Metadata
    digest: Digest
    spec: ArtifactSpec

    def block(self, block_id: str) -> Block:
        return next(b for b in self.spec.blocks if b.id == block_id)


class RequestMetadata(Closed):
    name: Name
    title: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RequestSpec(Closed):
    artifact: Annotated[
        str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?@sha256:[0-9a-f]{64}$")
    ]
    inputs: dict[str, str | int | bool] = Field(default_factory=dict)
    reason: str
    requested_by: str


class Request(Closed):
    """A reviewed request to run one artifact, pinned by digest."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Request"]
    metadata: RequestMetadata
    spec: RequestSpec

    @property
    def artifact_name(self) -> str:
        return self.spec.artifact.split("@", 1)[0]

    @property
    def artifact_digest(self) -> str:
        return self.spec.artifact.split("@", 1)[1]


class ApprovalGateRef(Closed):
    block: BlockId
    #: The gate's index in the block's `gates`; -1 resolves an indeterminate block.
    index: Annotated[int, Field(ge=-1, le=100)] = 0


class ApprovalSpec(Closed):
    execution: Annotated[str, StringConstraints(pattern=r"^exe-[0-9a-f]{16}$")]
    gate: ApprovalGateRef
    decision: Literal["approve", "reject"]
    approver: str
    comment: str | None = None


class Approval(Closed):
    """A recorded decision for one gate of one execution (merged to the default branch)."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Approval"]
    metadata: RequestMetadata
    spec: ApprovalSpec


# --- Trace ------------------------------------------------------------------------------------


def _real_time(stamp: str) -> str:
    """An RFC 3339 UTC time that is a real date and time (the pattern alone lets month 13 by)."""
    try:
        calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        raise ValueError(f"{stamp!r} is not a valid date and time") from None
    return stamp


Timestamp = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"
    ),
    AfterValidator(_real_time),
]
ExecutionId = Annotated[str, StringConstraints(pattern=r"^exe-[0-9a-f]{16}$")]
Count = Annotated[int, Field(ge=0)]


class TraceMetadata(Closed):
    name: ExecutionId


class TraceArtifactRef(Closed):
    name: Name
    digest: Digest


class TraceEvent(Closed):
    type: Literal["apply", "push", "schedule", "request"]
    key: str


class TraceOutput(Closed):
    path: str
    digest: Digest
    size: Count


class TraceAttempt(Closed):
    number: Annotated[int, Field(ge=1)]
    started_at: Timestamp
    finished_at: Timestamp | None = None
    duration_ms: Count | None = None
    exit_code: int | None = None
    outcome: Literal["succeeded", "failed", "timeout", "cancelled", "interrupted"] | None = None
    log_digest: Digest | None = None
    log_tail: str | None = None


class TraceBlock(Closed):
    id: BlockId
    status: Literal[
        "pending", "waiting", "running", "succeeded", "failed", "skipped", "cancelled",
        "indeterminate",
    ]  # fmt: skip
    attempts: list[TraceAttempt] = Field(default_factory=list)
    outputs: list[TraceOutput] = Field(default_factory=list)


class TraceGate(Closed):
    block: BlockId
    index: Count
    kind: Literal["approval", "check", "window", "after", "command"]
    decision: Literal["waiting", "passed", "failed"]
    reason: str
    at: Timestamp


class TraceEvidence(Closed):
    acceptance: str
    block: BlockId
    output: str
    digest: Digest | None = None
    status: Literal["produced", "missing"]


class TraceSpec(Closed):
    intent: Name
    artifact: TraceArtifactRef
    event: TraceEvent
    status: Literal[
        "planned", "queued", "running", "waiting", "succeeded", "failed", "cancelled",
        "indeterminate", "skipped",
    ]  # fmt: skip
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    blocks: list[TraceBlock] = Field(default_factory=list)
    gates: list[TraceGate] = Field(default_factory=list)
    evidence: list[TraceEvidence] = Field(default_factory=list)
    reason: str | None = None


class Trace(Closed):
    """What one execution did (`traces/<intent>/<execution>.json` on the traces branch): the
    kind Foundry writes, read back closed by the rules of `schemas/alloy.dev/v1/trace.schema.json`
    (and its times must be real dates)."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Trace"]
    metadata: TraceMetadata
    spec: TraceSpec
