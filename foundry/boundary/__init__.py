"""Foundry's reader of the `alloy.dev/v1` boundary (it never imports Alloy)."""

from foundry.boundary._canonical import canonical_bytes, digest_of
from foundry.boundary._models import GATE_KINDS, Approval, Artifact, Block, Request
from foundry.boundary._reader import (
    Boundary,
    read_approval,
    read_artifact,
    read_boundary,
    read_request,
)

__all__ = [
    "GATE_KINDS",
    "Approval",
    "Artifact",
    "Block",
    "Boundary",
    "Request",
    "canonical_bytes",
    "digest_of",
    "read_approval",
    "read_artifact",
    "read_boundary",
    "read_request",
]
