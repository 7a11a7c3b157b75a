"""`--sandbox`, shared by `foundry run` and `foundry reconcile`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from foundry.sandbox import Sandbox


def sandbox_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--sandbox auto|bwrap|none` (default: `FOUNDRY_SANDBOX`, else auto)."""
    return click.option(
        "--sandbox",
        type=click.Choice(["auto", "bwrap", "none"]),
        default=lambda: os.environ.get("FOUNDRY_SANDBOX", "auto"),
        show_default="FOUNDRY_SANDBOX, else auto",
        help="Where each block runs: bwrap (its own namespaces: the system read-only, its "
        "worktree, a private /tmp, no host secrets; no network when the block says so), none "
        "(as this user), auto (bwrap where it works here, else none). With bwrap chosen and "
        "unavailable the execution fails and nothing runs. See docs/security.md.",
    )(command)


def chosen_sandbox(name: str) -> Sandbox:
    from foundry.sandbox import sandbox_named

    return sandbox_named(name)
