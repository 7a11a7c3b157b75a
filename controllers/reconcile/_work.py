"""What the steps of a pass hand each other: `Work`, one execution to start or resume with
everything it runs with, and `Done`, what an execution leaves to publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from controllers.forge import CheckRun

if TYPE_CHECKING:
    from foundry.boundary import Artifact
    from foundry.ids import Event


@dataclass
class Work:
    """One execution a pass means to start or resume, with everything it runs with."""

    execution: str
    event: Event
    artifact: Artifact
    artifact_bytes: bytes
    #: The commit it runs at: its worktree, and where its check run goes.
    commit: str
    inputs: dict[str, str | int | bool] = field(default_factory=dict)
    new: bool = True
    initiator: str | None = None
    #: It ends now instead of going on: (`cancelled` or `skipped`, why) — an operator's cancel,
    #: or superseded by a newer artifact or request.
    end: tuple[Literal["cancelled", "skipped"], str] | None = None
    #: A finished claim whose trace is missing: publishing it is never held by a pause.
    repair: bool = False

    def name(self) -> dict[str, str]:
        """Its intent and event, as the pass report names it (`PassReport.names`)."""
        return {
            "intent": self.artifact.spec.intent.name,
            "eventType": self.event.type,
            "eventKey": self.event.key,
        }


@dataclass
class Done:
    """What an execution leaves to publish: its status, trace files and check run."""

    execution: str
    status: str
    files: dict[str, bytes]
    check: CheckRun
    #: It waits on a gate that what a pass publishes can open (a `check` or an `after` gate).
    waits_on_news: bool = False
