"""The Request and Approval documents: narrow, reviewed asks of Foundry."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from alloy.model._common import BlockId, Metadata, Model, ShortText, Text

ARTIFACT_REF = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?@sha256:[0-9a-f]{64}$"
EXECUTION_ID = r"^exe-[0-9a-f]{16}$"


class RequestSpec(Model):
    """Run one artifact, pinned by digest, with these inputs."""

    artifact: Annotated[str, StringConstraints(pattern=ARTIFACT_REF)]
    inputs: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")],
        str | int | bool,
    ] = Field(default_factory=dict)
    reason: Text
    requested_by: ShortText


class Request(Model):
    """kind: Request (`.alloy/requests/<name>.yaml`)."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Request"]
    metadata: Metadata
    spec: RequestSpec


class GateRef(Model):
    """Which gate: a block id and the index of the gate in its `gates` list; index -1 resolves
    the block when it is indeterminate (an attempt with effects was interrupted)."""

    block: BlockId
    #: The gate's index in the block's `gates`; -1 resolves an indeterminate block.
    index: Annotated[int, Field(ge=-1, le=100)] = 0


class ApprovalSpec(Model):
    """A recorded human decision for an approval gate."""

    execution: Annotated[str, StringConstraints(pattern=EXECUTION_ID)]
    gate: GateRef
    decision: Literal["approve", "reject"]
    approver: ShortText
    comment: Text | None = None


class Approval(Model):
    """kind: Approval (`.alloy/approvals/<name>.yaml`)."""

    api_version: Literal["alloy.dev/v1"]
    kind: Literal["Approval"]
    metadata: Metadata
    spec: ApprovalSpec
