"""The port: what a block may see and use, and the adapters that give it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from foundry.sandbox._limits import Launch, limited
from foundry.sandbox._types import Confinement, SandboxUnavailable
from foundry.sandbox._user import RunAs, let_pass


class Sandbox(Protocol):
    """Turns a block's command line into one that runs it confined."""

    name: str
    #: Whether an attempt sees nothing of other attempts (their worktrees, their processes)
    #: and ends with everything it started: a process of one block can then not reach what
    #: another block of the same user runs or reads.
    isolated: bool

    def problem(self, user: RunAs | None = None) -> str | None:
        """Why this sandbox cannot run here, for blocks run as `user` (None: it can)."""

    def launch(self, argv: list[str], confinement: Confinement, scratch: Path) -> Launch:
        """The confined command line of `argv`; `scratch` is an empty directory of the engine's
        for this attempt (the sandbox's private `/tmp` lives there)."""


class NoSandbox:
    """Today's behaviour: the block sees what the engine's user sees; limits still apply."""

    name = "none"
    isolated = False

    def problem(self, user: RunAs | None = None) -> str | None:
        return None

    def launch(self, argv: list[str], confinement: Confinement, scratch: Path) -> Launch:
        return limited(argv, confinement.limits, confinement.user)


def sandbox_named(name: str, *, bwrap: str | None = None, user: RunAs | None = None) -> Sandbox:
    """The sandbox called `name`: `none`, `bwrap`, or `auto` (bwrap where it runs, for blocks
    run as `user` when given, else none). `bwrap` overrides the bubblewrap executable
    (default: `FOUNDRY_BWRAP` or `bwrap` on PATH)."""
    from foundry.sandbox._bwrap import Bubblewrap

    if name == "none":
        return NoSandbox()
    if name in ("bwrap", "auto"):
        box = Bubblewrap(bwrap or os.environ.get("FOUNDRY_BWRAP") or "bwrap")
        if name == "auto" and box.problem(user) is not None:
            return NoSandbox()
        return box
    raise SandboxUnavailable(f"sandbox {name!r}: one of none, bwrap, auto")


def launch_in(
    box: Sandbox | None, argv: list[str], confinement: Confinement, scratch: Path, base: Path
) -> Launch:
    """`argv` as `box` runs it (None: no sandbox) in `confinement`, with its rooms at
    `scratch`, under `base` (a state directory): a user of its own is let through to them."""
    if confinement.user is not None:
        scratch.parent.mkdir(parents=True, exist_ok=True)
        let_pass(scratch, base, confinement.user)
    return (box or NoSandbox()).launch(argv, confinement, scratch)
