"""Where a block's process runs: a `Sandbox` port with two adapters, `none` (the engine's own
view of the machine) and `bwrap` (bubblewrap: unprivileged namespaces), and resource limits
enforced the same way under both (see docs/security.md).

A sandbox turns a block's command line into the command line that runs it confined
(`Sandbox.launch`); after the process ends, the launch says whether a limit ended it
(`Launch.verdict`). The engine never runs a block unconfined when a confinement was asked for
and cannot be had: `Sandbox.problem()` names why, and the execution fails with that reason.
"""

from foundry.sandbox._bwrap import Bubblewrap
from foundry.sandbox._files import linked_git_dir, small_file
from foundry.sandbox._limits import Launch, Limits, parse_size
from foundry.sandbox._port import NoSandbox, Sandbox, launch_in, sandbox_named
from foundry.sandbox._types import Confinement, SandboxUnavailable
from foundry.sandbox._user import (
    RunAs,
    blocked_on_the_way,
    hand_over,
    let_pass,
    run_as_named,
)

__all__ = [
    "Bubblewrap",
    "Confinement",
    "Launch",
    "Limits",
    "NoSandbox",
    "RunAs",
    "Sandbox",
    "SandboxUnavailable",
    "blocked_on_the_way",
    "hand_over",
    "launch_in",
    "let_pass",
    "linked_git_dir",
    "parse_size",
    "run_as_named",
    "sandbox_named",
    "small_file",
]
