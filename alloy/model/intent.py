"""The Intent document: what should be true, why, who owns it, how it is shown, what runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from alloy.model._common import (
    BlockId,
    Cron,
    Duration,
    EnvName,
    InputName,
    Metadata,
    Model,
    Owner,
    RelPath,
    ShortText,
    Size,
    Slug,
    Text,
    TimeZone,
    duration_seconds,
    size_bytes,
)

State = Literal["proposed", "accepted", "active", "deprecated", "retired", "rejected"]
Effects = Literal["none", "idempotent", "reversible", "irreversible"]
COMPILED_STATES = ("accepted", "active")


class IntentMetadata(Metadata):
    """Metadata of an intent: its name, title and owners."""

    owners: list[Owner] = Field(default_factory=list)


class Evidence(Model):
    """Where the proof of an acceptance criterion comes from: an output of a block."""

    block: BlockId
    output: RelPath


class Acceptance(Model):
    """One acceptance criterion."""

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,31}$")]
    statement: Text
    evidence: Evidence | None = None


class Relations(Model):
    """Links to other intents."""

    depends_on: list[Slug] = Field(default_factory=list)
    supersedes: list[Slug] = Field(default_factory=list)


class PushTrigger(Model):
    """Run for new commits on the default branch that touch these paths."""

    paths: list[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = Field(
        default_factory=lambda: ["**"]
    )


class ScheduleTrigger(Model):
    """Run at cron slots."""

    cron: Cron
    timezone: TimeZone = "UTC"
    catch_up: Duration = "0s"
    overlap: Literal["skip", "queue", "allow"] = "skip"


class Triggers(Model):
    """When the automation runs."""

    apply: bool = False
    push: PushTrigger | None = None
    schedule: ScheduleTrigger | None = None
    request: bool = False


class InputSpec(Model):
    """A declared input; it reaches blocks only as `ALLOY_INPUT_<NAME>`."""

    type: Literal["string", "integer", "boolean"] = "string"
    default: str | int | bool | None = None
    required: bool = False
    description: ShortText | None = None

    @model_validator(mode="after")
    def _default_matches_type(self) -> InputSpec:
        if self.default is None:
            return self
        expected = {"string": str, "integer": int, "boolean": bool}[self.type]
        ok = isinstance(self.default, expected) and not (
            self.type == "integer" and isinstance(self.default, bool)
        )
        if not ok:
            raise ValueError(f"default {self.default!r} is not of type {self.type}")
        return self


class Lane(Model):
    """A throttle lane; settings may be given here or in the project's `spec.lanes`."""

    name: Slug
    limit: Annotated[int, Field(ge=1, le=10_000)] | None = None
    queue: Literal["fifo", "latest", "reject"] | None = None
    max_queued: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    cancel_running: bool | None = None
    rate: (
        Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5} per [0-9]{1,9}(s|m|h|d)$")]
        | None
    ) = None


class Retry(Model):
    """Retries of a block for the exit codes it names."""

    max: Annotated[int, Field(ge=0, le=100)] = 0
    backoff: Duration = "0s"
    on_exit_codes: list[Annotated[int, Field(ge=1, le=255)]] = Field(default_factory=list)


class ApprovalGate(Model):
    """People who must approve before the block runs."""

    from_: list[Owner] = Field(alias="from", min_length=1)
    quorum: Annotated[int, Field(ge=1, le=100)] = 1
    forbid_self: bool = True
    expires: Duration | None = None


class CheckGate(Model):
    """Named forge checks that must be green on the commit."""

    names: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1
    )
    timeout: Duration | None = None


class WindowGate(Model):
    """Times when the block may start."""

    cron: Cron
    timezone: TimeZone = "UTC"


class AfterGate(Model):
    """Another intent's execution must have succeeded."""

    intent: Slug
    within: Duration | None = None


class CommandGate(Model):
    """A policy command, taken from the default branch, that must exit 0."""

    run: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(min_length=1)
    timeout: Duration = "1m"


GATE_KINDS = ("approval", "check", "window", "after", "command")


class Gate(Model):
    """Exactly one gate kind."""

    approval: ApprovalGate | None = None
    check: CheckGate | None = None
    window: WindowGate | None = None
    after: AfterGate | None = None
    command: CommandGate | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Gate:
        given = [k for k in GATE_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a gate has exactly one kind ({', '.join(GATE_KINDS)}); "
                f"this one has {len(given) or 'none'}"
                + (f": {', '.join(given)}; split it into separate gates" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in GATE_KINDS if getattr(self, k) is not None)


#: The most a size or CPU limit may be: what every kernel interface that enforces it carries
#: (the same bounds as Foundry's artifact reader).
MAX_LIMIT_BYTES = 1024**5
MAX_LIMIT_SECONDS = 10**9


class Limits(Model):
    """Resource limits of a block's process and of everything it starts (docs/security.md)."""

    memory: Size | None = None
    processes: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    file_size: Size | None = None
    cpu: Duration | None = None

    @field_validator("memory", "file_size")
    @classmethod
    def _bytes_in_range(cls, value: str | None) -> str | None:
        if value is not None and size_bytes(value) > MAX_LIMIT_BYTES:
            raise ValueError(f"{value} is more than the most a limit may be (1024Ti)")
        return value

    @field_validator("cpu")
    @classmethod
    def _seconds_in_range(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= duration_seconds(value) <= MAX_LIMIT_SECONDS:
            raise ValueError(f"{value} is not between 1s and {MAX_LIMIT_SECONDS}s")
        return value

    def resolved(self) -> dict[str, int]:
        """The limits as the artifact carries them: numbers, only those set."""
        out = {}
        if self.memory is not None:
            out["memoryBytes"] = size_bytes(self.memory)
        if self.processes is not None:
            out["processes"] = self.processes
        if self.file_size is not None:
            out["fileSizeBytes"] = size_bytes(self.file_size)
        if self.cpu is not None:
            out["cpuSeconds"] = duration_seconds(self.cpu)
        return out


#: The limits' names in an intent, by their name in an artifact.
LIMIT_FIELDS = {
    "memoryBytes": "memory",
    "processes": "processes",
    "fileSizeBytes": "fileSize",
    "cpuSeconds": "cpu",
}


def limits_over(block: Limits | None, policy: Limits | None) -> list[tuple[str, str]]:
    """(field, message) for each limit of `block` above the policy's."""
    if block is None or policy is None:
        return []
    mine, most = block.resolved(), policy.resolved()
    said, allowed = block.model_dump(by_alias=True), policy.model_dump(by_alias=True)
    out = []
    for key, field in LIMIT_FIELDS.items():
        if key in mine and key in most and mine[key] > most[key]:
            message = (
                f"policy: limits.{field} {said[field]} is above the project's {allowed[field]}"
            )
            out.append((field, message))
    return out


class Block(Model):
    """A task block: one process, its effects, gates and outputs."""

    id: BlockId
    needs: list[BlockId] = Field(default_factory=list)
    run: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        min_length=1, max_length=1000
    )
    timeout: Duration = "1h"
    retry: Retry = Field(default_factory=Retry)
    effects: Effects
    gates: list[Gate] = Field(default_factory=list)
    outputs: list[RelPath] = Field(default_factory=list)
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict
    )
    secrets: list[EnvName] = Field(default_factory=list)
    workdir: RelPath | None = None
    #: False: the block has no network (its own network namespace, loopback only)
    network: bool = True
    limits: Limits | None = None


class Automation(Model):
    """The automation that follows from an intent."""

    on: Triggers
    inputs: dict[InputName, InputSpec] = Field(default_factory=dict)
    lane: Lane | None = None
    blocks: list[Block] = Field(min_length=1, max_length=500)


class IntentSpec(Model):
    """The body of an intent."""

    state: State = "proposed"
    goal: Text
    rationale: Text | None = None
    acceptance: list[Acceptance] = Field(default_factory=list)
    relations: Relations = Field(default_factory=Relations)
    automation: Automation | None = None


class Intent(Model):
    """kind: Intent (`.alloy/intents/<name>.yaml`)."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Intent"]
    metadata: IntentMetadata
    spec: IntentSpec


__all__ = [
    "COMPILED_STATES",
    "GATE_KINDS",
    "Acceptance",
    "AfterGate",
    "ApprovalGate",
    "Automation",
    "Block",
    "CheckGate",
    "CommandGate",
    "Effects",
    "Evidence",
    "Gate",
    "InputSpec",
    "Intent",
    "IntentMetadata",
    "IntentSpec",
    "Lane",
    "PushTrigger",
    "Relations",
    "Retry",
    "ScheduleTrigger",
    "Slug",
    "State",
    "Triggers",
    "WindowGate",
]
