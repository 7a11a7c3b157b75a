"""What a sandbox is asked for, and its refusal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from foundry.errors import FoundryError
from foundry.sandbox._limits import Limits
from foundry.sandbox._user import RunAs


class SandboxUnavailable(FoundryError):
    """The sandbox asked for cannot run here (the execution fails with this reason)."""


@dataclass(frozen=True)
class Confinement:
    """What one block attempt gets: its worktree (read-write), its working directory in it,
    the network or not, resource limits, and paths it must never see even where the system is
    visible (the daemon's configuration, other repositories' state)."""

    worktree: Path
    cwd: Path
    network: bool = True
    limits: Limits = field(default_factory=Limits)
    hidden: tuple[Path, ...] = ()
    #: extra paths of the host shown read-only (tools a repository's blocks need)
    read_only: tuple[Path, ...] = ()
    #: the OS user the attempt runs as (an engine running as root drops to it); None: the
    #: engine's own user
    user: RunAs | None = None
