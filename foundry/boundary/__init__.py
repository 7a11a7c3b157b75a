"""Foundry's reader of the `alloy.dev/v1` boundary (it never imports Alloy)."""

from foundry.boundary._canonical import canonical_bytes, digest_of
from foundry.boundary._files import MAX_LINKS, FileNode, TreeSource, git_sources, resolve_link
from foundry.boundary._models import GATE_KINDS, Approval, Artifact, Block, Request, Trace
from foundry.boundary._reader import (
    MAX_BYTES,
    TRACE_MAX_BYTES,
    Boundary,
    read_approval,
    read_artifact,
    read_boundary,
    read_request,
    read_trace,
)

__all__ = [
    "GATE_KINDS",
    "MAX_BYTES",
    "MAX_LINKS",
    "TRACE_MAX_BYTES",
    "Approval",
    "Artifact",
    "Block",
    "Boundary",
    "FileNode",
    "Request",
    "Trace",
    "TreeSource",
    "canonical_bytes",
    "digest_of",
    "git_sources",
    "read_approval",
    "read_artifact",
    "read_boundary",
    "read_request",
    "read_trace",
    "resolve_link",
]
