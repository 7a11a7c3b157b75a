"""Events and execution identity (DESIGN section 4): the same artifact and event never give two
executions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

EventType = Literal["apply", "push", "schedule", "request"]


@dataclass(frozen=True)
class Event:
    """An immutable event with its key: apply -> the artifact digest; push -> the commit sha;
    schedule -> the slot time (RFC 3339, UTC); request -> `<name>@<content digest>`."""

    type: EventType
    key: str


def execution_id(artifact_digest: str, event: Event) -> str:
    """`exe-` + 16 hex digits of sha256(artifact digest, event type, event key)."""
    material = "\0".join((artifact_digest, event.type, event.key)).encode()
    return "exe-" + hashlib.sha256(material).hexdigest()[:16]
