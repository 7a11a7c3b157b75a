"""The Project document (`.alloy/alloy.yaml`): repository-wide settings."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, StringConstraints

from alloy.model._common import Duration, Metadata, Model, Owner, Slug
from alloy.model.intent import Effects, Limits


class TraceSettings(Model):
    """Where Foundry commits traces."""

    branch: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]{1,200}$")] = "alloy/traces"


class LaneSpec(Model):
    """A named throttle lane shared by intents."""

    limit: Annotated[int, Field(ge=1, le=10_000)] = 1
    queue: Literal["fifo", "latest", "reject"] = "fifo"
    max_queued: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    cancel_running: bool = False
    rate: (
        Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5} per [0-9]{1,9}(s|m|h|d)$")]
        | None
    ) = None


def _irreversible_only() -> list[Effects]:
    return ["irreversible"]


#: Kinds of automation-risk finding that `alloy review` reports (docs/review.md); the project
#: policy may mark any of them blocking (`spec.policy.blockingRisks`).
RiskKind = Literal[
    "effects-stronger",
    "gate-removed",
    "gate-loosened",
    "executable-new",
    "run-changed",
    "lane-widened",
    "secret-new",
    "trigger-new",
    "timeout-raised",
    "retry-raised",
]
RISK_KINDS: tuple[RiskKind, ...] = get_args(RiskKind)


class Policy(Model):
    """Rules every intent of the repository must follow."""

    #: Blocks with these effects must have an approval gate.
    approval_required_for: list[Effects] = Field(default_factory=_irreversible_only)
    #: If set, the first element of every `run` must be one of these.
    allowed_executables: list[Annotated[str, StringConstraints(min_length=1)]] | None = None
    #: Largest block timeout allowed.
    max_timeout: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,9}(s|m|h|d)$")] = "1d"
    #: Largest size of one file under `.alloy/`, in bytes.
    max_file_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    #: Automation risks that `alloy review` reports as blocking (exit 1) rather than informing.
    blocking_risks: list[RiskKind] = Field(default_factory=list)
    #: False: every block must say `network: false` (it then runs without a network).
    network: bool = True
    #: The most each block may use, and what a block that sets no limit of its own gets.
    limits: Limits | None = None


class AssistantSettings(Model):
    """An external command that `alloy critique` asks for more suggestions (docs/critique.md).

    Nothing else runs it; `alloy critique` takes it from the default branch's project file (or
    the user's config), never from the work tree, so a pull request cannot name its own."""

    #: Argument vector, never a shell string; it reads one intent as JSON on stdin and writes
    #: suggestions as JSON on stdout (schemas/assistant-suggestions.schema.json).
    command: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=1000
    )
    #: Killed (its whole process group) when it has not finished by then.
    timeout: Duration = "10s"


class ProjectSpec(Model):
    """The body of the project document."""

    default_branch: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/-]{1,200}$")] = "main"
    owners: list[Owner] = Field(default_factory=list)
    traces: TraceSettings = Field(default_factory=TraceSettings)
    lanes: dict[Slug, LaneSpec] = Field(default_factory=dict)
    policy: Policy = Field(default_factory=Policy)
    #: The optional external assistant of `alloy critique`.
    assistant: AssistantSettings | None = None


class Project(Model):
    """kind: Project (`.alloy/alloy.yaml`)."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Project"]
    metadata: Metadata
    spec: ProjectSpec = Field(default_factory=ProjectSpec)


DEFAULT_PROJECT = Project.model_validate(
    {"apiVersion": "alloy.dev/v1", "kind": "Project", "metadata": {"name": "project"}}
)
