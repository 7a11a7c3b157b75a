"""Pydantic models of every `alloy.dev/v1` kind (the data model of intent and the boundary)."""

from alloy.model._common import API_VERSION, Metadata, duration_seconds
from alloy.model.artifact import Artifact
from alloy.model.intent import COMPILED_STATES, Block, Gate, Intent
from alloy.model.project import DEFAULT_PROJECT, Project
from alloy.model.request import Approval, Request
from alloy.model.trace import Trace

#: Every kind, by name.
KINDS: dict[str, type[Intent | Project | Request | Approval | Artifact | Trace]] = {
    "Project": Project,
    "Intent": Intent,
    "Request": Request,
    "Approval": Approval,
    "Artifact": Artifact,
    "Trace": Trace,
}

__all__ = [
    "API_VERSION",
    "COMPILED_STATES",
    "DEFAULT_PROJECT",
    "KINDS",
    "Approval",
    "Artifact",
    "Block",
    "Gate",
    "Intent",
    "Metadata",
    "Project",
    "Request",
    "Trace",
    "duration_seconds",
]
