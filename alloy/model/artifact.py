"""The Artifact boundary kind: an intent's automation compiled, normalized, and digested.

Durations are whole seconds, sets are sorted, defaults are applied and absent values are left
out, so that the same meaning always gives the same bytes (see `alloy.compile`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from alloy.model._common import BlockId, EnvName, InputName, Model, Owner, Slug
from alloy.model.intent import Effects, State

Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")]
Seconds = Annotated[int, Field(ge=0)]


class ArtifactMetadata(Model):
    """Name of the artifact: the intent's name."""

    name: Slug


class ArtifactEvidence(Model):
    """The block output that shows an acceptance criterion holds."""

    block: BlockId
    output: str


class ArtifactAcceptance(Model):
    """An acceptance criterion, carried so that traces can report evidence against it."""

    id: str
    statement: str
    evidence: ArtifactEvidence | None = None


class ArtifactIntent(Model):
    """What Foundry needs to report back about the intent."""

    name: Slug
    title: str | None = None
    state: State
    owners: list[Owner]
    acceptance: list[ArtifactAcceptance]


class ArtifactPush(Model):
    """Push trigger."""

    paths: list[str]


class ArtifactSchedule(Model):
    """Schedule trigger."""

    cron: str
    timezone: str
    catch_up_seconds: Seconds
    overlap: Literal["skip", "queue", "allow"]


class ArtifactTriggers(Model):
    """Events that start executions."""

    apply: bool
    push: ArtifactPush | None = None
    schedule: ArtifactSchedule | None = None
    request: bool


class ArtifactInput(Model):
    """A declared input."""

    type: Literal["string", "integer", "boolean"]
    required: bool
    default: str | int | bool | None = None


class ArtifactRate(Model):
    """At most `count` starts per `periodSeconds`."""

    count: Annotated[int, Field(ge=1)]
    period_seconds: Annotated[int, Field(ge=1)]


class ArtifactLane(Model):
    """The resolved throttle lane."""

    name: Slug
    limit: Annotated[int, Field(ge=1)]
    queue: Literal["fifo", "latest", "reject"]
    max_queued: Annotated[int, Field(ge=0)] | None = None
    cancel_running: bool
    rate: ArtifactRate | None = None


class ArtifactRetry(Model):
    """Retry policy."""

    max: Annotated[int, Field(ge=0)]
    backoff_seconds: Seconds
    on_exit_codes: list[int]


class ApprovalGateSpec(Model):
    """kind: approval."""

    kind: Literal["approval"]
    from_: list[Owner] = Field(alias="from")
    quorum: Annotated[int, Field(ge=1)]
    forbid_self: bool
    expires_seconds: Seconds | None = None


class CheckGateSpec(Model):
    """kind: check."""

    kind: Literal["check"]
    names: list[str]
    timeout_seconds: Seconds | None = None


class WindowGateSpec(Model):
    """kind: window."""

    kind: Literal["window"]
    cron: str
    timezone: str


class AfterGateSpec(Model):
    """kind: after."""

    kind: Literal["after"]
    intent: Slug
    within_seconds: Seconds | None = None


class CommandGateSpec(Model):
    """kind: command."""

    kind: Literal["command"]
    run: list[str]
    timeout_seconds: Seconds


ArtifactGate = Annotated[
    ApprovalGateSpec | CheckGateSpec | WindowGateSpec | AfterGateSpec | CommandGateSpec,
    Field(discriminator="kind"),
]


class ArtifactLimits(Model):
    """A block's resource limits as numbers (`Limits` of the intent, the project's applied)."""

    memory_bytes: Annotated[int, Field(ge=1)] | None = None
    processes: Annotated[int, Field(ge=1)] | None = None
    file_size_bytes: Annotated[int, Field(ge=1)] | None = None
    cpu_seconds: Annotated[int, Field(ge=1)] | None = None


class ArtifactBlock(Model):
    """A task block, normalized."""

    id: BlockId
    needs: list[BlockId]
    run: list[str]
    timeout_seconds: Annotated[int, Field(ge=1)]
    retry: ArtifactRetry
    effects: Effects
    gates: list[ArtifactGate]
    outputs: list[str]
    env: dict[EnvName, str]
    secrets: list[EnvName]
    workdir: str | None = None
    network: bool = True
    limits: ArtifactLimits | None = None


class Provenance(Model):
    """Where the artifact came from."""

    source: str
    source_digest: Digest
    compiler: str
    #: The Foundry versions that can run this artifact (`foundry>=X.Y.Z`): the highest first
    #: version among the boundary features it uses.
    requires: Annotated[str, StringConstraints(pattern=r"^foundry>=[0-9]+\.[0-9]+\.[0-9]+$")]


class ArtifactSpec(Model):
    """The compiled automation."""

    intent: ArtifactIntent
    triggers: ArtifactTriggers
    inputs: dict[InputName, ArtifactInput]
    lane: ArtifactLane | None = None
    blocks: list[ArtifactBlock]
    provenance: Provenance


class Artifact(Model):
    """kind: Artifact (`.alloy/artifacts/<name>.json`), written by `alloy compile`."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Artifact"]
    metadata: ArtifactMetadata
    digest: Digest
    spec: ArtifactSpec
