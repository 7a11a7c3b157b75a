"""The Trace boundary kind: what Foundry did for one execution, read by Alloy for status."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from alloy.model._common import BlockId, Model, Slug
from alloy.model.artifact import Digest

Timestamp = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?Z$"
    ),
]
ExecutionStatus = Literal[
    "planned",
    "queued",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
    "indeterminate",
    "skipped",
]


class TraceMetadata(Model):
    """The execution id."""

    name: Annotated[str, StringConstraints(pattern=r"^exe-[0-9a-f]{16}$")]


class TraceArtifactRef(Model):
    """The artifact the execution ran."""

    name: Slug
    digest: Digest


class TraceEvent(Model):
    """The event that started the execution."""

    type: Literal["apply", "push", "schedule", "request"]
    key: str


class TraceOutput(Model):
    """A declared output collected as evidence."""

    path: str
    digest: Digest
    size: Annotated[int, Field(ge=0)]


class TraceAttempt(Model):
    """One attempt of a block."""

    number: Annotated[int, Field(ge=1)]
    started_at: Timestamp
    finished_at: Timestamp | None = None
    duration_ms: Annotated[int, Field(ge=0)] | None = None
    exit_code: int | None = None
    outcome: Literal["succeeded", "failed", "timeout", "cancelled", "interrupted"] | None = None
    log_digest: Digest | None = None
    log_tail: str | None = None


class TraceBlock(Model):
    """The result of one block."""

    id: BlockId
    status: Literal[
        "pending",
        "waiting",
        "running",
        "succeeded",
        "failed",
        "skipped",
        "cancelled",
        "indeterminate",
    ]
    attempts: list[TraceAttempt] = Field(default_factory=list)
    outputs: list[TraceOutput] = Field(default_factory=list)


class TraceGate(Model):
    """A gate decision."""

    block: BlockId
    index: Annotated[int, Field(ge=0)]
    kind: Literal["approval", "check", "window", "after", "command"]
    decision: Literal["waiting", "passed", "failed"]
    reason: str
    at: Timestamp


class TraceEvidence(Model):
    """Evidence for one acceptance criterion."""

    acceptance: str
    block: BlockId
    output: str
    digest: Digest | None = None
    status: Literal["produced", "missing"]


class TraceSpec(Model):
    """What happened."""

    intent: Slug
    artifact: TraceArtifactRef
    event: TraceEvent
    status: ExecutionStatus
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    blocks: list[TraceBlock] = Field(default_factory=list)
    gates: list[TraceGate] = Field(default_factory=list)
    evidence: list[TraceEvidence] = Field(default_factory=list)
    #: Why the execution is where it is. Unfinished: always its current reason (queued in its
    #: lane, waiting on gates, indeterminate, running, planned). Finished: why it ended so, when
    #: no block says it (it could not start).
    reason: str | None = None


class Trace(Model):
    """kind: Trace (`traces/<intent>/<execution>.json` on the traces branch), written by Foundry."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Trace"]
    metadata: TraceMetadata
    spec: TraceSpec
